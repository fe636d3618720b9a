"""``bot run``: the long-running scheduler (APScheduler 3, asyncio).

Why AsyncIOScheduler: the webhooks and the supervisor console will be served by
uvicorn in the same process and event loop; the jobs themselves are plain
functions, which APScheduler runs in its thread pool so a planning pass never
blocks the loop.

Jobs (both ``coalesce=True``, ``max_instances=1``, a short ``misfire_grace_time``):

* ``plan`` every ``plan_interval_seconds`` (default 300 s), first run at start:
  :func:`bot.scheduler.planner.plan` at the clock's "now".  After a stall the
  missed runs collapse into one (coalesce) and a run that is too late is skipped
  for the next one (misfire grace), so there is never a backlog; the planner itself
  only ever plans the current step.
* ``dispatch`` every ``dispatch_interval_seconds``: calls every function in
  :data:`DISPATCHERS`, then, when the service was given the settings (``bot run``
  does), the real dispatcher :func:`bot.dispatch.make_dispatcher` (channels from
  the settings, compliance re-checked at send time; docs/dispatch.md).  With
  neither, the job logs that nothing is dispatched.  No fake sending.

Jobs take the injectable :class:`~bot.clock.Clock`, so tests call them with a
FixedClock and inspect the scheduler's jobs instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock, SystemClock
from bot.db import Database
from bot.policy import Policy
from bot.scheduler.decide import CheckFn
from bot.scheduler.planner import PlanReport, plan

log = logging.getLogger(__name__)

PLAN_JOB = "plan"
DISPATCH_JOB = "dispatch"
DEFAULT_DISPATCH_INTERVAL = 60
MISFIRE_GRACE_SECONDS = 60

#: A dispatcher sends what is due: ``fn(database, clock) -> number of attempts handled``.
Dispatcher = Callable[[Database, Clock], int]

#: Filled by the dispatch issue (``register_dispatcher``); empty means nothing is sent.
DISPATCHERS: list[Dispatcher] = []


def register_dispatcher(fn: Dispatcher) -> Dispatcher:
    """Add a dispatcher to the ``dispatch`` job (usable as a decorator)."""
    if fn not in DISPATCHERS:
        DISPATCHERS.append(fn)
    return fn


@dataclass
class PlannerService:
    """The job functions, bound to a database, a clock and a policy."""

    db: Database
    clock: Clock
    policy: Policy
    default_timezone: str = "America/New_York"
    check: CheckFn | None = None
    compliance_config: Any = None
    dispatchers: list[Dispatcher] = field(default_factory=lambda: DISPATCHERS)
    # With settings, the real dispatcher (bot.dispatch: channels from the settings,
    # re-check at send time) runs in the dispatch job after the registered ones.
    settings: Any = None

    def __post_init__(self) -> None:
        if self.settings is not None:
            from bot.dispatch import make_dispatcher

            self.dispatchers = [*self.dispatchers, make_dispatcher(
                self.settings, policy=self.policy, compliance_config=self.compliance_config)]

    def plan_job(self) -> PlanReport:
        """One planning pass at the clock's now (committed batch by batch)."""
        at = self.clock.now()
        # Resolve promises first (kept/broken, docs/webhooks.md), in a transaction of its own.
        from bot.replies import check_promises

        with self.db.session() as session:
            check_promises(session, at, default_timezone=self.default_timezone)
        with self.db.sessions() as session:
            report = plan(session, at, policy=self.policy, check=self.check, commit=True,
                          default_timezone=self.default_timezone, limit=0,
                          compliance_config=self.compliance_config)
        log.info("planning pass at %s: %s", at.isoformat(timespec="seconds"), dict(report.by_status))
        return report

    def dispatch_job(self) -> int:
        """Run the registered dispatchers; with none registered, say so and send nothing."""
        if not self.dispatchers:
            log.info("dispatch: no dispatcher is registered yet; nothing is dispatched")
            return 0
        handled = 0
        for dispatcher in list(self.dispatchers):
            handled += dispatcher(self.db, self.clock)
        return handled


def build_scheduler(
    service: PlannerService,
    *,
    plan_interval: int = 300,
    dispatch_interval: int = DEFAULT_DISPATCH_INTERVAL,
    executor: BaseExecutor | None = None,
    event_loop: asyncio.AbstractEventLoop | None = None,
) -> AsyncIOScheduler:
    """The scheduler with its two jobs, not started.

    The plan job's first run is due at once (``next_run_time`` = start), so
    starting after an outage plans immediately, once.
    """
    if plan_interval < 1 or dispatch_interval < 1:
        raise ValueError("job intervals must be at least one second")
    options: dict[str, Any] = {"timezone": "UTC"}
    if executor is not None:
        options["executors"] = {"default": executor}
    if event_loop is not None:
        options["event_loop"] = event_loop
    scheduler = AsyncIOScheduler(**options)
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS,
                "replace_existing": True}
    scheduler.add_job(service.plan_job, IntervalTrigger(seconds=plan_interval), id=PLAN_JOB,
                      name="plan contacts", next_run_time=_now_utc(), **defaults)
    scheduler.add_job(service.dispatch_job, IntervalTrigger(seconds=dispatch_interval), id=DISPATCH_JOB,
                      name="dispatch due contacts", **defaults)
    return scheduler


def _now_utc() -> datetime:
    # APScheduler schedules on the real clock; the jobs themselves read service.clock.
    return SystemClock().now()


async def serve(scheduler: AsyncIOScheduler, *, stop: asyncio.Event | None = None,
                signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Run ``scheduler`` until SIGINT/SIGTERM (or ``stop`` is set), then shut down
    gracefully: no new runs start, and a running pass finishes its transaction."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    scheduler.start()
    log.info("scheduler started: jobs %s", ", ".join(job.id for job in scheduler.get_jobs()))
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        log.info("scheduler stopping: waiting for running jobs to finish")
        scheduler.shutdown(wait=True)
        await asyncio.sleep(0)  # let the shutdown scheduled on the loop run
