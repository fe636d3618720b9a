"""Prometheus metrics (docs/operations.md "Monitoring").

Two kinds, exposed together at ``/metrics`` (``prometheus-client`` text format):

* **from the database, at scrape time** (:class:`DatabaseCollector`): the same figure
  whichever worker answers the scrape, since every worker writes one database:
  contact attempts by channel and status, the send queue (attempts due now), open tasks
  by kind, the planner's and dispatcher's heartbeats (the last pass, from the database's
  own rows), and the age of the oldest attempt waiting;
* **in this process** (histograms and counters): planning and dispatch pass durations,
  webhook latency by route, call turn latency, speech recognition time, provider errors
  by channel and code.  A process that serves no HTTP (``bot run --no-web``) keeps its
  own, unscraped: the database figures cover the fleet.

No label ever holds personal data: channels, statuses, route templates (``/twilio/sms``,
never a URL with its query), error codes and task kinds only; a test checks the whole
exposition against the imported names, phones and emails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bot.clock import Clock
from bot.db import Database
from bot.db.models import ContactAttempt, Task
from bot.domain import AttemptStatus

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REGISTRY",
    "DatabaseCollector",
    "HEARTBEAT",
    "Heartbeat",
    "exposition",
    "observe_call_turn",
    "observe_recognition",
    "observe_webhook",
    "provider_error",
    "timed",
]

#: The bot's own registry (not the library's global one: tests build several apps).
REGISTRY = CollectorRegistry(auto_describe=True)

_PASS = Histogram("bot_pass_seconds", "Duration of a planning or dispatch pass", ["job"], registry=REGISTRY,
                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
_WEBHOOK = Histogram("bot_webhook_seconds", "Time to answer a webhook, by route", ["route", "status"],
                     registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
_TURN = Histogram("bot_call_turn_seconds", "From a borrower's answer to the bot's next words (one call turn)",
                  registry=REGISTRY, buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5))
_RECOGNITION = Histogram("bot_speech_recognition_seconds", "Recognising one recorded answer", ["locale"],
                         registry=REGISTRY, buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8))
_PROVIDER_ERRORS = Counter("bot_provider_errors", "Errors a provider answered, by channel and code",
                           ["channel", "code"], registry=REGISTRY)

_WAITING = (AttemptStatus.PLANNED.value, AttemptStatus.DEFERRED.value)


@contextmanager
def timed(job: str) -> Iterator[None]:
    """Time a pass of ``job`` (``plan``, ``dispatch``, ...)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _PASS.labels(job=job).observe(time.perf_counter() - start)


def observe_webhook(route: str, status: int, seconds: float) -> None:
    _WEBHOOK.labels(route=route, status=str(status)).observe(seconds)


def observe_call_turn(seconds: float) -> None:
    _TURN.observe(seconds)


def observe_recognition(locale: str, seconds: float) -> None:
    _RECOGNITION.labels(locale=locale).observe(seconds)


def provider_error(channel: str, code: object) -> None:
    """Count one provider error; ``code`` is the provider's code (a number or a short word), never a message."""
    text = str(code) if code is not None else "none"
    if not text.replace("_", "").replace("-", "").replace(".", "").isalnum() or len(text) > 32:
        text = "other"
    _PROVIDER_ERRORS.labels(channel=channel, code=text).inc()


class DatabaseCollector(Collector):
    """Figures read from the database at each scrape (see the module docstring)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        now = self.clock.now()
        attempts = GaugeMetricFamily("bot_contact_attempts", "Contact attempts by channel and status",
                                     labels=["channel", "status"])
        queue = GaugeMetricFamily("bot_send_queue", "Attempts due to be sent now (planned or deferred, due)",
                                  labels=["channel"])
        oldest = GaugeMetricFamily("bot_send_queue_oldest_seconds", "Age of the oldest attempt due now")
        tasks = GaugeMetricFamily("bot_open_tasks", "Open tasks for people, by kind", labels=["kind"])
        last = GaugeMetricFamily("bot_last_activity_seconds",
                                 "Seconds since the last attempt was written (planned or sent)")
        with self.db.sessions() as session:
            for channel, status, count in session.execute(
                select(ContactAttempt.channel, ContactAttempt.status, func.count())
                .group_by(ContactAttempt.channel, ContactAttempt.status)
            ):
                attempts.add_metric([channel, status], count)
            due = (ContactAttempt.status.in_(_WAITING), ContactAttempt.next_attempt_at <= now)
            for channel, count in session.execute(
                select(ContactAttempt.channel, func.count()).where(*due).group_by(ContactAttempt.channel)
            ):
                queue.add_metric([channel], count)
            first: datetime | None = session.scalar(select(func.min(ContactAttempt.next_attempt_at)).where(*due))
            oldest.add_metric([], max((now - first).total_seconds(), 0.0) if first else 0.0)
            for kind, count in session.execute(
                select(Task.kind, func.count()).where(Task.status == "open").group_by(Task.kind)
            ):
                tasks.add_metric([kind], count)
            touched: datetime | None = session.scalar(select(func.max(ContactAttempt.updated_at)))
            if touched is not None:
                last.add_metric([], max((now - touched).total_seconds(), 0.0))
        yield from (attempts, queue, oldest, tasks, last)


def exposition(db: Database, clock: Clock) -> bytes:
    """The text exposition: this process's metrics and the database's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(db, clock))
    return generate_latest(REGISTRY) + generate_latest(registry)


class Heartbeat:
    """The scheduler's pulse in this process, for ``/readyz``.

    ``bot run`` calls :meth:`expect` with its planning interval when it starts the
    scheduler; each planning and dispatch pass calls :meth:`beat`.  A process without
    a scheduler (web only) never expects one, so it is never stale.
    """

    def __init__(self) -> None:
        self.interval: float | None = None
        self.last: datetime | None = None
        self.started: datetime | None = None

    def expect(self, interval_seconds: float, now: datetime) -> None:
        self.interval, self.started = float(interval_seconds), now

    def beat(self, now: datetime) -> None:
        self.last = now

    def stale(self, now: datetime) -> bool:
        """No pass for three intervals (plus a minute's grace) while one is expected."""
        if self.interval is None or self.started is None:
            return False
        since = self.last or self.started
        return (now - since).total_seconds() > 3 * self.interval + 60

    def to_json(self, now: datetime) -> dict[str, Any]:
        if self.interval is None:
            return {"scheduler": "not in this process"}
        return {"scheduler": "stale" if self.stale(now) else "ok",
                "last_pass": self.last.isoformat() if self.last else None}


#: This process's scheduler heartbeat.
HEARTBEAT = Heartbeat()
