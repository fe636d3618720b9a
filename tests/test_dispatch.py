"""The dispatcher's own logic on SQLite and PostgreSQL, with in-test channel adapters.

End to end through the real sandbox and SMTP (and the crash and fault tests) are
in tests/test_dispatch_e2e.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.messages import sms_segments
from bot.db.models import AuditEvent, ContactAttempt, Installment, Promise, RateBucket, Task
from bot.dispatch import DispatchOptions, Dispatcher, DispatchReport, backoff_delay
from bot.dispatch.reconcile import CannotTell, Found, NotFound, Stuck, body_hash
from bot.errors import PermanentDeliveryError, TransientDeliveryError
from bot.policy import Policy, load_policy
from bot.providers.twilio.lookup import match
from bot.ratelimit import Limit, TokenBuckets, refill
from bot.scheduler.planner import plan

from builders import AT, add_borrower, add_loan
from dispatch_support import (
    FakeChannel,
    add_reply,
    attempt,
    attempts,
    consent,
    due_in,
)

NIGHT = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)  # 21:30 Saturday in New York
NEXT_MORNING = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)  # 08:00 Sunday in New York


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def settings() -> Settings:
    return load_settings(twilio_from_numbers=["+15005550006"], rate_limits_enabled=False)


class Harness:
    """A database, fake adapters and a dispatcher factory sharing one clock."""

    def __init__(self, db: Database, settings: Settings, policy: Policy) -> None:
        self.db = db
        self.settings = settings
        self.policy = policy
        self.clock = FixedClock(AT)
        self.sms = FakeChannel("sms")
        self.email = FakeChannel("email")
        self.lookup = ScriptedLookup()

    def plan(self, at: datetime | None = None) -> Any:
        with self.db.sessions() as session:
            return plan(session, at or self.clock.now(), policy=self.policy)

    def dispatcher(self, *, worker: str = "w1", **options: Any) -> Dispatcher:
        opts = DispatchOptions(worker_id=worker, rate_limits=options.pop("rate_limits", False), **options)
        return Dispatcher(self.db, self.settings, channels={"sms": self.sms, "email": self.email},
                          policy=self.policy, clock=self.clock, options=opts, rng=random.Random(7),
                          lookup=self.lookup)

    def run(self, **options: Any) -> DispatchReport:
        return asyncio.run(self.dispatcher(**options).run_pass())


class ScriptedLookup:
    """A provider lookup answering from a dict (attempt id -> result)."""

    channels = frozenset({"sms"})

    def __init__(self) -> None:
        self.answers: dict[int, Any] = {}
        self.asked: list[Stuck] = []

    async def find(self, stuck: Stuck) -> Any:
        self.asked.append(stuck)
        return self.answers.get(stuck.attempt_id, NotFound())


@pytest.fixture
def h(db: Database, settings: Settings, policy: Policy) -> Harness:
    return Harness(db, settings, policy)


def one_sms_borrower(h: Harness, borrower_id: str = "B1", **kwargs: Any) -> None:
    add_borrower(h.db, borrower_id, **kwargs)
    add_loan(h.db, borrower_id, f"L{borrower_id}", [(f"I{borrower_id}", due_in(3))])  # D-3: an SMS today


# --- sending and recording ------------------------------------------------------------------


def test_a_planned_sms_and_email_are_sent_and_recorded(h: Harness) -> None:
    one_sms_borrower(h, "B1")
    add_borrower(h.db, "B2")
    add_loan(h.db, "B2", "LB2", [("IB2", due_in(0))])  # D0: an email today
    assert h.plan().by_status["planned"] == 2

    report = h.run()

    assert report.by_channel() == {"sms": {"sent": 1}, "email": {"sent": 1}}
    [sms] = h.sms.sent
    [email] = h.email.sent
    assert sms.to == "+12125550001" and sms.from_ == "+15005550006"
    assert "Jane" in sms.body and sms.body.endswith("Reply STOP to opt out.")
    assert sms.status_callback == f"http://127.0.0.1:8000/twilio/status?attempt={sms.attempt_id}"
    assert email.to == "borrower2@example.com" and email.subject and email.html
    assert email.headers["Message-ID"].startswith(f"<attempt-{email.attempt_id}.")
    assert "List-Unsubscribe" in email.headers and email.decision.allowed
    rows = {a.channel: a for a in attempts(h.db)}
    for row in rows.values():
        assert row.status == "sent" and row.tries == 1 and row.sent_at == AT and row.occurred_at == AT
        assert row.provider_id and row.claimed_by is None and row.claimed_until is None
        assert row.decision["dispatch"]["action"] == "send" and row.decision["dispatch"]["at"] == AT.isoformat()
        assert row.decision["planner"]["step"]  # the planner's part is kept
    assert rows["sms"].outcome == "attempted" and rows["email"].outcome == "delivered"
    assert (rows["sms"].body_sha256, rows["sms"].sender) == (body_hash(sms.body), "+15005550006")
    assert rows["email"].sender is None and rows["email"].body_sha256 == body_hash(email.body)
    assert not {"from", "body_sha256", "call", "rate_limited_until"} & set(rows["sms"].decision["dispatch"])

    again = h.run()  # nothing is due any more: nothing is sent twice
    assert again.handled == 0 and len(h.sms.sent) == 1 and len(h.email.sent) == 1


def test_voice_attempts_are_left_for_a_voice_dispatcher(h: Harness) -> None:
    add_borrower(h.db, "B1")
    add_loan(h.db, "B1", "L1", [("I1", due_in(-3))])  # D+3: a call
    h.plan()
    report = h.run()
    assert report.claimed == 0
    [row] = attempts(h.db)
    assert (row.channel, row.status, row.claimed_by) == ("voice", "planned", None)


# --- the send-time check ---------------------------------------------------------------------


def test_an_opt_out_after_planning_blocks_the_message(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    from bot.replies import record_opt_out

    with h.db.session() as s:
        record_opt_out(s, "B1", "sms", "+12125550001", "sms", AT)

    report = h.run()

    assert h.sms.sent == [] and report.by_channel() == {"sms": {"blocked": 1}}
    [row] = attempts(h.db)
    assert row.status == "blocked" and row.claimed_by is None and row.next_attempt_at is None
    assert row.decision["reasons"] == ["opted_out"] and row.decision["dispatch"]["action"] == "blocked"


def test_a_payment_after_planning_blocks_the_reminder(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    with h.db.session() as s:
        # Written behind the ledger's back (no settle): the send-time re-check still reads
        # the covered amount, so pretend the covered figure moved without the cancel.
        s.execute(update(Installment).values(covered_minor=Installment.amount_due_minor))
    h.run()
    assert h.sms.sent == []
    [row] = attempts(h.db)
    assert row.status == "cancelled" and row.decision["reasons"] == ["paid"]


def test_quiet_hours_at_send_time_defer_until_morning(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()  # planned at 10:00
    h.clock.set(NIGHT)  # the dispatcher only gets to it at 21:30

    report = h.run()

    assert h.sms.sent == [] and report.by_channel() == {"sms": {"deferred": 1}}
    [row] = attempts(h.db)
    assert row.status == "deferred" and row.next_attempt_at == NEXT_MORNING
    assert row.decision["reasons"] == ["quiet_hours"]

    h.clock.set(NEXT_MORNING - timedelta(minutes=1))
    assert h.run().handled == 0  # not due yet
    h.clock.set(NEXT_MORNING)
    assert h.run().by_channel() == {"sms": {"sent": 1}}
    assert attempts(h.db)[0].status == "sent"


def test_a_step_that_is_no_longer_current_is_cancelled_not_sent(h: Harness) -> None:
    one_sms_borrower(h)  # D-3 SMS planned today
    h.plan()
    h.clock.set(AT + timedelta(days=3))  # an outage: now it is D0, the email's day
    report = h.run()
    assert h.sms.sent == [] and report.by_channel() == {"sms": {"cancelled": 1}}
    [row] = attempts(h.db)
    assert row.status == "cancelled" and row.last_error == "stale" and row.decision["reasons"] == ["stale"]


def test_an_attempt_planned_on_an_earlier_day_expires_after_the_max_age(h: Harness) -> None:
    add_borrower(h.db, "B1")
    add_loan(h.db, "B1", "L1", [("I1", due_in(-1))])  # D+1 SMS, current on D+1 and D+2
    h.plan()
    h.clock.set(AT + timedelta(days=1, hours=2))  # the next day, 26 hours later, never re-planned
    report = h.run(max_age=timedelta(hours=24))
    assert report.by_channel() == {"sms": {"cancelled": 1}} and h.sms.sent == []
    # The same attempt is still sent the next morning when it is younger than the max age.
    with h.db.session() as s:
        s.execute(update(ContactAttempt).values(status="planned", last_error=None))
    assert h.run(max_age=timedelta(hours=30)).by_channel() == {"sms": {"sent": 1}}


def test_an_attempt_to_an_old_address_is_blocked_for_re_planning(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    from bot.db.models import Borrower

    with h.db.session() as s:
        s.execute(update(Borrower).values(phone_e164="+12125559999"))
    h.run()
    [row] = attempts(h.db)
    assert row.status == "blocked" and row.decision["reasons"] == ["address_changed"] and h.sms.sent == []


def test_two_attempts_of_one_borrower_in_a_batch_share_the_frequency_cap(h: Harness) -> None:
    # Massachusetts: at most 2 texts/calls per 7 days per debt.  One was sent yesterday;
    # two attempts about the same loan are due now: only one may go.
    add_borrower(h.db, "B1", region="MA")
    add_loan(h.db, "B1", "L1", [("I1", due_in(3))])
    with h.db.session() as s:
        s.add(ContactAttempt(dedupe_key="import:1", borrower_id="B1", loan_id="L1", channel="sms",
                             source="import", status="done", outcome="delivered",
                             occurred_at=AT - timedelta(days=1), created_at=AT, updated_at=AT))
        for n in (1, 2):
            s.add(ContactAttempt(dedupe_key=f"manual:{n}", borrower_id="B1", loan_id="L1", installment_id="I1",
                                 channel="sms", source="manual", status="planned", template="reminder_upcoming",
                                 address="+12125550001", next_attempt_at=AT, created_at=AT, updated_at=AT))
    report = h.run()
    assert len(h.sms.sent) == 1
    assert report.by_channel()["sms"]["sent"] == 1
    assert sum(report.by_channel()["sms"].get(k, 0) for k in ("deferred", "blocked")) == 1
    capped = [a for a in attempts(h.db) if a.source == "manual" and a.status != "sent"]
    assert capped and capped[0].decision["reasons"] == ["frequency_cap"]


def test_a_message_that_cannot_be_composed_fails_without_sending(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    with h.db.session() as s:
        s.execute(update(ContactAttempt).values(template="no_such_template"))
    report = h.run()
    assert report.by_channel() == {"sms": {"failed": 1}} and h.sms.sent == []
    [row] = attempts(h.db)
    assert row.status == "failed" and row.last_error == "compose: template_error"


# --- replies ---------------------------------------------------------------------------------


def test_the_opt_out_confirmation_goes_at_once_at_night_and_only_once(h: Harness) -> None:
    add_borrower(h.db, "B1", opted_out=("sms",))  # the borrower just texted STOP
    h.clock.set(NIGHT)
    first = add_reply(h.db, "B1", "opt_out", at=NIGHT, sid="SM" + "1" * 32)
    second = add_reply(h.db, "B1", "opt_out", at=NIGHT, sid="SM" + "2" * 32)  # STOP sent twice

    report = h.run()

    assert [m.attempt_id for m in h.sms.sent] == [first]
    assert report.by_channel() == {"sms": {"sent": 1, "cancelled": 1}}
    assert attempt(h.db, first).decision["results"] == [{"rule": "reply.opt_out_confirmation", "allowed": True}]
    assert attempt(h.db, second).status == "cancelled"
    assert attempt(h.db, second).decision["reasons"] == ["opt_out_already_confirmed"]


def test_other_replies_wait_for_contact_hours(h: Harness) -> None:
    add_borrower(h.db, "B1")
    h.clock.set(NIGHT)
    reply = add_reply(h.db, "B1", "help", at=NIGHT)
    h.run()
    assert h.sms.sent == []
    row = attempt(h.db, reply)
    assert row.status == "deferred" and row.next_attempt_at == NEXT_MORNING
    h.clock.set(NEXT_MORNING)
    h.run()
    [message] = h.sms.sent
    assert message.attempt_id == reply and "Example Lending" in message.body


def test_replies_ignore_frequency_caps_and_the_pause_they_answer(h: Harness) -> None:
    add_borrower(h.db, "B1", region="MA")  # 2 texts per 7 days per debt
    add_loan(h.db, "B1", "L1", [("I1", due_in(3))])
    with h.db.session() as s:
        for day in (1, 2):
            s.add(ContactAttempt(dedupe_key=f"import:{day}", borrower_id="B1", loan_id="L1", channel="sms",
                                 source="import", status="done", outcome="delivered",
                                 occurred_at=AT - timedelta(days=day), created_at=AT, updated_at=AT))
        s.add(Promise(borrower_id="B1", loan_id="L1", promised_date=AT.date() + timedelta(days=5),
                      status="pending", source="sms", created_at=AT))
        s.add(Task(borrower_id="B1", loan_id="L1", kind="dispute", status="open", source="sms", created_at=AT))
    promise = add_reply(h.db, "B1", "promise", sid="SM" + "3" * 32)
    dispute = add_reply(h.db, "B1", "dispute", sid="SM" + "4" * 32)
    h.plan()  # the reminder itself is blocked (dispute) and would be capped anyway

    h.run()

    assert sorted(m.attempt_id for m in h.sms.sent) == sorted([promise, dispute])
    reminder = next(a for a in attempts(h.db) if a.source == "planner")
    assert reminder.status == "blocked"


def test_a_reply_goes_from_the_number_the_borrower_wrote_to(h: Harness, db: Database) -> None:
    h.settings = load_settings(twilio_from_numbers=["+15005550006", "+15005550007"], rate_limits_enabled=False)
    add_borrower(db, "B1")
    reply = add_reply(db, "B1", "help", to_number="+15005550007")
    h.run()
    [message] = h.sms.sent
    assert message.attempt_id == reply and message.from_ == "+15005550007"


@pytest.mark.parametrize(("locale", "line"), [("en-US", "Reply STOP to opt out."), ("zh-CN", "回T退订"),
                                             ("ko-KR", "수신거부: STOP 회신")])
def test_the_first_text_to_a_number_says_how_to_opt_out(h: Harness, locale: str, line: str) -> None:
    """A promise confirmation after a call can be the first SMS a number gets from the sender
    (CTIA: the first message must say how to stop); once a text went, answers need not."""
    add_borrower(h.db, "B1", locale=locale)
    first = add_reply(h.db, "B1", "promise", sid="SM" + "5" * 32)
    h.run()
    [message] = h.sms.sent
    assert message.attempt_id == first and message.body.endswith(line), message.body
    assert message.body.count(line) == 1
    second = add_reply(h.db, "B1", "promise", sid="SM" + "6" * 32, at=AT + timedelta(minutes=1))
    h.clock.advance(timedelta(minutes=2))
    h.run()
    assert [m.attempt_id for m in h.sms.sent] == [first, second]
    assert not h.sms.sent[1].body.endswith(line)  # the number has heard from this sender already


def test_a_first_text_from_another_sender_says_how_to_opt_out_again(h: Harness, db: Database) -> None:
    h.settings = load_settings(twilio_from_numbers=["+15005550006", "+15005550007"], rate_limits_enabled=False)
    add_borrower(db, "B1")
    add_reply(db, "B1", "paid", to_number="+15005550006", sid="SM" + "7" * 32)
    h.run()
    add_reply(db, "B1", "paid", to_number="+15005550007", sid="SM" + "8" * 32, at=AT + timedelta(minutes=1))
    h.clock.advance(timedelta(minutes=2))
    h.run()
    assert [(m.from_, m.body.endswith("Reply STOP to opt out.")) for m in h.sms.sent] == [
        ("+15005550006", True), ("+15005550007", True)]


def test_the_opt_out_confirmation_never_gets_the_line(h: Harness) -> None:
    add_borrower(h.db, "B1")
    add_reply(h.db, "B1", "opt_out", sid="SM" + "9" * 32)
    h.run()
    [message] = h.sms.sent
    assert "Reply STOP" not in message.body


def test_an_old_reply_is_not_sent(h: Harness) -> None:
    add_borrower(h.db, "B1")
    reply = add_reply(h.db, "B1", "help", at=AT - timedelta(days=4))
    h.run()
    assert h.sms.sent == [] and attempt(h.db, reply).status == "cancelled"


# --- errors and retries ------------------------------------------------------------------------


def test_transient_errors_back_off_with_full_jitter_then_succeed(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    h.sms.script["+12125550001"] = [TransientDeliveryError("429", code=20429),
                                    TransientDeliveryError("503", code=20503)]
    options = DispatchOptions(backoff_base=timedelta(seconds=30), backoff_cap=timedelta(hours=1))
    expected = random.Random(7)

    assert h.run().by_channel() == {"sms": {"retry": 1}}
    row = attempts(h.db)[0]
    first_delay = backoff_delay(1, options, expected)
    assert row.status == "planned" and row.tries == 1 and row.next_attempt_at == AT + first_delay
    assert row.last_error == "transient: 20429 TransientDeliveryError" and row.occurred_at is None
    assert timedelta(seconds=1) <= first_delay <= timedelta(seconds=30)

    h.clock.set(row.next_attempt_at)
    assert h.run().by_channel() == {"sms": {"retry": 1}}
    row = attempts(h.db)[0]
    assert row.tries == 2 and row.last_error.startswith("transient: 20503")

    h.clock.set(row.next_attempt_at)
    assert h.run().by_channel() == {"sms": {"sent": 1}}
    row = attempts(h.db)[0]
    assert row.status == "sent" and row.tries == 3 and row.last_error is None and len(h.sms.sent) == 1


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    options = DispatchOptions(backoff_base=timedelta(seconds=10), backoff_cap=timedelta(seconds=100))
    rng = random.Random(1)
    for tries, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = [backoff_delay(tries, options, rng).total_seconds() for _ in range(300)]
        assert 1.0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8  # full jitter covers the whole range


def test_too_many_transient_errors_fail_the_attempt(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    h.sms.script["+12125550001"] = [TransientDeliveryError("5xx", code=20500)] * 3
    for _ in range(3):
        h.run(max_tries=3)
        row = attempts(h.db)[0]
        if row.next_attempt_at:
            h.clock.set(row.next_attempt_at)
    row = attempts(h.db)[0]
    assert row.status == "failed" and row.tries == 3 and row.last_error.startswith("gave up after 3 tries: 20500")
    assert h.sms.calls == 3 and h.sms.sent == []


@pytest.mark.parametrize(("code", "effect"), [(21610, "opt_out"), (21211, "invalid"), (21614, "landline"),
                                               (21612, None)])
def test_permanent_errors_fail_at_once_and_record_what_they_say(h: Harness, code: int, effect: str | None) -> None:
    one_sms_borrower(h)
    h.plan()
    error = PermanentDeliveryError(f"Twilio error {code}", code=code)
    h.sms.script["+12125550001"] = [error]

    assert h.run().by_channel() == {"sms": {"failed": 1}}

    row = attempts(h.db)[0]
    assert row.status == "failed" and row.tries == 1 and row.outcome == "failed"
    assert row.last_error == f"permanent: {code} PermanentDeliveryError"
    row_consent = consent(h.db, "B1", "sms")
    if effect == "opt_out":
        assert row_consent.opted_out_at == AT and row_consent.opt_out_source == "carrier_21610"
    elif effect:
        assert row_consent.address_flag == effect and row_consent.opted_out_at is None
    else:
        assert row_consent.address_flag is None and row_consent.opted_out_at is None
    h.clock.set(AT + timedelta(hours=1))
    h.run()
    assert h.sms.calls == 1  # never retried


@pytest.mark.parametrize("code", [21609, 20003, 21606, 21212, 21608])
def test_configuration_errors_fail_at_once_and_are_logged_once(h: Harness, code: int, caplog: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from twilio.base.exceptions import TwilioRestException

    from bot.dispatch import runner
    from bot.providers.twilio.errors import classify_twilio_error

    monkeypatch.setattr(runner, "_reported", set())  # "once" is per process: start this test afresh
    for n in (1, 2, 3):
        one_sms_borrower(h, f"B{n}", phone=f"+1212555000{n}")
        h.sms.script[f"+1212555000{n}"] = [classify_twilio_error(TwilioRestException(400, "/x", code=code))]
    h.plan()

    with caplog.at_level(logging.INFO):
        assert h.run().by_channel() == {"sms": {"failed": 3}}
    rows = attempts(h.db)
    assert [(r.status, r.tries) for r in rows] == [("failed", 1)] * 3
    assert all(r.last_error.startswith(f"configuration: {code} ") for r in rows)
    problems = [r for r in caplog.records if "configuration problem" in r.getMessage()]
    assert len(problems) == 1 and problems[0].levelno == logging.ERROR
    assert f"Twilio error {code}" in problems[0].getMessage()
    assert all(consent(h.db, f"B{n}", "sms").address_flag is None for n in (1, 2, 3))  # nothing said about them
    h.clock.set(AT + timedelta(hours=1))
    h.run()
    assert h.sms.calls == 3  # never retried


# --- rate limits ---------------------------------------------------------------------------------


def test_rate_limits_delay_but_never_drop(h: Harness) -> None:
    for n in range(1, 6):
        one_sms_borrower(h, f"B{n}")
    h.plan()
    h.settings = load_settings(twilio_from_numbers=["+15005550006"], sms_rate_per_number=1.0,
                               sms_rate_per_account=100.0)

    report = h.run(rate_limits=True)

    assert report.by_channel() == {"sms": {"sent": 1, "rate_limited": 4}}
    segments = sms_segments(h.sms.sent[0].body).segments  # one token per segment (the reminder has 2)
    waiting = sorted(a.next_attempt_at for a in attempts(h.db) if a.status == "planned")
    assert waiting == [AT + timedelta(seconds=s * segments) for s in (1, 2, 3, 4)]
    held = sorted((a.rate_limited_until, a.sender) for a in attempts(h.db) if a.status == "planned")
    assert held == [(t, "+15005550006") for t in waiting]  # the dispatch metadata says until when, and from whom
    sent = 1
    for second in range(1, 5):
        h.clock.set(AT + timedelta(seconds=second * segments))
        sent += h.run(rate_limits=True).total("sent")
    assert sent == 5 and len(h.sms.sent) == 5 and len({m.to for m in h.sms.sent}) == 5
    with h.db.sessions() as s:
        assert {b.key for b in s.scalars(select(RateBucket))} == {
            "sms:number:+15005550006", "sms:account:AC00000000000000000000000000000000"}


def test_rate_limits_count_segments(h: Harness) -> None:
    """Providers rate-limit segments: a long reminder holds the number back for as many seconds."""
    for n in range(1, 4):
        one_sms_borrower(h, f"B{n}")
    h.plan()
    h.settings = load_settings(twilio_from_numbers=["+15005550006"], sms_rate_per_number=1.0,
                               lender_name="Example Lending Cooperative of the Greater Metropolitan Area " * 2)
    report = h.run(rate_limits=True)
    assert report.by_channel() == {"sms": {"sent": 1, "rate_limited": 2}}
    segments = sms_segments(h.sms.sent[0].body).segments
    assert segments >= 2
    waiting = sorted(a.next_attempt_at for a in attempts(h.db) if a.status == "planned")
    assert waiting == [AT + timedelta(seconds=segments), AT + timedelta(seconds=2 * segments)]
    h.clock.set(AT + timedelta(seconds=segments - 0.5))  # not before the first message's segments are paid for
    assert h.run(rate_limits=True).total("sent") == 0
    h.clock.set(AT + timedelta(seconds=segments))
    assert h.run(rate_limits=True).total("sent") == 1


def test_a_scheduled_pass_keeps_sending_what_the_rate_limit_delayed(h: Harness) -> None:
    """On the real clock a pass keeps going while work comes due within a couple of
    seconds; here the pass's sleep moves the fixed clock instead of waiting."""
    for n in range(1, 4):
        one_sms_borrower(h, f"B{n}")
    h.plan()
    # 2 segments a second: one 2-segment reminder a second
    h.settings = load_settings(twilio_from_numbers=["+15005550006"], sms_rate_per_number=2.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        h.clock.advance(timedelta(seconds=seconds))

    opts = DispatchOptions(worker_id="w1", keep_running_for=30.0, max_idle_wait=2.0)
    dispatcher = Dispatcher(h.db, h.settings, channels={"sms": h.sms}, policy=h.policy, clock=h.clock,
                            options=opts, lookup=h.lookup, sleep=sleep)
    report = asyncio.run(dispatcher.run_pass())
    assert report.total("sent") == 3 and report.total("rate_limited") == 2 and report.batches == 3
    assert slept == [1.0, 1.0] and h.clock.now() == AT + timedelta(seconds=2)
    assert [a.sent_at for a in attempts(h.db)] == [AT, AT + timedelta(seconds=1), AT + timedelta(seconds=2)]


@pytest.mark.parametrize(("channel", "lane_delay", "late"), [
    ("sms", 0.6, True), ("email", 0.6, True), ("sms", 0.5, False), ("email", 0.5, False)])
def test_a_message_its_lane_reaches_after_the_tolerance_is_planned_again_not_sent(
        h: Harness, channel: str, lane_delay: float, late: bool) -> None:
    """A grant holds at the provider only if it is used at once: a lane that reaches the
    message more than the tolerance (500 ms) after its tokens were taken does not send it
    (it would arrive together with grants made after it); it is planned again, due now,
    never sent twice and never lost.  SMS are marked sending with the batch, emails by
    their lane: either way the check is the last thing before the provider."""
    add_borrower(h.db, "B1")
    add_loan(h.db, "B1", "L1", [("I1", due_in(3 if channel == "sms" else 0))])
    h.plan()
    h.settings = load_settings(twilio_from_numbers=["+15005550006"], sms_rate_per_number=10.0)
    adapter = h.sms if channel == "sms" else h.email
    dispatcher = h.dispatcher(rate_limits=True)
    assert dispatcher.options.send_tolerance == timedelta(milliseconds=500)
    lanes = dispatcher._send

    async def delayed(ready: Any, report: DispatchReport, *rest: Any) -> None:  # the lanes get to the batch late
        h.clock.advance(timedelta(seconds=lane_delay))
        await lanes(ready, report, *rest)

    dispatcher._send = delayed  # type: ignore[method-assign]
    report = asyncio.run(dispatcher.run_pass())

    [row] = attempts(h.db)
    if not late:  # within the tolerance: sent
        assert report.by_channel() == {channel: {"sent": 1}} and len(adapter.sent) == 1
        assert row.status == "sent"
        return
    assert report.by_channel() == {channel: {"late": 1}}
    assert adapter.calls == 0  # not sent at the late instant
    assert (row.status, row.next_attempt_at, row.claimed_by, row.occurred_at, row.tries, row.last_error) == (
        "planned", AT + timedelta(seconds=lane_delay), None, None, 0, None)
    assert h.run(rate_limits=True).by_channel() == {channel: {"sent": 1}}  # on time: sent, once
    assert adapter.calls == 1 and [a.status for a in attempts(h.db)] == ["sent"]


def test_the_send_tolerance_reduces_the_burst_a_bucket_grants() -> None:
    """burst - rate x tolerance: grants shifted by up to the tolerance still put no more than
    burst + rate x T into any window of T seconds; never below one token."""
    assert Limit.per_second("n", 10.0).granting(0.5) == Limit("n", 10.0, 5.0)
    assert Limit.per_second("a", 100.0).granting(0.5) == Limit("a", 100.0, 50.0)
    assert Limit.per_second("n", 1.0).granting(0.5) == Limit("n", 1.0, 1.0)
    assert Limit.per_second("n", 10.0).granting(0.0) == Limit("n", 10.0, 10.0)
    with pytest.raises(ValueError, match="tolerance cannot be negative"):
        Limit.per_second("n", 10.0).granting(-1)


def test_a_stopping_service_ends_the_pass_after_the_batch_in_flight(h: Harness) -> None:
    """`bot run` stopping (SIGTERM) sets the event: the pass claims no further batch and
    does not wait for rate-limited work; what it had sent is recorded."""
    for n in range(1, 4):
        one_sms_borrower(h, f"B{n}")
    h.plan()
    h.settings = load_settings(twilio_from_numbers=["+15005550006"], sms_rate_per_number=2.0)  # a reminder a second
    stop = threading.Event()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the service is told to stop while the pass waits
        slept.append(seconds)
        stop.set()
        h.clock.advance(timedelta(seconds=seconds))

    opts = DispatchOptions(worker_id="w1", keep_running_for=30.0, max_idle_wait=2.0, stop=stop)
    dispatcher = Dispatcher(h.db, h.settings, channels={"sms": h.sms}, policy=h.policy, clock=h.clock,
                            options=opts, lookup=h.lookup, sleep=sleep)
    report = asyncio.run(dispatcher.run_pass())
    assert report.total("sent") == 1 and report.total("rate_limited") == 2 and slept == [1.0]
    rows = attempts(h.db)
    assert sorted(a.status for a in rows) == ["planned", "planned", "sent"]
    assert all(a.claimed_by is None for a in rows)  # nothing left claimed: the next pass sends the rest

    from bot.dispatch import make_dispatcher

    assert make_dispatcher(h.settings, policy=h.policy, stop=stop)(h.db, h.clock) == 0  # stopped: no pass
    assert len(h.sms.sent) == 1


def test_the_service_dispatcher_checks_the_templates_when_it_is_built(tmp_path: Path, policy: Policy) -> None:
    from bot.dispatch import make_dispatcher
    from bot.messages import TemplateCheckError

    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parent.parent / "templates", templates)
    (templates / "sms/en-US/reminder_upcoming.txt.j2").write_text("{{ lender_name }}: pay now.\n")
    with pytest.raises(TemplateCheckError) as info:
        make_dispatcher(load_settings(templates_dir=templates), policy=policy)
    assert info.value.problems[0].startswith("templates/sms/en-US/reminder_upcoming.txt.j2:1: ")
    assert "opt-out" in info.value.problems[0]


