"""The planner (``bot plan``) and the explainer (``bot why``) on SQLite and PostgreSQL.

Most tests run the real compliance engine (``bot.compliance.check``); a small
fake checker is used where the test is about the planner's own logic (what it
passes to the check, grouping, conditions).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

import builders
from builders import add_loan

from bot.compliance.types import Decision, RuleResult
from bot.db import Database
from bot.db.models import Borrower, ContactAttempt, Consent, Promise, Task
from bot.policy import Policy, load_policy
from bot.scheduler.planner import PlanReport, plan

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 10:00 in New York, Saturday
TODAY = date(2026, 11, 28)
PHONE = "+12125551234"
EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


# --- data ------------------------------------------------------------------------------


#: Borrowers here have one phone and one e-mail address unless a test gives others.
add_borrower = functools.partial(builders.add_borrower, phone=PHONE, email=EMAIL)


def due(offset: int, today: date = TODAY) -> date:
    """The due date that is ``offset`` days ago (D+offset) on ``today``."""
    return today - timedelta(days=offset)


def run_plan(db: Database, at: datetime, policy: Policy, **kwargs: Any) -> PlanReport:
    with db.sessions() as s:
        return plan(s, at, policy=policy, **kwargs)


def attempts(db: Database) -> list[ContactAttempt]:
    with db.sessions() as s:
        return list(s.scalars(select(ContactAttempt).order_by(ContactAttempt.dedupe_key)))


def tasks(db: Database) -> list[Task]:
    with db.sessions() as s:
        return list(s.scalars(select(Task).order_by(Task.id)))


@dataclass
class FakeCheck:
    """Allows everything except opted-out channels; records what it was asked."""

    calls: list[tuple[str, str, str | None, bool]] = field(default_factory=list)

    def __call__(self, subject, channel, at, history, state, *, loan_id=None, **_options) -> Decision:
        self.calls.append((subject.borrower_id, str(channel), loan_id, state.paid))
        if channel in state.opted_out:
            return Decision(False, ("opted_out",), None, "fake", ("UTC",),
                            (RuleResult("fake.opt_out", False, "opted_out"),))
        return Decision(True, (), at, "fake", ("UTC",), (RuleResult("fake.opt_out", True),))


# --- which step ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-4, None),
        (-3, ("main:D-3:sms", "reminder_upcoming")),
        (0, ("main:D0:email", "reminder_due")),
        (2, ("main:D+1:sms", "reminder_overdue")),
        (5, ("main:D+3:voice", "first_stage")),
        (16, "handoff"),
        (40, None),
    ],
)
def test_each_day_picks_the_current_step(db: Database, policy: Policy, offset: int, expected: Any) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(offset))])
    report = run_plan(db, AT, policy)
    rows = attempts(db)
    if expected is None:
        assert rows == [] and tasks(db) == []
    elif expected == "handoff":
        assert rows == []
        [task] = tasks(db)
        assert (task.kind, task.status, task.dedupe_key, task.loan_id, task.source) == (
            "handoff", "open", "handoff:L1", "L1", "policy")
        assert report.tasks_created == 1 and report.by_status["handoff"] == 1
    else:
        [row] = rows
        step, template = expected
        day, channel = step.split(":")[1:]
        assert (row.step, row.template, row.channel, row.status, row.source) == (
            step, template, channel, "planned", "planner")
        assert row.dedupe_key == f"plan:I1:main:{int(day[1:] or 0)}:{channel}"
        assert row.next_attempt_at == AT
        assert row.address == (EMAIL if channel == "email" else PHONE)
        assert row.decision["allowed"] is True and row.decision["results"]
        assert row.decision["planner"]["step"] == step and row.decision["planner"]["offset"] == offset


def test_the_next_day_keeps_the_same_step_without_a_duplicate(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(-3))])
    run_plan(db, AT, policy)
    [first] = attempts(db)
    run_plan(db, AT + timedelta(days=1), policy)  # D-2: the D-3 step is still current
    [again] = attempts(db)
    assert again.id == first.id and again.dedupe_key == first.dedupe_key == "plan:I1:main:-3:sms"
    assert again.decision["planner"]["offset"] == -2


def test_the_borrowers_local_date_counts_not_utc(db: Database, policy: Policy) -> None:
    """03:00Z on 11-28 is still 11-27 (22:00) in New York but 11:00 on 11-28 in Shanghai."""
    at = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    add_borrower(db, "NY", timezone="America/New_York")
    add_loan(db, "NY", "LNY", [("INY", date(2026, 11, 27))])
    add_borrower(db, "SH", timezone="Asia/Shanghai", country="CN", region=None, phone="+8613812341234",
                 locale="zh-CN")
    add_loan(db, "SH", "LSH", [("ISH", date(2026, 11, 27))], currency="CNY")
    run_plan(db, at, policy)
    rows = {r.borrower_id: r for r in attempts(db)}
    assert rows["NY"].step == "main:D0:email"  # D0 locally, although the UTC date says D+1
    assert rows["NY"].decision["planner"]["local_date"] == "2026-11-27"
    # 22:00 in New York is outside 08:00-21:00: deferred to 08:00 local = 13:00Z
    assert rows["NY"].status == "deferred"
    assert rows["NY"].next_attempt_at == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    assert rows["NY"].decision["next_allowed_at"] == "2026-11-28T13:00:00+00:00"
    assert rows["SH"].step == "main:D+1:sms" and rows["SH"].status == "planned"
    assert rows["SH"].decision["planner"]["locale"] == "zh-CN"


# --- idempotency and what re-planning may touch -------------------------------------------


def test_planning_twice_changes_nothing(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(-3)), ("I2", due(16))])
    add_borrower(db, "B2", phone="+13125550000", email="b2@example.com", region="IL")
    add_loan(db, "B2", "L2", [("I3", due(0))])
    first = run_plan(db, AT, policy)
    before = [(r.id, r.dedupe_key, r.status, r.next_attempt_at) for r in attempts(db)]
    second = run_plan(db, AT, policy)
    after = [(r.id, r.dedupe_key, r.status, r.next_attempt_at) for r in attempts(db)]
    assert before == after and len(after) == 2
    assert len(tasks(db)) == 1 and first.tasks_created == 1 and second.tasks_created == 0
    assert first.by_status == second.by_status


def test_rows_past_planning_are_never_touched(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(1))])
    run_plan(db, AT, policy)
    with db.session() as s:
        s.execute(update(ContactAttempt).values(status="sent", occurred_at=AT, decision={"sent": True},
                                                updated_at=AT - timedelta(hours=1)))
        # the borrower opts out afterwards: re-planning must not rewrite the sent row
        s.execute(update(Consent).where(Consent.channel == "sms").values(opted_out_at=AT))
    report = run_plan(db, AT + timedelta(hours=2), policy)
    [row] = attempts(db)
    assert (row.status, row.decision, row.updated_at) == ("sent", {"sent": True}, AT - timedelta(hours=1))
    assert report.by_status == {"unchanged": 1}


@pytest.mark.parametrize("status", ["sending", "done", "failed", "cancelled"])
def test_other_final_statuses_are_left_alone(db: Database, policy: Policy, status: str) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(1))])
    run_plan(db, AT, policy)
    with db.session() as s:
        s.execute(update(ContactAttempt).values(status=status, next_attempt_at=None))
    run_plan(db, AT, policy)
    [row] = attempts(db)
    assert row.status == status and row.next_attempt_at is None


def test_replanning_updates_planned_rows_when_the_decision_changes(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(1))])
    run_plan(db, AT, policy)
    assert attempts(db)[0].status == "planned"
    with db.session() as s:
        s.execute(update(Consent).where(Consent.channel == "sms").values(opted_out_at=AT))
    run_plan(db, AT + timedelta(minutes=5), policy)
    [row] = attempts(db)
    assert row.status == "blocked" and row.next_attempt_at is None and "opted_out" in row.decision["reasons"]


def test_deferred_rows_carry_next_allowed_at(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(-3, date(2026, 11, 27)))])
    night = datetime(2026, 11, 28, 3, 30, tzinfo=UTC)  # 22:30 in New York
    report = run_plan(db, night, policy)
    [row] = attempts(db)
    assert row.status == "deferred"
    assert row.next_attempt_at == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    assert row.decision["reasons"] and row.decision["allowed"] is False
    blocking = [r for r in row.decision["results"] if not r["allowed"]]
    assert blocking and all("reason" in r for r in blocking)
    [item] = report.items
    assert item.status == "deferred" and item.next_allowed_at == row.next_attempt_at


def test_stop_conditions_are_recorded_with_their_reasons(db: Database, policy: Policy) -> None:
    add_borrower(db, "OPT", opted_out=("sms",))
    add_loan(db, "OPT", "L-OPT", [("I-OPT", due(1))])
    add_borrower(db, "DSP")
    add_loan(db, "DSP", "L-DSP", [("I-DSP", due(1))])
    add_borrower(db, "PRM")
    add_loan(db, "PRM", "L-PRM", [("I-PRM", due(1))])
    with db.session() as s:
        s.add(Task(borrower_id="DSP", loan_id="L-DSP", kind="dispute", status="open", source="sms", created_at=AT))
        s.add(Promise(borrower_id="PRM", loan_id="L-PRM", promised_date=date(2026, 12, 3), amount_minor=10_000,
                      status="pending", source="sms", created_at=AT))
    report = run_plan(db, AT, policy)
    rows = {r.borrower_id: r for r in attempts(db)}
    assert rows["OPT"].status == "blocked" and "opted_out" in rows["OPT"].decision["reasons"]
    assert rows["DSP"].status == "blocked" and "dispute_open" in rows["DSP"].decision["reasons"]
    assert rows["OPT"].next_attempt_at is None and rows["DSP"].next_attempt_at is None
    # a promise pauses contact until the day after the promised date: time-bound, so deferred
    assert "promise_pending" in rows["PRM"].decision["reasons"]
    assert rows["PRM"].status == "deferred"
    assert rows["PRM"].next_attempt_at >= datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    assert report.by_reason["opted_out"] == 1 and report.by_reason["dispute_open"] == 1
    assert report.by_status == {"blocked": 2, "deferred": 1}


def test_paid_installments_are_not_selected(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(1))], amount=10_000, paid=10_000)
    add_loan(db, "B1", "L2", [("I2", due(1))], amount=10_000, paid=9_999)
    report = run_plan(db, AT, policy)
    assert report.selected == 1
    assert [r.installment_id for r in attempts(db)] == ["I2"]


def test_after_an_outage_only_the_current_step_is_planned(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(-3))])
    run_plan(db, AT, policy)  # D-3: sms planned, then the bot is down for eight days
    report = run_plan(db, AT + timedelta(days=8), policy)  # D+5
    rows = {r.step: r for r in attempts(db)}
    assert set(rows) == {"main:D-3:sms", "main:D+3:voice"}  # no D0 email, no D+1 sms backlog
    assert rows["main:D+3:voice"].status == "planned"
    assert rows["main:D-3:sms"].status == "cancelled"  # superseded: it must not go out late
    assert report.superseded == 1


# --- grouping, batches, arms, conditions ----------------------------------------------------


def test_one_contact_per_borrower_and_channel(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I-A", due(1))])
    add_loan(db, "B1", "L2", [("I-B", due(2))])  # same step (D+1 sms), older
    fake = FakeCheck()
    report = run_plan(db, AT, policy, check=fake)
    [row] = attempts(db)
    assert row.installment_id == "I-B" and row.decision["covers"] == ["I-A"]
    assert fake.calls == [("B1", "sms", "L2", False)]
    assert report.attached == 1 and report.by_reason["attached"] == 1


def test_batches_never_split_a_borrower(db: Database, policy: Policy) -> None:
    for n in range(4):
        add_borrower(db, f"B{n}", phone=f"+1212555000{n}", email=f"b{n}@example.com")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}-{k}", due(1 + min(k, 1))) for k in range(3)])
    report = run_plan(db, AT, policy, batch_size=2, check=FakeCheck())
    assert report.batches == 4 and report.selected == 12
    assert sorted(r.borrower_id for r in attempts(db)) == ["B0", "B1", "B2", "B3"]


def test_experiment_arm_is_recorded(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "ab.yaml"
    path.write_text(
        "version: 1\nexperiment:\n  name: ab1\n  split: 50\n  start: 2026-01-01\n  end: 2026-12-31\n"
        "  a:\n    steps:\n      - {day: 1, channel: sms, template: reminder_overdue}\n"
        "  b:\n    steps:\n      - {day: 1, channel: email, template: reminder_overdue}\n",
        encoding="utf-8",
    )
    ab = load_policy(path)
    for n in range(12):
        add_borrower(db, f"B{n}", phone=f"+1212555001{n % 10}", email=f"b{n}@example.com")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due(1))])
    run_plan(db, AT, ab, check=FakeCheck())
    for row in attempts(db):
        arm = ab.arm_for(row.borrower_id)
        assert row.step == f"{arm}:D+1:{'sms' if arm == 'A' else 'email'}"
        assert row.dedupe_key == f"plan:{row.installment_id}:{arm}:1:{row.channel}"
        assert row.decision["planner"]["arm"] == arm and row.decision["planner"]["experiment"] == "ab1"
    assert {r.step.split(":")[0] for r in attempts(db)} == {"A", "B"}


def test_step_conditions(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nsteps:\n"
        "  - day: 1\n    channel: sms\n    template: reminder_overdue\n"
        "    when: {min_outstanding_minor: 5000, locales: [en-US], no_conversation_within_days: 3}\n",
        encoding="utf-8",
    )
    p = load_policy(path)
    add_borrower(db, "OK")
    add_loan(db, "OK", "L-OK", [("I-OK", due(1))], amount=5000)
    add_borrower(db, "SMALL")
    add_loan(db, "SMALL", "L-SMALL", [("I-SMALL", due(1))], amount=4999)
    add_borrower(db, "ZH", locale="zh-CN")
    add_loan(db, "ZH", "L-ZH", [("I-ZH", due(1))])
    add_borrower(db, "TALKED")
    add_loan(db, "TALKED", "L-TALKED", [("I-TALKED", due(1))])
    with db.session() as s:
        s.add(ContactAttempt(dedupe_key="import:x", borrower_id="TALKED", loan_id="L-TALKED", channel="voice",
                             source="import", status="done", outcome="conversation",
                             occurred_at=AT - timedelta(days=2), created_at=AT, updated_at=AT))
    report = run_plan(db, AT, p, check=FakeCheck())
    assert [r.borrower_id for r in attempts(db) if r.source == "planner"] == ["OK"]
    assert report.by_reason["condition_min_outstanding"] == 1
    assert report.by_reason["condition_locale"] == 1
    assert report.by_reason["condition_recent_conversation"] == 1


def test_a_closed_handoff_stays_closed(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(16)), ("I2", due(17))])
    run_plan(db, AT, policy)
    [task] = tasks(db)
    with db.session() as s:
        s.execute(update(Task).values(status="closed", closed_at=AT))
    report = run_plan(db, AT + timedelta(days=1), policy)
    [task] = tasks(db)
    assert task.status == "closed" and report.tasks_created == 0


def test_other_writers_can_commit_between_batches(db: Database, policy: Policy) -> None:
    """Each batch is committed: a webhook's opt-out need not wait for the whole pass."""
    import sqlite3

    for n in range(3):
        add_borrower(db, f"B{n}", phone=f"+1212555005{n}", email=f"b{n}@example.com")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due(1))])
    writes: list[int] = []

    def write_elsewhere(size: int) -> None:
        if db.dialect == "sqlite":  # a second writer that gives up after 0.1 s
            conn = sqlite3.connect(db.engine.url.database, timeout=0.1)
            with conn:
                conn.execute("UPDATE borrowers SET locale = 'en-US' WHERE id = 'B0'")
            conn.close()
        else:
            with db.engine.begin() as conn:
                conn.execute(update(Borrower).where(Borrower.id == "B0").values(locale="en-US"))
        writes.append(size)

    report = run_plan(db, AT, policy, batch_size=1, check=FakeCheck(), on_batch=write_elsewhere)
    assert writes == [1, 1, 1] and report.batches == 3
    assert len(attempts(db)) == 3


