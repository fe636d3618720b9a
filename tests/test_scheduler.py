"""``bot run``: the job functions (with a FixedClock) and the APScheduler wiring.

Nothing here waits for time to pass: jobs are called directly, the scheduler is
inspected, and the coalesce/misfire behaviour is exercised by back-dating a job's
next run time and letting the scheduler process it once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, date, datetime, timedelta

import pytest
from apscheduler.executors.debug import DebugExecutor
from sqlalchemy import select

from builders import add_borrower, add_loan

from bot.clock import Clock, FixedClock, SystemClock
from bot.db import Database
from bot.db.models import ContactAttempt
from bot.policy import load_policy
from bot.scheduler.planner import PlanReport
from bot.scheduler.service import (
    DISPATCH_JOB,
    MISFIRE_GRACE_SECONDS,
    PLAN_JOB,
    PlannerService,
    build_scheduler,
    serve,
)

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def seed(db: Database, due: date) -> None:
    with db.session() as s:
        add_borrower(s, "B1", phone="+12125551234", email="jane@example.com", timezone="America/New_York", at=AT)
        add_loan(s, "B1", "L1", [("I1", due)], amount=1000, principal=1000, product="p", at=AT)


def steps(db: Database) -> list[tuple[str, str]]:
    with db.sessions() as s:
        return [(r.step, r.status) for r in s.scalars(select(ContactAttempt).order_by(ContactAttempt.id))]


class CountingService(PlannerService):
    """Counts job runs; planning itself is the real thing."""

    plans = 0

    def plan_job(self) -> PlanReport:
        self.plans += 1
        return super().plan_job()


@pytest.fixture
def service(db: Database) -> CountingService:
    return CountingService(db=db, clock=FixedClock(AT), policy=load_policy(), dispatchers=[])


# --- the job functions -----------------------------------------------------------------


def test_plan_job_plans_at_the_clocks_now(db: Database, service: CountingService) -> None:
    seed(db, date(2026, 12, 1))  # D-3 on 11-28
    report = service.plan_job()
    assert report.at == AT and steps(db) == [("main:D-3:sms", "planned")]
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(timedelta(days=3))  # D0
    service.plan_job()
    assert steps(db) == [("main:D-3:sms", "cancelled"), ("main:D0:email", "planned")]


def test_plan_job_twice_in_a_row_is_idempotent(db: Database, service: CountingService) -> None:
    seed(db, date(2026, 11, 27))
    service.plan_job()
    service.plan_job()
    assert steps(db) == [("main:D+1:sms", "planned")]


def test_dispatch_job_without_dispatchers_sends_nothing(service: CountingService, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="bot.scheduler.service"):
        assert service.dispatch_job() == 0
    assert "nothing is dispatched" in caplog.text


def test_dispatch_job_runs_registered_dispatchers_with_the_clock(service: CountingService) -> None:
    seen: list[tuple[Database, Clock]] = []

    def dispatcher(db: Database, clock: Clock) -> int:
        seen.append((db, clock))
        return 2

    service.dispatchers = [dispatcher, dispatcher]
    assert service.dispatch_job() == 4
    assert seen == [(service.db, service.clock)] * 2


# --- the wiring --------------------------------------------------------------------------


def test_scheduler_jobs_and_their_options(service: CountingService) -> None:
    scheduler = build_scheduler(service, plan_interval=120, dispatch_interval=30)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {PLAN_JOB, DISPATCH_JOB}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS
    assert jobs[PLAN_JOB].trigger.interval == timedelta(seconds=120)
    assert jobs[DISPATCH_JOB].trigger.interval == timedelta(seconds=30)
    assert jobs[PLAN_JOB].func == service.plan_job and jobs[DISPATCH_JOB].func == service.dispatch_job
    # the first planning pass is due at start, not one interval later
    start = jobs[PLAN_JOB].next_run_time
    assert start is not None and abs(start - SystemClock().now()) < timedelta(minutes=1)
    assert type(scheduler).__name__ == "AsyncIOScheduler"


def test_with_settings_the_prompt_cache_is_pruned_daily(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    from bot.config import load_settings
    from bot.scheduler.service import PRUNE_JOB, RETENTION_JOB, WEBHOOK_JOB

    settings = load_settings(media_dir=str(tmp_path / "media"), prompt_retention_days=3, webhook_interval_seconds=7)
    service = PlannerService(db=db, clock=FixedClock(AT), policy=load_policy(), settings=settings)
    jobs = {job.id: job for job in build_scheduler(service, plan_interval=120).get_jobs()}
    assert set(jobs) == {PLAN_JOB, DISPATCH_JOB, PRUNE_JOB, RETENTION_JOB, WEBHOOK_JOB}
    assert jobs[WEBHOOK_JOB].trigger.interval == timedelta(seconds=7) and jobs[WEBHOOK_JOB].func == service.webhook_job
    assert jobs[PRUNE_JOB].trigger.interval == timedelta(days=1) and jobs[PRUNE_JOB].func == service.prune_job
    assert jobs[PRUNE_JOB].coalesce is True and jobs[PRUNE_JOB].max_instances == 1
    start = jobs[PRUNE_JOB].next_run_time
    assert start is not None and abs(start - SystemClock().now()) < timedelta(minutes=1)  # also at start
    prompts = tmp_path / "media" / "prompts"
    prompts.mkdir(parents=True)
    for name, age in (("old.wav", timedelta(days=4)), ("new.wav", timedelta(days=2))):
        (prompts / name).write_bytes(b"RIFF")
        os.utime(prompts / name, ((AT - age).timestamp(),) * 2)
    assert service.prune_job() == 1  # on the service's clock
    assert sorted(p.name for p in prompts.iterdir()) == ["new.wav"]


def test_bad_intervals_are_refused(service: CountingService) -> None:
    with pytest.raises(ValueError):
        build_scheduler(service, plan_interval=0)


async def _process_backdated(service: CountingService, back: timedelta) -> None:
    """Start paused, back-date the plan job by ``back``, let the scheduler look once."""
    scheduler = build_scheduler(service, plan_interval=300, executor=DebugExecutor())
    scheduler.start(paused=True)
    try:
        scheduler.get_job(PLAN_JOB).modify(next_run_time=SystemClock().now() - back)
        scheduler.resume()  # schedules one wake-up on the loop
        for _ in range(3):
            await asyncio.sleep(0)  # yield to the loop; no time passes
    finally:
        scheduler.shutdown(wait=True)
        await asyncio.sleep(0)


def test_missed_runs_are_coalesced_into_one(db: Database, service: CountingService) -> None:
    seed(db, date(2026, 11, 27))
    # an hour of stall = 12 missed runs at 300 s; the latest is due now
    asyncio.run(_process_backdated(service, timedelta(seconds=3600)))
    assert service.plans == 1
    assert steps(db) == [("main:D+1:sms", "planned")]


def test_a_run_too_late_is_skipped_not_caught_up(service: CountingService) -> None:
    # the latest missed run is 150 s old, beyond the misfire grace: no run at all now
    asyncio.run(_process_backdated(service, timedelta(seconds=3600 + 150)))
    assert service.plans == 0


def test_serve_stops_gracefully_on_sigterm(db: Database, service: CountingService) -> None:
    seed(db, date(2026, 11, 27))
    scheduler = build_scheduler(service, plan_interval=3600, executor=DebugExecutor())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # the plan job is due at start; once the scheduler has processed it, send SIGTERM
        loop.call_soon(lambda: loop.call_soon(signal.raise_signal, signal.SIGTERM))
        await asyncio.wait_for(serve(scheduler), timeout=30)

    previous = signal.getsignal(signal.SIGTERM)
    asyncio.run(main())
    assert not scheduler.running
    assert service.plans == 1 and steps(db) == [("main:D+1:sms", "planned")]
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is removed again


# --- bot run ------------------------------------------------------------------------------


def test_run_once_plans_and_exits(run_bot, db_url: str) -> None:
    db = Database(db_url)
    try:
        seed(db, date(2026, 11, 27))
    finally:
        db.dispose()
    result = run_bot("run", "--once", "--at", AT.isoformat(), db_url=db_url)
    assert result.exit_code == 0, result.output
    assert "planned at 2026-11-28T15:00:00+00:00" in result.stderr
    db = Database(db_url)
    try:
        assert steps(db) == [("main:D+1:sms", "planned")]
    finally:
        db.dispose()


def test_run_at_without_once_is_a_usage_error(run_bot, db_url: str) -> None:
    result = run_bot("run", "--at", AT.isoformat(), db_url=db_url)
    assert result.exit_code == 2 and "--once" in result.stderr


def test_plan_interval_setting(monkeypatch) -> None:
    from bot.config import load_settings

    assert load_settings().plan_interval_seconds == 300
    monkeypatch.setenv("BOT_PLAN_INTERVAL_SECONDS", "60")
    assert load_settings().plan_interval_seconds == 60
