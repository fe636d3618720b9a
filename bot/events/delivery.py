"""Delivering events: claim with a lease, sign (Standard Webhooks), POST, record.

A pass (:func:`deliver_due`) repeats until nothing is due:

1. **claim** up to ``batch_size`` due deliveries in one short transaction:
   ``pending``, ``next_attempt_at`` reached, no live lease, and no earlier
   event's delivery pending for the same subscription and borrower (so a
   borrower's events arrive in order).  On PostgreSQL the select is ``FOR UPDATE
   SKIP LOCKED``: several workers claim at once without sharing a row;
2. **send** each one: ``POST`` the JSON body with the headers ``webhook-id``
   (the event's id, the same on every retry and replay), ``webhook-timestamp``
   and ``webhook-signature`` (``v1,`` HMAC-SHA256 of ``id.timestamp.body`` with
   the subscription's secret, by the ``standardwebhooks`` package), through
   httpx with a timeout and without following redirects;
3. **record** the result in a transaction of its own, guarded by the lease: a
   2xx is ``delivered``; anything else is retried with exponential backoff and
   jitter (``base * 2^(tries-1)``, at most ``cap``, times a random factor in
   [0.5, 1]), the last try at the end of the window; a failure after
   ``max_age`` since ``retry_since`` makes it ``dead`` (``bot webhook replay``).

A worker killed between the POST and the record leaves the delivery pending
with a lease; when the lease runs out another pass sends it again: at least
once.  Logs name delivery, event and subscription ids, never a URL or a payload.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, aliased
from standardwebhooks.webhooks import Webhook

from bot import __version__
from bot.clock import Clock
from bot.db import Database
from bot.db.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from bot.events.types import payload

__all__ = ["DeliveryOptions", "DeliveryReport", "backoff", "claim_due", "deliver_due", "sign"]

log = logging.getLogger(__name__)

_D = WebhookDelivery
_MAX_ERROR = 255


class _NoRequestLines(logging.Filter):
    """httpx logs every request's full URL at INFO: a subscription URL may carry a token
    in its query string, so those lines are dropped (our own lines name ids only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("HTTP Request")


_HTTPX_LOG = logging.getLogger("httpx")
if not any(isinstance(f, _NoRequestLines) for f in _HTTPX_LOG.filters):
    _HTTPX_LOG.addFilter(_NoRequestLines())


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    timeout: float = 10.0
    max_age: timedelta = timedelta(hours=24)
    backoff_base: float = 5.0
    backoff_cap: float = 3600.0
    lease: timedelta = timedelta(seconds=300)
    batch_size: int = 20

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> DeliveryOptions:
        values: dict[str, Any] = {
            "timeout": settings.webhook_timeout_seconds,
            "max_age": timedelta(hours=settings.webhook_max_age_hours),
            "backoff_base": settings.webhook_backoff_base_seconds,
            "backoff_cap": settings.webhook_backoff_cap_seconds,
            "lease": timedelta(seconds=settings.webhook_lease_seconds),
            "batch_size": settings.webhook_batch_size,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class DeliveryReport:
    at: datetime
    counts: Counter[str] = field(default_factory=Counter)  # delivered, retry, dead, lost (lease lost)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), **{k: self.counts.get(k, 0) for k in ("delivered", "retry", "dead")}}


def backoff(tries: int, *, base: float, cap: float, rng: random.Random) -> timedelta:
    """The wait after the ``tries``-th failed try: ``min(cap, base * 2^(tries-1))`` times [0.5, 1]."""
    delay = min(cap, base * 2 ** max(tries - 1, 0))
    return timedelta(seconds=delay * rng.uniform(0.5, 1.0))


def sign(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one request."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def claim_due(session: Session, *, worker: str, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """Lease up to ``limit`` due deliveries, at most one per subscription and borrower; the caller commits."""
    earlier = aliased(WebhookDelivery)
    blocked = (
        select(earlier.id)
        .where(earlier.subscription_id == _D.subscription_id, earlier.borrower_id == _D.borrower_id,
               earlier.status == "pending", earlier.event_id < _D.event_id)
        .exists()
    )
    inner = (
        select(_D.id)
        .where(_D.status == "pending", _D.next_attempt_at <= now,
               or_(_D.claimed_until.is_(None), _D.claimed_until < now), ~blocked)
        .order_by(_D.next_attempt_at, _D.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        inner = inner.with_for_update(skip_locked=True, of=_D)
    ids = session.scalars(
        update(_D).where(_D.id.in_(inner.scalar_subquery()))
        .values(claimed_by=worker, claimed_until=now + lease)
        .returning(_D.id).execution_options(synchronize_session=False)
    ).all()
    return sorted(ids)


@dataclass(frozen=True, slots=True)
class _Job:
    id: int
    tries: int
    retry_since: datetime
    msg_id: str
    body: bytes
    url: str
    secret: str
    subscription_id: int


def _load(session: Session, ids: list[int]) -> list[_Job]:
    rows = session.execute(
        select(_D.id, _D.tries, _D.retry_since, OutboxEvent.public_id, OutboxEvent.type, OutboxEvent.occurred_at,
               OutboxEvent.data, WebhookSubscription.url, WebhookSubscription.secret, WebhookSubscription.pii,
               WebhookSubscription.id)
        .join(OutboxEvent, OutboxEvent.id == _D.event_id)
        .join(WebhookSubscription, WebhookSubscription.id == _D.subscription_id)
        .where(_D.id.in_(ids)).order_by(_D.id)
    ).all()
    jobs = []
    for (did, tries, since, msg_id, etype, occurred, data, url, secret, pii, sid) in rows:
        body = json.dumps(payload(etype, occurred, data or {}, pii=pii), ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        jobs.append(_Job(did, tries, since, msg_id, body, url, secret, sid))
    return jobs


def _post(client: httpx.Client, job: _Job, now: datetime) -> tuple[bool, int | None, str | None]:
    headers = {**sign(job.secret, job.msg_id, now, job.body), "content-type": "application/json",
               "user-agent": f"lender-reminder-bot/{__version__}"}
    try:
        response = client.post(job.url, content=job.body, headers=headers)
    except httpx.TimeoutException as exc:
        return False, None, f"timeout {type(exc).__name__}"
    except httpx.HTTPError as exc:
        return False, None, f"error {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return True, response.status_code, None
    return False, response.status_code, f"http {response.status_code}"


def _mine(job: _Job, worker: str) -> Any:
    return and_(_D.id == job.id, _D.claimed_by == worker, _D.status == "pending")


def _record(session: Session, job: _Job, worker: str, now: datetime, ok: bool, code: int | None,
            error: str | None, options: DeliveryOptions, rng: random.Random) -> str:
    tries = job.tries + 1
    values: dict[str, Any] = {"tries": tries, "last_status_code": code, "claimed_by": None, "claimed_until": None,
                              "updated_at": now, "last_error": (error or None) and error[:_MAX_ERROR]}
    deadline = job.retry_since + options.max_age
    if ok:
        outcome = "delivered"
        values.update(status="delivered", delivered_at=now, last_error=None)
    elif now >= deadline:
        outcome = "dead"
        values.update(status="dead")
    else:
        outcome = "retry"
        wait = backoff(tries, base=options.backoff_base, cap=options.backoff_cap, rng=rng)
        values.update(next_attempt_at=min(now + wait, deadline))
    written = session.execute(update(_D).where(_mine(job, worker)).values(**values)
                              .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    return outcome if written else "lost"


def default_worker() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:webhooks"


def deliver_due(db: Database, clock: Clock, options: DeliveryOptions | None = None, *,
                worker: str | None = None, client: httpx.Client | None = None,
                rng: random.Random | None = None, stop: Callable[[], bool] | None = None,
                max_rounds: int = 1000) -> DeliveryReport:
    """Deliver everything due now (see the module docstring); what happened, counted."""
    options = options or DeliveryOptions()
    worker = worker or default_worker()
    rng = rng or random.Random()
    report = DeliveryReport(at=clock.now())
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=options.timeout, follow_redirects=False, trust_env=False)
    # A lease covers a whole batch sent one after another.
    lease = max(options.lease, timedelta(seconds=options.timeout * options.batch_size + 30))
    try:
        for _ in range(max_rounds):
            if stop is not None and stop():
                break
            with db.session() as session:
                ids = claim_due(session, worker=worker, now=clock.now(), lease=lease, limit=options.batch_size)
                jobs = _load(session, ids) if ids else []
            if not jobs:
                break
            for job in jobs:
                now = clock.now()
                ok, code, error = _post(client, job, now)
                with db.session() as session:
                    outcome = _record(session, job, worker, clock.now(), ok, code, error, options, rng)
                report.counts[outcome] += 1
                if outcome != "delivered":
                    log.info("webhook delivery %d (event %s, subscription %d): %s, %s", job.id, job.msg_id,
                             job.subscription_id, error, outcome)
    finally:
        if own_client:
            client.close()
    return report