def test_dry_run_records_nothing(db: Database, policy: Policy) -> None:
    add_borrower(db)
    add_loan(db, "B1", "L1", [("I1", due(1)), ("I2", due(16))])
    with db.sessions() as s:
        report = plan(s, AT, policy=policy, commit=False)
        s.rollback()
    assert report.contacts == 1 and report.dry_run
    assert attempts(db) == [] and tasks(db) == []


def test_report_items_are_limited_but_counts_complete(db: Database, policy: Policy) -> None:
    for n in range(7):
        add_borrower(db, f"B{n}", phone=f"+1212555002{n}", email=f"b{n}@example.com")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due(1))])
    report = run_plan(db, AT, policy, limit=3, check=FakeCheck())
    assert len(report.items) == 3 and report.by_status["planned"] == 7
    data = report.to_json()
    assert data["contacts"] == 7 and len(data["items"]) == 3 and data["items_limit"] == 3


# --- set-based ----------------------------------------------------------------------------------


def _count_statements(db: Database, at: datetime, policy: Policy) -> tuple[int, PlanReport]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        report = run_plan(db, at, policy, batch_size=1000, check=FakeCheck())
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(statements), report


def test_statements_per_batch_do_not_grow_with_installments(db: Database, policy: Policy) -> None:
    later = AT + timedelta(days=90)
    for n in range(3):
        add_borrower(db, f"S{n}", phone=f"+1212555003{n}", email=f"s{n}@example.com")
        add_loan(db, f"S{n}", f"LS{n}", [(f"IS{n}", due(1)), (f"IS{n}b", due(16))])
    with db.session() as s:  # 60 borrowers due 90 days later, in one transaction
        for n in range(60):
            builders.add_borrower(s, f"M{n:02d}", name="X Y", phone=f"+1312555{n:04d}", email=None, region="IL",
                                  consent=())
            add_loan(s, f"M{n:02d}", f"LM{n:02d}", [(f"IM{n:02d}", due(1, later.date()), 100),
                                                     (f"IM{n:02d}b", due(16, later.date()), 100)],
                     principal=1, product="p", opened_on=TODAY)
    small, small_report = _count_statements(db, AT, policy)
    large, large_report = _count_statements(db, later, policy)
    assert small_report.selected == 6 and large_report.selected == 120
    assert small_report.batches == large_report.batches == 1
    assert large == small
    # selection + a handful of context queries + upsert + tasks + cancel + zones, and once per pass
    # the watermark and its state (bot.scheduler.incremental)
    assert small <= 18


