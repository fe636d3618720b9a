"""The email adapter: SMTP with aiosmtplib, over a small pool of kept-open connections.

Why a pool: opening an SMTP session costs a TCP (and maybe TLS) handshake, the
greeting, EHLO, STARTTLS, EHLO again and AUTH -- several round trips before the
first message.  A session stays open and carries one message after another
(MAIL, RCPT, DATA); ``pool_size`` sessions (default 4) carry messages in
parallel, since SMTP does one transaction at a time per session.  A session the
server closed (idle timeout, 421) is noticed before use and replaced; one that
fails in the middle of a transaction is dropped.

Every message is ``multipart/alternative`` (text, then HTML) built with
:class:`email.message.EmailMessage`: ``From`` (``smtp_from`` unless the message
names a sender), ``To``, ``Subject``, ``Date``, ``Message-ID`` and the headers
compose made (``List-Unsubscribe``, ``List-Unsubscribe-Post``).

Errors (docs/channels.md): 4xx replies, timeouts, refused or dropped connections
are :class:`SmtpTransientError`; 5xx replies are :class:`SmtpPermanentError`,
with ``effect="invalid"`` when the server says the mailbox does not exist (RCPT
5.1.x).  Authentication, sender and TLS problems are configuration the operator
can fix, so they are transient too.  ``code`` is the SMTP reply code (or a word
such as ``connect``); exception messages and logs never contain the server's
text (it often quotes the address) nor any part of the message.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import io
import logging
import re
import ssl
from email import _header_value_parser as header_parser
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, ClassVar

import aiosmtplib

from bot.channels.base import ApprovedMessage, Channel, SendResult
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Channel as ChannelName
from bot.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from bot.privacy import mask_email

__all__ = [
    "MIME_POLICY",
    "EmailChannel",
    "SmtpPermanentError",
    "SmtpTransientError",
    "classify_connect_error",
    "classify_smtp_error",
    "flatten",
]

log = logging.getLogger("bot.channels.email")

DEFAULT_POOL_SIZE = 4
DEFAULT_TIMEOUT = 30.0
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_PROVIDER_ID_MAX = 64  # contact_attempts.provider_id


# --- MIME -------------------------------------------------------------------------------


class _AngleListHeader:
    """``List-Unsubscribe``: folded only between its ``<...>`` items.

    The email package folds a long unstructured header into RFC 2047 encoded
    words (``=?utf-8?q?=3Chttp...``), which no mail client reads as a URL; this
    header class keeps each URL whole, one item per line.
    """

    max_count = 1
    _split = re.compile(r"(?<=>)\s*,\s*")

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        if not value.isascii():
            raise ValueError("List-Unsubscribe must be ASCII (URLs and mailto: only)")
        kwds["parse_tree"] = header_parser.get_unstructured(value)
        kwds["decoded"] = " ".join(value.split())

    def fold(self, *, policy: Any) -> str:
        items = self._split.split(str(self))
        joined = ("," + policy.linesep + " ").join(items)
        return f"{self.name}: {joined}{policy.linesep}"  # type: ignore[attr-defined]


class _Headers(HeaderRegistry):
    """The standard header registry, with :class:`_AngleListHeader` and its classes
    cached (the standard one builds a new class on every header it sets)."""

    def __init__(self) -> None:
        super().__init__(base_class=BaseHeader)
        self.map_to_type("list-unsubscribe", _AngleListHeader)
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


#: SMTP line endings; ``cte_type="7bit"`` makes non-ASCII parts quoted-printable
#: or base64, so the message passes relays without 8BITMIME unchanged.
MIME_POLICY = email.policy.SMTP.clone(cte_type="7bit", header_factory=_Headers())


def flatten(mime: EmailMessage) -> bytes:
    """The message as sent on the wire (CRLF line endings)."""
    out = io.BytesIO()
    BytesGenerator(out, policy=MIME_POLICY).flatten(mime)
    return out.getvalue()


# --- errors ------------------------------------------------------------------------------


class SmtpTransientError(TransientDeliveryError):
    """Retry later.  ``outcome_unknown``: the server may have accepted the message."""

    def __init__(self, message: str, *, code: int | str | None, outcome_unknown: bool = False) -> None:
        super().__init__(message, code=code)
        self.outcome_unknown = outcome_unknown
        self.effect: str | None = None


class SmtpPermanentError(PermanentDeliveryError):
    """Never retry.  ``effect``: ``invalid`` when the mailbox does not exist."""

    def __init__(self, message: str, *, code: int | str | None, effect: str | None = None) -> None:
        super().__init__(message, code=code)
        self.effect = effect
        self.outcome_unknown = False


def _enhanced(text: str) -> str | None:
    match = _ENHANCED.match(text or "")
    return ".".join(match.groups()) if match else None


def _reply(code: int, text: str, stage: str, *, recipient: bool = False) -> SmtpTransientError | SmtpPermanentError:
    enhanced = _enhanced(text)
    label = f"SMTP {code}" + (f" {enhanced}" if enhanced else "") + f" at {stage}"
    if 400 <= code < 500:
        return SmtpTransientError(f"{label}: temporary failure", code=code)
    if code >= 500:
        effect = None
        if recipient and (enhanced.startswith("5.1.") if enhanced else code in (550, 551, 553)):
            effect = "invalid"
        return SmtpPermanentError(f"{label}: refused", code=code, effect=effect)
    return SmtpTransientError(f"{label}: unexpected reply", code=code)


def classify_smtp_error(exc: BaseException) -> SmtpTransientError | SmtpPermanentError:
    """Map an aiosmtplib / socket / TLS error to our exception (table in docs/channels.md)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        if first is None:
            return SmtpPermanentError("SMTP: every recipient refused", code=None)
        return _reply(first.code, first.message, "RCPT", recipient=True)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SmtpTransientError(f"SMTP {exc.code}: authentication failed (check smtp_username / smtp_password)",
                                  code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        if exc.code >= 500:
            return SmtpTransientError(f"SMTP {exc.code}: sender refused (check smtp_from)", code=exc.code)
        return _reply(exc.code, exc.message, "MAIL")
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _reply(exc.code, exc.message, "RCPT", recipient=True)
    if isinstance(exc, (aiosmtplib.SMTPConnectResponseError, aiosmtplib.SMTPHeloError)):
        # Refused at the greeting or EHLO: the server's state, not the message's.
        return SmtpTransientError(f"SMTP {exc.code} at connect: server refused the session", code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _reply(exc.code, exc.message, "DATA")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply(exc.code, exc.message, "command")
    if isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, ConnectionRefusedError)):
        return SmtpTransientError(f"cannot connect to the SMTP server ({type(exc).__name__})", code="connect")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return SmtpTransientError("the SMTP server does not support a required extension (STARTTLS, AUTH?)",
                                  code="not_supported")
    if isinstance(exc, ssl.SSLError):
        return SmtpTransientError(f"TLS with the SMTP server failed ({type(exc).__name__})", code="tls")
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, TimeoutError,
                        asyncio.TimeoutError, ConnectionError, OSError)):
        return SmtpTransientError(f"SMTP connection lost ({type(exc).__name__}); the message may have been "
                                  "accepted", code="connection", outcome_unknown=True)
    return SmtpTransientError(f"SMTP failure ({type(exc).__name__})", code="error", outcome_unknown=True)


