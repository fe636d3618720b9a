"""bot.channels.email against aiosmtpd servers started here, over real SMTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.channels.base import ApprovedMessage, SendResult, approve
from bot.channels.email import EmailChannel, SmtpPermanentError, SmtpTransientError, provider_id
from bot.clock import FixedClock
from bot.compliance.types import Decision
from bot.config import Settings
from bot.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from bot.messages import MessageData, compose, read_unsubscribe_token
from bot.rendering import Renderer

ALLOWED = Decision(True, (), None, "us", ("America/New_York",))
SECRET = "email-test-unsubscribe-secret"
TO = "jane.doe@example.com"
NOW = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- servers ------------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Handler:
    """Stores messages; counts SMTP sessions (one EHLO each); scripted answers."""

    data_answers: list[str] = field(default_factory=list)  # consumed first, then "250 OK"
    rcpt_answer: str | None = None
    drop_in_data: bool = False  # close the connection instead of answering DATA
    drop_at: str | None = None  # "MAIL" or "RCPT": close the connection instead of answering it
    received: list[Received] = field(default_factory=list)
    sessions: set[tuple[str, int]] = field(default_factory=set)
    servers: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: Any, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.lock:
            if session.ssl is None or session.peer not in self.sessions:
                self.sessions.add(session.peer)
                self.servers.append(server)
        return responses

    async def handle_MAIL(self, server: Any, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.drop_at == "MAIL":
            server.transport.abort()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.drop_at == "RCPT":
            server.transport.abort()
            return "250 OK"
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.drop_in_data:
            server.transport.abort()
            return "250 OK"
        with self.lock:
            if self.data_answers:
                return self.data_answers.pop(0)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b"",
                                          server.transport.get_extra_info("ssl_object") is not None,
                                          bool(session.authenticated)))
        return "250 OK"


class SmtpServer(Controller):
    """aiosmtpd on 127.0.0.1 and a free port (bound before starting, so parallel runs never collide)."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.loop.close()


