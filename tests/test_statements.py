"""One path for what a borrower says (bot.replies.statement, bot.replies.answer), on SQLite and PostgreSQL.

The same statement, arriving by SMS (the webhook's ``process_inbound_sms``), as a
call turn (the call service's ``Effects``, which the script engine's actions
drive) or as a console correction (``correct_turn``), has the same effects; the
bot's answer to it is held to the same rules (the daily cap, the SMS opt-out)
whichever channel asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.channels.events import InboundText
from bot.console.actions import correct_turn
from bot.db import Database
from bot.db.models import (
    AuditEvent,
    CallSession,
    CallTurn,
    Consent,
    ContactAttempt,
    InboundMessage,
    Promise,
    Task,
)
from bot.domain import Intent, TaskKind
from bot.messages import load_message_data_many
from bot.replies import (
    MAX_AUTO_REPLIES_PER_DAY,
    Answer,
    Statement,
    apply_statement,
    process_inbound_sms,
    queue_answer,
    record_opt_out,
)
from bot.voice.service import Effects
from test_web_support import OUR_NUMBER, PHONE, add_account, new_sid

# Saturday 28 November 2026, 10:00 in New York (inside contact hours).
AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
FRIDAY = date(2026, 12, 4)


@dataclass
class World:
    db: Database
    call_id: int
    attempt_id: int
    turn_id: int

    def effects(self, session: Session) -> Effects:
        call = session.get(CallSession, self.call_id)
        attempt = session.get(ContactAttempt, self.attempt_id)
        assert call is not None and attempt is not None
        return Effects(session, call, attempt, AT, settings=None)


@pytest.fixture
def w(db: Database) -> World:
    """B1 owes $100 since 20 November; B2 shares B1's phone; B1 was just called on it."""
    with db.session() as session:
        add_account(session, "B1")
        add_account(session, "B2")
        attempt = ContactAttempt(dedupe_key="call:B1", borrower_id="B1", loan_id="B1-L1", channel="voice",
                                 source="planner", status="sent", address=PHONE, occurred_at=AT - timedelta(minutes=5),
                                 sent_at=AT - timedelta(minutes=5), created_at=AT, updated_at=AT)
        session.add(attempt)
        session.flush()
        call = CallSession(attempt_id=attempt.id, borrower_id="B1", loan_id="B1-L1", locale="en-US",
                           script="first_stage", status="in-progress", speech=True, flagged=False,
                           state={"context": {"today": "2026-11-28"}}, started_at=AT - timedelta(minutes=5),
                           created_at=AT, updated_at=AT)
        session.add(call)
        session.flush()
        turn = CallTurn(session_id=call.id, seq=2, speaker="borrower", node="ask", at=AT, source="speech",
                        text_redacted="...", flagged=False)
        session.add(turn)
        session.flush()
        return World(db, call.id, attempt.id, turn.id)


def _sms(w: World, body: str) -> None:
    process_inbound_sms(w.db, InboundText(message_id=new_sid(), sender=PHONE, recipient=OUR_NUMBER, body=body,
                                          received_at=AT))


def _call(w: World, act: Callable[[Effects], None]) -> None:
    with w.db.session() as session:
        act(w.effects(session))


def _console(w: World, intent: Intent, promise_date: date | None = None) -> None:
    with w.db.session() as session:
        correct_turn(session, w.call_id, w.turn_id, intent, promise_date, actor="sam", at=AT,
                     default_timezone="America/New_York")


def _state(db: Database) -> dict[str, object]:
    """What a statement changed, without the channel's own words (sources, notes, task keys)."""
    with db.session() as session:
        return {
            "promises": sorted((p.borrower_id, p.promised_date, p.status) for p in session.scalars(select(Promise))),
            "tasks": sorted((t.borrower_id, t.kind, t.status) for t in session.scalars(select(Task))),
            "consents": sorted((c.borrower_id, c.channel, c.opted_out_at is not None, c.address_flag)
                               for c in session.scalars(select(Consent)) if c.opted_out_at or c.address_flag),
            "paid_claims": [e.detail["consistent_with_payments"] for e in session.scalars(  # type: ignore[index]
                select(AuditEvent).where(AuditEvent.action == "reply.paid_claim"))],
        }


NOTHING: dict[str, object] = {"promises": [], "tasks": [], "consents": [], "paid_claims": []}

