"""The voice adapter: places a scripted call through Twilio's Calls API (docs/voice.md).

``send`` takes an :class:`~bot.channels.base.ApprovedMessage` of channel
``voice`` (no text: the script runs when the call is answered) and creates
the call with the official ``twilio`` client::

    calls.create(to, from_, url=<public>/twilio/voice/answer?attempt=<id>,
                 status_callback=<public>/twilio/voice/status?attempt=<id>,
                 status_callback_event=[initiated, ringing, answered, completed],
                 machine_detection="DetectMessageEnd", timeout=..., time_limit=...)

The caller id is the message's ``from_`` or one of ``twilio_from_numbers``
chosen by a hash of the recipient (a borrower always sees the same number, and
a call-back reaches the same line).  The HTTP transport is the SMS adapter's
(an aiohttp session of ours, bounded by ``concurrency``).

Errors are classified like SMS (:data:`TRANSIENT_CODES`, :data:`PERMANENT_CODES`):
:class:`~bot.channels.sms.TwilioTransientError` (retry with backoff; with
``outcome_unknown`` when the request may have reached Twilio: the dispatcher
then reconciles by listing calls) or :class:`~bot.channels.sms.TwilioPermanentError`
with an ``effect`` on the number (``invalid`` for 21211/21217, ``landline``
for 21614).  :meth:`VoiceChannel.find_placed` lists the calls to a number for
crash reconciliation.

Logs carry the attempt id, the masked number, the call SID and codes only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, ClassVar

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from bot.channels.base import ApprovedMessage, Channel, SendResult
from bot.channels.sms import (
    _NETWORK_ERRORS,
    CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    TwilioPermanentError,
    TwilioTransientError,
    _AioHttpClient,
    _network_error,
)
from bot.config import Settings
from bot.domain import Channel as ChannelName
from bot.errors import ConfigError, PermanentDeliveryError
from bot.privacy import mask_phone
from bot.voice.urls import answer_url, status_url

__all__ = ["CALL_EVENTS", "PERMANENT_CODES", "TRANSIENT_CODES", "VoiceChannel", "classify_call_error"]

log = logging.getLogger("bot.channels.voice")

CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
MACHINE_DETECTION = "DetectMessageEnd"
#: Calls are one per second per account by default: a few in flight is plenty.
DEFAULT_CONCURRENCY = 8

#: Worth retrying: throttling, server trouble, and configuration the operator can
#: fix while the calls wait (credentials, caller id, webhook URLs).
TRANSIENT_CODES: dict[int, str] = {
    20429: "too many requests",
    20500: "internal server error",
    20503: "service unavailable",
    20003: "authentication failed (check twilio_account_sid / twilio_auth_token)",
    20404: "resource not found (check twilio_account_sid / twilio_api_base_url)",
    21210: "caller id is not a number of this account (check twilio_from_numbers)",
    21212: "invalid caller id (check twilio_from_numbers)",
    21213: "no caller id (check twilio_from_numbers)",
    21205: "invalid answer URL (check public_base_url)",
    21609: "invalid StatusCallback URL (check public_base_url)",
}

#: About this call or number: never retried.  ``effect`` is recorded on the number.
PERMANENT_CODES: dict[int, tuple[str, str | None]] = {
    21211: ("invalid 'To' number", "invalid"),
    21217: ("'To' number does not appear to be valid", "invalid"),
    21614: ("'To' number is not a mobile number", "landline"),
    13224: ("Twilio cannot call this number or it is invalid", None),  # also a carrier outage: no flag
    13225: ("calls to this number are blocked by Twilio", None),
    13227: ("no permission to call this country (geo permissions)", None),
    21215: ("the account is not authorised to call this number (geo permissions)", None),
    21216: ("the account is not allowed to call this number", None),
    21201: ("'To' number is required", None),
    21626: ("invalid StatusCallbackEvent", None),
}


def classify_call_error(exc: TwilioRestException) -> TwilioTransientError | TwilioPermanentError:
    """Map a Twilio REST error of ``calls.create`` to our exception (table in docs/voice.md).

    Known codes first; otherwise HTTP 429 and 5xx are transient, other 4xx permanent.
    """
    status = int(exc.status) if exc.status is not None else None
    code = int(exc.code) if isinstance(exc.code, int) or (isinstance(exc.code, str) and exc.code.isdigit()) else None
    if code in PERMANENT_CODES:
        title, effect = PERMANENT_CODES[code]
        return TwilioPermanentError(f"Twilio error {code}: {title} (HTTP {status})", code=code, status=status,
                                    effect=effect)
    if code in TRANSIENT_CODES:
        return TwilioTransientError(f"Twilio error {code}: {TRANSIENT_CODES[code]} (HTTP {status})", code=code,
                                    status=status)
    label = code if code is not None else status
    if status is not None and (status == 429 or status >= 500):
        return TwilioTransientError(f"Twilio error {label} (HTTP {status})", code=label, status=status)
    return TwilioPermanentError(f"Twilio error {label} (HTTP {status})", code=label, status=status)


class VoiceChannel(Channel):
    """Places calls through Twilio (or the local sandbox at ``twilio_api_base_url``).

    ``client``: a ready ``twilio.rest.Client`` (tests); default: one built from the
    settings with an async HTTP client.  One adapter serves one event loop; call
    :meth:`aclose` when the loop is done.
    """

    name: ClassVar[ChannelName] = ChannelName.VOICE

    def __init__(self, settings: Settings, client: Client | None = None, *,
                 concurrency: int = DEFAULT_CONCURRENCY, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not settings.twilio_from_numbers:
            raise ConfigError("BOT_TWILIO_FROM_NUMBERS: at least one caller id is needed to place calls")
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

    def sender_for(self, to: str) -> str:
        """The caller id for a recipient: stable per recipient across runs and processes."""
        if len(self.numbers) == 1:
            return self.numbers[0]
        digest = hashlib.sha256(to.encode("utf-8")).digest()
        return self.numbers[int.from_bytes(digest[:8], "big") % len(self.numbers)]

    # --- clients ---------------------------------------------------------------------

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.concurrency)
        elif self._loop is not loop:
            raise RuntimeError("VoiceChannel is bound to another event loop; call aclose() in that loop first")

    def _client_for_loop(self) -> Client:
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

    async def _call(self, client: Client, op: str, **kwargs: Any) -> Any:
        """``client.calls.<op>`` (or its ``_async`` twin), within the concurrency bound."""
        assert self._slots is not None
        async with self._slots:
            if getattr(client.http_client, "is_async", False):
                return await getattr(client.calls, f"{op}_async")(**kwargs)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="voice-send")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, lambda: getattr(client.calls, op)(**kwargs))

    # --- placing a call ------------------------------------------------------------------

    def create_kwargs(self, message: ApprovedMessage) -> dict[str, Any]:
        """The ``calls.create`` arguments for ``message`` (also what tests check)."""
        base = self.settings.public_base_url
        return {
            "to": message.to,
            "from_": message.from_ or self.sender_for(message.to),
            "url": answer_url(base, message.attempt_id),
            "method": "POST",
            "status_callback": message.status_callback or status_url(base, message.attempt_id),
            "status_callback_method": "POST",
            "status_callback_event": list(CALL_EVENTS),
            "machine_detection": MACHINE_DETECTION,
            "timeout": self.settings.call_ring_timeout_seconds,
            "time_limit": self.settings.call_time_limit_seconds,
        }

    async def send(self, message: ApprovedMessage) -> SendResult:
        """Create the call at Twilio; ``SendResult(call_sid, status)``."""
        if message.channel != ChannelName.VOICE:
            raise ValueError(f"VoiceChannel cannot place a {message.channel} message")
        self._bind_loop()
        client = self._client_for_loop()
        kwargs = self.create_kwargs(message)
        masked = mask_phone(message.to)
        try:
            created = await self._call(client, "create", **kwargs)
        except TwilioRestException as exc:
            error = classify_call_error(exc)
            log.warning("call attempt=%s to=%s refused: code=%s status=%s %s", message.attempt_id, masked,
                        error.code, error.status,
                        "permanent" if isinstance(error, PermanentDeliveryError) else "transient")
            raise error from None
        except _NETWORK_ERRORS as exc:
            error = _network_error(exc)
            log.warning("call attempt=%s to=%s not placed: %s (%s)", message.attempt_id, masked, error.code,
                        type(exc).__name__)
            raise error from None
        except TwilioException as exc:
            log.warning("call attempt=%s to=%s: unreadable answer (%s)", message.attempt_id, masked,
                        type(exc).__name__)
            raise TwilioTransientError("the Twilio API gave an answer the client could not read",
                                       code="bad_response", outcome_unknown=True) from None
        log.info("call attempt=%s to=%s from=%s sid=%s status=%s", message.attempt_id, masked,
                 mask_phone(kwargs["from_"]), created.sid, created.status)
        return SendResult(provider_id=created.sid, status=str(created.status))

    async def find_placed(self, to: str, from_: str, since: datetime, *, exclude: frozenset[str] = frozenset(),
                          limit: int = 200) -> list[Any]:
        """Calls to ``to`` from ``from_`` created at or after ``since`` (newest first), minus ``exclude``."""
        self._bind_loop()
        client = self._client_for_loop()
        try:
            found = await self._call(client, "list", to=to, from_=from_, limit=limit, page_size=min(limit, 200))
        except TwilioRestException as exc:
            raise classify_call_error(exc) from None
        except _NETWORK_ERRORS as exc:
            raise _network_error(exc) from None
        return [c for c in found if c.sid not in exclude and (c.date_created is None or c.date_created >= since)]

    async def aclose(self) -> None:
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