def settings_for(port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(smtp_host="127.0.0.1", smtp_port=port, smtp_from="reminders@mail.example.com",
                                  public_base_url="https://bot.example.com", unsubscribe_secret=SECRET)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def server(handler: Handler) -> Iterator[SmtpServer]:
    with SmtpServer(handler) as srv:
        yield srv


def message(attempt_id: int = 1, *, to: str = TO, subject: str = "Your payment is due",
            headers: dict[str, str] | None = None) -> ApprovedMessage:
    return approve(ALLOWED, attempt_id=attempt_id, channel="email", to=to, subject=subject,
                   body="Hello,\nyour payment is due.\nUnsubscribe: https://bot.example.com/unsubscribe/T\n",
                   html='<p>Hello, your payment is due. '
                        '<a href="https://bot.example.com/unsubscribe/T">Unsubscribe</a></p>\n',
                   idempotency_key=f"plan:I{attempt_id}:main:0:email",
                   headers=headers or {"Message-ID": f"<attempt-{attempt_id}.0123456789abcdef@mail.example.com>"})


async def send_all(channel: EmailChannel, messages: list[ApprovedMessage]) -> list[SendResult | BaseException]:
    try:
        return await asyncio.gather(*(channel.send(m) for m in messages), return_exceptions=True)
    finally:
        await channel.aclose()


def send_one(channel: EmailChannel, msg: ApprovedMessage) -> SendResult:
    result = run(send_all(channel, [msg]))[0]
    if isinstance(result, BaseException):
        raise result
    return result


# --- a composed reminder, end to end -------------------------------------------------------------------


@dataclass
class EmailAttempt:
    """Stands in for a planned email ContactAttempt (compose reads only these fields)."""

    id: int = 41
    dedupe_key: str = "plan:I1:main:0:email"
    borrower_id: str = "B7"
    installment_id: str | None = "I1"
    channel: str = "email"
    source: str = "planner"
    template: str | None = "reminder_due"
    address: str | None = TO
    decision: dict[str, Any] | None = field(default_factory=lambda: {"planner": {"locale": "zh-CN"}})
    next_attempt_at: datetime | None = NOW


def test_composed_reminder_arrives_as_multipart_with_unsubscribe_headers(server: SmtpServer,
                                                                          handler: Handler) -> None:
    settings = settings_for(server.port)
    data = MessageData("B7", "张伟", "zh-CN", "Asia/Shanghai", "L-1-0042", "CNY", date(2026, 1, 15), 123456)
    composed = compose(data, EmailAttempt(), settings, renderer=Renderer())
    channel = EmailChannel(settings, clock=FixedClock(NOW))
    result = send_one(channel, approve(ALLOWED, **composed.approve_fields()))

    [got] = handler.received
    assert got.mail_from == "reminders@mail.example.com" and got.rcpt_tos == [TO]
    mime = got.message
    assert mime.get_content_type() == "multipart/alternative"
    text, html = mime.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert mime["From"] == "reminders@mail.example.com" and mime["To"] == TO
    assert mime["Subject"] == composed.subject and "¥1,234.56" in mime["Subject"]
    assert mime["Date"] == "Thu, 15 Jan 2026 15:00:00 +0000"
    assert mime["Message-ID"] == composed.message_id
    assert result.provider_id == composed.message_id.strip("<>") and result.status == "accepted"
    url = composed.unsubscribe_url
    assert url is not None
    # The header arrives exactly as composed (URLs whole, no encoded words).
    assert mime["List-Unsubscribe"] == f"<{url}>, <mailto:support@example.com?subject=unsubscribe>"
    raw_headers = got.content.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:support@example.com?subject=unsubscribe>\r\n" in raw_headers
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in text.get_content() and f'href="{url}"' in html.get_content()
    assert "张伟" in text.get_content()
    assert read_unsubscribe_token(SECRET, url.rsplit("/", 1)[1]) == ("B7", TO)
    assert all(len(line) <= 998 for line in got.content.split(b"\r\n"))


def test_connection_is_reused_and_bounded(server: SmtpServer, handler: Handler) -> None:
    channel = EmailChannel(settings_for(server.port), pool_size=3)

    async def scenario() -> None:
        try:
            for i in range(10):  # one after another: one session
                await channel.send(message(i))
            assert channel.connections_opened == 1
            await asyncio.gather(*(channel.send(message(100 + i)) for i in range(30)))  # in parallel: at most 3
        finally:
            await channel.aclose()

    run(scenario())
    assert len(handler.received) == 40
    assert len(handler.sessions) == channel.connections_opened <= 3


def test_a_session_the_server_closed_is_replaced(server: SmtpServer, handler: Handler) -> None:
    channel = EmailChannel(settings_for(server.port), pool_size=1)

    async def scenario() -> None:
        try:
            await channel.send(message(1))
            for smtp_server in handler.servers:  # the server ends the session (idle timeout, 421, restart)
                server.loop.call_soon_threadsafe(smtp_server.transport.close)
            idle = channel._slots._queue[-1] if channel._slots else None  # type: ignore[union-attr]
            for _ in range(500):  # readiness: until the client has seen the close
                if idle is None or not idle.is_connected:
                    break
                await asyncio.sleep(0.005)
            await channel.send(message(2))
        finally:
            await channel.aclose()

    run(scenario())
    assert len(handler.received) == 2 and channel.connections_opened == 2


# --- errors ------------------------------------------------------------------------------------------


def test_451_is_transient_then_the_retry_is_accepted(server: SmtpServer, handler: Handler) -> None:
    handler.data_answers = ["451 4.3.0 Mail server temporarily rejected message"]
    channel = EmailChannel(settings_for(server.port), pool_size=1)

    async def scenario() -> tuple[BaseException | None, SendResult]:
        try:
            try:
                await channel.send(message())
                first: BaseException | None = None
            except TransientDeliveryError as exc:
                first = exc
            return first, await channel.send(message())
        finally:
            await channel.aclose()

    first, second = run(scenario())
    assert isinstance(first, SmtpTransientError) and first.code == 451 and "4.3.0" in str(first)
    assert second.status == "accepted" and len(handler.received) == 1
    assert channel.connections_opened == 1  # a refused transaction leaves the session usable


@pytest.mark.parametrize(("rcpt", "data", "code", "effect"), [
    ("550 5.1.1 <jane.doe@example.com>: Recipient address rejected: User unknown", None, 550, "invalid"),
    ("553 5.7.1 <jane.doe@example.com>: Relay access denied", None, 553, None),
    (None, "554 5.7.1 Message rejected as spam", 554, None),
])
def test_5xx_is_permanent(server: SmtpServer, handler: Handler, rcpt: str | None, data: str | None, code: int,
                          effect: str | None) -> None:
    handler.rcpt_answer = rcpt
    handler.data_answers = [data] if data else []
    with pytest.raises(SmtpPermanentError) as info:
        send_one(EmailChannel(settings_for(server.port)), message())
    error = info.value
    assert isinstance(error, PermanentDeliveryError)
    assert (error.code, error.effect) == (code, effect)
    assert TO not in str(error) and "jane" not in str(error) and "spam" not in str(error)
    assert handler.received == []


def test_a_connection_lost_in_the_middle_leaves_the_outcome_unknown(server: SmtpServer, handler: Handler) -> None:
    handler.drop_in_data = True
    channel = EmailChannel(settings_for(server.port), pool_size=1)
    with pytest.raises(SmtpTransientError) as info:
        send_one(channel, message())
    assert info.value.code == "connection" and info.value.outcome_unknown is True
    handler.drop_in_data = False
    assert send_one(channel, message()).status == "accepted"  # a new session
    assert channel.connections_opened == 2


@pytest.mark.parametrize("stage", ["MAIL", "RCPT"])
def test_a_connection_lost_before_data_is_transient_and_the_message_not_sent(
        server: SmtpServer, handler: Handler, stage: str) -> None:
    handler.drop_at = stage
    channel = EmailChannel(settings_for(server.port), pool_size=1)
    with pytest.raises(SmtpTransientError) as info:
        send_one(channel, message())
    assert info.value.code == "connection" and info.value.outcome_unknown is False
    assert "before DATA" in str(info.value) and TO not in str(info.value)
    assert handler.received == []
    handler.drop_at = None
    assert send_one(channel, message()).status == "accepted"  # a new session
    assert channel.connections_opened == 2 and len(handler.received) == 1


def test_a_kept_session_lost_at_mail_is_retried_as_not_sent(server: SmtpServer, handler: Handler) -> None:
    """The usual case: a pooled session the server dropped just as the next message starts."""
    channel = EmailChannel(settings_for(server.port), pool_size=1)

    async def two() -> SmtpTransientError:
        await channel.send(message(1))
        handler.drop_at = "MAIL"
        try:
            await channel.send(message(2))
        except SmtpTransientError as exc:
            return exc
        finally:
            await channel.aclose()
        raise AssertionError("the second send did not fail")

    error = run(two())
    assert error.outcome_unknown is False and error.code == "connection"
    assert len(handler.received) == 1


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_transient() -> None:
    with pytest.raises(SmtpTransientError) as info:
        send_one(EmailChannel(settings_for(_closed_port())), message())
    assert info.value.code == "connect" and info.value.outcome_unknown is False


def test_misconfiguration_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError):
        EmailChannel(settings_for(25, smtp_starttls=True, smtp_use_tls=True))
    with pytest.raises(ConfigError):
        EmailChannel(settings_for(25, smtp_username="bot"))


