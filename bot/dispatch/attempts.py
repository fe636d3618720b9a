"""The attempt store: the one owner of a contact attempt's lease and dispatch metadata.

Every write to ``claimed_by``/``claimed_until`` of ``contact_attempts`` is here
(tests/test_structure.py checks it): the claim, the release, marking ``sending``
(which renews the lease), the send-time verdicts, the recorded results and the
settling of attempts a crash left ``sending``.  What the dispatcher stores when it
sends -- the sender number, the body's SHA-256, a call's script and locale, until
when the rate limit held it back -- is a typed :class:`DispatchMeta` kept in columns
of its own, written only here; the ``decision`` JSON keeps the compliance decision
the console and the API show (:func:`with_decision`).

Claiming (docs/dispatch.md, "Claims and leases") sets ``claimed_by`` (the worker)
and ``claimed_until`` (now + lease) on up to ``limit`` due attempts in one short
write transaction and returns their ids:

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
:meth:`AttemptStore.claim_stuck` claims ``sending`` attempts whose lease has
expired: a worker died between marking them and recording the result; they are
reconciled, never simply sent again (bot.dispatch.reconcile).

Every later write is guarded by what must still be true (``claimed_by`` is this
worker, the status is the one this worker left), so a worker that lost its lease
can never overwrite what the worker that took over did.  Status callbacks may
arrive before the send is recorded (they find the attempt by the ``?attempt=`` id
of their URL): recording a send therefore never overwrites a ``provider_status``
or ``outcome`` a callback already set.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, case, func, literal_column, or_, select, update
from sqlalchemy.orm import Session

from bot.db.models import ContactAttempt
from bot.dispatch.records import (
    Failed,
    Late,
    Outcome,
    Retry,
    Sent,
    apply_failure_effects,
    emit_attempts,
)
from bot.domain import AttemptSource, AttemptStatus, Channel, ContactOutcome
from bot.voice.sessions import mark_unplaced

__all__ = ["DUE_STATUSES", "AttemptStore", "DispatchMeta", "RecordSteps", "VerdictRow", "with_decision"]

_A = ContactAttempt.__table__
_MAX_ERROR = 255  # last_error's size


@dataclass(frozen=True, slots=True)
class DispatchMeta:
    """What the dispatcher keeps about a send, beside the compliance decision.

    ``sender``: the number (SMS) or caller id (call) used, for crash reconciliation and
    the opt-out line of a number's first text; ``body_sha256``: the SHA-256 of the text
    (reconciliation matches it); ``call_script``/``call_locale``: what a call speaks;
    ``rate_limited_until``: when an attempt the rate limit held back is due again.
    """

    sender: str | None = None
    body_sha256: str | None = None
    call_script: str | None = None
    call_locale: str | None = None
    rate_limited_until: datetime | None = None

    @classmethod
    def of(cls, attempt: Any) -> DispatchMeta:
        """The metadata an attempt row (or a row of its columns) holds."""
        return cls(sender=attempt.sender, body_sha256=attempt.body_sha256, call_script=attempt.call_script,
                   call_locale=attempt.call_locale, rate_limited_until=attempt.rate_limited_until)

    def columns(self) -> dict[str, Any]:
        return {"sender": self.sender, "body_sha256": self.body_sha256, "call_script": self.call_script,
                "call_locale": self.call_locale, "rate_limited_until": self.rate_limited_until}


#: No metadata: what a verdict that sends nothing stores (an earlier try's is cleared).
NO_META = DispatchMeta()


def with_decision(decision: Any, dispatch: Mapping[str, Any]) -> dict[str, Any]:
    """The attempt's decision JSON with the send-time one on top (the planner's part kept):
    ``allowed``, ``reasons``, ``next_allowed_at``, ``rule_set``, ``zones``, ``results`` at the
    top, and under ``dispatch`` the send-time verdict itself (``at``, ``action``, ...)."""
    out = dict(decision) if isinstance(decision, Mapping) else {}
    for key in ("allowed", "reasons", "next_allowed_at", "rule_set", "zones", "results"):
        if key in dispatch:
            out[key] = dispatch[key]
    out["dispatch"] = {k: v for k, v in dispatch.items() if k not in ("results", "zones", "rule_set")}
    return out


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """The outcome of the send-time check for one attempt (the prepare write)."""

    attempt_id: int
    status: str  # sending (marked now), planned (to send, or rate-limited), deferred, blocked, cancelled, failed
    next_attempt_at: datetime | None
    decision: dict[str, Any]
    release: bool  # give the lease back (everything but the attempts about to be sent)
    last_error: str | None = None
    meta: DispatchMeta = NO_META


DUE_STATUSES = (AttemptStatus.PLANNED.value, AttemptStatus.DEFERRED.value)
_C = ContactAttempt



def _lease_free(now: datetime):  # type: ignore[no-untyped-def]
    return or_(_C.claimed_until.is_(None), _C.claimed_until < now)


def _claim(session: Session, inner, *, worker: str, now: datetime, lease: timedelta) -> list[int]:  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        inner = inner.with_for_update(skip_locked=True)
    stmt = (
        update(_A)
        .where(_C.id.in_(inner.scalar_subquery()))
        .values(claimed_by=worker, claimed_until=now + lease)
        .returning(_C.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(stmt).all())


def _claim_due(
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
        select(_C.id)
        .where(
            _C.status.in_(DUE_STATUSES),
            or_(_C.next_attempt_at.is_(None), _C.next_attempt_at <= now),
            _C.channel.in_(sorted(channels)),
            _lease_free(now),
        )
        .order_by(case((_C.source == AttemptSource.REPLY.value, 0), else_=1), _C.next_attempt_at, _C.id)
        .limit(limit)
    )
    return _claim(session, inner, worker=worker, now=now, lease=lease)


def _claim_stuck(
    session: Session,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[int]:
    """Lease up to ``limit`` attempts left ``sending`` by a worker whose lease expired."""
    inner = (
        select(_C.id)
        .where(_C.status == AttemptStatus.SENDING.value, _lease_free(now))
        .order_by(_C.id)
        .limit(limit)
    )
    return _claim(session, inner, worker=worker, now=now, lease=lease)


def _release_own(session: Session, *, worker: str, now: datetime) -> int:
    """Give back the claims ``worker`` still holds on attempts it has not started sending.

    A pass calls it first: a pass of this worker that died part way (a lost database
    connection, an error) left its claims until the lease ends; nothing of this worker is
    in flight when a new pass starts.  ``sending`` attempts keep their lease: they are
    reconciled when it ends, never simply sent again."""
    ids = list(session.scalars(select(_C.id).where(_C.claimed_by == worker, _C.status.in_(DUE_STATUSES))
                               .order_by(_C.id).with_for_update()))
    if not ids:
        return 0
    session.execute(update(_A).where(_C.id.in_(ids), _C.claimed_by == worker, _C.status.in_(DUE_STATUSES))
                    .values(claimed_by=None, claimed_until=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    return len(ids)


def next_due_at(session: Session, *, channels: Collection[str], after: datetime) -> datetime | None:
    """The earliest ``next_attempt_at`` after ``after`` among pending attempts (for a pass that keeps going)."""
    if not channels:
        return None
    return session.scalar(
        select(_C.next_attempt_at)
        .where(_C.status.in_(DUE_STATUSES), _C.channel.in_(sorted(channels)), _C.next_attempt_at > after)
        .order_by(_C.next_attempt_at)
        .limit(1)
    )


def _rows(result: Any) -> int:
    return int(result.rowcount or 0)


def _param(name: str, column: str) -> Any:
    return bindparam(name, type_=_A.c[column].type)


def _mine(*statuses: str) -> Any:
    """This worker's row in one of ``statuses``.  Literal statuses: an expanding
    ``IN (...)`` parameter cannot be used with executemany."""
    return and_(_A.c.id == bindparam("b_id"), _A.c.claimed_by == bindparam("b_worker"),
                _A.c.status.in_([literal_column(f"'{s}'") for s in statuses]))


_PHONE = (Channel.SMS.value, Channel.VOICE.value)  # sent = attempted; callbacks say what came of it
_SENDING = AttemptStatus.SENDING.value
_ENDED_UNSENT = (AttemptStatus.BLOCKED.value, AttemptStatus.CANCELLED.value)

# The hot statements are built once: constructing an UPDATE and computing its cache
# key costs more than executing it on SQLite (about 0.6 ms against 0.3 ms).
_WRITE_VERDICT = update(_A).where(_mine(*DUE_STATUSES)).values(
    status=bindparam("b_status"), next_attempt_at=_param("b_next", "next_attempt_at"),
    decision=_param("b_decision", "decision"),
    last_error=func.coalesce(_param("b_error", "last_error"), _A.c.last_error),
    claimed_by=_param("b_by", "claimed_by"), claimed_until=_param("b_until", "claimed_until"),
    occurred_at=func.coalesce(_param("b_occurred", "occurred_at"), _A.c.occurred_at),
    updated_at=_param("b_now", "updated_at"), sender=_param("b_sender", "sender"),
    body_sha256=_param("b_sha", "body_sha256"), call_script=_param("b_script", "call_script"),
    call_locale=_param("b_locale", "call_locale"), rate_limited_until=_param("b_limited", "rate_limited_until"),
)
_STILL_MINE = select(_A.c.id).where(_A.c.id.in_(bindparam("b_ids", expanding=True)),
                                    _A.c.claimed_by == bindparam("b_worker"), _A.c.status == bindparam("b_status"))
_MARK_SENDING = (
    update(_A)
    .where(_A.c.id.in_(bindparam("b_ids", expanding=True)), _A.c.claimed_by == bindparam("b_worker"),
           _A.c.status.in_(DUE_STATUSES))
    .values(status=_SENDING, occurred_at=_param("b_now", "occurred_at"),
            claimed_until=_param("b_until", "claimed_until"), next_attempt_at=None,
            updated_at=_param("b_now2", "updated_at"))
    .returning(_A.c.id)
)
_RECORD_SENT = update(_A).where(_mine(_SENDING)).values(
    status=AttemptStatus.SENT.value, provider_id=bindparam("b_provider"),
    provider_status=func.coalesce(_A.c.provider_status, _param("b_pstatus", "provider_status")),
    outcome=func.coalesce(_A.c.outcome, _param("b_outcome", "outcome")),
    sent_at=_param("b_now", "sent_at"), tries=_A.c.tries + 1, last_error=None, next_attempt_at=None,
    claimed_by=None, claimed_until=None, updated_at=_param("b_now2", "updated_at"),
)
_RECORD_RETRY = update(_A).where(_mine(_SENDING)).values(
    status=AttemptStatus.PLANNED.value, next_attempt_at=_param("b_next", "next_attempt_at"), occurred_at=None,
    tries=_A.c.tries + 1, last_error=bindparam("b_error"), claimed_by=None, claimed_until=None,
    updated_at=_param("b_now", "updated_at"),
)
_RECORD_LATE = update(_A).where(_mine(_SENDING)).values(  # never sent: tries and last_error unchanged
    status=AttemptStatus.PLANNED.value, next_attempt_at=_param("b_next", "next_attempt_at"), occurred_at=None,
    claimed_by=None, claimed_until=None, updated_at=_param("b_now", "updated_at"),
)
_RECORD_FAILED = update(_A).where(_mine(_SENDING)).values(
    status=AttemptStatus.FAILED.value, outcome=ContactOutcome.FAILED.value, tries=_A.c.tries + 1,
    last_error=bindparam("b_error"), next_attempt_at=None, claimed_by=None, claimed_until=None,
    updated_at=_param("b_now", "updated_at"),
)


class RecordSteps(Protocol):
    """What a channel writes beside its recorded results, in the same transaction, after the
    attempts' own rows (the lock order): :class:`bot.dispatch.steps.ChannelSteps`."""

    def on_sent(self, session: Session, sent: Sequence[Sent], now: datetime) -> None: ...

    def on_failed(self, session: Session, failed: Sequence[Failed], now: datetime) -> None: ...


