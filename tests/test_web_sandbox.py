"""End to end through real HTTP: the local Twilio sandbox talks to the bot's webhooks.

A simulated phone texts a sandbox number whose SmsUrl is the bot's
``/twilio/sms``; a message sent with the official twilio client (as the
dispatcher does) reports its delivery to ``/twilio/status?attempt=<id>``.
Every webhook is signed by the sandbox exactly as Twilio signs, and checked by
the bot against its configured public URL.  Both run on one manual clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db import Database
from bot.db.models import Consent, ContactAttempt, InboundMessage, Promise
from bot.sandbox import Sandbox, SandboxServer
from test_web_support import (
    OUR_NUMBER,
    PHONE,
    WebHarness,
    add_account,
    counts,
    harness,  # noqa: F401 - fixture
    make_settings,
)


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(Sandbox(clock=FixedClock())) as server:
        yield server


@pytest.fixture
def linked(harness: WebHarness, sandbox_server: SandboxServer, db: Database,
           clock: FixedClock) -> tuple[WebHarness, SandboxServer]:
    """The bot (public URL = its real address, the sandbox's credentials) and a sandbox pointing at it,
    both on the sandbox's manual clock, set to the test's instant."""
    sandbox = sandbox_server.sandbox
    sandbox.reset()
    assert isinstance(sandbox.clock, FixedClock)
    sandbox.clock.set(clock.now())
    account = sandbox.default_account
    harness.use(make_settings(public_base_url=harness.server.base_url, twilio_account_sid=account.sid,
                              twilio_auth_token=account.auth_token), db, sandbox.clock)
    sandbox.add_number(OUR_NUMBER, sms_url=harness.server.url("/twilio/sms"))
    with db.session() as session:
        add_account(session, "B1")
    return harness, sandbox_server


def test_a_phone_texts_stop_and_the_bot_records_it_before_queueing_one_confirmation(
        linked: tuple[WebHarness, SandboxServer], db: Database) -> None:
    _bot, sandbox = linked
    clock = sandbox.sandbox.clock
    result = sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, "STOP")
    assert result.webhook is not None and result.webhook.status_code == 200, result.webhook
    assert result.replies == []  # the bot answers through the dispatcher, not in TwiML
    with db.session() as session:
        consent = session.scalar(select(Consent).where(Consent.channel == "sms"))
        inbound = session.scalar(select(InboundMessage))
        replies = session.scalars(select(ContactAttempt).where(ContactAttempt.source == "reply")).all()
    assert consent is not None and consent.opted_out_at == clock.now()
    assert inbound is not None and inbound.provider_id == result.message.sid and inbound.intent == "opt_out"
    assert [(r.template, r.status, r.address) for r in replies] == [("reply_opt_out", "planned", PHONE)]
    sandbox.sandbox.advance(60)
    second = sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, "STOP")
    assert second.webhook is not None and second.webhook.status_code == 200
    with db.session() as session:
        assert len(session.scalars(select(ContactAttempt.id).where(ContactAttempt.source == "reply")).all()) == 1


def test_a_delayed_promise_from_a_phone(linked: tuple[WebHarness, SandboxServer], db: Database) -> None:
    _bot, sandbox = linked
    clock = sandbox.sandbox.clock
    sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, "I will pay on Friday", after=120)
    with db.session() as session:
        assert session.scalar(select(InboundMessage.id)) is None
    sandbox.sandbox.advance(120)  # the phone's message arrives two minutes later, on the shared clock
    with db.session() as session:
        promise = session.scalar(select(Promise))
        inbound = session.scalar(select(InboundMessage))
    assert promise is not None and promise.status == "pending" and promise.promised_date.isoformat() == "2026-12-04"
    assert inbound is not None and inbound.received_at == clock.now()


def test_webhooks_signed_with_another_token_are_refused(linked: tuple[WebHarness, SandboxServer],
                                                         db: Database) -> None:
    bot, sandbox = linked
    bot.configure(twilio_auth_token="not-the-sandbox-token")
    before = counts(db)
    result = sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, "STOP")
    assert result.webhook is not None and result.webhook.status_code == 403
    assert counts(db) == before


def _sent_attempt(db: Database, clock: FixedClock) -> int:
    with db.session() as session:
        row = ContactAttempt(dedupe_key="plan:B1-L1-I1:due:sms", borrower_id="B1", loan_id="B1-L1",
                             installment_id="B1-L1-I1", channel="sms", source="planner", status="sending",
                             template="reminder_due", step="due", address=PHONE, occurred_at=clock.now(),
                             tries=1, created_at=clock.now(), updated_at=clock.now())
        session.add(row)
        session.flush()
        return row.id


def _send(bot: WebHarness, sandbox: SandboxServer, db: Database, attempt_id: int) -> str:
    """What the dispatcher does: send with the official client, then record the SID."""
    message = sandbox.twilio_client().messages.create(
        to=PHONE, from_=OUR_NUMBER, body="Reminder",
        status_callback=bot.server.url(f"/twilio/status?attempt={attempt_id}"))
    with db.session() as session:
        row = session.get(ContactAttempt, attempt_id)
        assert row is not None
        row.provider_id, row.status = message.sid, "sent"
    return str(message.sid)


@pytest.mark.parametrize("faults", [{}, {"duplicate": True}, {"out_of_order": True},
                                    {"duplicate": True, "out_of_order": True}])
def test_status_callbacks_from_the_sandbox_end_delivered(linked: tuple[WebHarness, SandboxServer], db: Database,
                                                         clock: FixedClock, faults: dict[str, bool]) -> None:
    bot, sandbox = linked
    sandbox.sandbox.faults.callbacks(**faults)
    attempt_id = _sent_attempt(db, clock)
    sid = _send(bot, sandbox, db, attempt_id)
    sandbox.sandbox.advance(10)
    log = sandbox.sandbox.webhook_log(kind="sms-status", sid=sid)
    assert len(log) == (6 if faults.get("duplicate") else 3)
    assert all(attempt.status_code == 204 for attempt in log), [(a.status_code, a.response_text) for a in log]
    if faults.get("out_of_order"):
        assert dict(log[0].params)["MessageStatus"] == "delivered"
    with db.session() as session:
        row = session.get(ContactAttempt, attempt_id)
    assert row is not None and (row.provider_status, row.outcome, row.provider_id) == ("delivered", "delivered", sid)


def test_undelivered_message_records_the_error(linked: tuple[WebHarness, SandboxServer], db: Database,
                                               clock: FixedClock) -> None:
    bot, sandbox = linked
    sandbox.sandbox.add_phone(PHONE, delivery="undelivered", error_code=30005)
    attempt_id = _sent_attempt(db, clock)
    _send(bot, sandbox, db, attempt_id)
    sandbox.sandbox.advance(10)
    with db.session() as session:
        row = session.get(ContactAttempt, attempt_id)
    assert row is not None and (row.provider_status, row.outcome, row.last_error) == ("undelivered", "failed", "30005")


@pytest.mark.parametrize("body", ["HELP", "stop", "Start"])
def test_with_the_provider_answering_keywords_the_bot_records_but_does_not_answer(
        linked: tuple[WebHarness, SandboxServer], db: Database, body: str) -> None:
    """sms_keyword_replies = "provider": the sandbox (as Twilio's opt-out handling) answers the
    keyword; the bot records the message and its effects and queues no second answer."""
    bot, sandbox = linked
    bot.configure(sms_keyword_replies="provider")
    result = sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, body)
    assert result.webhook is not None and result.webhook.status_code == 200
    assert result.automatic_reply is not None  # the provider's one answer
    with db.session() as session:
        inbound = session.scalar(select(InboundMessage))
        replies = session.scalars(select(ContactAttempt).where(ContactAttempt.source == "reply")).all()
    assert inbound is not None and inbound.intent in ("help", "opt_out", "opt_in")
    assert replies == []
    if body == "stop":
        with db.session() as session:
            consent = session.scalar(select(Consent).where(Consent.channel == "sms"))
        assert consent is not None and consent.opted_out_at is not None  # recorded all the same


def test_with_the_provider_answering_keywords_other_words_are_still_answered_by_the_bot(
        linked: tuple[WebHarness, SandboxServer], db: Database) -> None:
    bot, sandbox = linked
    bot.configure(sms_keyword_replies="provider")
    result = sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, "please stop texting me")
    assert result.automatic_reply is None  # not a keyword: the provider says nothing
    with db.session() as session:
        replies = session.scalars(select(ContactAttempt.template).where(ContactAttempt.source == "reply")).all()
    assert replies == ["reply_opt_out"]


def test_with_the_bot_answering_keywords_help_is_answered_by_the_bot(
        linked: tuple[WebHarness, SandboxServer], db: Database) -> None:
    bot, sandbox = linked
    bot.configure(sms_keyword_replies="bot")
    sandbox.sandbox.send_sms(PHONE, OUR_NUMBER, "HELP")
    with db.session() as session:
        replies = session.scalars(select(ContactAttempt.template).where(ContactAttempt.source == "reply")).all()
    assert replies == ["reply_help"]