def test_provider_id_fits_the_column() -> None:
    assert provider_id("<attempt-1.0123456789abcdef@mail.example.com>") == "attempt-1.0123456789abcdef@mail.example.com"
    long = "<attempt-123456.0123456789abcdef@" + "sub." * 20 + "example.com>"
    assert provider_id(long) == "attempt-123456.0123456789abcdef"


# --- TLS and authentication ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A self-signed certificate for 127.0.0.1 and the contexts that serve and trust it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = datetime.now(UTC) - dt.timedelta(days=1)  # certificate validity is checked against the real clock
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    return Certs(server_ctx, client_ctx)


def authenticator(server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"bot", b"s3cret")
    return AuthResult(success=ok, handled=False)


def test_starttls_and_auth(certs: Certs, handler: Handler) -> None:
    with SmtpServer(handler, tls_context=certs.server, require_starttls=True, authenticator=authenticator,
                    auth_require_tls=True, auth_required=True) as srv:
        settings = settings_for(srv.port, smtp_starttls=True, smtp_username="bot", smtp_password="s3cret")
        send_one(EmailChannel(settings, tls_context=certs.client), message())
        [got] = handler.received
        assert got.tls and got.authenticated

        wrong = settings.model_copy(update={"smtp_password": "wrong"})
        with pytest.raises(SmtpTransientError) as info:
            send_one(EmailChannel(wrong, tls_context=certs.client), message(2))
        assert info.value.code == 535 and "smtp_password" in str(info.value)

        untrusted = EmailChannel(settings)  # the system trust store does not know our certificate
        with pytest.raises(SmtpTransientError) as info:
            send_one(untrusted, message(3))
        assert info.value.code == "tls" and info.value.outcome_unknown is False
        assert len(handler.received) == 1


def test_starttls_required_but_not_offered(server: SmtpServer, handler: Handler) -> None:
    with pytest.raises(SmtpTransientError) as info:
        send_one(EmailChannel(settings_for(server.port, smtp_starttls=True)), message())
    assert info.value.code == "not_supported" and info.value.outcome_unknown is False
    assert handler.received == []


