"""The SMS adapter: Twilio's Messages API through the official ``twilio`` client.

Why an async HTTP client: the ``twilio`` client is synchronous by default
(``requests``), and a thread per in-flight request costs more CPU than the
request itself.  Measured on this 2-core machine against the in-process sandbox
(docs/channels.md, "Throughput"), aiohttp with 64 requests in flight sends about
twice as many messages per second as 32 threads with ``requests``.  So the
adapter gives the official client an async HTTP transport of its own
(:class:`_AioHttpClient`: an aiohttp session created on the running loop,
bounded by ``concurrency`` connections) and awaits
``client.messages.create_async``.  An injected client is used as it is:
its async methods if its HTTP client is async, else its synchronous ``create``
in a bounded thread pool.

Every send carries ``StatusCallback`` (the message's, normally
``{public_base_url}/twilio/status?attempt={id}``).  The sender is the message's
``from_`` or, by default, one of ``twilio_from_numbers`` chosen by a hash of the
recipient, so a borrower always hears from the same number (Twilio keeps
STOP/START per sender and recipient, and replies go to the number last used).

Errors are classified (table in docs/channels.md): :class:`TwilioTransientError`
(retry with backoff) or :class:`TwilioPermanentError` (record, never retry), both
keeping Twilio's numeric ``code`` and the HTTP ``status``; permanent errors about
the recipient carry an ``effect`` the dispatcher acts on: ``opt_out`` (21610),
``invalid`` (21211), ``landline`` (21614).  A failure after the request may have
reached Twilio (read timeout, dropped connection) sets ``outcome_unknown``: the
message may exist, so reconcile (:meth:`SmsChannel.find_sent`) before retrying.

Logs carry the attempt id, the masked number, the SID and codes; never the body,
and never Twilio's error text (it can quote the number).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, ClassVar

import aiohttp
import requests
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bot.channels.base import ApprovedMessage, Channel, SendResult
from bot.config import Settings
from bot.domain import Channel as ChannelName
from bot.errors import (
    ConfigError,
    ConfigurationDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from bot.privacy import mask_phone

__all__ = [
    "CONFIGURATION_CODES",
    "PERMANENT_CODES",
    "TRANSIENT_CODES",
    "SmsChannel",
    "TwilioAdapter",
    "TwilioConfigurationError",
    "TwilioPermanentError",
    "TwilioTransientError",
    "classify_twilio_error",
]

log = logging.getLogger("bot.channels.sms")
# The twilio client logs every request at INFO (URLs with query strings, which
# for list calls hold phone numbers).  Its records go to a logger of ours that
# drops them unless someone deliberately lowers its level.
_twilio_log = logging.getLogger("bot.channels.sms.twilio_http")
_twilio_log.setLevel(logging.WARNING)

DEFAULT_CONCURRENCY = 64
DEFAULT_TIMEOUT = 15.0  # seconds for a whole request; Twilio answers in well under one
CONNECT_TIMEOUT = 5.0

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

    Known codes first (``configuration``, ``transient`` and ``permanent``: this
    module's Messages tables unless a resource passes its own, as calls do);
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


def refusal(error: DeliveryError) -> tuple[int, str]:
    """The log level and kind of a send the provider refused: a configuration problem at DEBUG
    (the dispatcher logs it once per process), the others at WARNING."""
    if isinstance(error, ConfigurationDeliveryError):
        return logging.DEBUG, "configuration"
    return logging.WARNING, "permanent" if isinstance(error, PermanentDeliveryError) else "transient"


def _network_error(exc: BaseException) -> TwilioTransientError:
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


_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError, requests.RequestException, TimeoutError, asyncio.TimeoutError, ConnectionError,
)


class _AioHttpClient(AsyncHttpClient):
    """The twilio client's async HTTP transport, on an aiohttp session of ours.

    Like twilio's ``AsyncTwilioHttpClient`` (same ``request`` contract), but the
    session is created by the adapter inside the running loop with its limits
    and timeout, Basic auth is sent as a header (aiohttp deprecates its
    ``BasicAuth`` helper, which twilio's client still uses), and nothing is
    logged.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(_twilio_log, True, None)
        self.session = session

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            credentials = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        request_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
        async with self.session.request(method.upper(), url, params=params, data=data, headers=headers,
                                        allow_redirects=allow_redirects,
                                        **({"timeout": request_timeout} if request_timeout else {})) as answer:
            return Response(answer.status, await answer.text(), answer.headers)


class _Masked:
    """A phone number masked only when a log line is written (most are not: INFO is off)."""

    __slots__ = ("number",)

    def __init__(self, number: str) -> None:
        self.number = number

    def __str__(self) -> str:
        return mask_phone(self.number)


class TwilioAdapter(Channel):
    """What the SMS and voice adapters share: the twilio client on our aiohttp
    transport (or a given client), the sender chosen per recipient, and requests
    to one REST resource (``resource``: ``messages`` or ``calls``) within the
    concurrency bound.  One adapter serves one event loop: call :meth:`aclose`
    when the loop is done.
    """

    resource: ClassVar[str]
    default_concurrency: ClassVar[int] = DEFAULT_CONCURRENCY
    #: the configuration error when no sender number is configured
    numbers_needed: ClassVar[str]

    def __init__(self, settings: Settings, client: Client | None = None, *,
                 concurrency: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not settings.twilio_from_numbers:
            raise ConfigError(self.numbers_needed)
        concurrency = self.default_concurrency if concurrency is None else concurrency
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.settings = settings
        self.numbers = tuple(settings.twilio_from_numbers)
        self.concurrency = concurrency
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None
        self._http: _AioHttpClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    # --- sender ---------------------------------------------------------------------

    def sender_for(self, to: str) -> str:
        """The default sender for a recipient: stable per recipient across runs and processes
        (a borrower always sees the same number, and a call-back reaches the same line)."""
        if len(self.numbers) == 1:
            return self.numbers[0]
        digest = hashlib.sha256(to.encode("utf-8")).digest()
        return self.numbers[int.from_bytes(digest[:8], "big") % len(self.numbers)]

    # --- clients ---------------------------------------------------------------------

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.concurrency)
        elif self._loop is not loop:
            raise RuntimeError(f"{type(self).__name__} is bound to another event loop; "
                               "call aclose() in that loop first")
        return loop

    def _client_for_loop(self) -> Client:
        """The twilio client; builds our own async one on first use in this loop."""
        if self._client is not None:
            return self._client
        http = _AioHttpClient(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=CONNECT_TIMEOUT),
        ))
        client = Client(self.settings.twilio_account_sid, self.settings.twilio_auth_token, http_client=http)
        if self.settings.twilio_api_base_url:
            client.api.base_url = self.settings.twilio_api_base_url.rstrip("/")
        self._http = http
        self._client = client
        return client

    async def _call(self, client: Client, op: str, /, **kwargs: Any) -> Any:
        """``client.<resource>.<op>`` (or its ``_async`` twin), within the concurrency bound.
        ``op`` is positional-only: ``calls.create`` has a ``method`` argument of its own."""
        assert self._slots is not None
        resource = getattr(client, self.resource)
        async with self._slots:
            if getattr(client.http_client, "is_async", False):
                return await getattr(resource, f"{op}_async")(**kwargs)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.name.value}-send")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, lambda: getattr(resource, op)(**kwargs))

    async def aclose(self) -> None:
        """Close our HTTP session and thread pool; the adapter can then serve another loop."""
        if self._http is not None:
            await self._http.session.close()
        if self._owns_client:
            self._client = None
        self._http = None
        self._loop = None
        self._slots = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class SmsChannel(TwilioAdapter):
    """Sends SMS through Twilio (or the local sandbox at ``twilio_api_base_url``).

    ``client``: a ready ``twilio.rest.Client`` (tests, custom HTTP); default: one
    built from the settings with an async HTTP client.  ``concurrency`` bounds the
    requests in flight (connections, or threads for a synchronous client).  One
    adapter serves one event loop: call :meth:`aclose` when the loop is done.
    """

    name: ClassVar[ChannelName] = ChannelName.SMS
    resource = "messages"
    numbers_needed = "BOT_TWILIO_FROM_NUMBERS: at least one sender number is needed to send SMS"

    # --- sending ---------------------------------------------------------------------

    async def send(self, message: ApprovedMessage) -> SendResult:
        """Create the message at Twilio; ``SendResult(sid, status, segments)``."""
        if message.channel != ChannelName.SMS:
            raise ValueError(f"SmsChannel cannot send a {message.channel} message")
        self._bind_loop()
        client = self._client_for_loop()
        sender = message.from_ or self.sender_for(message.to)
        kwargs: dict[str, Any] = {"to": message.to, "from_": sender, "body": message.body}
        if message.status_callback:
            kwargs["status_callback"] = message.status_callback
        masked = _Masked(message.to)
        try:
            created = await self._call(client, "create", **kwargs)
        except TwilioRestException as exc:
            error = classify_twilio_error(exc)
            level, kind = refusal(error)
            log.log(level, "sms attempt=%s to=%s refused: code=%s status=%s %s", message.attempt_id, masked,
                    error.code, error.status, kind)
            raise error from None
        except _NETWORK_ERRORS as exc:
            error = _network_error(exc)
            log.warning("sms attempt=%s to=%s not sent: %s (%s)", message.attempt_id, masked, error.code,
                        type(exc).__name__)
            raise error from None
        except TwilioException as exc:  # an answer the client could not read
            log.warning("sms attempt=%s to=%s: unreadable answer (%s)", message.attempt_id, masked,
                        type(exc).__name__)
            raise TwilioTransientError("the Twilio API gave an answer the client could not read",
                                       code="bad_response", outcome_unknown=True) from None
        segments = _int_or_none(created.num_segments)
        log.info("sms attempt=%s to=%s from=%s sid=%s status=%s segments=%s", message.attempt_id, masked,
                 _Masked(sender), created.sid, created.status, segments)
        return SendResult(provider_id=created.sid, status=str(created.status), segments=segments)

    async def find_sent(self, to: str, body: str, since: datetime, *, limit: int = 50) -> SendResult | None:
        """The newest message to ``to`` with exactly ``body`` created at or after ``since``.

        For reconciling an attempt left in ``sending`` (or a send that ended with
        ``outcome_unknown``): Twilio has no idempotency key for Messages, and its
        message resource does not show the StatusCallback URL, so recipient, text
        and creation time are what can be matched.  Two identical texts to one
        number in the window cannot be told apart (the dispatcher never plans
        those: one contact per borrower, channel and run).
        """
        self._bind_loop()
        client = self._client_for_loop()
        try:
            found = await self._call(client, "list", to=to, limit=limit, page_size=min(limit, 50))
        except TwilioRestException as exc:
            raise classify_twilio_error(exc) from None
        except _NETWORK_ERRORS as exc:
            raise _network_error(exc) from None
        for item in found:  # newest first
            created = item.date_created
            if created is not None and created < since:
                break
            if item.body == body and (item.direction or "").startswith("outbound"):
                return SendResult(provider_id=item.sid, status=str(item.status),
                                  segments=_int_or_none(item.num_segments))
        return None

def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