# --- bot plan / bot why ----------------------------------------------------------------------


@pytest.fixture
def seeded(db_url: str) -> str:
    db = Database(db_url)
    try:
        add_borrower(db)
        add_loan(db, "B1", "L1", [("I1", due(1)), ("I2", due(16))])
        add_borrower(db, "B2", name="王小明", phone="+8613812345678", email="wang@example.cn", locale="zh-CN",
                     timezone="Asia/Shanghai", region=None, country="CN")
        add_loan(db, "B2", "L2", [("I3", due(-3))], currency="CNY")
    finally:
        db.dispose()
    return db_url


def test_plan_command_json(run_bot, seeded: str) -> None:
    result = run_bot("plan", "--at", AT.isoformat(), "--json", db_url=seeded)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["selected_installments"] == 3 and data["contacts"] == 2
    assert data["by_status"]["handoff"] == 1
    steps = {item["installment_id"]: item["step"] for item in data["items"]}
    assert steps == {"I1": "main:D+1:sms", "I2": "main:D+15:human", "I3": "main:D-3:sms"}
    db = Database(seeded)
    try:
        assert len(attempts(db)) == 2
    finally:
        db.dispose()


def test_plan_command_dry_run_and_limit(run_bot, seeded: str) -> None:
    result = run_bot("plan", "--at", AT.isoformat(), "--json", "--dry-run", "--limit", "1", db_url=seeded)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and len(data["items"]) == 1 and data["contacts"] == 2
    db = Database(seeded)
    try:
        assert attempts(db) == [] and tasks(db) == []
    finally:
        db.dispose()


