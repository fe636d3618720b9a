"""The email adapter: SMTP with aiosmtplib, over a small pool of kept-open connections.

Why a pool: opening an SMTP session costs a TCP (and maybe TLS) handshake, the
greeting, EHLO, STARTTLS, EHLO again and AUTH -- several round trips before the
first message.  A session stays open and carries one message after another
(MAIL, RCPT, DATA); ``pool_size`` sessions (the ``smtp_pool_size`` setting,
default 8) carry messages in parallel, since SMTP does one transaction at a time
per session.  A session the server closed (idle timeout, 421) is noticed before
use and replaced; one that fails in the middle of a transaction is dropped.  The
dispatcher sends on at most ``pool_size`` lanes, each with at most one email in
flight, so a crash can leave up to ``pool_size`` emails ``unknown`` (docs/dispatch.md).

Every message is ``multipart/alternative`` (text, then HTML), written directly
as bytes (:func:`render_message`; the email package's general machinery was half
the CPU of sending): ``From`` (``smtp_from`` unless the message names a sender),
``To``, ``Subject``, ``Date``, ``Message-ID`` and the headers compose made
(``List-Unsubscribe``, ``List-Unsubscribe-Post``).

Errors (docs/channels.md): 4xx replies, timeouts, refused or dropped connections
are :class:`SmtpTransientError` (with ``outcome_unknown`` only when the session was
lost after the DATA command: before it, at MAIL or RCPT, the message cannot have
been delivered and is simply retried); 5xx replies are :class:`SmtpPermanentError`,
with ``effect="invalid"`` when the server says the mailbox does not exist (RCPT
5.1.x).  Authentication, sender and TLS problems are configuration the operator
can fix, so they are transient too.  ``code`` is the SMTP reply code (or a word
such as ``connect``); exception messages and logs never contain the server's
text (it often quotes the address) nor any part of the message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.policy
import hashlib
import logging
import re
import ssl
from collections.abc import Mapping
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import formataddr, format_datetime, make_msgid, parseaddr
from functools import lru_cache
from typing import ClassVar

import aiosmtplib

from bot.channels.base import ApprovedMessage, Channel, SendResult
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.domain import Channel as ChannelName
from bot.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from bot.privacy import mask_email

__all__ = [
    "EmailChannel",
    "SmtpPermanentError",
    "SmtpTransientError",
    "classify_connect_error",
    "classify_smtp_error",
    "encode_body",
    "header_line",
    "parse",
    "render_message",
]

log = logging.getLogger("bot.channels.email")

DEFAULT_POOL_SIZE = 8  # the smtp_pool_size setting's default
DEFAULT_TIMEOUT = 30.0
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_PROVIDER_ID_MAX = 64  # contact_attempts.provider_id


# --- MIME -------------------------------------------------------------------------------
#
# The wire form is written directly: every message has the same shape
# (multipart/alternative: text, then HTML), so the general machinery of the
# email package (a header registry that parses and re-folds every header, a
# content manager, a generator walking the tree) is not needed.  It cost about
# half of the CPU of an email dispatch pass; this costs a few percent.  The
# output is plain RFC 5322 / MIME that any parser reads back (the tests parse it
# with the email package): CRLF line endings, header lines folded at spaces to
# at most 78 characters where possible (never more than 998), non-ASCII header
# text as RFC 2047 encoded words, bodies as 7bit when they are short-lined ASCII,
# else quoted-printable or base64, whichever is shorter (so the message passes
# relays without 8BITMIME unchanged).

_CRLF = "\r\n"
_MAX_LINE = 78  # RFC 5322's "SHOULD"; 998 is the hard limit
_WORD_BYTES = 39  # UTF-8 bytes per encoded word: "=?utf-8?b?" + 52 base64 characters + "?=" = 64
_ENCODED_WORD = "=?"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not allowed raw in a header or a 7bit part


def _check_header_text(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"the {name} header must not contain line breaks")


def _encoded_words(value: str) -> list[str]:
    """``value`` as RFC 2047 ``B`` encoded words, split between characters."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in value:
        width = len(char.encode("utf-8"))
        if size + width > _WORD_BYTES and chunk:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _fold(name: str, tokens: list[str]) -> str:
    """``Name: tok tok ...``, folded before a token when the line would pass 78
    characters: the space before it becomes CRLF + space, so unfolding (removing
    the CRLF) gives the value back exactly."""
    line = f"{name}:"
    lines: list[str] = []
    for index, token in enumerate(tokens):
        if index and token and len(line) + 1 + len(token) > _MAX_LINE:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    return _CRLF.join(lines) + _CRLF


