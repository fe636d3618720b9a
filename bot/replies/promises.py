"""Promises to pay: recording one from a reply, and the kept/broken follow-up.

A promise covers one loan: the borrower's oldest outstanding loan when it is
made (``Promise.loan_id``), or every loan of the borrower when there is none.
Its ``amount_minor`` is what it promises: the sum written in the reply ("I'll
pay $50 Friday") when there is one, else what the loan owes through the
promised date (:func:`bot.replies.ledger.owed_on_loan`).

:func:`check_promises` resolves pending promises:

* **kept** as soon as the payments recorded on the promise's loan (all the
  borrower's loans without one) from the moment the promise was made up to
  ``at`` add up to ``amount_minor``, or the loan has nothing outstanding at
  all any more (a lender that only updates installments);
* **broken** once the borrower's local date (primary zone) is after
  ``promised_date + grace_days`` without that.

Until then the promise stays pending, and the compliance rule ``stop.promise``
pauses contact until 00:00 local on the day after the promised date whatever
this check says, so a late check never extends the pause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.compliance.loader import oldest_outstanding_loan
from bot.compliance.zones import resolve_zones
from bot.db.models import Borrower, Loan, Promise
from bot.domain import PromiseStatus
from bot.events import emit
from bot.replies.ledger import has_outstanding, owed_on_loan, paid_on_loan, to_minor
from bot.replies.records import audit

__all__ = ["PromiseCheck", "check_promises", "create_promise"]

ACTOR = "promise_check"


def create_promise(
    session: Session,
    borrower_id: str,
    promised_date: date,
    *,
    source: str,
    at: datetime,
    amount: Decimal | None = None,
    actor: str | None = None,
) -> Promise:
    """Record a pending promise, cancelling the borrower's earlier pending ones.

    A borrower has at most one pending promise: a new date replaces the old
    one (the old row is kept, ``cancelled``, for the history).
    """
    cancelled = session.scalars(
        update(Promise)
        .where(Promise.borrower_id == borrower_id, Promise.status == PromiseStatus.PENDING.value)
        .values(status=PromiseStatus.CANCELLED.value, resolved_at=at)
        .returning(Promise.id)
        .execution_options(synchronize_session=False)
    ).all()
    for promise_id in cancelled:
        audit(session, at, actor=actor or source, action="promise.cancelled", borrower_id=borrower_id,
              detail={"promise_id": promise_id, "reason": "replaced by a new promise"})
    loan_id = oldest_outstanding_loan(session, borrower_id)
    amount_minor = 0
    if loan_id is not None:
        if amount is not None and amount > 0:
            currency = session.scalar(select(Loan.currency).where(Loan.id == loan_id)) or "USD"
            amount_minor = to_minor(amount, currency)
        else:
            amount_minor = owed_on_loan(session, loan_id, promised_date)
    promise = Promise(
        borrower_id=borrower_id, loan_id=loan_id, promised_date=promised_date, amount_minor=amount_minor,
        status=PromiseStatus.PENDING.value, source=source, created_at=at, resolved_at=None,
    )
    session.add(promise)
    session.flush()
    audit(session, at, actor=actor or source, action="promise.created", borrower_id=borrower_id,
          detail={"promise_id": promise.id, "promised_date": promised_date.isoformat(),
                  "loan_id": loan_id, "amount_minor": amount_minor, "replaced": list(cancelled)})
    emit(session, "promise.created", borrower_id=borrower_id, at=at, data={
        "promise_id": promise.id, "loan_id": loan_id, "promised_date": promised_date,
        "amount_minor": amount_minor, "source": source, "replaced": list(cancelled),
    })
    return promise


@dataclass
class PromiseCheck:
    """What one :func:`check_promises` pass did (promise ids)."""

    at: datetime
    kept: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "kept": self.kept, "broken": self.broken, "pending": self.pending}


def _loans_of(session: Session, borrower_id: str) -> list[str]:
    return list(session.scalars(select(Loan.id).where(Loan.borrower_id == borrower_id).order_by(Loan.id)))


def check_promises(
    session: Session,
    at: datetime,
    *,
    default_timezone: str = "America/New_York",
    grace_days: int = 0,
) -> PromiseCheck:
    """Mark pending promises kept or broken as of ``at`` (see the module docstring).

    Each change is a conditional UPDATE (``WHERE status = 'pending'``), so two
    schedulers running the check at once resolve a promise once; each writes
    an audit event.  The caller commits.
    """
    if grace_days < 0:
        raise ValueError("grace_days must be >= 0")
    report = PromiseCheck(at=at)
    rows = session.execute(
        select(Promise.id, Promise.borrower_id, Promise.loan_id, Promise.promised_date, Promise.amount_minor,
               Promise.created_at, Borrower.country, Borrower.region, Borrower.timezone, Borrower.phone_e164)
        .join(Borrower, Borrower.id == Promise.borrower_id)
        .where(Promise.status == PromiseStatus.PENDING.value)
        .order_by(Promise.id)
    ).all()
    for (promise_id, borrower_id, loan_id, promised_date, amount_minor, created_at,
         country, region, timezone, phone) in rows:
        loans = [loan_id] if loan_id else _loans_of(session, borrower_id)
        paid = paid_on_loan(session, loans, created_at, at)
        today = at.astimezone(resolve_zones(country, region, timezone, phone, default_timezone).primary).date()
        if (amount_minor is not None and paid >= amount_minor) or not has_outstanding(session, loans):
            status, bucket = PromiseStatus.KEPT, report.kept
        elif today > promised_date + timedelta(days=grace_days):
            status, bucket = PromiseStatus.BROKEN, report.broken
        else:
            report.pending.append(promise_id)
            continue
        changed = session.execute(
            update(Promise)
            .where(Promise.id == promise_id, Promise.status == PromiseStatus.PENDING.value)
            .values(status=status.value, resolved_at=at)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if changed:
            bucket.append(promise_id)
            audit(session, at, actor=ACTOR, action=f"promise.{status.value}", borrower_id=borrower_id,
                  detail={"promise_id": promise_id, "promised_date": promised_date.isoformat(),
                          "amount_minor": amount_minor, "paid_minor": paid, "local_date": today.isoformat()})
            emit(session, f"promise.{status.value}", borrower_id=borrower_id, at=at, data={
                "promise_id": promise_id, "loan_id": loan_id, "promised_date": promised_date,
                "amount_minor": amount_minor, "paid_minor": paid,
            })
    return report
