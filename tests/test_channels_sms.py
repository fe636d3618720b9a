"""bot.channels.sms against the in-process Twilio sandbox, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from twilio.request_validator import RequestValidator

from bot.channels.base import ApprovedMessage, SendResult, approve
from bot.channels.sms import SmsChannel
from bot.compliance.types import Decision
from bot.config import Settings
from bot.dispatch.reconcile import Found, NotFound, Stuck, body_hash
from bot.errors import ConfigError, ConfigurationDeliveryError, PermanentDeliveryError, TransientDeliveryError
from bot.messages import sms_segments
from bot.providers.twilio.errors import (
    TwilioConfigurationError,
    TwilioPermanentError,
    TwilioTransientError,
    classify_twilio_error,
)
from bot.providers.twilio.lookup import CLOCK_SKEW, TwilioLookup
from bot.sandbox import Sandbox, SandboxConfig, SandboxServer
from bot.sandbox.config import AccountConfig, NumberConfig
from bot.sandbox.recorder import WebhookRecorder

SID = "AC" + "0" * 32
TOKEN = "sandbox-token"
NUMBERS = ["+15005550006", "+15005550007"]
PHONE = "+15551230001"
BODY = "Example Lending: your payment of $123.45 is due today. Reply STOP to opt out."
ALLOWED = Decision(True, (), None, "us", ("America/New_York",))
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(accounts=[AccountConfig(sid=SID, auth_token=TOKEN)],
                           numbers=[NumberConfig(number=n) for n in NUMBERS])
    with SandboxServer(Sandbox(config)) as srv:
        yield srv


@pytest.fixture
def sb(server: SandboxServer, recorder: WebhookRecorder) -> Iterator[Sandbox]:
    server.sandbox.reset()
    recorder.clear()
    yield server.sandbox


@pytest.fixture
def settings(server: SandboxServer, recorder: WebhookRecorder) -> Settings:
    return Settings(twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from_numbers=NUMBERS,
                    twilio_api_base_url=server.base_url, public_base_url=recorder.server.base_url)


def message(attempt_id: int = 1, *, to: str = PHONE, body: str = BODY, from_: str | None = None,
            settings: Settings | None = None) -> ApprovedMessage:
    base = settings.public_base_url if settings else "http://127.0.0.1:9"
    return approve(ALLOWED, attempt_id=attempt_id, channel="sms", to=to, body=body,
                   idempotency_key=f"plan:I{attempt_id}:main:0:sms",
                   status_callback=f"{base}/twilio/status?attempt={attempt_id}", from_=from_)


async def send_all(channel: SmsChannel, messages: list[ApprovedMessage]) -> list[SendResult | BaseException]:
    try:
        return await asyncio.gather(*(channel.send(m) for m in messages), return_exceptions=True)
    finally:
        await channel.aclose()


def send_one(channel: SmsChannel, msg: ApprovedMessage) -> SendResult:
    result = run(send_all(channel, [msg]))[0]
    if isinstance(result, BaseException):
        raise result
    return result


# --- sending -----------------------------------------------------------------------------------------


def test_send_reaches_the_sandbox_with_status_callback(sb: Sandbox, settings: Settings,
                                                        recorder: WebhookRecorder) -> None:
    result = send_one(SmsChannel(settings), message(7, settings=settings))
    assert result.provider_id.startswith("SM") and result.status == "queued" and result.segments == 1
    [sent] = sb.messages_to(PHONE)
    assert (sent.sid, sent.body, sent.to, sent.direction) == (result.provider_id, BODY, PHONE, "outbound-api")
    assert sent.from_ in NUMBERS
    callback = f"{recorder.server.base_url}/twilio/status?attempt=7"
    assert sent.status_callback == callback

    sb.advance(5)  # queued -> sent -> delivered, each a signed webhook to our URL
    requests = recorder.requests("/twilio/status")
    assert [r.form["MessageStatus"] for r in requests] == ["queued", "sent", "delivered"]
    validator = RequestValidator(TOKEN)
    for request in requests:
        assert request.url == callback and request.form["MessageSid"] == result.provider_id
        assert validator.validate(request.url, request.form, request.signature)


def test_segments_as_twilio_counts_them(sb: Sandbox, settings: Settings) -> None:
    body = "【Example Lending】" + "您的还款日是明天。" * 15 + "回T退订"
    result = send_one(SmsChannel(settings), message(body=body))
    assert result.segments == sms_segments(body).segments == 3


def test_message_sender_wins_else_a_stable_sender_per_recipient(sb: Sandbox, settings: Settings) -> None:
    channel = SmsChannel(settings)
    send_one(channel, message(1, from_=NUMBERS[1]))
    assert sb.messages_to(PHONE)[-1].from_ == NUMBERS[1]
    recipients = [f"+1555123{n:04d}" for n in range(20)]
    run(send_all(channel, [message(i, to=to) for i, to in enumerate(recipients)]))
    senders = {to: sb.messages_to(to)[-1].from_ for to in recipients}
    assert set(senders.values()) == set(NUMBERS)  # both numbers in use ...
    assert all(SmsChannel(settings).sender_for(to) == sender for to, sender in senders.items())  # ... stably


def test_concurrent_sends_all_arrive_once(sb: Sandbox, settings: Settings) -> None:
    messages = [message(i, to=f"+1555200{i:04d}") for i in range(150)]
    results = run(send_all(SmsChannel(settings, concurrency=16), messages))
    assert all(isinstance(r, SendResult) for r in results)
    assert len({r.provider_id for r in results if isinstance(r, SendResult)}) == 150
    assert len([m for m in sb.messages() if m.direction == "outbound-api"]) == 150


def test_an_injected_synchronous_client_runs_in_threads(sb: Sandbox, settings: Settings,
                                                         server: SandboxServer) -> None:
    channel = SmsChannel(settings, server.twilio_client(), concurrency=4)
    results = run(send_all(channel, [message(i, to=f"+1555300{i:04d}") for i in range(8)]))
    assert all(isinstance(r, SendResult) for r in results) and len(sb.messages()) == 8
    sb.add_phone(PHONE, line_type="landline")
    with pytest.raises(TwilioPermanentError) as info:
        send_one(SmsChannel(settings, server.twilio_client()), message())
    assert info.value.code == 21614 and info.value.effect == "landline"


def test_the_adapter_serves_one_loop_after_another(sb: Sandbox, settings: Settings) -> None:
    channel = SmsChannel(settings)
    send_one(channel, message(1))
    send_one(channel, message(2))  # a new asyncio.run: aclose() released the old loop's session
    assert len(sb.messages_to(PHONE)) == 2


# --- errors ------------------------------------------------------------------------------------------

PERSONA_ERRORS = [
    ("invalid number", {"line_type": "invalid"}, 21211, "invalid"),
    ("landline", {"line_type": "landline"}, 21614, "landline"),
    ("opted out", {"opted_out": True}, 21610, "opt_out"),
]


@pytest.mark.parametrize(("persona", "code", "effect"), [c[1:] for c in PERSONA_ERRORS],
                         ids=[c[0] for c in PERSONA_ERRORS])
def test_permanent_errors_keep_code_and_effect(sb: Sandbox, settings: Settings, persona: dict[str, Any],
                                               code: int, effect: str) -> None:
    sb.add_phone(PHONE, **persona)
    with pytest.raises(TwilioPermanentError) as info:
        send_one(SmsChannel(settings), message())
    error = info.value
    assert isinstance(error, PermanentDeliveryError)
    assert (error.code, error.status, error.effect, error.outcome_unknown) == (code, 400, effect, False)
    assert PHONE not in str(error) and PHONE[-4:] not in str(error)
    assert sb.messages_to(PHONE) == []


FAULTS = [
    ("429 burst", lambda f: f.rate_limit(2), 20429, 429),
    ("500", lambda f: f.server_errors(1, status=500), 20500, 500),
    ("503", lambda f: f.server_errors(1, status=503), 20503, 503),
    ("queue full", lambda f: f.queue_full(1), 21611, 400),
]


@pytest.mark.parametrize(("inject", "code", "status"), [c[1:] for c in FAULTS], ids=[c[0] for c in FAULTS])
def test_transient_errors_then_success(sb: Sandbox, settings: Settings, inject: Any, code: int,
                                       status: int) -> None:
    inject(sb.faults)
    channel = SmsChannel(settings)
    with pytest.raises(TwilioTransientError) as info:
        send_one(channel, message())
    assert isinstance(info.value, TransientDeliveryError)
    assert (info.value.code, info.value.status, info.value.outcome_unknown) == (code, status, False)
    if code == 20429:  # a burst of two
        with pytest.raises(TwilioTransientError):
            send_one(channel, message())
    assert send_one(channel, message()).status == "queued"  # the retry goes through, once
    assert len(sb.messages_to(PHONE)) == 1


def test_configuration_errors_are_permanent(sb: Sandbox, settings: Settings) -> None:
    """The sandbox refuses like Twilio; each refusal is permanent and names the setting to fix."""
    wrong_token = settings.model_copy(update={"twilio_auth_token": "wrong"})
    cases = [
        (SmsChannel(wrong_token), message(), 20003, 401, "twilio_auth_token"),
        (SmsChannel(settings), message(from_="+15005559999"), 21606, 400, "twilio_from_numbers"),
        (SmsChannel(settings), message(from_="not-a-number"), 21212, 400, "twilio_from_numbers"),
        (SmsChannel(settings.model_copy(update={"public_base_url": "https://example.com"})),
         message(settings=settings.model_copy(update={"public_base_url": "https://example.com"})), 21609, 400,
         "public_base_url"),
    ]
    for channel, msg, code, status, setting in cases:
        with pytest.raises(TwilioConfigurationError) as info:
            send_one(channel, msg)
        assert isinstance(info.value, PermanentDeliveryError) and isinstance(info.value, ConfigurationDeliveryError)
        assert (info.value.code, info.value.status, info.value.effect) == (code, status, None)
        assert setting in str(info.value)
    assert sb.messages_to(PHONE) == []


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_refused_connection_is_transient_and_certainly_not_sent(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"twilio_api_base_url": f"http://127.0.0.1:{_closed_port()}"})
    with pytest.raises(TwilioTransientError) as info:
        send_one(SmsChannel(nowhere), message())
    assert info.value.code == "connect" and info.value.outcome_unknown is False


def test_timeout_is_transient_with_unknown_outcome(sb: Sandbox, settings: Settings) -> None:
    sb.faults.slow(1.0, count=1)
    with pytest.raises(TwilioTransientError) as info:
        send_one(SmsChannel(settings, timeout=0.2), message())
    assert info.value.code == "timeout" and info.value.outcome_unknown is True


def test_lookup_finds_a_sent_message_by_recipient_sender_body_and_time(sb: Sandbox, settings: Settings) -> None:
    """The crash lookup (bot.providers.twilio.lookup) against the sandbox: the message a
    stuck attempt sent is found; another text, a later attempt, another number, a sid
    another attempt recorded are not."""
    channel = SmsChannel(settings)
    lookup = TwilioLookup(settings)
    since = sb.now()
    sender = channel.sender_for(PHONE)

    def stuck(to: str = PHONE, body: str = BODY, at: Any = since, known: frozenset[str] = frozenset()) -> Stuck:
        return Stuck(1, "sms", to, sender, body_hash(body), at, known)

    async def scenario() -> tuple[Any, ...]:
        try:
            sent = await channel.send(message(1))
            found = await lookup.find(stuck())
            other_body = await lookup.find(stuck(body=BODY + "!"))
            too_late = await lookup.find(stuck(at=since + CLOCK_SKEW + timedelta(seconds=1)))
            other_phone = await lookup.find(stuck(to="+15551239999"))
            known = await lookup.find(stuck(known=frozenset({sent.provider_id})))
            status = await lookup.message_status(sent.provider_id)
            return sent, found, other_body, too_late, other_phone, known, status
        finally:
            await channel.aclose()

    sent, found, other_body, too_late, other_phone, known, status = run(scenario())
    assert isinstance(found, Found) and found.provider_id == sent.provider_id
    assert other_body == too_late == other_phone == known == NotFound()
    assert status is not None and status[0] in ("queued", "sent", "delivered")


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, 21612, PermanentDeliveryError), (400, 99999, PermanentDeliveryError), (502, None, TransientDeliveryError),
    (429, None, TransientDeliveryError), (404, 20404, ConfigurationDeliveryError), (400, 21608, ConfigurationDeliveryError),
])
def test_classification_of_other_codes(status: int, code: int | None, kind: type[Exception]) -> None:
    from twilio.base.exceptions import TwilioRestException

    error = classify_twilio_error(TwilioRestException(status, "/x", msg="To +15551230001 is bad", code=code))
    assert isinstance(error, kind) and "+1555" not in str(error)


def test_settings_without_sender_are_refused() -> None:
    with pytest.raises(ConfigError):
        SmsChannel(Settings(twilio_from_numbers=[]))


def test_wrong_channel_is_refused(settings: Settings) -> None:
    email = approve(ALLOWED, attempt_id=1, channel="email", to="x@example.com", body="hi", idempotency_key="k")
    with pytest.raises(ValueError):
        send_one(SmsChannel(settings), email)


def test_logs_hold_no_number_and_no_text(sb: Sandbox, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    send_one(SmsChannel(settings), message())
    sb.add_phone(PHONE, opted_out=True)
    with pytest.raises(TwilioPermanentError):
        send_one(SmsChannel(settings), message())
    sb.faults.rate_limit(1)
    with pytest.raises(TwilioTransientError):
        send_one(SmsChannel(settings), message(to="+15551230002"))
    ours = [r for r in caplog.records if r.name.startswith(("bot.channels", "twilio"))]
    assert any("attempt=1" in r.getMessage() for r in ours)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PHONE not in text and "+15551230002" not in text and "5551230001" not in text
    assert BODY not in text and "payment of" not in text