def unstructured_header(name: str, value: str) -> str:
    """An unstructured header (``Subject`` and the like), folded, encoded when not plain ASCII."""
    _check_header_text(name, value)
    words = value.split(" ")
    if value.isascii() and _ENCODED_WORD not in value and not _CONTROL.search(value) and \
            max(map(len, words), default=0) <= 900:
        return _fold(name, words)
    return _fold(name, _encoded_words(value))


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def address_header(name: str, value: str) -> str:
    """``From`` / ``To``: ``Display Name <addr>`` with the name quoted or encoded as needed."""
    if _PLAIN_ADDRESS.fullmatch(value):  # the usual case, without the address parser
        return f"{name}: {value}{_CRLF}"
    return _named_address_header(name, value)


@lru_cache(maxsize=64)  # the From of the settings, mostly
def _named_address_header(name: str, value: str) -> str:
    _check_header_text(name, value)
    display, address = parseaddr(value)
    if not address or "@" not in address:
        raise ValueError(f"the {name} header has no address")
    address = ascii_address(address)
    if not display:
        return f"{name}: {address}{_CRLF}"
    if display.isascii() and _ENCODED_WORD not in display:
        formatted = formataddr((display, address))
        if len(formatted) <= 900:
            return _fold(name, formatted.split(" "))
    return _fold(name, [*_encoded_words(display), f"<{address}>"])


def ascii_address(address: str) -> str:
    """The address as SMTP without SMTPUTF8 can carry it: an internationalised domain
    in its ASCII (IDNA) form; a non-ASCII local part cannot be sent (ValueError)."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError("a non-ASCII local part needs SMTPUTF8")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("the domain cannot be written in ASCII") from None
    return f"{local}@{domain}"


#: What the bot puts in MAIL FROM / RCPT TO: a plain ASCII ``local@domain`` (no quoted
#: local parts, comments or spaces; an internationalised domain in its IDNA form).
_ENVELOPE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def envelope_address(address: str) -> str:
    """``address`` as the SMTP envelope carries it (:func:`ascii_address`), checked to be a
    plain ``local@domain``; ``ValueError`` otherwise."""
    plain = ascii_address(address.strip())
    if not _ENVELOPE_ADDRESS.fullmatch(plain):
        raise ValueError("not a plain local@domain address")
    return plain


def list_header(name: str, value: str) -> str:
    """``List-Unsubscribe``: folded only between its ``<...>`` items, never inside a URL.

    (The email package folds a long unstructured header into encoded words,
    ``=?utf-8?q?=3Chttp...``, which no mail client reads as a URL.)
    """
    _check_header_text(name, value)
    if not value.isascii():
        raise ValueError(f"{name} must be ASCII (URLs and mailto: only)")
    items = [item.strip() for item in re.split(r"(?<=>)\s*,\s*", value.strip())]
    return f"{name}: " + ("," + _CRLF + " ").join(items) + _CRLF


def ascii_header(name: str, value: str) -> str:
    """A structured ASCII header (``Message-ID``, ``List-Unsubscribe-Post``) as it is."""
    _check_header_text(name, value)
    if not value.isascii():
        raise ValueError(f"{name} must be ASCII")
    return f"{name}: {value}{_CRLF}"


_HEADER_WRITERS = {
    "list-unsubscribe": list_header,
    "list-unsubscribe-post": ascii_header,
    "message-id": ascii_header,
    "in-reply-to": ascii_header,
    "references": ascii_header,
    "from": address_header,
    "to": address_header,
    "reply-to": address_header,
    "sender": address_header,
}


def header_line(name: str, value: str) -> str:
    """One header, written the way its kind needs."""
    if not name.isascii() or not re.fullmatch(r"[!-9;-~]+", name):
        raise ValueError("a header name must be printable ASCII without ':'")
    return _HEADER_WRITERS.get(name.lower(), unstructured_header)(name, value)


def encode_body(text: str, *, avoid: str = "") -> tuple[str, bytes]:
    """``(Content-Transfer-Encoding, payload)`` of a text part, with CRLF line endings.

    7bit when the text is ASCII with lines of at most 78 characters (and does
    not contain ``avoid``, the multipart boundary); otherwise quoted-printable or
    base64, whichever is shorter (CJK text: base64; mostly Latin: quoted-printable).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    joined = _CRLF.join(lines)
    if joined.isascii() and max(map(len, lines)) <= _MAX_LINE and not _CONTROL.search(joined) and \
            (not avoid or avoid not in joined):
        return "7bit", joined.encode("ascii")
    raw = joined.encode("utf-8")
    qp = binascii.b2a_qp(raw, istext=True)
    if len(qp) <= 4 * len(raw) // 3 + len(raw) // 28:  # base64's size with its CRLF every 76 characters
        return "quoted-printable", qp
    return "base64", base64.encodebytes(raw).replace(b"\n", b"\r\n")


