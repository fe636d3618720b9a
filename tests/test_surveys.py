"""The satisfaction survey (bot.replies.surveys), on SQLite and PostgreSQL.

Messages go through ``process_inbound_sms`` as the webhook calls it and the questions
through the real dispatcher (fake SMS adapter, fixed clock), so the send-time checks
are the ones every message gets.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.channels.events import InboundText
from bot.clock import FixedClock
from bot.config import load_settings
from bot.db import Database
from bot.db.models import AuditEvent, Borrower, ContactAttempt, Hold, InboundMessage, Survey, Task
from bot.dispatch import DispatchOptions, Dispatcher
from bot.domain import TaskKind
from bot.policy import PolicyError, SurveySettings, load_policy
from bot.replies import InboundOptions, process_inbound_sms, record_opt_out
from bot.replies.surveys import ask_by_sms, may_ask, read_score, record_keypad

from dispatch_support import FakeChannel
from test_web_support import OUR_NUMBER, PHONE, add_account, new_sid

# Saturday 28 November 2026, 10:00 in New York (inside contact hours).
AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)  # 21:30 Saturday in New York
NEXT_MORNING = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)  # 08:00 Sunday in New York
SURVEY = SurveySettings(after=frozenset({"promise", "paid", "dispute_resolved"}), channels=("sms",),
                        min_days_between=30, expires_hours=48)


class World:
    """One borrower, the inbound webhook's entry point and a dispatcher on one fixed clock."""

    def __init__(self, db: Database, survey: SurveySettings | None = SURVEY) -> None:
        self.db = db
        self.survey = survey
        self.clock = FixedClock(AT)
        self.sms = FakeChannel("sms")
        self.settings = load_settings(twilio_from_numbers=[OUR_NUMBER], rate_limits_enabled=False)
        with db.session() as session:
            add_account(session, "B1")

    def text(self, body: str):  # noqa: ANN201 - InboundOutcome
        return process_inbound_sms(self.db, InboundText(message_id=new_sid(), sender=PHONE, recipient=OUR_NUMBER,
                                                        body=body, received_at=self.clock.now()),
                                   InboundOptions(survey=self.survey))

    def dispatch(self) -> list[str]:
        """One dispatch pass; the templates of what it sent."""
        before = len(self.sms.sent)
        dispatcher = Dispatcher(self.db, self.settings, channels={"sms": self.sms}, clock=self.clock,
                                options=DispatchOptions(worker_id="w1", rate_limits=False), rng=random.Random(7))
        asyncio.run(dispatcher.run_pass())
        with self.db.session() as session:
            by_id = dict(session.execute(select(ContactAttempt.id, ContactAttempt.template)).all())
        return [by_id[m.attempt_id] for m in self.sms.sent[before:]]

    def later(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))

    def surveys(self) -> list[Survey]:
        with self.db.session() as session:
            return list(session.scalars(select(Survey).order_by(Survey.id)))

    def survey_attempt(self) -> ContactAttempt:
        with self.db.session() as session:
            return session.scalars(select(ContactAttempt).where(ContactAttempt.template == "reply_survey")
                                   .order_by(ContactAttempt.id.desc())).first()

    def tasks(self) -> list[str]:
        with self.db.session() as session:
            return list(session.scalars(select(Task.kind).order_by(Task.id)))

    def skipped(self) -> list[str]:
        with self.db.session() as session:
            return [d["reason"] for d in session.scalars(
                select(AuditEvent.detail).where(AuditEvent.action == "survey.skipped").order_by(AuditEvent.id))]


@pytest.fixture
def w(db: Database) -> World:
    return World(db)


# --- reading a rating ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "score"), [
    ("5", 5), ("1", 1), (" 4 ", 4), ("5!", 5), ("3.", 3), ("(2)", 2), ("５", 5), ("4\n", 4),
    ("0", None), ("6", None), ("10", None), ("55", None), ("five", None), ("4 or 5", None), ("5 tomorrow", None),
    ("on the 5th", None), ("5分", None), ("", None), ("!", None),
])
def test_a_rating_is_a_digit_1_to_5_alone(text: str, score: int | None) -> None:
    assert read_score(text) == score


# --- the SMS survey, end to end ---------------------------------------------------------------------


def test_a_promise_is_confirmed_then_surveyed_and_the_answer_recorded_once(w: World) -> None:
    outcome = w.text("I will pay on Friday")
    assert (outcome.intent, outcome.reply_template) == ("promise_to_pay", "reply_promise")
    [survey] = w.surveys()
    assert outcome.survey_id == survey.id
    assert (survey.trigger, survey.channel, survey.address, survey.score) == ("promise", "sms", PHONE, None)
    assert survey.expires_at == AT + timedelta(hours=48)
    assert w.dispatch() == ["reply_promise", "reply_survey"]  # the confirmation first
    question = w.sms.sent[-1].body
    assert "1 (poor) to 5 (excellent)" in question and question.endswith("Reply STOP to opt out.")

    w.later(minutes=5)
    answer = w.text("5!")
    assert (answer.intent, answer.effects, answer.reply_template) == (
        "survey_response", ["survey_response:5"], "reply_survey_thanks")
    [survey] = w.surveys()
    assert (survey.score, survey.answered_at) == (5, w.clock.now())
    assert w.tasks() == []  # a rating is not a reply to review
    with w.db.session() as session:
        stored = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert (stored.intent, stored.matched) == ("survey_response", "survey:5")
    assert w.dispatch() == ["reply_survey_thanks"]

    w.later(minutes=1)
    again = w.text("4")  # answered already: no longer pending, read as before
    assert again.intent == "other" and w.surveys()[0].score == 5
    assert w.tasks() == [TaskKind.REVIEW.value]