def _by_channel(outcomes: Sequence[Any], steps: Mapping[str, RecordSteps]) -> list[tuple[RecordSteps, list[Any]]]:
    """``outcomes`` (in id order) grouped by the channel steps they have, channels by name."""
    return [(steps[channel], [o for o in outcomes if o.channel == channel])
            for channel in sorted({o.channel for o in outcomes}) if channel in steps]


class AttemptStore:
    """The writes of one worker (``worker``, leases of ``lease``) to its attempts: the lease, the
    send-time verdicts with their :class:`DispatchMeta`, the results.  Every method runs in the
    caller's transaction, which commits."""

    def __init__(self, worker: str, *, lease: timedelta) -> None:
        self.worker = worker
        self.lease = lease

    # --- claims and the lease ----------------------------------------------------------

    def claim_due(self, session: Session, *, now: datetime, channels: Collection[str], limit: int) -> list[int]:
        """Lease up to ``limit`` due attempts of ``channels`` to this worker; their ids."""
        return _claim_due(session, worker=self.worker, now=now, lease=self.lease, channels=channels, limit=limit)

    def claim_stuck(self, session: Session, *, now: datetime, limit: int) -> list[int]:
        """Lease up to ``limit`` attempts left ``sending`` by a worker whose lease expired; their ids."""
        return _claim_stuck(session, worker=self.worker, now=now, lease=self.lease, limit=limit)

    def claim(self, session: Session, ids: Sequence[int], *, now: datetime) -> list[int]:
        """Lease the given pending attempts (one written just now: ``bot call``) to this worker;
        the ids claimed (not those another worker holds a live lease on)."""
        if not ids:
            return []
        inner = select(_C.id).where(_C.id.in_(sorted(ids)), _C.status.in_(DUE_STATUSES), _lease_free(now))
        return _claim(session, inner, worker=self.worker, now=now, lease=self.lease)

    def release_own(self, session: Session, *, now: datetime) -> int:
        """Give back the claims this worker still holds on attempts it has not started sending."""
        return _release_own(session, worker=self.worker, now=now)

    def release(self, session: Session, ids: Sequence[int], *, now: datetime) -> None:
        """Give back this worker's claims on ``ids`` that are still pending (not being sent)."""
        session.execute(
            update(_A)
            .where(_A.c.id.in_(sorted(ids)), _A.c.claimed_by == self.worker, _A.c.status.in_(DUE_STATUSES))
            .values(claimed_by=None, claimed_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    def expire_soon(self, session: Session, attempt_id: int, *, until: datetime, now: datetime) -> None:
        """Shorten the lease of an attempt whose send ended in doubt, so reconciliation looks at it
        ``until`` then (it stays ``sending``)."""
        session.execute(
            update(_A)
            .where(_A.c.id == attempt_id, _A.c.claimed_by == self.worker, _A.c.status == _SENDING)
            .values(claimed_until=until, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    # --- the prepare write ---------------------------------------------------------

    def write_verdicts(self, session: Session, rows: Sequence[VerdictRow], now: datetime) -> None:
        """Store the send-time decisions; release the lease of everything not being sent."""
        if not rows:
            return
        params = [
            {"b_id": r.attempt_id, "b_worker": self.worker, "b_status": r.status, "b_next": r.next_attempt_at,
             "b_decision": r.decision, "b_error": r.last_error, "b_by": None if r.release else self.worker,
             "b_until": None if r.release else now + self.lease,
             "b_occurred": now if r.status == _SENDING else None, "b_now": now, "b_sender": r.meta.sender,
             "b_sha": r.meta.body_sha256, "b_script": r.meta.call_script, "b_locale": r.meta.call_locale,
             "b_limited": r.meta.rate_limited_until}
            for r in sorted(rows, key=lambda r: r.attempt_id)  # the lock order: ids ascending
        ]
        session.execute(_WRITE_VERDICT, params)
        ended = [r.attempt_id for r in rows if r.status in _ENDED_UNSENT]
        if ended:  # a call tried before (its session exists) that will not be placed now
            mark_unplaced(session, ended, now, status="canceled")

    def still_mine(self, session: Session, ids: Sequence[int], status: str) -> set[int]:
        """Which of ``ids`` this worker holds in ``status`` (after a write that may have lost some)."""
        if not ids:
            return set()
        return set(session.scalars(_STILL_MINE, {"b_ids": sorted(ids), "b_worker": self.worker,
                                                 "b_status": status}).all())

    # --- sending ---------------------------------------------------------------------

    def mark_sending(self, session: Session, ids: Sequence[int], now: datetime) -> set[int]:
        """``sending`` (committed by the caller) *before* the adapter is called; the ids marked.

        ``occurred_at`` is set now, so the send-time check of every other worker
        already counts this contact (frequency caps) while it is on its way.
        """
        if not ids:
            return set()
        return set(session.scalars(_MARK_SENDING, {"b_ids": sorted(ids), "b_worker": self.worker, "b_now": now,
                                                   "b_until": now + self.lease, "b_now2": now}).all())

    def record(self, session: Session, outcomes: Sequence[Outcome], now: datetime, *,
               steps: Mapping[str, RecordSteps] | None = None) -> int:
        """Record results; the number of rows written (fewer than given: leases lost meanwhile).

        Rows are written in id order, and what a channel's ``steps`` write beside them (a call's
        session) after the attempts (the lock order, docs/dispatch.md); the caller has usually
        locked them all first (bot.db.retry.lock_ids)."""
        steps = steps or {}
        outcomes = sorted(outcomes, key=lambda o: o.attempt_id)
        sent = [o for o in outcomes if isinstance(o, Sent)]
        retry = [o for o in outcomes if isinstance(o, Retry)]
        failed = [o for o in outcomes if isinstance(o, Failed)]
        late = [o for o in outcomes if isinstance(o, Late)]
        written = 0
        if sent:
            written += _rows(session.execute(_RECORD_SENT, [
                {"b_id": o.attempt_id, "b_worker": self.worker, "b_provider": o.provider_id[:64],
                 "b_pstatus": o.provider_status or None, "b_now": now, "b_now2": now,
                 "b_outcome": ContactOutcome.ATTEMPTED.value if o.channel in _PHONE
                 else ContactOutcome.DELIVERED.value}
                for o in sent
            ]))
            emit_attempts(session, "attempt.sent", [o.attempt_id for o in sent], AttemptStatus.SENT.value, now)
            for channel, group in _by_channel(sent, steps):
                channel.on_sent(session, group, now)
        if retry:
            written += _rows(session.execute(_RECORD_RETRY, [
                {"b_id": o.attempt_id, "b_worker": self.worker, "b_next": o.next_attempt_at,
                 "b_error": o.error[:_MAX_ERROR], "b_now": now}
                for o in retry
            ]))
        if late:
            written += _rows(session.execute(_RECORD_LATE, [
                {"b_id": o.attempt_id, "b_worker": self.worker, "b_next": o.next_attempt_at, "b_now": now}
                for o in late
            ]))
        if failed:
            written += _rows(session.execute(_RECORD_FAILED, [
                {"b_id": o.attempt_id, "b_worker": self.worker, "b_error": o.error[:_MAX_ERROR], "b_now": now}
                for o in failed
            ]))
            emit_attempts(session, "attempt.failed", [o.attempt_id for o in failed], AttemptStatus.FAILED.value, now)
            for o in failed:
                apply_failure_effects(session, o, now)
            for channel, group in _by_channel(failed, steps):
                channel.on_failed(session, group, now)
        return written

    # --- reconciliation ----------------------------------------------------------------

    def resolve_stuck(self, session: Session, attempt_id: int, *, status: str, now: datetime,
                      provider_id: str | None = None, error: str | None = None,
                      next_attempt_at: datetime | None = None, sent_at: datetime | None = None) -> bool:
        """Settle an attempt a crash left ``sending``: sent (found), planned (not found) or unknown."""
        values: dict[str, Any] = {"status": status, "claimed_by": None, "claimed_until": None, "updated_at": now,
                                  "last_error": error[:_MAX_ERROR] if error else None}
        if status == AttemptStatus.SENT.value:
            values.update(provider_id=(provider_id or "")[:64] or None, sent_at=sent_at or now, tries=_A.c.tries + 1,
                          outcome=func.coalesce(_A.c.outcome, ContactOutcome.ATTEMPTED.value))
        elif status == AttemptStatus.PLANNED.value:
            values.update(next_attempt_at=next_attempt_at or now, occurred_at=None, tries=_A.c.tries + 1)
        result = session.execute(
            update(_A).where(_A.c.id == attempt_id, _A.c.claimed_by == self.worker,
                             _A.c.status == AttemptStatus.SENDING.value)
            .values(**values).execution_options(synchronize_session=False)
        )
        changed = bool(result.rowcount)  # type: ignore[attr-defined]
        if changed and status == AttemptStatus.SENT.value:  # found at the provider: it was sent
            emit_attempts(session, "attempt.sent", [attempt_id], status, now)
        return changed

    def extend_stuck(self, session: Session, attempt_id: int, *, until: datetime, error: str, now: datetime) -> None:
        """Keep a ``sending`` attempt for a later reconciliation (the provider could not be asked)."""
        session.execute(
            update(_A).where(_A.c.id == attempt_id, _A.c.claimed_by == self.worker,
                             _A.c.status == AttemptStatus.SENDING.value)
            .values(claimed_by=None, claimed_until=until, last_error=error[:_MAX_ERROR], updated_at=now)
            .execution_options(synchronize_session=False)
        )


