"""What the borrower owes and has paid, as the reply effects need it.

Definitions (docs/webhooks.md, "Paid claims" and "Promise follow-up"):

* **outstanding** of an installment: ``amount_due - covered``, what the rule of
  :mod:`bot.ledger` leaves unpaid (the lender's statement and the loan's payments);
* **owed on a loan through a day**: the outstanding of the loan's installments
  due on or before that day; when nothing is due yet, the outstanding of the
  loan's earliest outstanding installment (a reminder before the due date is
  about that one);
* **paid on a loan between two instants**: the sum of the ``payments`` rows of
  the loan with ``paid_at`` in that span.

Every amount is in the loan's own currency (minor units), so sums never mix
currencies: they are always per loan.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import Installment, Loan, Payment
from bot.ledger import OPEN, OUTSTANDING

__all__ = ["owed_by_loan", "owed_on_loan", "paid_on_loan", "to_minor", "has_outstanding"]


def owed_on_loan(session: Session, loan_id: str, through: date) -> int:
    """What the loan owes through ``through`` (see the module docstring)."""
    due = session.scalar(
        select(func.coalesce(func.sum(OUTSTANDING), 0))
        .where(Installment.loan_id == loan_id, OPEN, Installment.due_date <= through)
    )
    if due:
        return int(due)
    upcoming = session.scalar(
        select(OUTSTANDING).where(Installment.loan_id == loan_id, OPEN)
        .order_by(Installment.due_date, Installment.id).limit(1)
    )
    return int(upcoming or 0)


def owed_by_loan(session: Session, borrower_id: str, through: date) -> dict[str, int]:
    """``{loan_id: owed through the day}`` for each of the borrower's loans that owes anything."""
    loans = session.scalars(
        select(Installment.loan_id).distinct()
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.borrower_id == borrower_id, OPEN)
    ).all()
    return {loan_id: owed for loan_id in sorted(loans) if (owed := owed_on_loan(session, loan_id, through))}


def has_outstanding(session: Session, loan_ids: list[str]) -> bool:
    """Whether any installment of these loans is still outstanding."""
    if not loan_ids:
        return False
    return session.scalar(select(Installment.id).where(Installment.loan_id.in_(loan_ids), OPEN).limit(1)) is not None


def paid_on_loan(session: Session, loan_ids: list[str], since: datetime, until: datetime) -> int:
    """Sum of the payments on these loans with ``since <= paid_at <= until``."""
    if not loan_ids:
        return 0
    total = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_minor), 0))
        .where(Payment.loan_id.in_(loan_ids), Payment.paid_at >= since, Payment.paid_at <= until)
    )
    return int(total or 0)


def to_minor(amount: Decimal, currency: str) -> int:
    """A major-unit amount (``Decimal('50')`` dollars) in the currency's minor units (5000)."""
    places = get_currency_precision(currency)
    return int((amount * (Decimal(10) ** places)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
