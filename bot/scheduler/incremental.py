"""Incremental planning: which borrowers a pass must plan again, and its watermark.

A planning decision depends on the borrower's rows (borrower, loans,
installments, payments, consents, promises, holds, tasks, contact history), on
the borrower's local date, and on the policy and compliance configuration.  So an
incremental pass plans:

* the **dirty** borrowers: ``plan_dirty`` rows, written by database triggers in
  the transaction of every change of those tables (migration 0013), whoever
  writes it (an import, the API, the ledger, a reply, the dispatcher, the
  console, hand-written SQL);
* the borrowers whose **local day turned** since the last pass: the zone the
  planner last placed them in (``plan_borrowers``) has another date now;
* the installments that **entered the window** (its upper end moved with the UTC
  date), whose borrowers the planner may never have placed.

Everything else would get the decision it already has.  A **full** pass plans every
installment in the window: asked for (``bot plan --full``), when there is no
watermark yet, when the inputs hash (policy, default zone, compliance rules)
differs from the last pass's, or when the last full pass is older than
``full_every`` (a day under ``bot run``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, func, select, union
from sqlalchemy.orm import Session

from bot.db.models import Installment, Loan, PlanBorrower, PlanDirty, PlanState
from bot.ledger import OPEN
from bot.policy import Policy

FULL_EVERY = timedelta(days=1)
STATE_ID = 1

# Why a pass is full (PlanReport.full_reason).
ASKED = "asked"
NO_WATERMARK = "no_watermark"
INPUTS_CHANGED = "inputs_changed"
DAILY = "daily"
CLOCK_BACK = "clock_went_back"


def inputs_hash(policy: Policy, default_timezone: str, compliance_config: Any = None) -> str:
    """What every decision depends on besides the borrower's rows and the clock: the
    parsed policy (not its file name), the default zone and the compliance rules.
    Stable across processes (sets are sorted: their order depends on the hash seed)."""
    if compliance_config is None:
        from bot.compliance.config import default_config

        compliance_config = default_config()
    text = repr(_canonical((dataclasses.replace(policy, source=""), default_timezone, compliance_config)))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """``value`` as nested tuples whose repr does not depend on the process."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple((f.name, _canonical(getattr(value, f.name)))
                                            for f in dataclasses.fields(value) if f.repr))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return ("{}", tuple(sorted(((_canonical(k), _canonical(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_canonical(v) for v in value), key=repr)))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """What one pass plans: everything (``full``) or the changed borrowers."""

    full: bool
    reason: str | None  # why full (None for an incremental pass)
    watermark: int  # plan_dirty rows with id <= watermark are planned by this pass
    last_at: datetime | None  # the previous pass (incremental: the day turns since then)
    hash: str


def scope(session: Session, at: datetime, *, policy: Policy, inputs: str, full: bool,
          full_every: timedelta = FULL_EVERY) -> Scope:
    """Read the watermark and decide between a full and an incremental pass.

    The dirty watermark is read *before* the planner opens its selection, so every
    change at or below it is visible to the selection's snapshot; changes committed
    later have higher ids and stay for the next pass.
    """
    watermark = int(session.scalar(select(func.coalesce(func.max(PlanDirty.id), 0))) or 0)
    state = session.get(PlanState, STATE_ID)
    reason: str | None = None
    if full:
        reason = ASKED
    elif state is None:
        reason = NO_WATERMARK
    elif state.inputs_hash != inputs:
        reason = INPUTS_CHANGED
    elif at < state.last_at:
        reason = CLOCK_BACK
    elif at - state.last_full_at >= full_every:
        reason = DAILY
    return Scope(reason is not None, reason, watermark, None if state is None else state.last_at, inputs)


def targets(session: Session, at: datetime, *, policy: Policy, scope: Scope) -> Select[Any]:
    """The borrower ids an incremental pass plans (a subquery for the selection)."""
    assert scope.last_at is not None
    parts: list[Select[Any]] = [select(PlanDirty.borrower_id).where(PlanDirty.id <= scope.watermark)]
    turned = turned_zones(session, scope.last_at, at)
    if turned:
        parts.append(select(PlanBorrower.borrower_id).where(PlanBorrower.zone.in_(turned)))
    _low, old_high = policy.due_date_window(scope.last_at.astimezone(UTC).date())
    _low, high = policy.due_date_window(at.astimezone(UTC).date())
    if high > old_high:
        parts.append(select(Loan.borrower_id).join(Installment, Installment.loan_id == Loan.id)
                     .where(Installment.due_date > old_high, Installment.due_date <= high, OPEN))
    return union(*parts) if len(parts) > 1 else parts[0]  # type: ignore[return-value]


def turned_zones(session: Session, since: datetime, at: datetime) -> list[str]:
    """The zones of placed borrowers whose local date at ``at`` differs from ``since``'s."""
    zones = session.scalars(select(PlanBorrower.zone).distinct()).all()
    return sorted(z for z in zones if _date(z, since) != _date(z, at))


def _date(zone: str, at: datetime) -> Any:
    return at.astimezone(_zone(zone)).date()


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def clear(session: Session, borrowers: list[str], watermark: int) -> None:
    """Forget the dirty marks of ``borrowers`` up to the watermark (their plan is being
    written in this transaction)."""
    if borrowers:
        session.execute(delete(PlanDirty).where(PlanDirty.borrower_id.in_(borrowers), PlanDirty.id <= watermark)
                        .execution_options(synchronize_session=False))


def finish(session: Session, at: datetime, scope: Scope) -> None:
    """The end of a pass: every dirty mark up to the watermark is planned (or its
    borrower had nothing to plan); record the watermark."""
    session.execute(delete(PlanDirty).where(PlanDirty.id <= scope.watermark)
                    .execution_options(synchronize_session=False))
    state = session.get(PlanState, STATE_ID)
    if state is None:
        session.add(PlanState(id=STATE_ID, last_at=at, last_full_at=at, inputs_hash=scope.hash))
    else:
        state.last_at = at
        state.inputs_hash = scope.hash
        if scope.full:
            state.last_full_at = at
    session.flush()


__all__ = ["FULL_EVERY", "Scope", "clear", "finish", "inputs_hash", "scope", "targets", "turned_zones"]