def test_a_digit_without_a_pending_survey_is_read_as_before(db: Database) -> None:
    w = World(db, survey=None)  # the policy has no survey
    w.text("I will pay on Friday")
    assert w.surveys() == []
    w.dispatch()
    outcome = w.text("5")
    assert (outcome.intent, outcome.reply_template) == ("other", "reply_other")
    assert w.tasks() == [TaskKind.REVIEW.value]


def test_a_survey_not_sent_yet_is_not_pending(w: World) -> None:
    w.text("I will pay on Friday")
    outcome = w.text("5")  # before the dispatcher sent the question: not a rating
    assert outcome.intent == "other" and w.surveys()[0].answered_at is None


def test_a_rating_after_the_survey_expired_is_not_a_rating(w: World) -> None:
    w.text("I already paid")
    assert [s.trigger for s in w.surveys()] == ["paid"]
    assert w.dispatch() == ["reply_paid", "reply_survey"]
    w.later(hours=48)  # expires_hours
    outcome = w.text("4")
    assert outcome.intent == "other" and w.surveys()[0].answered_at is None


def test_stop_wins_over_a_pending_survey(w: World) -> None:
    w.text("I will pay on Friday")
    w.dispatch()
    outcome = w.text("STOP")
    assert outcome.intent == "opt_out" and w.surveys()[0].answered_at is None


def test_at_most_one_survey_per_borrower_in_min_days_between(w: World) -> None:
    w.text("I will pay on Friday")
    w.dispatch()
    w.later(days=10)
    outcome = w.text("I will pay on the 15th")
    assert outcome.reply_template == "reply_promise" and outcome.survey_id is None
    assert w.skipped() == ["recent_survey"]
    w.later(days=20, seconds=1)  # more than 30 days after the first was asked
    outcome = w.text("I will pay on Friday")
    assert outcome.survey_id is not None and len(w.surveys()) == 2


def test_an_opted_out_number_gets_no_survey(w: World) -> None:
    with w.db.session() as session:
        record_opt_out(session, "B1", "sms", PHONE, "sms", AT - timedelta(days=1))
        assert ask_by_sms(session, SURVEY, borrower_id="B1", trigger="promise", address=PHONE, at=AT) is None
    assert w.surveys() == [] and w.skipped() == ["opted_out"]
    w.text("I will pay on Friday")  # nothing is answered to an opted-out number, so nothing is surveyed
    assert w.surveys() == [] and w.dispatch() == []


def test_an_opt_out_after_the_survey_was_queued_stops_it_at_sending(w: World) -> None:
    w.text("I will pay on Friday")
    with w.db.session() as session:
        record_opt_out(session, "B1", "sms", PHONE, "carrier_21610", AT)
    assert w.dispatch() == []
    assert w.survey_attempt().status == "blocked"


def test_a_hold_placed_after_the_survey_was_queued_stops_it_at_sending(w: World) -> None:
    w.text("I will pay on Friday")
    with w.db.session() as session:
        session.add(Hold(borrower_id="B1", kind="cease_communication", created_at=AT, created_by="api:key1"))
    assert w.dispatch() == []  # neither the promise's confirmation nor the survey's question
    assert w.survey_attempt().status == "blocked"
    assert "hold" in w.survey_attempt().decision["reasons"]


def test_outside_contact_hours_the_question_waits_for_the_morning(db: Database) -> None:
    w = World(db)
    w.clock = FixedClock(NIGHT)
    w.text("I will pay on Friday")
    assert w.dispatch() == []
    attempt = w.survey_attempt()
    assert attempt.status == "deferred" and attempt.next_attempt_at == NEXT_MORNING
    w.clock = FixedClock(NEXT_MORNING)
    assert w.dispatch() == ["reply_promise", "reply_survey"]


def test_a_question_that_could_not_go_before_expiry_is_cancelled(w: World) -> None:
    w.text("I will pay on Friday")
    w.later(hours=49)
    assert w.dispatch() == ["reply_promise"]  # an answer waits up to 72 h; the question only while open
    with w.db.session() as session:
        by_template = dict(session.execute(select(ContactAttempt.template, ContactAttempt.status)).all())
    assert by_template["reply_survey"] == "cancelled"


