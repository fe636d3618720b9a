"""Claiming attempts with a lease, so that exactly one worker handles each.

A claim sets ``claimed_by`` (the worker) and ``claimed_until`` (now + lease) on
up to ``limit`` due attempts in one short write transaction and returns their ids:

* PostgreSQL: ``UPDATE ... WHERE id IN (SELECT id ... FOR UPDATE SKIP LOCKED
  LIMIT n) RETURNING id``: workers claiming at the same moment skip each other's
  rows instead of waiting for them, and a row another worker holds a live lease
  on is not due;
* SQLite: the same ``UPDATE ... RETURNING`` without the lock clause: SQLite has
  one writer at a time, so the sub-select and the update are atomic (one worker
  per database is the supported set-up; two would still not share a row).

Due means: ``planned`` or ``deferred`` with ``next_attempt_at`` (or no time) at or
before now, a channel this worker has an adapter for, and no live lease.  Replies
come first (an opt-out confirmation must go at once), then the oldest due.

:func:`claim_stuck` claims ``sending`` attempts whose lease has expired: a worker
died between marking them and recording the result; they are reconciled, never
simply sent again (bot.dispatch.reconcile).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from bot.db.models import ContactAttempt
from bot.domain import AttemptSource, AttemptStatus

DUE_STATUSES = (AttemptStatus.PLANNED.value, AttemptStatus.DEFERRED.value)

_A = ContactAttempt


def _lease_free(now: datetime):  # type: ignore[no-untyped-def]
    return or_(_A.claimed_until.is_(None), _A.claimed_until < now)


def _claim(session: Session, inner, *, worker: str, now: datetime, lease: timedelta) -> list[int]:  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(_A)
        .where(_A.id.in_(inner.scalar_subquery()))
        .values(claimed_by=worker, claimed_until=now + lease)
        .returning(_A.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(stmt).all())


def claim_due(
    session: Session,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    channels: Collection[str],
    limit: int,
) -> list[int]:
    """Lease up to ``limit`` due attempts to ``worker``; their ids.  The caller commits."""
    if not channels or limit <= 0:
        return []
    inner = (
        select(_A.id)
        .where(
            _A.status.in_(DUE_STATUSES),
            or_(_A.next_attempt_at.is_(None), _A.next_attempt_at <= now),
            _A.channel.in_(sorted(channels)),
            _lease_free(now),
        )
        .order_by(case((_A.source == AttemptSource.REPLY.value, 0), else_=1), _A.next_attempt_at, _A.id)
        .limit(limit)
    )
    return _claim(session, inner, worker=worker, now=now, lease=lease)


def claim_stuck(
    session: Session,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[int]:
    """Lease up to ``limit`` attempts left ``sending`` by a worker whose lease expired."""
    inner = (
        select(_A.id)
        .where(_A.status == AttemptStatus.SENDING.value, _lease_free(now))
        .order_by(_A.id)
        .limit(limit)
    )
    return _claim(session, inner, worker=worker, now=now, lease=lease)


def release_own(session: Session, *, worker: str, now: datetime) -> int:
    """Give back the claims ``worker`` still holds on attempts it has not started sending.

    A pass calls it first: a pass of this worker that died part way (a lost database
    connection, an error) left its claims until the lease ends; nothing of this worker is
    in flight when a new pass starts.  ``sending`` attempts keep their lease: they are
    reconciled when it ends, never simply sent again."""
    ids = list(session.scalars(select(_A.id).where(_A.claimed_by == worker, _A.status.in_(DUE_STATUSES))
                               .order_by(_A.id).with_for_update()))
    if not ids:
        return 0
    session.execute(update(_A).where(_A.id.in_(ids), _A.claimed_by == worker, _A.status.in_(DUE_STATUSES))
                    .values(claimed_by=None, claimed_until=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    return len(ids)


def next_due_at(session: Session, *, channels: Collection[str], after: datetime) -> datetime | None:
    """The earliest ``next_attempt_at`` after ``after`` among pending attempts (for a pass that keeps going)."""
    if not channels:
        return None
    return session.scalar(
        select(_A.next_attempt_at)
        .where(_A.status.in_(DUE_STATUSES), _A.channel.in_(sorted(channels)), _A.next_attempt_at > after)
        .order_by(_A.next_attempt_at)
        .limit(1)
    )
