"""The SMS adapter: Twilio's Messages API through the official ``twilio`` client.

Why an async HTTP client: the ``twilio`` client is synchronous by default
(``requests``), and a thread per in-flight request costs more CPU than the
request itself.  Measured on this 2-core machine against the in-process sandbox
(docs/channels.md, "Throughput"), aiohttp with 64 requests in flight sends about
twice as many messages per second as 32 threads with ``requests``.  So the
adapter gives the official client an async HTTP transport of its own
(:func:`bot.providers.twilio.client.async_client`: an aiohttp session created on
the running loop, bounded by ``concurrency`` connections) and awaits
``client.messages.create_async``.  An injected client is used as it is:
its async methods if its HTTP client is async, else its synchronous ``create``
in a bounded thread pool.

Every send carries ``StatusCallback`` (the message's, normally
``{public_base_url}/twilio/status?attempt={id}``).  The sender is the message's
``from_`` or, by default, one of ``twilio_from_numbers`` chosen by a hash of the
recipient, so a borrower always hears from the same number (Twilio keeps
STOP/START per sender and recipient, and replies go to the number last used).

Errors are classified by :mod:`bot.providers.twilio.errors` (table in docs/channels.md):
``TwilioTransientError`` (retry with backoff) or ``TwilioPermanentError`` (record, never retry), both
keeping Twilio's numeric ``code`` and the HTTP ``status``; permanent errors about
the recipient carry an ``effect`` the dispatcher acts on: ``opt_out`` (21610),
``invalid`` (21211), ``landline`` (21614).  A failure after the request may have
reached Twilio (read timeout, dropped connection) sets ``outcome_unknown``: the
message may exist, so the dispatcher reconciles (:class:`bot.providers.twilio.lookup.TwilioLookup`)
before retrying.

Logs carry the attempt id, the masked number, the SID and codes; never the body,
and never Twilio's error text (it can quote the number).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import Any, ClassVar

from bot.channels.base import ApprovedMessage, Channel, SendResult
from bot.config import Settings
from bot.domain import Channel as ChannelName
from bot.errors import ConfigError
from bot.privacy import mask_phone
from bot.providers.twilio.client import Client, async_client
from bot.providers.twilio.errors import (
    NETWORK_ERRORS,
    ClientError,
    RestError,
    TwilioPermanentError,
    TwilioTransientError,
    classify_twilio_error,
    network_error,
    refusal,
)

__all__ = ["SmsChannel", "TwilioAdapter"]

log = logging.getLogger("bot.channels.sms")

DEFAULT_CONCURRENCY = 64
DEFAULT_TIMEOUT = 15.0  # seconds for a whole request; Twilio answers in well under one


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
    #: the first word of the adapter's log lines ("sms", "call")
    log_label: ClassVar[str]
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
        self._http: Any = None  # the aiohttp session of our own client
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
        client, http = async_client(self.settings, concurrency=self.concurrency, timeout=self.timeout)
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

    async def create(self, message: ApprovedMessage, kwargs: dict[str, Any], *,
                     classify: Callable[[RestError], TwilioTransientError | TwilioPermanentError],
                     undone: str) -> Any:
        """The one create path of messages and calls: ``create`` on this adapter's resource within
        the concurrency bound.  A refusal (``classify``: the resource's error table), a network
        failure or an answer the client cannot read becomes the error table's exception, logged
        with the attempt id, the masked number and codes only (``undone``: "sent", "placed")."""
        self._bind_loop()
        client = self._client_for_loop()
        label, logger, masked = self.log_label, logging.getLogger(type(self).__module__), _Masked(message.to)
        try:
            return await self._call(client, "create", **kwargs)
        except RestError as exc:
            error = classify(exc)
            level, kind = refusal(error)
            logger.log(level, "%s attempt=%s to=%s refused: code=%s status=%s %s", label, message.attempt_id, masked,
                       error.code, error.status, kind)
            raise error from None
        except NETWORK_ERRORS as exc:
            error = network_error(exc)
            logger.warning("%s attempt=%s to=%s not %s: %s (%s)", label, message.attempt_id, masked, undone,
                           error.code, type(exc).__name__)
            raise error from None
        except ClientError as exc:  # an answer the client could not read
            logger.warning("%s attempt=%s to=%s: unreadable answer (%s)", label, message.attempt_id, masked,
                           type(exc).__name__)
            raise TwilioTransientError("the Twilio API gave an answer the client could not read",
                                       code="bad_response", outcome_unknown=True) from None

    async def aclose(self) -> None:
        """Close our HTTP session and thread pool; the adapter can then serve another loop."""
        if self._http is not None:
            await self._http.close()
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
    log_label = "sms"
    numbers_needed = "BOT_TWILIO_FROM_NUMBERS: at least one sender number is needed to send SMS"

    # --- sending ---------------------------------------------------------------------

    async def send(self, message: ApprovedMessage) -> SendResult:
        """Create the message at Twilio; ``SendResult(sid, status, segments)``."""
        if message.channel != ChannelName.SMS:
            raise ValueError(f"SmsChannel cannot send a {message.channel} message")
        sender = message.from_ or self.sender_for(message.to)
        kwargs: dict[str, Any] = {"to": message.to, "from_": sender, "body": message.body}
        if message.status_callback:
            kwargs["status_callback"] = message.status_callback
        created = await self.create(message, kwargs, classify=classify_twilio_error, undone="sent")
        masked = _Masked(message.to)
        segments = _int_or_none(created.num_segments)
        log.info("sms attempt=%s to=%s from=%s sid=%s status=%s segments=%s", message.attempt_id, masked,
                 _Masked(sender), created.sid, created.status, segments)
        return SendResult(provider_id=created.sid, status=str(created.status), segments=segments)


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