#: statement -> (as an SMS, as a call turn, as a console correction, what it does)
CASES: dict[str, tuple[str, Callable[[Effects], None], tuple[Intent, date | None], dict[str, object]]] = {
    "promise": ("I will pay on Friday", lambda e: e.outcome("promise", FRIDAY), (Intent.PROMISE_TO_PAY, FRIDAY),
                NOTHING | {"promises": [("B1", FRIDAY, "pending")]}),
    "paid": ("I already paid", lambda e: e.outcome("paid_claim", None), (Intent.PAID, None),
             NOTHING | {"tasks": [("B1", "review", "open")], "paid_claims": [False]}),
    "dispute": ("this is not my debt", lambda e: e.task(TaskKind.DISPUTE), (Intent.DISPUTE, None),
                NOTHING | {"tasks": [("B1", "dispute", "open")]}),
    # facts about the number: every borrower with it
    "wrong number": ("wrong number", lambda e: e.flag_number("wrong_party"), (Intent.WRONG_NUMBER, None),
                     NOTHING | {"tasks": [("B1", "wrong_number", "open"), ("B2", "wrong_number", "open")],
                                "consents": [(b, c, False, "wrong_number") for b in ("B1", "B2")
                                             for c in ("sms", "voice")]}),
    "stop calling": ("please stop calling me", lambda e: e.opt_out(), (Intent.OPT_OUT, None),
                     NOTHING | {"consents": [("B1", "voice", True, None), ("B2", "voice", True, None)]}),
}


