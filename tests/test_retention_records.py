"""Retention of people's records (bot.retention): closed tasks, resolved promises, notes and
answered or expired surveys go after their own periods; open tasks, pending promises and
surveys still waiting never; a note goes with its call or task; a legal hold wins; a dry run
deletes nothing and counts what then goes; the effectiveness report of recent weeks is
unchanged.  SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from builders import add_borrower

from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import CallSession, ContactAttempt, Hold, Note, Promise, Survey, Task
from bot.effectiveness.queries import Window
from bot.effectiveness.report import build_report
from bot.retention import purge

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2000)  # past every default period (1830 days)
MID = NOW - timedelta(days=1000)  # past the surveys' default (730), within the others' (1830)
NEW = NOW - timedelta(days=10)


def seed(db: Database, holds: dict[str, datetime | None]) -> None:
    """B1 and each held borrower (legal hold, lifted at the given time or active) get:

    * tasks: closed long ago; closed lately; open since long ago; opened long ago, closed lately;
    * promises: kept long ago; cancelled long ago without a resolution time; broken lately; pending since long ago;
    * surveys: answered long ago; answered 1000 days ago; answered lately (asked by an old SMS);
      expired unanswered long ago; still waiting;
    * notes (their text starts with the borrower's id): old on the borrower; new on the borrower;
      new on the task closed long ago; old on the open task; new on an old call; new and old on a new call.
    """
    with db.session() as s:
        for bid in ("B1", *holds):
            add_borrower(s, bid, phone=None, email=None, timezone="America/New_York", consent=(), at=OLD)
        for bid, lifted in holds.items():
            s.add(Hold(borrower_id=bid, kind="legal", created_at=OLD, created_by="api:k", lifted_at=lifted))
        for bid in ("B1", *holds):
            tasks = [Task(borrower_id=bid, kind="dispute", status=status, source="sms", created_at=created,
                          closed_at=closed)
                     for status, created, closed in (("closed", OLD, OLD + timedelta(days=1)), ("closed", NEW, NEW),
                                                     ("open", OLD, None), ("closed", OLD, NEW))]
            s.add_all(tasks)
            s.add_all([Promise(borrower_id=bid, promised_date=date(2021, 5, 1), status=status, source="sms",
                               created_at=created, resolved_at=resolved)
                       for status, created, resolved in (("kept", OLD, OLD), ("cancelled", OLD, None),
                                                         ("broken", NEW, NEW), ("pending", OLD, None))])
            calls = []
            for age, at in (("old", OLD), ("new", NEW)):
                attempt = ContactAttempt(dedupe_key=f"{bid}-{age}", borrower_id=bid, channel="sms", source="reply",
                                         status="sent", occurred_at=at, created_at=at, updated_at=at)
                s.add(attempt)
                s.flush()
                call = CallSession(call_sid=f"CA{bid}{age}", borrower_id=bid, locale="en-US", script="reminder",
                                   status="completed", started_at=at, created_at=at, updated_at=at)
                s.add(call)
                calls.append((attempt, call))
            s.flush()
            old_sms = calls[0][0]
            s.add_all([Survey(borrower_id=bid, channel="sms", trigger="paid", attempt_id=attempt_id, asked_at=asked,
                              expires_at=asked + timedelta(days=2), answered_at=answered, score=score)
                       for asked, answered, score, attempt_id in (
                           (OLD, OLD, 5, None), (MID, MID, 4, None), (NEW, NEW, 3, old_sms.id),
                           (OLD, None, None, None), (NOW - timedelta(hours=1), None, None, None))])
            s.add_all([Note(subject_type=kind, subject_id=subject, author="sup", text_redacted=f"{bid} note",
                            created_at=at)
                       for kind, subject, at in (
                           ("borrower", bid, OLD), ("borrower", bid, NEW), ("task", str(tasks[0].id), NEW),
                           ("task", str(tasks[2].id), OLD), ("call", str(calls[0][1].id), NEW),
                           ("call", str(calls[1][1].id), NEW), ("call", str(calls[1][1].id), OLD))])


def kept(db: Database, bid: str) -> dict[str, int]:
    with db.sessions() as s:
        def count(model, *where) -> int:  # type: ignore[no-untyped-def]
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "tasks": count(Task, Task.borrower_id == bid),
            "open tasks": count(Task, Task.borrower_id == bid, Task.status == "open"),
            "promises": count(Promise, Promise.borrower_id == bid),
            "pending promises": count(Promise, Promise.borrower_id == bid, Promise.status == "pending"),
            "surveys": count(Survey, Survey.borrower_id == bid),
            "waiting surveys": count(Survey, Survey.borrower_id == bid, Survey.answered_at.is_(None),
                                     Survey.expires_at > NOW),
            "notes": count(Note, Note.text_redacted == f"{bid} note"),
        }


ALL = {"tasks": 4, "open tasks": 1, "promises": 4, "pending promises": 1, "surveys": 5, "waiting surveys": 1,
       "notes": 7}
#: the closed-lately tasks, the lately broken and the pending promises, the lately answered and the
#: waiting surveys, the new note on the borrower and the one on the new call
LEFT = {"tasks": 3, "open tasks": 1, "promises": 2, "pending promises": 1, "surveys": 2, "waiting surveys": 1,
        "notes": 2}


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return load_settings(media_dir=str(tmp_path))


def orphan_notes(db: Database) -> int:
    with db.sessions() as s:
        calls = select(func.cast(CallSession.id, Note.subject_id.type))
        tasks = select(func.cast(Task.id, Note.subject_id.type))
        return int(s.scalar(select(func.count()).select_from(Note).where(
            ((Note.subject_type == "call") & Note.subject_id.not_in(calls))
            | ((Note.subject_type == "task") & Note.subject_id.not_in(tasks)))) or 0)


def test_each_kind_goes_after_its_period_and_a_legal_hold_wins(db: Database, settings: Settings) -> None:
    seed(db, {"B2": None, "B3": OLD + timedelta(days=1)})
    report = purge(db, settings, NOW, batch_size=2)
    assert kept(db, "B1") == LEFT
    assert kept(db, "B3") == LEFT  # a lifted hold protects nothing
    assert kept(db, "B2") == ALL  # an active one wins over every period
    assert orphan_notes(db) == 0  # notes went with their call and task
    # B1 and B3: 1 task, 2 promises, 3 surveys, 5 notes each (3 by age, 1 with its task, 1 with its call)
    assert {k: report.counts[k] for k in ("tasks", "promises", "surveys", "notes")} == {
        "tasks": 2, "promises": 4, "surveys": 6, "notes": 10}
    with db.sessions() as s:  # the survey asked by a deleted SMS stays, without the reference
        assert s.scalar(select(func.count()).select_from(Survey).where(
            Survey.answered_at == NEW, Survey.attempt_id.is_(None))) == 2
    assert purge(db, settings, NOW).total == 0


def test_open_tasks_pending_promises_and_waiting_surveys_are_never_purged(db: Database, settings: Settings) -> None:
    seed(db, {})
    purge(db, settings, NOW, before=NOW)  # everything older than now, in every category
    assert kept(db, "B1") == {"tasks": 1, "open tasks": 1, "promises": 1, "pending promises": 1, "surveys": 1,
                              "waiting surveys": 1, "notes": 0}


def test_dry_run_counts_and_deletes_nothing(db: Database, settings: Settings) -> None:
    seed(db, {"B2": None})
    dry = purge(db, settings, NOW, dry_run=True)
    assert kept(db, "B1") == ALL and kept(db, "B2") == ALL
    assert {k: dry.counts[k] for k in ("tasks", "promises", "surveys", "notes")} == {
        "tasks": 1, "promises": 2, "surveys": 3, "notes": 5}
    real = purge(db, settings, NOW, batch_size=1)
    assert real.counts == dry.counts  # exactly what the dry run counted


def test_own_periods_and_notes_follow_their_subject(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed(db, {})
    settings = load_settings(media_dir=str(tmp_path), retention_notes_days=0, retention_surveys_days=1830,
                             retention_promises_days=0, retention_tasks_days=1830)
    report = purge(db, settings, NOW)
    assert report.cutoffs["notes"] is None and report.cutoffs["promises"] is None
    # notes kept forever by age, but the ones on the deleted task and call went with them; surveys
    # kept 1830 days: the one answered 1000 days ago stays
    assert kept(db, "B1") == {**LEFT, "promises": 4, "surveys": 3, "notes": 5}
    assert report.counts["notes"] == 2 and orphan_notes(db) == 0


def test_recent_effectiveness_report_is_unchanged(db: Database, settings: Settings) -> None:
    seed(db, {})
    window = Window(start=(NOW - timedelta(days=30)).date(), end=NOW.date(), default_timezone="America/New_York")
    with db.sessions() as s:
        before = build_report(s, window)
    purge(db, settings, NOW)
    with db.sessions() as s:
        after = build_report(s, window)
    assert after == before
    totals = before["totals"]  # what lately happened is in it
    assert (totals["csat"]["n"], totals["promises"], totals["broken"], totals["disputes"]) == (1, 1, 1, 1)


def test_purge_command_prints_each_kind(run_bot, db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(db_url)
    try:
        seed(db, {"B2": None})
    finally:
        db.dispose()
    env = {"BOT_MEDIA_DIR": str(tmp_path)}
    before = (OLD + timedelta(days=3)).date().isoformat()
    dry = run_bot("purge", "--before", before, "--dry-run", db_url=db_url, env=env)
    assert dry.exit_code == 0, dry.output
    # B1's task closed a day after OLD, promises kept and cancelled then, the survey answered and the one
    # expired then; notes: 3 by age, the one on that task and the one on the old call
    for line in ("tasks: 1 would go", "promises: 2 would go", "surveys: 2 would go", "notes: 5 would go",
                 f"surveys: before {before}T00:00:00+00:00"):
        assert line in dry.stdout.splitlines(), dry.stdout
    done = run_bot("purge", "--before", before, db_url=db_url, env=env)
    assert done.exit_code == 0 and "notes: 5 removed" in done.stdout.splitlines(), done.output
    db = Database(db_url)
    try:
        assert kept(db, "B1") == {**ALL, "tasks": 3, "promises": 2, "surveys": 3, "notes": 2}
        assert kept(db, "B2") == ALL
    finally:
        db.dispose()