def classify_connect_error(exc: BaseException) -> SmtpTransientError:
    """A session that could not be opened: always transient, and the message was
    certainly not sent (``outcome_unknown`` is False)."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SmtpTransientError(f"SMTP {exc.code}: authentication failed (check smtp_username / smtp_password)",
                                  code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SmtpTransientError(f"SMTP {exc.code} while opening the session", code=exc.code)
    if isinstance(exc, ssl.SSLError):
        return SmtpTransientError(f"TLS with the SMTP server failed ({type(exc).__name__})", code="tls")
    # aiosmtplib says "SMTP STARTTLS extension not supported by server." with a bare SMTPException
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
            isinstance(exc, aiosmtplib.SMTPException) and "not supported" in str(exc)):
        return SmtpTransientError("the SMTP server lacks a required extension (STARTTLS? AUTH?)",
                                  code="not_supported")
    return SmtpTransientError(f"cannot open an SMTP session ({type(exc).__name__})", code="connect")


_CONNECT_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, asyncio.TimeoutError, ssl.SSLError)


def provider_id(message_id: str) -> str:
    """``Message-ID`` without its angle brackets; just its left part when the
    whole would not fit ``contact_attempts.provider_id`` (the left part is unique
    per attempt by construction)."""
    bare = message_id.strip().strip("<>")
    return bare if len(bare) <= _PROVIDER_ID_MAX else bare.partition("@")[0][:_PROVIDER_ID_MAX]


class EmailChannel(Channel):
    """Sends email through the SMTP relay of the settings (``smtp_*``).

    ``tls_context``: an :class:`ssl.SSLContext` for STARTTLS / implicit TLS
    (default: the system's trust store, certificates verified).  ``clock``: for
    the ``Date`` header.  One adapter serves one event loop: :meth:`aclose`
    closes the sessions (QUIT).
    """

    name: ClassVar[ChannelName] = ChannelName.EMAIL

    def __init__(self, settings: Settings, *, pool_size: int = DEFAULT_POOL_SIZE, timeout: float = DEFAULT_TIMEOUT,
                 tls_context: ssl.SSLContext | None = None, clock: Clock | None = None,
                 local_hostname: str | None = None) -> None:
        if settings.smtp_starttls and settings.smtp_use_tls:
            raise ConfigError("BOT_SMTP_STARTTLS and BOT_SMTP_USE_TLS exclude each other: choose one")
        if (settings.smtp_username is None) != (settings.smtp_password is None):
            raise ConfigError("BOT_SMTP_USERNAME and BOT_SMTP_PASSWORD must be set together")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.settings = settings
        self.pool_size = pool_size
        self.timeout = timeout
        self.tls_context = tls_context
        self.clock = clock or SystemClock()
        sender = parseaddr(settings.smtp_from)[1]
        if "@" not in sender:
            raise ConfigError("BOT_SMTP_FROM: not an email address")
        self.sender = sender
        # EHLO names this host; socket.getfqdn() (aiosmtplib's default) can wait on DNS.
        self.local_hostname = local_hostname or sender.rpartition("@")[2]
        self.connections_opened = 0
        self._slots: asyncio.Queue[aiosmtplib.SMTP | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the message -------------------------------------------------------------------

    def build_message(self, message: ApprovedMessage) -> EmailMessage:
        """The MIME message: multipart/alternative with the text and (if any) the HTML part."""
        mime = EmailMessage(policy=MIME_POLICY)
        mime["From"] = message.from_ or self.settings.smtp_from
        mime["To"] = message.to
        mime["Subject"] = message.subject or ""
        mime["Date"] = format_datetime(self.clock.now())
        headers = dict(message.headers)
        mime["Message-ID"] = headers.pop("Message-ID", None) or make_msgid(domain=self.local_hostname)
        for key, value in headers.items():
            mime[key] = value
        mime.set_content(message.body)
        if message.html:
            # A boundary of our own: no random number generation and no scan of
            # the parts for a collision at flatten time (base64 / quoted-printable
            # parts cannot contain "=_", and the text parts are our templates').
            mime.make_alternative(boundary=f"=_bot.{hashlib.sha256(mime['Message-ID'].encode()).hexdigest()[:24]}")
            mime.add_alternative(message.html, subtype="html")
        return mime

    # --- the pool -----------------------------------------------------------------------

    def _bind_loop(self) -> asyncio.Queue[aiosmtplib.SMTP | None]:
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._loop = loop
            # LIFO: the session released last is taken first, so sequential sends
            # reuse one session and more open only under concurrency.
            self._slots = asyncio.LifoQueue()
            for _ in range(self.pool_size):
                self._slots.put_nowait(None)
        elif self._loop is not loop:
            raise RuntimeError("EmailChannel is bound to another event loop; call aclose() in that loop first")
        return self._slots

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_use_tls,
            start_tls=bool(s.smtp_starttls),
            tls_context=self.tls_context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        try:
            await smtp.connect()  # greeting, EHLO, STARTTLS (+ EHLO)
            if s.smtp_username is not None and s.smtp_password is not None:
                await smtp.login(s.smtp_username, s.smtp_password)
        except BaseException:
            self._discard(smtp)
            raise
        self.connections_opened += 1
        log.debug("smtp session opened (%s in all)", self.connections_opened)
        return smtp

    @staticmethod
    def _discard(smtp: aiosmtplib.SMTP | None) -> None:
        """Drop a session at once.  ``abort()``, not a graceful close: a TLS
        transport's graceful close waits for the peer's close_notify, and a loop
        that ends first leaves the socket open."""
        if smtp is None:
            return
        if smtp.transport is not None:
            smtp.transport.abort()
        smtp.close()

    # --- sending ------------------------------------------------------------------------

    async def send(self, message: ApprovedMessage) -> SendResult:
        """Send over a pooled session; ``SendResult(provider_id=Message-ID, status="accepted")``."""
        if message.channel != ChannelName.EMAIL:
            raise ValueError(f"EmailChannel cannot send a {message.channel} message")
        slots = self._bind_loop()
        masked = mask_email(message.to)
        try:
            mime = self.build_message(message)
            data = flatten(mime)
        except (ValueError, TypeError) as exc:
            raise SmtpPermanentError(f"the email cannot be built ({type(exc).__name__})", code="bad_message") from None
        smtp = await slots.get()
        keep: aiosmtplib.SMTP | None = None
        try:
            if smtp is None or not smtp.is_connected:
                self._discard(smtp)
                smtp = None
                try:
                    smtp = await self._connect()
                except _CONNECT_ERRORS as exc:
                    error = classify_connect_error(exc)
                    log.warning("email attempt=%s to=%s not sent: no session (%s, %s)", message.attempt_id,
                                masked, error.code, type(exc).__name__)
                    raise error from None
            try:
                await smtp.sendmail(self.sender, [message.to], data)
            except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
                keep = smtp if smtp.is_connected else None  # refused transaction, RSET sent: session still good
                error = classify_smtp_error(exc)
                log.warning("email attempt=%s to=%s refused: code=%s %s", message.attempt_id, masked, error.code,
                            "permanent" if isinstance(error, PermanentDeliveryError) else "transient")
                raise error from None
            except _CONNECT_ERRORS as exc:
                error = classify_smtp_error(exc)
                log.warning("email attempt=%s to=%s not sent: %s (%s)", message.attempt_id, masked, error.code,
                            type(exc).__name__)
                raise error from None
            except ValueError:  # an address aiosmtplib cannot send safely (checked before any command)
                keep = smtp
                log.warning("email attempt=%s to=%s: address refused by the client", message.attempt_id, masked)
                error = SmtpPermanentError("the recipient address cannot be used", code="bad_address")
                error.effect = "invalid"
                raise error from None
            keep = smtp
        finally:
            if keep is None:
                self._discard(smtp)
            slots.put_nowait(keep)
        message_id = str(mime["Message-ID"])
        log.info("email attempt=%s to=%s accepted message_id=%s", message.attempt_id, masked, message_id)
        return SendResult(provider_id=provider_id(message_id), status="accepted")

    async def aclose(self) -> None:
        """QUIT every open session; the adapter can then serve another loop."""
        slots, self._slots, self._loop = self._slots, None, None
        if slots is None:
            return
        while not slots.empty():
            smtp = slots.get_nowait()
            if smtp is None:
                continue
            transport = smtp.transport
            try:
                if smtp.is_connected:
                    await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
            finally:
                if transport is not None:
                    transport.abort()  # see _discard
                smtp.close()
