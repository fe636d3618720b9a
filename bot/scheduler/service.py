"""``bot run``: the long-running service: the scheduler (APScheduler 3) and the web app.

Why AsyncIOScheduler: the webhooks, the unsubscribe pages and the supervisor
console are served by uvicorn in the same process and event loop
(:class:`WebServer`, run by :func:`serve` as a task beside the scheduler); the
jobs themselves are plain functions, which APScheduler runs in a thread pool of
its own so a planning pass never blocks the loop.

Jobs (each ``coalesce=True``, ``max_instances=1``, a short ``misfire_grace_time``):

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
* ``webhooks`` every ``webhook_interval_seconds`` (default 10 s), with the
  settings: due event deliveries are signed and sent to the lender's endpoints
  (:func:`bot.events.delivery.deliver_due`; docs/events.md).
* ``prune-prompts`` once a day and at start, with the settings: cached prompt
  audio unused for ``prompt_retention_days`` is deleted
  (:func:`bot.voice.media.prune_prompts`).
* ``retention`` once a day and at start, with the settings: what is past its
  retention period goes, except everything about a borrower on a legal hold
  (:func:`bot.retention.purge`; docs/operations.md, "Retention").

Jobs take the injectable :class:`~bot.clock.Clock`, so tests call them with a
FixedClock and inspect the scheduler's jobs instead of waiting.

Shutdown (SIGINT / SIGTERM, or ``stop``): :attr:`PlannerService.stopping` is set,
so a dispatch pass sends no further batch (what is in flight is sent and
recorded); the web server stops accepting connections and finishes the requests
it has (up to ``graceful_timeout``); then the scheduler shuts down, waiting for a
running job to finish.  A second signal cuts the web server's wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvicorn
from apscheduler.executors.base import BaseExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import Clock, SystemClock
from bot.db import Database
from bot.db.retry import retry_pass
from bot.errors import BotError, ConfigError, DatabaseUnavailable
from bot.metrics import HEARTBEAT, timed
from bot.policy import Policy
from bot.scheduler.decide import CheckFn
from bot.scheduler.planner import PlanReport, plan

log = logging.getLogger(__name__)

PLAN_JOB = "plan"
DISPATCH_JOB = "dispatch"
PRUNE_JOB = "prune-prompts"
WEBHOOK_JOB = "webhooks"
RETENTION_JOB = "retention"
PRUNE_INTERVAL = 86_400  # seconds: once a day (and at start)
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
    # Set when the service stops: a running dispatch pass sends no further batch.
    stopping: threading.Event = field(default_factory=threading.Event)
    # A planning pass that lost the database runs again (bot.db.retry.retry_pass); the
    # settings' database_retries and database_retry_pause_seconds when given.
    database_retries: int = 3
    retry_pause: float = 2.0
    # The clock is a simulated instant (bot run --once --at): dispatch keeps its rate
    # buckets in memory, never in the shared rate_buckets table (bot.ratelimit).
    simulated: bool = False

    def __post_init__(self) -> None:
        if self.settings is not None:
            self.database_retries = self.settings.database_retries
            self.retry_pause = self.settings.database_retry_pause_seconds
            from bot.dispatch import make_dispatcher

            self.dispatchers = [*self.dispatchers, make_dispatcher(
                self.settings, policy=self.policy, compliance_config=self.compliance_config, stop=self.stopping,
                **({"simulated": True} if self.simulated else {}))]

    def plan_job(self) -> PlanReport:
        """One planning pass at the clock's now (committed batch by batch), run again from the
        start if the database went away (the planner is idempotent); then
        :class:`~bot.errors.DatabaseUnavailable`."""
        with timed("plan"):
            report = retry_pass(self._plan, what="planning pass", tries=self.database_retries,
                                pause=self.retry_pause)
        HEARTBEAT.beat(self.clock.now())
        return report

    def _plan(self) -> PlanReport:
        at = self.clock.now()
        # Resolve promises first (kept/broken, docs/webhooks.md), in a transaction of its own.
        from bot.replies import check_promises

        with self.db.session() as session:
            check_promises(session, at, default_timezone=self.default_timezone)
        with self.db.sessions() as session:
            report = plan(session, at, policy=self.policy, check=self.check, commit=True,
                          default_timezone=self.default_timezone, limit=0, incremental_pass=True,
                          compliance_config=self.compliance_config)
        log.info("planning pass at %s: %s", at.isoformat(timespec="seconds"), dict(report.by_status))
        return report

    def prune_job(self) -> int:
        """Delete cached prompts past their retention (bot.voice.media.prune_prompts); how many."""
        from bot.voice.media import prune_prompts

        return prune_prompts(self.settings, self.clock.now()).removed

    def retention_job(self) -> int:
        """Delete what is past its retention (bot.retention.purge), in batches; how many rows."""
        from bot.retention import purge

        return purge(self.db, self.settings, self.clock.now()).total

    def webhook_job(self) -> int:
        """Deliver the due event webhooks (bot.events.delivery); how many were delivered."""
        from bot.events.delivery import DeliveryOptions, deliver_due

        report = deliver_due(self.db, self.clock, DeliveryOptions.from_settings(self.settings),
                             stop=self.stopping.is_set)
        return report.counts["delivered"]

    def dispatch_job(self) -> int:
        """Run the registered dispatchers; with none registered, say so and send nothing."""
        if not self.dispatchers:
            log.info("dispatch: no dispatcher is registered yet; nothing is dispatched")
            return 0
        handled = 0
        with timed("dispatch"):
            for dispatcher in list(self.dispatchers):
                handled += dispatcher(self.db, self.clock)
        HEARTBEAT.beat(self.clock.now())
        return handled


def build_scheduler(
    service: PlannerService,
    *,
    plan_interval: int = 300,
    dispatch_interval: int = DEFAULT_DISPATCH_INTERVAL,
    executor: BaseExecutor | None = None,
    event_loop: asyncio.AbstractEventLoop | None = None,
) -> AsyncIOScheduler:
    """The scheduler with its jobs (plan, dispatch; with settings also the daily prompt-cache prune,
    the daily retention purge and the webhook deliveries), not started.

    The plan job's first run is due at once (``next_run_time`` = start), so
    starting after an outage plans immediately, once.  Jobs run in a thread pool
    of five (one per job: ``max_instances=1``), whose shutdown waits for them.
    """
    if plan_interval < 1 or dispatch_interval < 1:
        raise ValueError("job intervals must be at least one second")
    options: dict[str, Any] = {"timezone": "UTC"}
    options["executors"] = {"default": executor if executor is not None else ThreadPoolExecutor(max_workers=5)}
    if event_loop is not None:
        options["event_loop"] = event_loop
    scheduler = AsyncIOScheduler(**options)
    _quiet_outages()
    defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS,
                "replace_existing": True}
    scheduler.add_job(service.plan_job, IntervalTrigger(seconds=plan_interval), id=PLAN_JOB,
                      name="plan contacts", next_run_time=_now_utc(), **defaults)
    scheduler.add_job(service.dispatch_job, IntervalTrigger(seconds=dispatch_interval), id=DISPATCH_JOB,
                      name="dispatch due contacts", **defaults)
    if service.settings is not None:  # the media directory is known: expire the prompt cache
        scheduler.add_job(service.prune_job, IntervalTrigger(seconds=PRUNE_INTERVAL), id=PRUNE_JOB,
                          name="prune prompt cache", next_run_time=_now_utc(), **defaults)
        scheduler.add_job(service.retention_job, IntervalTrigger(seconds=PRUNE_INTERVAL), id=RETENTION_JOB,
                          name="delete what is past its retention", next_run_time=_now_utc(), **defaults)
        scheduler.add_job(service.webhook_job, IntervalTrigger(seconds=service.settings.webhook_interval_seconds),
                          id=WEBHOOK_JOB, name="deliver event webhooks", next_run_time=_now_utc(), **defaults)
    return scheduler


class _OutageLine(logging.Filter):
    """A job that gave up on an unreachable database is logged as one line: APScheduler's
    traceback would repeat the driver's message, which may hold SQL and parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DatabaseUnavailable):
            record.msg, record.args = "%s: %s", (record.getMessage(), exc)
            record.exc_info = record.exc_text = None
        return True


