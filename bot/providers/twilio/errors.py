"""Twilio's error codes: one table per REST resource, what each means (transient,
permanent, configuration) and its effect on the number (docs/channels.md, "Errors").

:class:`TwilioTransientError` (retry with backoff) or :class:`TwilioPermanentError`
(record, never retry), both keeping Twilio's numeric ``code`` and the HTTP
``status``; permanent errors about the recipient carry an ``effect`` the
dispatcher acts on: ``opt_out`` (21610), ``invalid`` (21211, 21217 for calls),
``landline`` (21614).  A failure after the request may have reached Twilio (read
timeout, dropped connection) sets ``outcome_unknown``: the message may exist,
so the dispatcher reconciles (bot.providers.twilio.lookup) before retrying.

Error 21610 on a status callback ("the recipient replied STOP") is
:data:`OPT_OUT_ERROR`; :func:`failure_effect` reads an error's effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp
import requests
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException

from bot.errors import (
    ConfigurationDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

__all__ = [
    "ADDRESS_FLAGS",
    "CALL_CONFIGURATION_CODES",
    "CALL_PERMANENT_CODES",
    "CALL_TRANSIENT_CODES",
    "CONFIGURATION_CODES",
    "NETWORK_ERRORS",
    "OPT_OUT_CODES",
    "OPT_OUT_ERROR",
    "PERMANENT_CODES",
    "TRANSIENT_CODES",
    "ClientError",
    "RestError",
    "TwilioConfigurationError",
    "TwilioPermanentError",
    "TwilioTransientError",
    "classify_call_error",
    "classify_twilio_error",
    "code_effect",
    "failure_effect",
    "network_error",
    "refusal",
]

#: What the twilio client raises: an error answer of the REST API, and any answer it could not read.
RestError = TwilioRestException
ClientError = TwilioException

# --- Messages -------------------------------------------------------------------------------

#: Twilio codes that are worth retrying: throttling, a full queue, server trouble.
TRANSIENT_CODES: dict[int, str] = {
    20429: "too many requests",
    20500: "internal server error",
    20503: "service unavailable",
    21611: "sender's queue is full",
}

#: Codes that say the bot's configuration is wrong (credentials, account, sender, webhook
#: URL, a trial account, geographic permissions): permanent (every retry would fail alike
#: until a person fixes the setting named), logged once per process by the dispatcher.
CONFIGURATION_CODES: dict[int, str] = {
    20003: "authentication failed (check twilio_account_sid / twilio_auth_token)",
    20404: "resource not found (check twilio_account_sid / twilio_api_base_url)",
    21212: "invalid 'From' number (check twilio_from_numbers)",
    21603: "no 'From' number (check twilio_from_numbers)",
    21606: "'From' number is not a number of this account (check twilio_from_numbers)",
    21609: "invalid StatusCallback URL (check public_base_url)",
    21608: "trial account: the 'To' number is not verified (upgrade the account or verify the number)",
    21408: "sending to this region is not enabled on the account (geographic permissions)",
}

#: Codes about this message or recipient: never retried.  ``effect`` tells the
#: dispatcher what to record.
PERMANENT_CODES: dict[int, tuple[str, str | None]] = {
    21610: ("recipient has opted out (replied STOP)", "opt_out"),
    21211: ("invalid 'To' number", "invalid"),
    21614: ("'To' number is not a mobile number", "landline"),
    21612: ("'To' number cannot be reached from this sender", None),
    21602: ("message body is required", None),
    21604: ("'To' number is required", None),
    21617: ("message body is too long", None),
    21635: ("'To' number cannot receive SMS", None),
    30409: ("message cannot be canceled", None),
}

# --- Calls ----------------------------------------------------------------------------------

#: Worth retrying: throttling, server trouble.
CALL_TRANSIENT_CODES: dict[int, str] = {
    20429: "too many requests",
    20500: "internal server error",
    20503: "service unavailable",
}

#: The bot's configuration is wrong (credentials, caller id, webhook URLs, a trial account,
#: geographic permissions): permanent, logged once per process by the dispatcher.
CALL_CONFIGURATION_CODES: dict[int, str] = {
    20003: "authentication failed (check twilio_account_sid / twilio_auth_token)",
    20404: "resource not found (check twilio_account_sid / twilio_api_base_url)",
    21210: "caller id is not a number of this account (check twilio_from_numbers)",
    21212: "invalid caller id (check twilio_from_numbers)",
    21213: "no caller id (check twilio_from_numbers)",
    21205: "invalid answer URL (check public_base_url)",
    21609: "invalid StatusCallback URL (check public_base_url)",
    21219: "trial account: the 'To' number is not verified (upgrade the account or verify the number)",
    13227: "no permission to call this country (geographic permissions)",
    21215: "the account is not authorised to call this number (geographic permissions)",
}

#: About this call or number: never retried.  ``effect`` is recorded on the number.
CALL_PERMANENT_CODES: dict[int, tuple[str, str | None]] = {
    21211: ("invalid 'To' number", "invalid"),
    21217: ("'To' number does not appear to be valid", "invalid"),
    21614: ("'To' number is not a mobile number", "landline"),
    13224: ("Twilio cannot call this number or it is invalid", None),  # also a carrier outage: no flag
    13225: ("calls to this number are blocked by Twilio", None),
    21216: ("the account is not allowed to call this number", None),
    21201: ("'To' number is required", None),
    21626: ("invalid StatusCallbackEvent", None),
}

# --- effects --------------------------------------------------------------------------------

#: A status callback's ErrorCode meaning "the recipient replied STOP": record the opt-out.
OPT_OUT_ERROR = "21610"
#: Provider error codes with an effect beyond failing the attempt, when the error has no ``effect``.
OPT_OUT_CODES = frozenset({int(OPT_OUT_ERROR)})
ADDRESS_FLAGS = {21211: "invalid", 21614: "landline"}  # the number cannot be used (for SMS)


class TwilioTransientError(TransientDeliveryError):
    """Retry later.  ``outcome_unknown``: the request may have reached Twilio."""

    def __init__(self, message: str, *, code: int | str | None, status: int | None = None,
                 outcome_unknown: bool = False) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.outcome_unknown = outcome_unknown
        self.effect: str | None = None


class TwilioPermanentError(PermanentDeliveryError):
    """Never retry.  ``effect``: ``opt_out`` / ``invalid`` / ``landline`` / None."""

    def __init__(self, message: str, *, code: int | str | None, status: int | None = None,
                 effect: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.effect = effect
        self.outcome_unknown = False


class TwilioConfigurationError(TwilioPermanentError, ConfigurationDeliveryError):
    """Never retry: the bot's configuration is wrong (the message names the setting)."""