def test_token_bucket_refills_and_spreads_waiting_messages(db: Database) -> None:
    buckets = TokenBuckets()
    per_number = Limit.per_second("n", 2.0, burst_seconds=1)  # 2 per second, burst 2
    account = Limit.per_second("a", 3.0)
    with db.session() as s:
        grants = buckets.take(s, AT, [(per_number, account)] * 5)
    assert grants[:2] == [None, None]
    assert grants[2:] == [AT + timedelta(seconds=0.5), AT + timedelta(seconds=1.0), AT + timedelta(seconds=1.5)]
    with db.session() as s:  # half a second later one token is back
        assert buckets.take(s, AT + timedelta(seconds=0.5), [(per_number,)] * 2) == [
            None, AT + timedelta(seconds=1.0)]
    assert refill(0.0, AT, AT + timedelta(seconds=10), per_number) == 2.0  # never above the burst
    assert refill(1.0, AT, AT - timedelta(seconds=10), per_number) == 1.0  # a clock going back adds nothing
    assert TokenBuckets(enabled=False).take(None, AT, [(per_number,)] * 3) == [None] * 3  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate must be positive"):
        Limit("x", 0, 1)


def test_token_buckets_charge_a_message_by_its_cost(db: Database) -> None:
    """An SMS of three segments takes three tokens: providers rate-limit segments, not messages."""
    buckets = TokenBuckets()
    per_number = Limit.per_second("n", 1.0)  # one segment per second, burst 1
    account = Limit.per_second("a", 10.0)  # burst 10
    with db.session() as s:
        grants = buckets.take(s, AT, [(per_number, account)] * 3, [3, 1, 2])
    # the 3-segment message goes on the full (1-token) bucket and leaves it 2 in debt;
    # the next waits for the debt and its own token, the one after for its 2 more
    assert grants == [None, AT + timedelta(seconds=3), AT + timedelta(seconds=4)]
    with db.session() as s:  # 2.5 s later the debt is not paid back yet
        assert buckets.take(s, AT + timedelta(seconds=2.5), [(per_number,)], [1]) == [AT + timedelta(seconds=3)]
    with db.session() as s:
        assert buckets.take(s, AT + timedelta(seconds=3), [(per_number,)]) == [None]
    with db.session() as s:  # the account bucket was charged 3 (+0 for the messages sent back): 7 left + refill
        assert buckets.take(s, AT + timedelta(seconds=3), [(account,)] * 10, [1] * 10) == [None] * 10
    with pytest.raises(ValueError, match="one cost per request"):
        buckets.take(None, AT, [(per_number,)], [1, 2])  # type: ignore[arg-type]
    with db.session() as s, pytest.raises(ValueError, match="cost must be positive"):
        buckets.take(s, AT, [(per_number,)], [0])


