"""What a borrower's SMS does (bot.replies), on SQLite and PostgreSQL.

Messages go through ``process_inbound_sms`` exactly as the webhook calls it;
tests/test_web_twilio.py covers the HTTP side.  The compliance engine is the
judge of "blocks contact": after a reply, the borrower's stop state is loaded
from the database and checked.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bot.channels.events import InboundText
from bot.compliance import check
from bot.compliance.loader import load_context
from bot.db import Database
from bot.db.models import (
    AuditEvent,
    Borrower,
    Consent,
    ContactAttempt,
    InboundMessage,
    Loan,
    Payment,
    Promise,
    Task,
)
from bot.domain import Channel
from bot.ledger import settle_loans
from bot.replies import (
    MAX_AUTO_REPLIES_PER_DAY,
    InboundOptions,
    check_promises,
    handle_inbound_sms,
    process_inbound_sms,
    record_opt_in,
    record_opt_out,
    redact_reply,
)
from test_web_support import OUR_NUMBER, PHONE, T0, add_account, counts, new_sid, wait_for_lock_wait

# Saturday 28 November 2026, 10:00 in New York (inside contact hours).
AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
OTHER_PHONE = "+13105559876"


def sms(db: Database, body: str, *, from_: str = PHONE, at: datetime = AT, sid: str | None = None):
    return process_inbound_sms(db, InboundText(message_id=sid or new_sid(), sender=from_, recipient=OUR_NUMBER,
                                               body=body, received_at=at))


@pytest.fixture
def borrower(db: Database) -> str:
    with db.session() as session:
        add_account(session, "B1")
    return "B1"


def consent(db: Database, borrower_id: str, channel: str, address: str = PHONE) -> Consent | None:
    with db.session() as session:
        return session.scalar(select(Consent).where(Consent.borrower_id == borrower_id, Consent.channel == channel,
                                                    Consent.address == address))


def replies(db: Database, borrower_id: str = "B1") -> list[ContactAttempt]:
    with db.session() as session:
        return list(session.scalars(select(ContactAttempt).where(ContactAttempt.borrower_id == borrower_id,
                                                                 ContactAttempt.source == "reply")
                                    .order_by(ContactAttempt.id)))


def tasks(db: Database, borrower_id: str = "B1") -> list[Task]:
    with db.session() as session:
        return list(session.scalars(select(Task).where(Task.borrower_id == borrower_id).order_by(Task.id)))


def reasons(db: Database, channel: Channel, at: datetime = AT, borrower_id: str = "B1") -> tuple[str, ...]:
    with db.session() as session:
        ctx = load_context(session, borrower_id, at=at)
    return check(ctx.subject, channel, at, ctx.history, ctx.state, loan_id=ctx.loan_id).reasons


def actions(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# --- consent primitives ----------------------------------------------------------------------


def test_record_opt_out_creates_the_row_once_and_opt_in_clears_it(db: Database) -> None:
    with db.session() as session:
        add_account(session, "B1", consent=())
    with db.session() as session:
        assert record_opt_out(session, "B1", "sms", PHONE, "carrier_21610", AT) is True
        assert record_opt_out(session, "B1", "sms", PHONE, "carrier_21610", AT + timedelta(hours=1)) is False
    row = consent(db, "B1", "sms")
    assert row is not None and row.granted is False
    assert row.opted_out_at == AT and row.opt_out_source == "carrier_21610"
    with db.session() as session:
        assert record_opt_in(session, "B1", "sms", PHONE, "sms", AT + timedelta(days=1)) is True
        assert record_opt_in(session, "B1", "sms", PHONE, "sms", AT + timedelta(days=1)) is False
    row = consent(db, "B1", "sms")
    assert row is not None and row.opted_out_at is None and row.opt_out_source is None
    assert actions(db) == ["consent.opt_out"] * 2 + ["consent.opt_in"] * 2
    with db.session() as session:
        details = list(session.scalars(select(AuditEvent.detail).order_by(AuditEvent.id)))
    assert [d["changed"] for d in details] == [True, False, True, False]
    assert all(PHONE not in str(d) for d in details)


# --- opt-out and opt-in ----------------------------------------------------------------------------


def test_stop_opts_out_before_the_single_confirmation(db: Database, borrower: str) -> None:
    sid = new_sid()
    outcome = sms(db, "STOP", sid=sid)
    assert outcome.intent == "opt_out" and outcome.reply_template == "reply_opt_out"
    row = consent(db, "B1", "sms")
    assert row is not None and row.opted_out_at == AT and row.opt_out_source == "sms"
    [reply] = replies(db)
    assert (reply.status, reply.source, reply.channel, reply.step, reply.template, reply.address,
            reply.dedupe_key, reply.next_attempt_at) == (
        "planned", "reply", "sms", "reply", "reply_opt_out", PHONE, f"reply:{sid}", AT)
    with db.session() as session:
        inbound = session.scalar(select(InboundMessage))
    assert inbound is not None and inbound.reply_attempt_id == reply.id and inbound.borrower_id == "B1"
    # the opt-out was written before the answer was queued
    log = actions(db)
    assert log.index("consent.opt_out") < log.index("reply.queued")
    # a second STOP (another message) changes nothing and confirms nothing
    again = sms(db, "stop", at=AT + timedelta(minutes=5))
    assert again.intent == "opt_out" and again.reply_template is None and not again.duplicate
    assert len(replies(db)) == 1


def test_sms_opt_out_blocks_sms_only(db: Database, borrower: str) -> None:
    assert "opted_out" not in reasons(db, Channel.SMS)
    sms(db, "STOP")
    assert "opted_out" in reasons(db, Channel.SMS)
    assert reasons(db, Channel.EMAIL) == ()
    assert reasons(db, Channel.VOICE) == ()


def test_stop_calling_blocks_voice_only_and_sends_no_sms_confirmation(db: Database, borrower: str) -> None:
    outcome = sms(db, "please stop calling me")
    assert outcome.effects == ["opt_out:voice"] and outcome.reply_template is None
    assert "opted_out" in reasons(db, Channel.VOICE)
    assert reasons(db, Channel.SMS) == ()
    assert reasons(db, Channel.EMAIL) == ()
    assert replies(db) == []


def test_stop_emailing_blocks_email_only(db: Database, borrower: str) -> None:
    outcome = sms(db, "stop emailing me")
    assert outcome.effects == ["opt_out:email"]
    assert "opted_out" in reasons(db, Channel.EMAIL)
    assert reasons(db, Channel.SMS) == () and reasons(db, Channel.VOICE) == ()


def test_leave_me_alone_stops_every_channel_and_ceases_communication(db: Database, borrower: str) -> None:
    outcome = sms(db, "leave me alone")
    assert outcome.effects == ["opt_out:all"] and outcome.reply_template == "reply_opt_out"
    for channel in (Channel.SMS, Channel.VOICE, Channel.EMAIL):
        assert "cease_communication" in reasons(db, channel)
        assert "opted_out" in reasons(db, channel)
    with db.session() as session:
        assert session.get(Borrower, "B1").cease_communication_at == AT  # type: ignore[union-attr]
    assert "borrower.cease_communication" in actions(db)


def test_start_clears_an_opt_out_and_confirms_only_when_it_changed_something(db: Database, borrower: str) -> None:
    first = sms(db, "START")
    assert first.intent == "opt_in" and first.reply_template is None and first.effects == ["opt_in:noop"]
    sms(db, "STOP")
    back = sms(db, "unstop", at=AT + timedelta(minutes=1))
    assert back.reply_template == "reply_opt_in" and back.effects == ["opt_in"]
    assert consent(db, "B1", "sms").opted_out_at is None  # type: ignore[union-attr]
    assert "opted_out" not in reasons(db, Channel.SMS)
    assert [r.template for r in replies(db)] == ["reply_opt_out", "reply_opt_in"]


def test_no_answer_is_queued_to_an_opted_out_number(db: Database, borrower: str) -> None:
    sms(db, "STOP")
    outcome = sms(db, "I will pay tomorrow", at=AT + timedelta(minutes=1))
    assert outcome.reply_template is None and outcome.suppressed == "opted_out"
    assert outcome.effects == ["promise"]  # the promise itself is still recorded
    assert [r.template for r in replies(db)] == ["reply_opt_out"]


# --- the other intents -------------------------------------------------------------------------------


def test_help_is_answered(db: Database, borrower: str) -> None:
    assert sms(db, "HELP").reply_template == "reply_help"
    assert tasks(db) == []


def test_paid_claim_without_a_payment_opens_a_review_task(db: Database, borrower: str) -> None:
    outcome = sms(db, "I already paid")
    assert outcome.reply_template == "reply_paid" and outcome.effects == ["paid:review"]
    [task] = tasks(db)
    assert (task.kind, task.status, task.note, task.source) == ("review", "open", "paid claim", "sms")


def test_paid_claim_covered_by_a_recent_payment_opens_no_task(db: Database, borrower: str) -> None:
    with db.session() as session:
        session.add(Payment(id="P1", loan_id="B1-L1", paid_at=AT - timedelta(days=2), amount_minor=10_000,
                            created_at=AT, updated_at=AT))
    outcome = sms(db, "I already paid")
    assert outcome.reply_template == "reply_paid" and outcome.effects == ["paid:consistent"]
    assert tasks(db) == []


def test_promise_is_stored_pauses_reminders_and_replaces_the_previous_one(db: Database, borrower: str) -> None:
    outcome = sms(db, "I will pay on Friday")  # Saturday 28 November: the next Friday is 4 December
    assert outcome.reply_template == "reply_promise" and outcome.effects == ["promise"]
    with db.session() as session:
        [promise] = session.scalars(select(Promise)).all()
        inbound = session.scalar(select(InboundMessage))
    assert (promise.status, promise.promised_date, promise.source, promise.loan_id, promise.amount_minor) == (
        "pending", date(2026, 12, 4), "sms", "B1-L1", 10_000)
    assert inbound is not None and inbound.promise_date == date(2026, 12, 4)
    assert "promise_pending" in reasons(db, Channel.SMS)
    assert "promise_pending" in reasons(db, Channel.VOICE)
    # the pause ends the day after the promised date
    assert "promise_pending" not in reasons(db, Channel.SMS, at=datetime(2026, 12, 5, 15, 0, tzinfo=UTC))
    sms(db, "actually I will pay on the 10th", at=AT + timedelta(hours=1))
    with db.session() as session:
        rows = session.execute(select(Promise.promised_date, Promise.status).order_by(Promise.id)).all()
    assert rows == [(date(2026, 12, 4), "cancelled"), (date(2026, 12, 10), "pending")]


def test_promise_amount_written_in_the_reply_is_kept(db: Database, borrower: str) -> None:
    sms(db, "I will pay $50 on Friday")
    with db.session() as session:
        assert session.scalar(select(Promise.amount_minor)) == 5_000


def test_promise_without_a_date_is_reviewed(db: Database, borrower: str) -> None:
    outcome = sms(db, "I'll pay soon")
    assert outcome.reply_template == "reply_other" and outcome.effects == ["task:review"]
    assert [(t.kind, t.note) for t in tasks(db)] == [("review", "promise without a date")]
    with db.session() as session:
        assert session.scalar(select(Promise.id)) is None


def test_dispute_opens_one_task_and_stops_contact(db: Database, borrower: str) -> None:
    outcome = sms(db, "this is not my debt")
    assert outcome.reply_template == "reply_dispute" and outcome.effects == ["task:dispute"]
    assert "dispute_open" in reasons(db, Channel.SMS)
    assert "dispute_open" in reasons(db, Channel.EMAIL)
    sms(db, "I don't owe this", at=AT + timedelta(minutes=3))
    assert [(t.kind, t.status) for t in tasks(db)] == [("dispute", "open")]
    assert actions(db).count("task.linked") == 1


@pytest.mark.parametrize(("body", "kind", "template"), [
    ("I lost my job and can't afford it", "hardship", "reply_hardship"),
    ("call me back please", "callback", "reply_callback"),
    ("hello", "review", "reply_other"),
])
def test_intents_that_open_a_task(db: Database, borrower: str, body: str, kind: str, template: str) -> None:
    outcome = sms(db, body)
    assert outcome.reply_template == template
    assert [t.kind for t in tasks(db)] == [kind]


def test_wrong_number_flags_the_number_for_sms_and_voice(db: Database, borrower: str) -> None:
    outcome = sms(db, "wrong number")
    assert outcome.reply_template == "reply_wrong_number"
    for channel in ("sms", "voice"):
        assert consent(db, "B1", channel).address_flag == "wrong_number"  # type: ignore[union-attr]
    assert [t.kind for t in tasks(db)] == ["wrong_number"]
    assert "wrong_number" in reasons(db, Channel.SMS) and "wrong_number" in reasons(db, Channel.VOICE)
    assert "wrong_number" not in reasons(db, Channel.EMAIL)


def test_answers_are_capped_per_day_but_carrier_answers_are_not(db: Database, borrower: str) -> None:
    outcomes = [sms(db, "hello", at=AT + timedelta(minutes=i)) for i in range(MAX_AUTO_REPLIES_PER_DAY + 1)]
    assert [o.reply_template for o in outcomes[:-1]] == ["reply_other"] * MAX_AUTO_REPLIES_PER_DAY
    assert outcomes[-1].reply_template is None and outcomes[-1].suppressed == "daily_reply_cap"
    assert sms(db, "HELP", at=AT + timedelta(minutes=10)).reply_template == "reply_help"
    assert sms(db, "STOP", at=AT + timedelta(minutes=11)).reply_template == "reply_opt_out"
    # a day later the cap has room again
    sms(db, "START", at=AT + timedelta(days=1, minutes=12))
    assert sms(db, "hello", at=AT + timedelta(days=1, minutes=13)).reply_template == "reply_other"


# --- idempotency ---------------------------------------------------------------------------------------


def test_a_retried_webhook_changes_nothing(db: Database, borrower: str) -> None:
    sid = new_sid()
    first = sms(db, "I will pay tomorrow", sid=sid)
    before = counts(db)
    again = sms(db, "I will pay tomorrow", sid=sid, at=AT + timedelta(seconds=15))
    assert first.reply_attempt_id is not None and not first.duplicate
    assert again.duplicate and again.reply_attempt_id is None
    assert counts(db) == before


# --- who sent it, and when ------------------------------------------------------------------------------


def test_with_the_provider_answering_keywords_an_unknown_number_gets_no_direct_answer(db: Database) -> None:
    for n, body in enumerate(("HELP", "STOP")):
        outcome = process_inbound_sms(db, InboundText(message_id=new_sid(), sender=OTHER_PHONE,
                                                      recipient=OUR_NUMBER, body=body,
                                                      received_at=AT + timedelta(minutes=n)),
                                      InboundOptions(keyword_replies="provider"))
        assert outcome.direct_reply is None and outcome.suppressed == "provider_answers"
        assert outcome.inbound_id is not None  # recorded all the same


def test_unknown_number_is_stored_and_only_stop_and_help_are_answered(db: Database) -> None:
    before = counts(db)
    help_ = sms(db, "HELP", from_=OTHER_PHONE)
    stop = sms(db, "STOP", from_=OTHER_PHONE, at=AT + timedelta(minutes=1))
    stop_again = sms(db, "STOP", from_=OTHER_PHONE, at=AT + timedelta(minutes=2))
    promise = sms(db, "I will pay tomorrow", from_=OTHER_PHONE, at=AT + timedelta(minutes=3))
    assert (help_.direct_reply, stop.direct_reply, stop_again.direct_reply, promise.direct_reply) == (
        "reply_help", "reply_opt_out", None, None)
    assert all(o.borrower_id is None for o in (help_, stop, stop_again, promise))
    after = counts(db)
    assert after["inbound_messages"] == before["inbound_messages"] + 4
    assert (after["contact_attempts"], after["tasks"], after["promises"], after["consents"]) == (0, 0, 0, 0)
    with db.session() as session:
        assert session.scalars(select(InboundMessage.borrower_id)).all() == [None] * 4
    # after START the next STOP is confirmed again
    sms(db, "START", from_=OTHER_PHONE, at=AT + timedelta(minutes=4))
    assert sms(db, "STOP", from_=OTHER_PHONE, at=AT + timedelta(minutes=5)).direct_reply == "reply_opt_out"


def test_unknown_chinese_number_gets_chinese_rules(db: Database) -> None:
    outcome = sms(db, "TD", from_="+8613812345678")
    assert outcome.intent == "opt_out" and outcome.locale == "zh-CN" and outcome.direct_reply == "reply_opt_out"


def test_shared_number_the_last_contacted_borrower_is_chosen_and_stops_apply_to_all(db: Database) -> None:
    with db.session() as session:
        add_account(session, "A1")
        add_account(session, "Z9")
        session.add(ContactAttempt(dedupe_key="k1", borrower_id="Z9", channel="sms", source="planner",
                                   status="sent", address=PHONE, occurred_at=AT - timedelta(days=1),
                                   sent_at=AT - timedelta(days=1), tries=1, created_at=T0, updated_at=T0))
        session.add(ContactAttempt(dedupe_key="k2", borrower_id="A1", channel="sms", source="planner",
                                   status="sent", address=PHONE, occurred_at=AT - timedelta(days=3),
                                   sent_at=AT - timedelta(days=3), tries=1, created_at=T0, updated_at=T0))
    promise = sms(db, "I will pay tomorrow")
    assert promise.borrower_id == "Z9"
    with db.session() as session:
        assert session.scalars(select(Promise.borrower_id)).all() == ["Z9"]
    stop = sms(db, "STOP", at=AT + timedelta(minutes=1))
    assert stop.reply_template == "reply_opt_out"
    assert "opted_out" in reasons(db, Channel.SMS, borrower_id="A1")
    assert "opted_out" in reasons(db, Channel.SMS, borrower_id="Z9")
    assert len(replies(db, "Z9")) == 2 and replies(db, "A1") == []


def test_shared_number_never_contacted_falls_back_to_the_smallest_id(db: Database) -> None:
    with db.session() as session:
        add_account(session, "B7")
        add_account(session, "B3")
    assert sms(db, "hello").borrower_id == "B3"


@pytest.mark.parametrize(("country", "region", "timezone", "locale", "body", "expected"), [
    # 03:00 UTC on the 28th is still the 27th (22:00) in New York: "tomorrow" is the 28th
    ("US", "NY", None, "en-US", "I will pay tomorrow", date(2026, 11, 28)),
    # ... but already the 28th (11:00) in Shanghai: 明天 is the 29th
    ("CN", "SH", None, "zh-CN", "我明天还", date(2026, 11, 29)),
    # an explicit zone wins over the region
    ("US", "NY", "Asia/Tokyo", "en-US", "I will pay tomorrow", date(2026, 11, 29)),
])
def test_today_is_the_borrower_s_local_date(db: Database, country: str, region: str, timezone: str | None,
                                             locale: str, body: str, expected: date) -> None:
    with db.session() as session:
        add_account(session, "B1", country=country, region=region, timezone=timezone, locale=locale)
    outcome = sms(db, body, at=datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
    assert outcome.intent == "promise_to_pay"
    with db.session() as session:
        assert session.scalar(select(Promise.promised_date)) == expected


# --- what is stored ----------------------------------------------------------------------------------------


def test_the_stored_text_is_redacted_and_nothing_raw_is_kept_elsewhere(db: Database, borrower: str) -> None:
    body = "paid with card 4111 1111 1111 1111 cvv 123, acct 98765, call me at 212-555-0199 or jd@mail.com"
    sms(db, body)
    with db.session() as session:
        stored = session.scalar(select(InboundMessage.body_redacted))
        audit = [str(d) for d in session.scalars(select(AuditEvent.detail))]
        notes = [t.note or "" for t in session.scalars(select(Task))]
    assert stored is not None
    for secret in ("4111 1111 1111 1111", "4111111111111111", "cvv 123", "98765", "555-0199", "jd@mail.com"):
        assert secret not in stored
        assert all(secret not in item for item in audit + notes)
    assert "1111" in stored and "cvv ***" in stored and "acct *****" in stored


@pytest.mark.parametrize(("raw", "expected"), [
    ("my cvv is 123", "my cvv is ***"),
    ("PIN: 4321", "PIN: ****"),
    ("安全码123", "安全码***"),
    ("acct 12345 paid", "acct ***** paid"),
    ("account #: AB1234567", "account #: *****4567"),
    ("I paid $50 on 12/10", "I paid $50 on 12/10"),
    ("I will pay on the 15th", "I will pay on the 15th"),
])
def test_redact_reply(raw: str, expected: str) -> None:
    assert redact_reply(raw) == expected


# --- promise follow-up -----------------------------------------------------------------------------------------


def _promise(db: Database, body: str = "I will pay on Friday") -> int:
    sms(db, body)
    with db.session() as session:
        promise_id = session.scalar(select(Promise.id).where(Promise.status == "pending"))
    assert promise_id is not None
    return promise_id


def _status(db: Database, promise_id: int) -> str:
    with db.session() as session:
        return session.get(Promise, promise_id).status  # type: ignore[union-attr]


def test_promise_kept_when_payments_since_it_cover_the_amount(db: Database, borrower: str) -> None:
    promise_id = _promise(db)  # 4 December, 10,000 owed
    with db.session() as session:
        session.add(Payment(id="P0", loan_id="B1-L1", paid_at=AT - timedelta(days=1), amount_minor=10_000,
                            created_at=AT, updated_at=AT))  # before the promise: does not count
        session.add(Payment(id="P1", loan_id="B1-L1", paid_at=AT + timedelta(days=1), amount_minor=6_000,
                            created_at=AT, updated_at=AT))
    with db.session() as session:
        report = check_promises(session, AT + timedelta(days=2))
    assert report.pending == [promise_id] and _status(db, promise_id) == "pending"
    with db.session() as session:
        session.add(Payment(id="P2", loan_id="B1-L1", paid_at=AT + timedelta(days=3), amount_minor=4_000,
                            created_at=AT, updated_at=AT))
    with db.session() as session:
        report = check_promises(session, AT + timedelta(days=4))
    assert report.kept == [promise_id] and _status(db, promise_id) == "kept"
    assert "promise.kept" in actions(db)
    assert "promise_pending" not in reasons(db, Channel.SMS, at=AT + timedelta(days=4))


def test_promise_broken_the_day_after_its_date(db: Database, borrower: str) -> None:
    promise_id = _promise(db)  # Friday 4 December 2026, New York
    on_the_day = datetime(2026, 12, 5, 4, 59, tzinfo=UTC)  # 23:59 on the 4th in New York
    with db.session() as session:
        assert check_promises(session, on_the_day).pending == [promise_id]
    day_after = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)  # 00:00 on the 5th
    with db.session() as session:
        assert check_promises(session, day_after).broken == [promise_id]
    with db.session() as session:
        promise = session.get(Promise, promise_id)
        assert promise is not None and promise.status == "broken" and promise.resolved_at == day_after
    # resolved promises are left alone
    with db.session() as session:
        report = check_promises(session, day_after + timedelta(days=1))
    assert (report.kept, report.broken, report.pending) == ([], [], [])
    assert actions(db).count("promise.broken") == 1


def test_promise_grace_days(db: Database, borrower: str) -> None:
    promise_id = _promise(db)
    with db.session() as session:
        assert check_promises(session, datetime(2026, 12, 5, 15, tzinfo=UTC), grace_days=1).pending == [promise_id]
    with db.session() as session:
        assert check_promises(session, datetime(2026, 12, 6, 15, tzinfo=UTC), grace_days=1).broken == [promise_id]


def test_promise_kept_when_the_loan_is_paid_off_in_the_installments(db: Database, borrower: str) -> None:
    promise_id = _promise(db)
    with db.session() as session:
        session.execute(text("UPDATE installments SET amount_paid_minor = amount_due_minor"))
        settle_loans(session, session.scalars(select(Loan.id)).all(), at=AT + timedelta(minutes=30))
    with db.session() as session:
        assert check_promises(session, AT + timedelta(hours=1)).kept == [promise_id]


def test_planner_job_runs_the_promise_check(db: Database, borrower: str) -> None:
    from bot.clock import FixedClock
    from bot.policy import load_policy
    from bot.scheduler.service import PlannerService

    promise_id = _promise(db)
    service = PlannerService(db=db, clock=FixedClock(datetime(2026, 12, 6, 15, tzinfo=UTC)), policy=load_policy())
    service.plan_job()
    assert _status(db, promise_id) == "broken"


# --- concurrency (PostgreSQL: real row locks) -------------------------------------------------------------------


def test_two_stops_at_once_send_one_confirmation(db: Database, borrower: str) -> None:
    """The second STOP runs while the first transaction holds the consent row.

    On PostgreSQL the test waits until the second really blocks on the row lock;
    SQLite has one writer, so the second waits for the database lock (or runs
    after the first): either way exactly one confirmation must be queued.
    """
    results: dict[str, object] = {}
    with Session(db.engine) as first:
        with first.begin():
            results["first"] = handle_inbound_sms(first, InboundText(new_sid(), PHONE, OUR_NUMBER, "STOP", AT))
            second = threading.Thread(target=lambda: results.__setitem__("second", sms(db, "stop please")))
            second.start()
            if db.dialect == "postgresql":
                wait_for_lock_wait(db)
        second.join(timeout=30)
    assert results["first"].reply_template == "reply_opt_out"  # type: ignore[attr-defined]
    assert results["second"].reply_template is None  # type: ignore[attr-defined]
    assert [r.template for r in replies(db)] == ["reply_opt_out"]


# --- questions: who is writing, how much is owed (the answer depends on the number) -------------------


def _answer(db: Database, outcome) -> str:  # type: ignore[no-untyped-def]
    """The text the dispatcher would send for the queued answer, composed from the database."""
    from bot.config import Settings
    from bot.messages import compose, load_message_data
    from bot.rendering import Renderer

    settings = Settings(public_base_url="https://bot.example.com", lender_name="Example Lending",
                        lender_phone="+18005550100")
    with db.session() as session:
        attempt = session.get(ContactAttempt, outcome.reply_attempt_id)
        assert attempt is not None
        return compose(load_message_data(session, attempt), attempt, settings, renderer=Renderer()).body


def test_identity_question_tells_a_verified_number_why_we_write(db: Database, borrower: str) -> None:
    outcome = sms(db, "who is this?")
    assert (outcome.intent, outcome.effects, outcome.reply_template) == (
        "identity_question", ["answer:identity"], "reply_identity")
    assert tasks(db) == [] and consent(db, borrower, "sms").address_flag is None
    body = _answer(db, outcome)
    assert "Example Lending" in body and "loan" in body


def test_balance_inquiry_gives_the_amount_to_a_verified_number_only(db: Database, borrower: str) -> None:
    outcome = sms(db, "how much do I owe?")
    assert (outcome.intent, outcome.reply_template) == ("balance_inquiry", "reply_balance")
    assert "$100.00" in _answer(db, outcome)
    assert tasks(db) == []


@pytest.mark.parametrize("setup", ["no_consent", "shared", "flagged"])
def test_an_unverified_number_hears_neither_the_debt_nor_the_balance(db: Database, setup: str) -> None:
    with db.session() as session:
        add_account(session, "B1", consent=() if setup == "no_consent" else ("sms", "voice", "email"))
        if setup == "shared":
            add_account(session, "B2")
    if setup == "flagged":
        with db.session() as session:
            session.execute(text("UPDATE consents SET address_flag = 'landline' WHERE channel = 'sms'"))
    who = sms(db, "who is this?")
    balance = sms(db, "what's my balance", at=AT + timedelta(minutes=1))
    assert (who.reply_template, balance.reply_template) == ("reply_identity", "reply_balance")
    who_body, balance_body = _answer(db, who), _answer(db, balance)
    assert "Example Lending" in who_body and "loan" not in who_body and "WRONG NUMBER" in who_body
    assert "$" not in balance_body and "100.00" not in balance_body and "+18005550100" in balance_body


def test_spanish_keywords_are_stop_and_help(db: Database, borrower: str) -> None:
    assert sms(db, "AYUDA").reply_template == "reply_help"
    outcome = sms(db, "Alto", at=AT + timedelta(minutes=1))
    assert (outcome.intent, outcome.reply_template) == ("opt_out", "reply_opt_out")
    assert consent(db, borrower, "sms").opted_out_at is not None
    assert sms(db, "PARAR", from_=OTHER_PHONE).direct_reply == "reply_opt_out"
    assert sms(db, "cancelar", from_="+13105550000").direct_reply == "reply_opt_out"


def test_spanish_replies_are_understood_and_answered_in_spanish(db: Database) -> None:
    with db.session() as session:
        add_account(session, "B1", locale="es-US")
    outcome = sms(db, "pago el viernes")  # Saturday 28 November: the next Friday
    with db.session() as session:
        promise = session.scalar(select(Promise).where(Promise.borrower_id == "B1"))
        assert promise is not None and promise.promised_date == date(2026, 12, 4)
    assert "Anotamos que piensa pagar" in _answer(db, outcome)


def test_unknown_number_asking_who_we_are_gets_the_help_answer_and_nothing_else(db: Database) -> None:
    assert sms(db, "who is this?", from_=OTHER_PHONE).direct_reply == "reply_help"
    assert sms(db, "how much do I owe", from_=OTHER_PHONE, at=AT + timedelta(minutes=1)).direct_reply is None


def test_an_unsure_payment_claim_goes_to_a_person(db: Database, borrower: str) -> None:
    outcome = sms(db, "I think I paid? not sure")
    assert (outcome.intent, outcome.reply_template) == ("other", "reply_other")
    assert [t.kind for t in tasks(db)] == ["review"]
    with db.session() as session:
        assert session.scalars(select(AuditEvent.action).where(AuditEvent.action == "reply.paid_claim")).all() == []


def test_reply_kind_tables_agree() -> None:
    from bot.messages import REPLY_KINDS as COMPOSED
    from bot.replies import REPLY_KINDS as QUEUED

    assert QUEUED == COMPOSED  # a call's confirmation is queued by the same bot.replies.queue_answer