def _part_headers(subtype: str, cte: str) -> bytes:
    return (f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
            f"Content-Transfer-Encoding: {cte}{_CRLF}").encode("ascii")


def render_message(*, sender: str, to: str, subject: str, date: str, message_id: str,
                   headers: Mapping[str, str], text: str, html: str | None) -> bytes:
    """The message as sent on the wire (see the comment above): multipart/alternative
    with the text and the HTML part, or a single text/plain part without HTML."""
    head = [address_header("From", sender), address_header("To", to), unstructured_header("Subject", subject),
            f"Date: {date}{_CRLF}", ascii_header("Message-ID", message_id)]
    for name, value in headers.items():
        if name.lower() in _OWN_HEADERS:
            raise ValueError(f"the {name} header is the adapter's own")
        head.append(header_line(name, value))
    head.append("MIME-Version: 1.0" + _CRLF)
    if not html:
        cte, payload = encode_body(text)
        end = b"" if payload.endswith(b"\r\n") else b"\r\n"
        return "".join(head).encode("ascii") + _part_headers("plain", cte) + b"\r\n" + payload + end
    # A boundary of our own, derived from the Message-ID: no random numbers, and no
    # scan for a collision (quoted-printable and base64 cannot contain "=_"; a 7bit
    # part that contains it is encoded instead).
    boundary = f"=_bot.{hashlib.sha256(message_id.encode()).hexdigest()[:24]}"
    head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"{_CRLF}')
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    parts = [b"".join((_part_headers(subtype, cte), b"\r\n", payload))
             for subtype, (cte, payload) in (("plain", encode_body(text, avoid=boundary)),
                                             ("html", encode_body(html, avoid=boundary)))]
    return b"".join((
        "".join(head).encode("ascii"), b"\r\n--", boundary.encode("ascii"), b"\r\n",
        delimiter.join(parts), f"\r\n--{boundary}--\r\n".encode("ascii"),
    ))


_OWN_HEADERS = frozenset({"from", "to", "subject", "date", "mime-version", "content-type",
                          "content-transfer-encoding"})


def parse(data: bytes) -> EmailMessage:
    """The wire form read back with the email package (tests, debugging)."""
    return message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


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


def classify_smtp_error(exc: BaseException, *, data_sent: bool = True) -> SmtpTransientError | SmtpPermanentError:
    """Map an aiosmtplib / socket / TLS error to our exception (table in docs/channels.md).

    ``data_sent``: whether the DATA command had been sent when it happened.  A
    session lost before (at MAIL or RCPT) cannot have delivered the message, so
    the outcome is known: not sent; after, the server may have accepted it.
    """
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
        if not data_sent:
            return SmtpTransientError(f"SMTP connection lost before DATA ({type(exc).__name__}); the message "
                                      "was not sent", code="connection")
        return SmtpTransientError(f"SMTP connection lost ({type(exc).__name__}); the message may have been "
                                  "accepted", code="connection", outcome_unknown=True)
    return SmtpTransientError(f"SMTP failure ({type(exc).__name__})", code="error", outcome_unknown=data_sent)


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