def test_the_question_counts_in_the_frequency_caps(db: Database) -> None:
    """Massachusetts: 2 calls and texts per 7 days; the question is one of the bot's own texts,
    not an answer, so two planned texts in the week hold it back."""
    w = World(db)
    with db.session() as session:
        session.get(Borrower, "B1").region = "MA"
        for n in range(2):
            session.add(ContactAttempt(dedupe_key=f"earlier{n}", borrower_id="B1", loan_id="B1-L1", channel="sms",
                                       source="planner", status="sent", outcome="delivered", address=PHONE,
                                       occurred_at=AT - timedelta(days=n + 1), sent_at=AT - timedelta(days=n + 1),
                                       created_at=AT, updated_at=AT))
    w.text("I will pay on Friday")
    assert w.dispatch() == ["reply_promise"]  # an answer is not capped
    assert w.survey_attempt().status in ("deferred", "blocked")


def test_closing_a_dispute_may_be_followed_by_a_survey(w: World) -> None:
    from bot.console import actions

    with w.db.session() as session:
        task = Task(borrower_id="B1", kind="dispute", status="open", source="sms", created_at=AT)
        session.add(task)
        session.flush()
        actions.close_task(session, task.id, "resolved: payment applied", actor="sam", at=AT, survey=SURVEY)
    assert [(s.trigger, s.address) for s in w.surveys()] == [("dispute_resolved", PHONE)]
    assert w.dispatch() == ["reply_survey"]


def test_the_policy_chooses_the_conversations_and_channels(w: World) -> None:
    promise_only = SurveySettings(after=frozenset({"promise"}))
    with w.db.session() as session:
        assert may_ask(session, None, "B1", "paid", "sms", AT) == "disabled"
        assert may_ask(session, promise_only, "B1", "paid", "sms", AT) == "not_after_paid"
        assert may_ask(session, promise_only, "B1", "promise", "voice", AT) == "channel_off"
        assert may_ask(session, promise_only, "B1", "promise", "sms", AT) is None
        with pytest.raises(ValueError, match="unknown survey trigger"):
            may_ask(session, promise_only, "B1", "kept", "sms", AT)


def test_a_keypad_answer_is_stored_answered_and_capped(w: World) -> None:
    keypad = SurveySettings(after=frozenset({"promise"}), channels=("voice",))
    with w.db.session() as session:
        attempt = ContactAttempt(dedupe_key="call1", borrower_id="B1", channel="voice", source="planner",
                                 status="sent", address=PHONE, created_at=AT, updated_at=AT)
        session.add(attempt)
        session.flush()
        assert record_keypad(session, keypad, borrower_id="B1", trigger="promise", attempt_id=attempt.id,
                             score=4, at=AT) is not None
        assert record_keypad(session, keypad, borrower_id="B1", trigger="promise", attempt_id=attempt.id,
                             score=5, at=AT + timedelta(days=1)) is None  # the 30-day cap
    [survey] = w.surveys()
    assert (survey.channel, survey.score, survey.answered_at) == ("voice", 4, AT)


# --- the policy block ------------------------------------------------------------------------------


def _policy(tmp_path: Path, survey: str) -> Path:
    file = tmp_path / "policy.yaml"
    file.write_text("version: 1\nlocales: [en-US]\nsteps:\n  - {day: 1, channel: sms, template: reminder_overdue}\n"
                    + survey, encoding="utf-8")
    return file


def test_the_survey_block_is_read_with_defaults(tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, "survey:\n  after: [promise, dispute_resolved]\n"))
    assert policy.survey == SurveySettings(after=frozenset({"promise", "dispute_resolved"}), channels=("sms",),
                                           min_days_between=30, expires_hours=48)
    off = load_policy(_policy(tmp_path, "survey:\n  enabled: false\n  after: [paid]\n"))
    assert off.survey is None
    assert load_policy().survey is None  # the shipped policy asks nothing


@pytest.mark.parametrize(("block", "message"), [
    ("survey:\n  after: [kept]\n", "policy.yaml:6: survey.after[0]: Input should be 'promise', 'paid' or "
                                   "'dispute_resolved'"),
    ("survey:\n  channels: [email]\n  after: [paid]\n", "policy.yaml:6: survey.channels[0]: Input should be 'sms' or "
                                                         "'voice'"),
    ("survey:\n  after: [paid]\n  min_days_between: 0\n", "policy.yaml:7: survey.min_days_between: Input should be "
                                                          "greater than or equal to 1"),
    ("survey:\n  after: [paid]\n  expires_hours: 200\n", "policy.yaml:7: survey.expires_hours: Input should be "
                                                         "less than or equal to 168"),
    ("survey:\n  after: [paid, paid]\n", "policy.yaml:6: survey.after[1]: 'paid' is listed twice"),
    ("survey:\n  channels: [sms]\n", "policy.yaml:5: survey.after: missing key"),
    ("survey:\n  after: [paid]\n  every: 3\n", "policy.yaml:7: survey.every: unknown key"),
    ("survey:\n  after: []\n", "policy.yaml:6: survey.after: List should have at least 1 item after validation, not 0"),
])
def test_a_bad_survey_block_is_refused_naming_the_line(tmp_path: Path, block: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(_policy(tmp_path, block))
    assert any(problem.endswith(message) for problem in info.value.problems), info.value.problems