def _quiet_outages() -> None:
    executor_log = logging.getLogger("apscheduler.executors.default")
    if not any(isinstance(f, _OutageLine) for f in executor_log.filters):
        executor_log.addFilter(_OutageLine())


def _now_utc() -> datetime:
    # APScheduler schedules on the real clock; the jobs themselves read service.clock.
    return SystemClock().now()


# --- the web app -----------------------------------------------------------------------


class ServiceError(BotError):
    """The service could not start or stopped on its own (the web server failed)."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), bound before anything
    starts so a taken port is a clear error, not a half-started service."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} (--host/--port, BOT_WEB_HOST/BOT_WEB_PORT): "
                          f"{exc.strerror or type(exc).__name__}") from None
    sock.setblocking(False)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn without signal handlers of its own: :func:`serve` owns SIGINT/SIGTERM
    (uvicorn's would also re-raise the signal once it has stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


class WebServer:
    """The bot's ASGI app served by uvicorn on a socket bound beforehand (:func:`listen_socket`),
    as a task of the service's event loop.

    No access log (request lines carry unsubscribe tokens and query strings); uvicorn's
    own log goes through the root logger, where the redacting filter is.
    """

    def __init__(self, app: Any, sock: socket.socket, *, graceful_timeout: float = 10.0) -> None:
        self.socket = sock
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="auto", ws="none",
                                server_header=False, timeout_graceful_shutdown=int(graceful_timeout) or 1)
        self.server = _Uvicorn(config)

    @property
    def host(self) -> str:
        return str(self.socket.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port`` to reach it from this machine."""
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def run(self) -> None:
        """Serve until :meth:`stop`.  uvicorn ends a failed start with ``sys.exit``: that
        becomes a :class:`ServiceError` here instead of ending the process."""
        try:
            await self.server.serve(sockets=[self.socket])
        except SystemExit as exc:
            raise ServiceError(f"the web server could not start (uvicorn exit status {exc.code})") from None
        lifespan = getattr(self.server, "lifespan", None)
        if self.server.force_exit and lifespan is not None and self.server.started:
            # A forced stop skips the app's shutdown; run it anyway (briefly), so nothing is left pending.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lifespan.shutdown(), 2.0)

    async def started(self, task: asyncio.Task[None], timeout: float = 30.0) -> None:
        """Wait until uvicorn serves (or ``task`` ended: then its error is raised)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.server.started:
            if task.done():
                task.result()
                raise ServiceError("the web server stopped while starting")
            if loop.time() > deadline:
                raise ServiceError("the web server did not start in time")
            await asyncio.sleep(0.01)

    def stop(self, *, force: bool = False) -> None:
        self.server.should_exit = True
        if force:
            self.server.force_exit = True

    def close(self) -> None:
        self.socket.close()


# --- the service -------------------------------------------------------------------------


async def serve(scheduler: AsyncIOScheduler, *, stop: asyncio.Event | None = None,
                signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
                web: WebServer | None = None, stopping: threading.Event | None = None,
                stop_after: float | None = None, on_started: Callable[[], None] | None = None) -> None:
    """Run ``scheduler`` (and ``web``, as a task in this loop) until SIGINT/SIGTERM, ``stop``
    or ``stop_after`` seconds, then shut down gracefully (see the module docstring).

    ``stopping`` (the service's :attr:`PlannerService.stopping`) is set first, so a
    running dispatch pass ends after the batch it is sending.  ``on_started`` is called
    once the web server serves and the scheduler runs.  A web server that stops on its
    own stops the service too, with :class:`ServiceError`.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signalled = 0

    def on_signal() -> None:
        nonlocal signalled
        signalled += 1
        if signalled > 1 and web is not None:  # a second Ctrl-C: do not wait for open connections
            web.stop(force=True)
        stop.set()

    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    web_task: asyncio.Task[None] | None = None
    stop_task = asyncio.create_task(stop.wait(), name="service-stop")
    timer = loop.call_later(stop_after, stop.set) if stop_after is not None else None
    failure: BaseException | None = None
    try:
        if web is not None:
            web_task = asyncio.create_task(web.run(), name="web")
            await web.started(web_task)
        scheduler.start()
        log.info("scheduler started: jobs %s", ", ".join(job.id for job in scheduler.get_jobs()))
        if on_started is not None:
            on_started()
        waiting: set[asyncio.Future[Any]] = {stop_task} | ({web_task} if web_task is not None else set())
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if web_task is not None and web_task.done() and not stop.is_set():
            failure = web_task.exception() or ServiceError("the web server stopped on its own")
    finally:
        if timer is not None:
            timer.cancel()
        log.info("service stopping: web server first, then the scheduler (running jobs finish)")
        if stopping is not None:
            stopping.set()
        if web_task is not None:
            web.stop()  # type: ignore[union-attr]
            try:
                await web_task
            except (Exception, asyncio.CancelledError) as exc:  # reported below, after the scheduler stopped
                failure = failure or exc
        if scheduler.running:
            scheduler.shutdown(wait=True)
            await asyncio.sleep(0)  # let the shutdown scheduled on the loop run
        stop_task.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
        if web is not None:
            web.close()
    if failure is not None:
        raise failure if isinstance(failure, BotError) else ServiceError(
            f"the web server failed ({type(failure).__name__})") from failure