class _LostBeforeData(Exception):
    """The session failed at MAIL or RCPT, before DATA: the message was certainly not sent."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


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

    def __init__(self, settings: Settings, *, pool_size: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                 tls_context: ssl.SSLContext | None = None, clock: Clock | None = None,
                 local_hostname: str | None = None) -> None:
        if settings.smtp_starttls and settings.smtp_use_tls:
            raise ConfigError("BOT_SMTP_STARTTLS and BOT_SMTP_USE_TLS exclude each other: choose one")
        if (settings.smtp_username is None) != (settings.smtp_password is None):
            raise ConfigError("BOT_SMTP_USERNAME and BOT_SMTP_PASSWORD must be set together")
        if pool_size is None:
            pool_size = getattr(settings, "smtp_pool_size", DEFAULT_POOL_SIZE)
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.settings = settings
        self.pool_size = pool_size
        self.timeout = timeout
        self.tls_context = tls_context
        self.clock = clock or SystemClock()
        try:
            sender = envelope_address(parseaddr(settings.smtp_from)[1])
        except ValueError:
            raise ConfigError("BOT_SMTP_FROM: not an email address the bot can send from") from None
        self.sender = sender
        self._mail_from = b"FROM:<" + sender.encode("ascii") + b">"
        # EHLO names this host; socket.getfqdn() (aiosmtplib's default) can wait on DNS.
        self.local_hostname = local_hostname or sender.rpartition("@")[2]
        self.connections_opened = 0
        self._slots: asyncio.Queue[aiosmtplib.SMTP | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the message -------------------------------------------------------------------

    def render(self, message: ApprovedMessage) -> tuple[str, bytes]:
        """``(Message-ID, the message as sent)``: multipart/alternative with the text
        and (if any) the HTML part; ``ValueError`` when it cannot be written."""
        headers = dict(message.headers)
        message_id = next((headers.pop(k) for k in list(headers) if k.lower() == "message-id"), None) \
            or make_msgid(domain=self.local_hostname)
        data = render_message(sender=message.from_ or self.settings.smtp_from, to=message.to,
                              subject=message.subject or "", date=format_datetime(self.clock.now()),
                              message_id=message_id, headers=headers, text=message.body, html=message.html)
        return message_id, data

    def build_message(self, message: ApprovedMessage) -> EmailMessage:
        """The message as the email package reads it (tests, debugging)."""
        return parse(self.render(message)[1])

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
            await smtp.connect()  # greeting (+ STARTTLS with its EHLOs)
            if smtp.is_ehlo_or_helo_needed:
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not smtp.is_connected:
                        raise
                    await smtp.helo()
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
            recipient = envelope_address(message.to)
        except ValueError:
            log.warning("email attempt=%s to=%s: the address cannot be used in the envelope", message.attempt_id,
                        masked)
            error = SmtpPermanentError("the recipient address cannot be used", code="bad_address")
            error.effect = "invalid"
            raise error from None
        try:
            message_id, data = self.render(message)
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
                await self._transaction(smtp, recipient, data)
            except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as exc:
                keep = smtp if smtp.is_connected else None  # refused transaction, RSET sent: session still good
                error = classify_smtp_error(exc)
                log.warning("email attempt=%s to=%s refused: code=%s %s", message.attempt_id, masked, error.code,
                            "permanent" if isinstance(error, PermanentDeliveryError) else "transient")
                raise error from None
            except (_LostBeforeData, *_CONNECT_ERRORS) as exc:
                lost = exc.cause if isinstance(exc, _LostBeforeData) else exc
                error = classify_smtp_error(lost, data_sent=not isinstance(exc, _LostBeforeData))
                log.warning("email attempt=%s to=%s not sent: %s (%s%s)", message.attempt_id, masked, error.code,
                            type(lost).__name__, ", outcome unknown" if error.outcome_unknown else ", before DATA")
                raise error from None
            keep = smtp
        finally:
            if keep is None:
                self._discard(smtp)
            slots.put_nowait(keep)
        log.info("email attempt=%s to=%s accepted message_id=%s", message.attempt_id, masked, message_id)
        return SendResult(provider_id=provider_id(message_id), status="accepted")

    async def _transaction(self, smtp: aiosmtplib.SMTP, recipient: str, data: bytes) -> None:
        """MAIL, RCPT and DATA for one recipient: what aiosmtplib's ``sendmail`` does, without
        parsing the addresses (checked once, when the adapter was built and in :meth:`send`)
        four times per message.  A refused command is followed by RSET, so the session stays
        usable; the exceptions are aiosmtplib's own (:func:`classify_smtp_error`), except that a
        session lost at MAIL or RCPT raises :class:`_LostBeforeData` (the message was not sent)."""
        try:
            try:
                response = await smtp.execute_command(b"MAIL", self._mail_from)
                if response.code != 250:
                    raise aiosmtplib.SMTPSenderRefused(response.code, response.message, self.sender)
                response = await smtp.execute_command(b"RCPT", b"TO:<" + recipient.encode("ascii") + b">")
                if response.code not in (250, 251):
                    raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)
            except aiosmtplib.SMTPResponseException:
                raise
            except _CONNECT_ERRORS as exc:
                raise _LostBeforeData(exc) from exc
            await smtp.data(data)
        except aiosmtplib.SMTPResponseException:
            with contextlib.suppress(ConnectionError, aiosmtplib.SMTPException, TimeoutError):
                await smtp.rset()
            raise

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