def test_plain_connection_to_a_starttls_only_server_is_refused(certs: Certs, handler: Handler) -> None:
    with SmtpServer(handler, tls_context=certs.server, require_starttls=True) as srv:
        with pytest.raises(SmtpTransientError) as info:
            send_one(EmailChannel(settings_for(srv.port)), message())
        assert info.value.code == 530
    assert handler.received == []


def test_implicit_tls(certs: Certs, handler: Handler) -> None:
    with SmtpServer(handler, ssl_context=certs.server) as srv:
        settings = settings_for(srv.port, smtp_use_tls=True)
        send_one(EmailChannel(settings, tls_context=certs.client), message())
    [got] = handler.received
    assert got.tls


# --- privacy ------------------------------------------------------------------------------------------


def test_logs_hold_no_address_and_no_text(server: SmtpServer, handler: Handler,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    channel = EmailChannel(settings_for(server.port))
    send_one(channel, message(1))
    handler.rcpt_answer = f"550 5.1.1 <{TO}>: User unknown"
    with pytest.raises(SmtpPermanentError):
        send_one(channel, message(2))
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # mail.log: the test server itself
    text = "\n".join(r.getMessage() for r in ours)
    assert "attempt=1" in text and "attempt=2" in text
    assert TO not in text and "jane.doe" not in text
    assert "payment is due" not in text and "Your payment" not in text


def test_an_http_link_gets_no_one_click_header(server: SmtpServer, handler: Handler) -> None:
    """RFC 8058 requires an HTTPS one-click URI: with an http:// public URL the email keeps
    List-Unsubscribe (folded between its items) and carries no List-Unsubscribe-Post."""
    settings = settings_for(server.port, public_base_url="http://bot.example.com")
    data = MessageData("B7", "Jane", "en-US", "America/New_York", "L-1-0042", "USD", date(2026, 1, 15), 12345)
    attempt = EmailAttempt(id=42, decision={"planner": {"locale": "en-US"}})
    composed = compose(data, attempt, settings, renderer=Renderer())
    url = composed.unsubscribe_url
    assert url is not None and url.startswith("http://bot.example.com/unsubscribe/")
    assert "List-Unsubscribe-Post" not in composed.headers
    send_one(EmailChannel(settings, clock=FixedClock(NOW)), approve(ALLOWED, **composed.approve_fields()))
    [got] = handler.received
    assert got.message["List-Unsubscribe"] == f"<{url}>, <mailto:support@example.com?subject=unsubscribe>"
    assert got.message["List-Unsubscribe-Post"] is None
    head = got.content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert b"List-Unsubscribe-Post" not in got.content
    # Folded to 78 characters, but for the line holding the link (a URL is never broken).
    assert all(len(line) <= 78 for line in head if url.encode() not in line), head
    assert b" <mailto:support@example.com?subject=unsubscribe>" in head


# --- the wire form ------------------------------------------------------------------------------------


WIRE_MESSAGE_ID = "<attempt-5.0123456789abcdef@mail.example.com>"
BOUNDARY = "=_bot." + hashlib.sha256(WIRE_MESSAGE_ID.encode()).hexdigest()[:24]
WIRE_CASES = {
    "ascii": ("Your payment of $123.45 is due today", "Hello,\nyour payment is due.\n", "<p>Hello</p>\n"),
    "long ascii subject": ("Example Lending: " + "your payment of $123.45 on loan ending 0042 is due " * 3,
                           "x\n", "<p>x</p>"),
    "looks encoded": ("=?utf-8?q?not_really?= a subject", "text\n", "<p>html</p>"),
    "cjk": ("张伟您好，您尾号0042的借款本期应还¥1,234.56，还款日为2026年1月15日。" * 2,
            "张伟您好，\n您的还款日为今天。\n" * 5, "<p>张伟您好</p>\n"),
    "korean and emoji": ("김민준님, 이번 상환액 ₩150,000 😀", "김민준님 😀\n", "<p>😀</p>"),
    "awkward text": ("Latin: café déjà vu",
                     "line with trailing spaces   \n.\n..\nFrom here\r\nCR only\rend " + "é" * 500
                     + "\n" + "y" * 1200 + "\n", "<p>" + "z" * 2000 + "</p>\n"),
    # the message's own boundary inside a part: that part is encoded, not sent as 7bit
    "boundary in the text": ("s", f"--{BOUNDARY}\n=_ text\n", f"<p>--{BOUNDARY}--</p>"),
    "no html": ("Only text", "Hello only text\n", None),
    "control characters": ("bell\x07 and tab\tin the subject", "a\x07b\tc\x1bd\n", "<p>\x0b</p>"),
}


@pytest.mark.parametrize("case", sorted(WIRE_CASES))
def test_the_wire_form_reads_back_exactly(case: str) -> None:
    subject, text, html = WIRE_CASES[case]
    settings = settings_for(25, smtp_from='"Example Lending, Inc." <reminders@mail.example.com>')
    channel = EmailChannel(settings, clock=FixedClock(NOW))
    msg = approve(ALLOWED, attempt_id=5, channel="email", to=TO, subject=subject, body=text, html=html,
                  idempotency_key="k", headers={
                      "Message-ID": WIRE_MESSAGE_ID,
                      "List-Unsubscribe": "<https://bot.example.com/unsubscribe/" + "A" * 90 + ">, "
                                          "<mailto:support@example.com?subject=unsubscribe>",
                      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    message_id, data = channel.render(msg)
    assert message_id == WIRE_MESSAGE_ID and (f'boundary="{BOUNDARY}"'.encode() in data) == (html is not None)
    assert data.isascii() and b"\n" not in data.replace(b"\r\n", b"")  # 7-bit, CRLF only
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in head if not line.startswith(b"List-Unsubscribe: <") and
               not line.startswith(b" <https")), head
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    mime = message_from_bytes(data, policy=policy.default)
    assert mime["Subject"] == subject
    assert mime["From"] == '"Example Lending, Inc." <reminders@mail.example.com>'
    assert mime["From"].addresses[0].display_name == "Example Lending, Inc."  # type: ignore[attr-defined]
    assert mime["To"] == TO and mime["Date"] == "Thu, 15 Jan 2026 15:00:00 +0000"
    assert mime["List-Unsubscribe"] == msg.headers["List-Unsubscribe"]
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    expected_text = text.replace("\r\n", "\n").replace("\r", "\n")
    if html is None:
        assert mime.get_content_type() == "text/plain"
        assert mime.get_content().replace("\r\n", "\n") == expected_text
        return
    assert mime.get_content_type() == "multipart/alternative"
    plain, rich = mime.get_payload()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content().replace("\r\n", "\n") == expected_text
    assert rich.get_content().replace("\r\n", "\n") == html.replace("\r\n", "\n")


def test_display_names_and_internationalised_domains() -> None:
    settings = settings_for(25, smtp_from="示例贷款 <reminders@mail.example.com>")
    channel = EmailChannel(settings, clock=FixedClock(NOW))
    msg = approve(ALLOWED, attempt_id=6, channel="email", to="jane@exämple.com", subject="s", body="b\n",
                  html=None, idempotency_key="k", headers={"Message-ID": "<attempt-6.x@mail.example.com>"})
    mime = channel.build_message(msg)
    assert mime["From"] == "示例贷款 <reminders@mail.example.com>"
    assert mime["To"] == "jane@xn--exmple-cua.com"


@pytest.mark.parametrize("subject", ["two\r\nlines", "null\x00byte"])
def test_header_injection_is_refused(subject: str) -> None:
    with pytest.raises(SmtpPermanentError) as info:
        send_one(EmailChannel(settings_for(_closed_port())), message(subject=subject))
    assert info.value.code == "bad_message"


@pytest.mark.parametrize("to", ["jöhn@example.com", "john smith@example.com", '"john"@example.com', "no-at-sign"])
def test_an_address_the_envelope_cannot_carry_is_invalid_before_any_session(server: SmtpServer, handler: Handler,
                                                                            to: str) -> None:
    channel = EmailChannel(settings_for(server.port))
    with pytest.raises(SmtpPermanentError) as info:
        send_one(channel, message(to=to))
    assert (info.value.code, info.value.effect) == ("bad_address", "invalid")
    assert channel.connections_opened == 0 and handler.received == []


def test_an_internationalised_domain_goes_in_idna_form_on_the_envelope(server: SmtpServer, handler: Handler) -> None:
    send_one(EmailChannel(settings_for(server.port)), message(to="jane@exämple.com"))
    [got] = handler.received
    assert got.rcpt_tos == ["jane@xn--exmple-cua.com"] and got.message["To"] == "jane@xn--exmple-cua.com"


def test_the_pool_size_setting(server: SmtpServer) -> None:
    assert EmailChannel(settings_for(server.port)).pool_size == 8
    assert EmailChannel(settings_for(server.port, smtp_pool_size=2)).pool_size == 2
    assert EmailChannel(settings_for(server.port, smtp_pool_size=2), pool_size=5).pool_size == 5