def classify_twilio_error(
    exc: TwilioRestException,
    *,
    transient: Mapping[int, str] = TRANSIENT_CODES,
    permanent: Mapping[int, tuple[str, str | None]] = PERMANENT_CODES,
    configuration: Mapping[int, str] = CONFIGURATION_CODES,
) -> TwilioTransientError | TwilioPermanentError:
    """Map a Twilio REST error to our exception (table in docs/channels.md).

    Known codes first (``configuration``, ``transient`` and ``permanent``: the
    Messages tables unless a resource passes its own, as calls do);
    otherwise HTTP 429 and 5xx are transient, other 4xx permanent.  The message
    has the code, our title and the HTTP status only.
    """
    status = int(exc.status) if exc.status is not None else None
    code = int(exc.code) if isinstance(exc.code, int) or (isinstance(exc.code, str) and exc.code.isdigit()) else None
    if code in configuration:
        return TwilioConfigurationError(f"Twilio error {code}: {configuration[code]} (HTTP {status})", code=code,
                                        status=status)
    if code in permanent:
        title, effect = permanent[code]
        return TwilioPermanentError(f"Twilio error {code}: {title} (HTTP {status})", code=code, status=status,
                                    effect=effect)
    if code in transient:
        return TwilioTransientError(f"Twilio error {code}: {transient[code]} (HTTP {status})", code=code,
                                    status=status)
    label = code if code is not None else status
    if status is not None and (status == 429 or status >= 500):
        return TwilioTransientError(f"Twilio error {label} (HTTP {status})", code=label, status=status)
    return TwilioPermanentError(f"Twilio error {label} (HTTP {status})", code=label, status=status)


def classify_call_error(exc: TwilioRestException) -> TwilioTransientError | TwilioPermanentError:
    """Map a Twilio REST error of ``calls.create`` to our exception (table in docs/voice.md):
    the Messages classifier with the Calls code tables."""
    return classify_twilio_error(exc, transient=CALL_TRANSIENT_CODES, permanent=CALL_PERMANENT_CODES,
                                 configuration=CALL_CONFIGURATION_CODES)


def refusal(error: DeliveryError) -> tuple[int, str]:
    """The log level and kind of a send the provider refused: a configuration problem at DEBUG
    (the dispatcher logs it once per process), the others at WARNING."""
    if isinstance(error, ConfigurationDeliveryError):
        return logging.DEBUG, "configuration"
    return logging.WARNING, "permanent" if isinstance(error, PermanentDeliveryError) else "transient"


def failure_effect(exc: BaseException) -> str | None:
    """What a permanent error says about the address: the adapter's ``effect`` when it
    gives one, else what Twilio's code means (21610 opt-out, 21211 invalid, 21614 landline)."""
    effect = getattr(exc, "effect", None)
    if isinstance(effect, str) and effect:
        return effect
    return code_effect(getattr(exc, "code", None))


def code_effect(code: object) -> str | None:
    """What Twilio's error ``code`` (a number or its digits; a send's error or a status
    callback's ``ErrorCode``) means for the address: ``opt_out`` (21610), ``invalid`` (21211),
    ``landline`` (21614), or None."""
    try:
        number = int(code)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return "opt_out" if number in OPT_OUT_CODES else ADDRESS_FLAGS.get(number)


def network_error(exc: BaseException) -> TwilioTransientError:
    """Connection and timeout failures: transient; ``outcome_unknown`` unless the
    request certainly never left (no connection could be made)."""
    if _never_connected(exc):
        return TwilioTransientError(f"cannot connect to the Twilio API ({type(exc).__name__})", code="connect")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, requests.Timeout)):
        return TwilioTransientError("no answer from the Twilio API in time; the message may have been accepted",
                                    code="timeout", outcome_unknown=True)
    return TwilioTransientError(f"connection to the Twilio API failed ({type(exc).__name__}); "
                                "the message may have been accepted", code="connection", outcome_unknown=True)


def _never_connected(exc: BaseException) -> bool:
    """True when no connection was made, so the request certainly did not arrive."""
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, requests.ConnectTimeout)):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


#: Transport failures of a request to the Twilio API (:func:`network_error` classifies them).
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError, requests.RequestException, TimeoutError, asyncio.TimeoutError, ConnectionError,
)