def test_plan_command_table_output(run_bot, seeded: str) -> None:
    result = run_bot("plan", "--at", AT.isoformat(), db_url=seeded)
    assert result.exit_code == 0, result.output
    assert "3 installments selected, 2 contacts" in result.stdout
    assert "main:D+1:sms" in result.stdout


def test_plan_command_with_a_bad_policy_exits_2(run_bot, seeded: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsteps:\n  - {day: 1, channel: fax, template: x}\n", encoding="utf-8")
    result = run_bot("plan", "--policy", str(bad), db_url=seeded)
    assert result.exit_code == 2
    assert f"{bad}:3" in result.stderr and "unknown channel" in result.stderr


RAW = ("+12125551234", "2125551234", "jane.doe@example.com", "Jane", "+8613812345678", "13812345678",
       "wang@example.cn", "王小明")


def test_why_explains_step_by_step_and_masks(run_bot, seeded: str) -> None:
    result = run_bot("why", "B1", "--at", AT.isoformat(), db_url=seeded)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for raw in RAW:
        assert raw not in result.output
    assert "+1 ***-***-1234" in out and "J*** D***" in out
    assert "local date 2026-11-28 in America/New_York: day D+1" in out
    assert "current step: main:D+1:sms" in out
    assert "us.hours: allows" in out
    assert "planner: plan the sms contact now" in out
    assert "hand-off task" in out


def test_why_json_for_a_deferred_contact(run_bot, seeded: str) -> None:
    night = "2026-11-28T15:30:00Z"  # 23:30 in Shanghai
    result = run_bot("why", "B2", "--at", night, "--json", db_url=seeded)
    assert result.exit_code == 0, result.output
    for raw in RAW:
        assert raw not in result.stdout
    data = json.loads(result.stdout)
    assert data["borrower"]["phone"] == "+86 138****5678" and data["borrower"]["name"] == "王**"
    [item] = data["installments"]
    assert item["local_date"] == "2026-11-28" and item["offset"] == -3 and item["step"] == "main:D-3:sms"
    compliance = item["compliance"]
    assert compliance["allowed"] is False and compliance["reasons"]
    assert compliance["next_allowed_at_local"].startswith("2026-11-29T08:00:00+08:00")
    assert any(not rule["allowed"] for rule in compliance["rules"])
    assert item["action"].startswith("defer the sms contact until 2026-11-29T08:00:00+08:00")


def test_why_reports_recorded_rows(run_bot, seeded: str) -> None:
    assert run_bot("plan", "--at", AT.isoformat(), db_url=seeded).exit_code == 0
    data = json.loads(run_bot("why", "B1", "--at", AT.isoformat(), "--json", db_url=seeded).stdout)
    recorded = {item["installment_id"]: item["recorded"] for item in data["installments"]}
    assert recorded["I1"]["status"] == "planned" and recorded["I2"] == {"status": "open"}


def test_why_unknown_borrower_exits_2(run_bot, seeded: str) -> None:
    result = run_bot("why", "NOPE", db_url=seeded)
    assert result.exit_code == 2 and "NOPE" in result.stderr


def test_why_with_nothing_outstanding(run_bot, db_url: str) -> None:
    db = Database(db_url)
    try:
        add_borrower(db)
    finally:
        db.dispose()
    result = run_bot("why", "B1", "--at", AT.isoformat(), db_url=db_url)
    assert result.exit_code == 0 and "no outstanding installments" in result.stdout


def test_counts_match_the_database(db: Database, policy: Policy) -> None:
    for n in range(5):
        add_borrower(db, f"B{n}", phone=f"+1212555004{n}", email=f"b{n}@example.com",
                     opted_out=("sms",) if n == 0 else ())
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due(n - 3))])
    report = run_plan(db, AT, policy)
    with db.sessions() as s:
        by_status = dict(s.execute(select(ContactAttempt.status, func.count()).group_by(ContactAttempt.status)).all())
    assert by_status == {k: v for k, v in report.by_status.items() if k != "handoff"}