def test_a_take_reads_the_clock_once_the_buckets_are_locked(db: Database) -> None:
    """Given a function, the take reads the instant after locking the buckets (another worker
    may hold them a while): the refill and the grant's instant (``taken_at``) are that one."""
    buckets = TokenBuckets()
    per_number = Limit.per_second("n", 2.0)
    with db.session() as s:
        assert buckets.take(s, AT, [(per_number,)] * 2) == [None, None] and buckets.taken_at == AT
    read: list[datetime] = []

    def clock() -> datetime:
        read.append(AT + timedelta(seconds=0.5 * (len(read) + 1)))  # the lock took half a second
        return read[-1]

    with db.session() as s:  # locked at 0.5 s, read again at 1.0 s: two tokens, not one
        assert buckets.take(s, clock, [(per_number,)] * 3) == [None, None, AT + timedelta(seconds=1.5)]
    assert buckets.taken_at == AT + timedelta(seconds=1.0) and len(read) == 2
    assert TokenBuckets(enabled=False).take(None, clock, [(per_number,)]) == [None]  # type: ignore[arg-type]


# --- leases and workers ----------------------------------------------------------------------------


def test_a_live_lease_is_respected_and_an_expired_one_taken_over(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    # Worker w0 claimed the attempt and died before doing anything with it.
    with h.db.session() as s:
        s.execute(update(ContactAttempt).values(claimed_by="w0", claimed_until=AT + timedelta(minutes=5)))
    assert h.run().claimed == 0 and h.sms.sent == []
    h.clock.set(AT + timedelta(minutes=5, seconds=1))
    assert h.run().by_channel() == {"sms": {"sent": 1}}


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_a_worker_that_lost_its_lease_does_not_send(h: Harness, channel: str) -> None:
    """SMS are marked sending with the batch, email one by one: either way a lease
    another worker took over (this one was too slow) stops the send."""
    add_borrower(h.db, "B1")
    add_loan(h.db, "B1", "L1", [("I1", due_in(3 if channel == "sms" else 0))])
    h.plan()
    dispatcher = h.dispatcher()
    original = dispatcher._prepare

    async def steal(ids: Any, now: datetime, report: DispatchReport, *rest: Any) -> Any:
        if channel == "sms":
            with h.db.session() as s:
                s.execute(update(ContactAttempt).values(claimed_by="w2"))
            return await original(ids, now, report, *rest)
        ready = await original(ids, now, report, *rest)
        with h.db.session() as s:
            s.execute(update(ContactAttempt).values(claimed_by="w2"))
        return ready

    dispatcher._prepare = steal  # type: ignore[method-assign]
    report = asyncio.run(dispatcher.run_pass())
    assert report.by_channel() == {channel: {"lost_lease": 1}} and h.sms.sent == [] and h.email.sent == []
    row = attempts(h.db)[0]
    assert row.status == "planned" and row.claimed_by == "w2"


def test_two_workers_never_send_the_same_attempt(db: Database, settings: Settings, policy: Policy) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED.  SQLite supports one worker, but its single
    writer makes the claim atomic too, so several workers still never share a row."""
    h = Harness(db, settings, policy)
    for n in range(1, 121):
        one_sms_borrower(h, f"B{n}")
    h.plan()
    h.sms.delay = 0.001
    results: list[DispatchReport] = []

    def work(name: str) -> None:
        results.append(asyncio.run(h.dispatcher(worker=name, batch_size=7).run_pass()))

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [m.attempt_id for m in h.sms.sent]
    assert len(ids) == 120 and len(set(ids)) == 120
    assert sum(r.total("sent") for r in results) == 120
    assert sum(1 for r in results if r.total("sent")) >= 2  # the work really was shared
    assert {a.status for a in attempts(db)} == {"sent"}


# --- crash reconciliation ---------------------------------------------------------------------------


def _leave_sending(h: Harness, claimed_by: str = "dead") -> list[int]:
    """Attempts a crashed worker marked sending (with the dispatch facts it stored)."""
    with h.db.session() as s:
        rows = list(s.scalars(select(ContactAttempt)))
        for row in rows:
            row.body_sha256, row.sender = "ab" * 32, "+15005550006"
            row.status, row.occurred_at = "sending", AT
            row.claimed_by, row.claimed_until = claimed_by, AT + timedelta(minutes=5)
        return [r.id for r in rows]


def test_stuck_sms_found_at_the_provider_is_recorded_not_resent(h: Harness) -> None:
    one_sms_borrower(h, "B1")
    one_sms_borrower(h, "B2")
    h.plan()
    found, missing = _leave_sending(h)
    h.lookup.answers[found] = Found("SM" + "f" * 32, AT + timedelta(seconds=1))
    assert h.run().handled == 0  # the lease is still live: nothing is touched
    h.clock.set(AT + timedelta(minutes=6))

    report = h.run()

    assert report.by_channel() == {"sms": {"reconciled": 1, "requeued": 1, "sent": 1}}
    assert [m.attempt_id for m in h.sms.sent] == [missing]  # only the one the provider never had
    row = attempt(h.db, found)
    assert row.status == "sent" and row.provider_id == "SM" + "f" * 32 and row.tries == 1
    assert row.last_error == "reconcile: found at the provider after a crash"
    assert {s.attempt_id for s in h.lookup.asked} == {found, missing}
    stuck = next(s for s in h.lookup.asked if s.attempt_id == found)
    assert (stuck.sender, stuck.body_sha256, stuck.since) == ("+15005550006", "ab" * 32, AT)


def test_a_stuck_sms_a_status_callback_already_named_is_not_looked_up(h: Harness) -> None:
    """The callback URL carries the attempt id, so a fast callback can record the SID
    before the (then crashed) worker did: that is proof enough, and the SID must not
    count as "another attempt's message" in a lookup."""
    one_sms_borrower(h)
    h.plan()
    [stuck] = _leave_sending(h)
    with h.db.session() as s:
        s.execute(update(ContactAttempt).values(provider_id="SM" + "c" * 32, provider_status="delivered",
                                                outcome="delivered"))
    h.clock.set(AT + timedelta(minutes=6))
    assert h.run().by_channel() == {"sms": {"reconciled": 1}}
    row = attempt(h.db, stuck)
    assert (row.status, row.provider_id, row.provider_status, row.outcome) == (
        "sent", "SM" + "c" * 32, "delivered", "delivered")
    assert h.lookup.asked == [] and h.sms.sent == []


def test_stuck_email_becomes_unknown_for_review(h: Harness) -> None:
    add_borrower(h.db, "B1")
    add_loan(h.db, "B1", "L1", [("I1", due_in(0))])
    h.plan()
    [stuck] = _leave_sending(h)
    h.clock.set(AT + timedelta(minutes=6))
    report = h.run()
    assert report.by_channel() == {"email": {"unknown": 1}} and h.email.sent == []
    row = attempt(h.db, stuck)
    assert row.status == "unknown" and "review" in row.last_error and row.claimed_by is None
    h.clock.set(AT + timedelta(days=1))
    assert h.run().handled == 0  # never resent


def test_a_provider_that_cannot_be_asked_is_asked_again_later(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    [stuck] = _leave_sending(h)
    h.lookup.answers[stuck] = CannotTell("lookup_error 20503")
    h.clock.set(AT + timedelta(minutes=6))
    h.run()
    row = attempt(h.db, stuck)
    assert row.status == "sending" and row.claimed_by is None and row.last_error.endswith("will ask again")
    h.lookup.answers[stuck] = Found("SM" + "e" * 32)
    h.clock.set(AT + timedelta(minutes=7))
    assert h.run().by_channel() == {"sms": {"reconciled": 1}}
    assert h.sms.sent == []


def test_a_send_that_ends_in_doubt_is_reconciled_not_retried(h: Harness) -> None:
    one_sms_borrower(h)
    h.plan()
    doubt = TransientDeliveryError("read timeout", code="timeout")
    doubt.outcome_unknown = True  # type: ignore[attr-defined]
    h.sms.script["+12125550001"] = [doubt]
    h.run()
    row = attempts(h.db)[0]
    assert row.status == "sending" and row.claimed_until == AT + timedelta(seconds=30)
    h.lookup.answers[row.id] = Found("SM" + "d" * 32)
    h.clock.set(AT + timedelta(seconds=31))
    assert h.run().by_channel() == {"sms": {"reconciled": 1}}
    assert h.sms.calls == 1


def test_matching_at_the_provider_uses_the_body_hash_and_ignores_known_sids() -> None:
    class M:
        def __init__(self, sid: str, body: str, minutes: int, direction: str = "outbound-api") -> None:
            self.sid, self.body, self.direction = sid, body, direction
            self.date_created = AT + timedelta(minutes=minutes)

    stuck = Stuck(1, "sms", "+12125550001", "+15005550006", body_hash("hello"), AT, frozenset({"SM1"}))
    assert match([M("SM1", "hello", 1)], stuck) == NotFound()  # another attempt's message
    assert match([M("SM2", "hello", -10)], stuck) == NotFound()  # before the attempt
    assert match([M("SM3", "hello", 0, "outbound-reply")], stuck) == NotFound()  # Twilio's own STOP answer
    assert match([M("SM4", "other", 1), M("SM5", "hello", 2)], stuck) == Found("SM5", AT + timedelta(minutes=2))
    assert match([M("SM6", "", 1)], stuck) == Found("SM6", AT + timedelta(minutes=1))  # a redacted body, alone
    assert isinstance(match([M("SM6", "", 1), M("SM7", "", 2)], stuck), CannotTell)


# --- privacy -------------------------------------------------------------------------------------------


def test_logs_hold_no_numbers_addresses_or_text(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    one_sms_borrower(h, "B1")
    add_borrower(h.db, "B2")
    add_loan(h.db, "B2", "LB2", [("IB2", due_in(0))])
    add_borrower(h.db, "B3")
    add_loan(h.db, "B3", "LB3", [("IB3", due_in(3))])
    h.plan()
    h.sms.script["+12125550003"] = [PermanentDeliveryError("Twilio error 21211", code=21211)]
    with caplog.at_level(logging.DEBUG):
        h.run()
    text = caplog.text
    assert "attempt" in text  # something was logged
    for secret in ("+12125550001", "2125550001", "borrower2@example.com", "+12125550003", "Jane", "Reply STOP"):
        assert secret not in text
    for row in attempts(h.db):
        assert "+1212" not in (row.last_error or "") and "@" not in (row.last_error or "")
    with h.db.sessions() as s:
        for event in s.scalars(select(AuditEvent)):
            assert "+1212" not in str(event.detail)


# --- holds ----------------------------------------------------------------------------------


def _hold(h: Harness, borrower_id: str, kind: str = "bankruptcy") -> int:
    from bot.db.models import Hold

    with h.db.session() as s:
        hold = Hold(borrower_id=borrower_id, kind=kind, created_at=AT, created_by="api:test")
        s.add(hold)
        s.flush()
        return hold.id


def _lift(h: Harness, hold_id: int) -> None:
    from bot.db.models import Hold

    with h.db.session() as s:
        s.execute(update(Hold).where(Hold.id == hold_id).values(lifted_at=AT, lifted_by="api:test"))


def test_a_hold_placed_after_planning_stops_the_send(h: Harness) -> None:
    one_sms_borrower(h)
    assert h.plan().by_status["planned"] == 1
    _hold(h, "B1")

    report = h.run()

    assert h.sms.sent == [] and report.by_channel() == {"sms": {"blocked": 1}}
    [row] = attempts(h.db)
    assert row.status == "blocked" and row.decision["reasons"] == ["hold"]


def test_a_held_borrower_is_not_planned_and_is_again_once_the_hold_is_lifted(h: Harness) -> None:
    one_sms_borrower(h)
    hold_id = _hold(h, "B1", "dispute")
    report = h.plan()
    assert report.by_status == {"blocked": 1} and report.by_reason["hold"] == 1
    h.run()
    assert h.sms.sent == []

    _lift(h, hold_id)
    assert h.plan().by_status.get("planned") == 1
    h.run()
    assert len(h.sms.sent) == 1
    [row] = attempts(h.db)
    assert row.status == "sent"