@pytest.mark.parametrize("channel", ["sms", "voice", "console"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_same_statement_has_the_same_effects_from_every_channel(w: World, case: str, channel: str) -> None:
    text, action, (intent, day), expected = CASES[case]
    assert _state(w.db) == NOTHING
    if channel == "sms":
        _sms(w, text)
    elif channel == "voice":
        _call(w, action)
    else:
        _console(w, intent, day)
    assert _state(w.db) == expected


def _replies(db: Database) -> list[tuple[str, str | None]]:
    with db.session() as session:
        return [(a.template or "", a.dedupe_key) for a in session.scalars(
            select(ContactAttempt).where(ContactAttempt.source == "reply").order_by(ContactAttempt.id))]


def _suppressed(db: Database) -> list[str]:
    with db.session() as session:
        return [e.detail["reason"] for e in session.scalars(  # type: ignore[index]
            select(AuditEvent).where(AuditEvent.action == "reply.suppressed").order_by(AuditEvent.id))]


def _fill_the_daily_cap(db: Database) -> None:
    with db.session() as session:
        for n in range(MAX_AUTO_REPLIES_PER_DAY):
            session.add(ContactAttempt(dedupe_key=f"reply:earlier{n}", borrower_id="B1", channel="sms", source="reply",
                                       status="sent", template="reply_other", address=PHONE,
                                       created_at=AT - timedelta(hours=23 - n), updated_at=AT))


def _confirm(w: World, channel: str) -> None:
    """A promise whose answer is the promise confirmation, by SMS or during a call."""
    if channel == "sms":
        _sms(w, "I will pay on Friday")
    else:
        _call(w, lambda e: (e.outcome("promise", FRIDAY), e.send_sms("promise_confirmation", FRIDAY)))


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_a_promise_is_confirmed_once_and_carries_its_date_to_the_composer(w: World, channel: str) -> None:
    _confirm(w, channel)
    [(template, key)] = _replies(w.db)
    assert template == "reply_promise"
    with w.db.session() as session:
        reply = session.scalar(select(ContactAttempt).where(ContactAttempt.source == "reply"))
        assert reply is not None and reply.address == PHONE and reply.borrower_id == "B1"
        # the same row for the dispatcher either way: sent under the same rules (contact hours, opt-out)
        assert (reply.channel, reply.source, reply.status, reply.step, reply.next_attempt_at, reply.loan_id) == (
            "sms", "reply", "planned", "reply", AT, None)
        if channel == "voice":
            assert key == f"reply:call:{w.call_id}:promise"
        else:
            assert session.scalar(select(InboundMessage.reply_attempt_id)) == reply.id
        assert load_message_data_many(session, [reply])[reply.id].promise_date == FRIDAY
        # a call writes no message of its own: the composer is given the date by the answer
        channels = session.scalars(select(InboundMessage.channel)).all()
    assert channels == (["sms"] if channel == "sms" else [])


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_the_daily_auto_reply_cap_holds_for_every_channel(w: World, channel: str) -> None:
    _fill_the_daily_cap(w.db)
    _confirm(w, channel)
    assert [t for t, _ in _replies(w.db)] == ["reply_other"] * MAX_AUTO_REPLIES_PER_DAY  # nothing new queued
    assert _suppressed(w.db) == ["daily_reply_cap"]
    with w.db.session() as session:  # the promise itself is recorded all the same
        assert session.scalar(select(Promise.promised_date)) == FRIDAY


def test_a_call_promises_no_text_the_daily_cap_would_hold_back(w: World) -> None:
    """What a script may say it will text (a confirmation, a payment link) follows the cap: with the
    day's automatic answers used up, the call says it has noted the promise instead."""
    from bot.voice.service import _confirmation

    with w.db.session() as session:
        assert _confirmation(session, "B1", PHONE, AT) == "sms"
    _fill_the_daily_cap(w.db)
    with w.db.session() as session:
        assert _confirmation(session, "B1", PHONE, AT) == "none"
        # 24 hours after the first of them, one answer may go again
        assert _confirmation(session, "B1", PHONE, AT + timedelta(hours=1, seconds=1)) == "sms"


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_a_number_opted_out_of_texts_gets_no_confirmation_from_any_channel(w: World, channel: str) -> None:
    with w.db.session() as session:
        record_opt_out(session, "B1", "sms", PHONE, "sms", AT - timedelta(days=1))
    _confirm(w, channel)
    assert _replies(w.db) == []
    assert _suppressed(w.db) == ["opted_out"]


def test_queue_answer_rules_and_bad_input(db: Database) -> None:
    with db.session() as session:
        add_account(session, "B1")
    _fill_the_daily_cap(db)

    def answer(kind: str, key: str, **extra: object) -> Answer:
        return Answer(borrower_id="B1", address=PHONE, kind=kind, at=AT, dedupe_key=key, actor="sms",
                      **extra)  # type: ignore[arg-type]

    with db.session() as session:
        assert queue_answer(session, answer("dispute", "reply:a")).suppressed == "daily_reply_cap"
        stop = queue_answer(session, answer("opt_out", "reply:b"))  # carrier rules: always answered
        assert stop.suppressed is None and stop.attempt_id is not None
        assert queue_answer(session, answer("opt_out", "reply:b")).attempt_id == stop.attempt_id  # idempotent
        assert queue_answer(session, answer("help", "reply:c", provider_answers=True)).suppressed == \
            "provider_answers"
        count = session.scalar(select(func.count()).select_from(ContactAttempt).where(
            ContactAttempt.source == "reply"))
    assert count == MAX_AUTO_REPLIES_PER_DAY + 1
    with pytest.raises(ValueError, match="Answer.kind: 'promise_confirmation' is not a reply template"):
        answer("promise_confirmation", "reply:d")


def test_a_statement_names_its_channel_and_an_unsure_one_goes_to_a_person(db: Database) -> None:
    with db.session() as session:
        add_account(session, "B1")
    with pytest.raises(ValueError, match="Statement.channel: 'fax' is not one of sms, email, voice, console, api"):
        Statement(borrower_id="B1", address=PHONE, channel="fax", intent=Intent.PAID, at=AT, today=AT.date(),
                  ref="x")
    with db.session() as session:
        unsure = apply_statement(session, Statement(
            borrower_id="B1", address=PHONE, channel="api", intent=Intent.OPT_OUT, at=AT, today=AT.date(),
            ref="api:1", confidence=0.3, accepted=False))
        assert (unsure.done, unsure.reply) == (["task:review"], "other")
        # an opt-in re-opens texts only when it is a text from the number (carrier START)
        record_opt_out(session, "B1", "sms", PHONE, "sms", AT)
        by_call = apply_statement(session, Statement(
            borrower_id="B1", address=PHONE, channel="voice", intent=Intent.OPT_IN, at=AT, today=AT.date(),
            ref="call:1"))
        assert (by_call.done, by_call.reply) == (["opt_in:ignored"], None)
    assert _state(db)["consents"] == [("B1", "sms", True, None)]
    assert _state(db)["tasks"] == [("B1", "review", "open")]
