"""What is paid: the one rule every reader of an installment's paid amount uses.

A lender tells the bot about payments in two ways, and may use both:

* a **statement**: each installment's ``amount_paid`` (installments file, ``PUT
  /api/v1/installments/{id}``);
* a **ledger**: the loan's ``payments`` rows (payments file, ``POST /api/v1/payments``).

The rule, per loan (docs/formats.md "What counts as paid"):

1. The statement is taken as of the moment its total for the loan last changed
   (``loans.paid_stated_at``, the instant of the import or API call that changed it).
2. Payments made (``paid_at``) up to that moment are assumed to be in the statement;
   where they add up to more than the statement, they win: ``base = max(stated, before)``.
3. Payments made after it add to it: ``total = base + after``.
4. Each installment is first covered by its own stated ``amount_paid`` (at most its
   amount due); what the total leaves over is allocated to the loan's installments
   oldest due date first, each up to its amount due; what is still left is the loan's
   **credit** (an overpayment), which covers installments added later the same way.

So a lender sending only statements, only payments, or both consistently gets exactly
what it sent; a payment posted after the last statement is never lost; and a statement
that already includes a payment posted earlier does not count it twice.

The result is stored: ``installments.covered_minor`` (what is paid of the installment)
and ``loans.credit_minor``.  :func:`settle_loans` is the only writer of those columns,
and runs in the transaction that changes a loan's installments or payments, so the
moment that transaction commits every reader sees the new figure.  Readers use the
expressions :data:`COVERED`, :data:`OUTSTANDING` and :data:`OPEN` below (the planner,
the send-time re-check, the answer-time call check, promises, replies, messages and
reports), never ``amount_paid_minor``, which is only the lender's statement.

When an installment becomes fully covered, what was still waiting to be sent about it
(attempts ``planned`` or ``deferred``) is cancelled with the reason ``paid`` in the same
transaction; so is a waiting attempt about nothing in particular (no installment) of a
borrower who then owes nothing at all.  Replies (answers to the borrower's own message)
are left alone: a thank-you for a payment is still due.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from bot.db.models import Borrower, ContactAttempt, Installment, Loan, Payment
from bot.domain import AttemptSource, AttemptStatus

__all__ = [
    "COVERED",
    "OPEN",
    "OUTSTANDING",
    "PAID_REASON",
    "Cover",
    "LoanSettlement",
    "allocate",
    "settle_loans",
]

#: What is paid of an installment, as the rule says.
COVERED = Installment.covered_minor
#: What is still owed on an installment (never negative: covered never exceeds the amount due).
OUTSTANDING = Installment.amount_due_minor - Installment.covered_minor
#: An installment with something still owed.
OPEN = Installment.covered_minor < Installment.amount_due_minor

#: The reason recorded on attempts cancelled because what they were about is paid.
PAID_REASON = "paid"

_WAITING = (AttemptStatus.PLANNED.value, AttemptStatus.DEFERRED.value)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Cover:
    """One installment after allocation."""

    installment_id: str
    due_date: date
    amount_due_minor: int
    covered_minor: int

    @property
    def outstanding_minor(self) -> int:
        return self.amount_due_minor - self.covered_minor

    @property
    def paid(self) -> bool:
        return self.covered_minor >= self.amount_due_minor

    def to_json(self) -> dict[str, Any]:
        return {
            "installment_id": self.installment_id,
            "due_date": self.due_date.isoformat(),
            "amount_due_minor": self.amount_due_minor,
            "covered_minor": self.covered_minor,
            "outstanding_minor": self.outstanding_minor,
            "paid": self.paid,
        }


@dataclass
class LoanSettlement:
    """What :func:`settle_loans` found and did for one loan."""

    loan_id: str
    borrower_id: str
    currency: str
    stated_minor: int  # the sum of the installments' amount_paid
    payments_minor: int  # the sum of the loan's payments
    total_minor: int  # what the rule counts as paid on the loan
    credit_minor: int
    installments: list[Cover] = field(default_factory=list)
    newly_paid: list[str] = field(default_factory=list)  # fully covered now, not before
    cancelled_attempts: list[int] = field(default_factory=list)
    locale: str | None = None  # the borrower's, for amounts shown in an answer (not part of the JSON)

    def to_json(self) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "currency": self.currency,
            "stated_minor": self.stated_minor,
            "payments_minor": self.payments_minor,
            "total_paid_minor": self.total_minor,
            "credit_minor": self.credit_minor,
            "installments": [c.to_json() for c in self.installments],
            "newly_paid": list(self.newly_paid),
            "cancelled_attempts": list(self.cancelled_attempts),
        }


def allocate(
    installments: Sequence[tuple[str, date, int, int]], total_minor: int
) -> tuple[list[Cover], int]:
    """Allocate ``total_minor`` paid on a loan to its installments; returns covers and credit.

    ``installments`` are ``(id, due_date, amount_due_minor, stated_amount_paid_minor)``.
    Each is first covered by its own statement (at most its amount due); the rest of
    the total goes oldest due date first (then by id), each up to its amount due; what
    remains is credit.  Pure: the same inputs always give the same allocation.
    """
    ordered = sorted(installments, key=lambda i: (i[1], i[0]))
    covered = {iid: min(max(stated, 0), max(due, 0)) for iid, _, due, stated in ordered}
    pool = max(total_minor - sum(covered.values()), 0)
    for iid, _, due, _ in ordered:
        if pool <= 0:
            break
        take = min(max(due, 0) - covered[iid], pool)
        if take > 0:
            covered[iid] += take
            pool -= take
    return [Cover(iid, due_date, due, covered[iid]) for iid, due_date, due, _ in ordered], pool


def loan_total(stated_minor: int, payments: Iterable[tuple[datetime, int]], stated_at: datetime | None) -> int:
    """What the rule counts as paid on a loan (steps 1-3 of the module docstring)."""
    before = after = 0
    for paid_at, amount in payments:
        if stated_at is None or paid_at <= stated_at:
            before += amount
        else:
            after += amount
    return max(stated_minor, before) + after


def settle_loans(
    bind: Session | Connection, loan_ids: Iterable[str], *, at: datetime
) -> dict[str, LoanSettlement]:
    """Apply the rule to these loans now, in the caller's transaction; the caller commits.

    Locks the loans' rows first (``FOR UPDATE``, in id order, on PostgreSQL) so two
    transactions adding payments to one loan settle one after the other, each seeing
    the other's payment.  Writes only what changed; cancels what became paid (see the
    module docstring).  Unknown loan ids are left out of the result.
    """
    conn = bind.connection() if isinstance(bind, Session) else bind
    ids = sorted(set(loan_ids))
    out: dict[str, LoanSettlement] = {}
    for start in range(0, len(ids), _CHUNK):
        out.update(_settle_chunk(conn, ids[start:start + _CHUNK], at))
    return out


_L = Loan.__table__
_I = Installment.__table__
_P = Payment.__table__
_A = ContactAttempt.__table__

# The statements are built once (an API request settles one loan: building and hashing
# them each time cost more than running them).
_IDS = bindparam("ids", expanding=True)
_B = Borrower.__table__
_LOCK_LOANS = (
    select(_L.c.id, _L.c.borrower_id, _L.c.currency, _L.c.paid_stated_minor, _L.c.paid_stated_at, _L.c.credit_minor,
           _B.c.locale)
    .select_from(_L.join(_B, _B.c.id == _L.c.borrower_id))
    .where(_L.c.id.in_(_IDS)).order_by(_L.c.id).with_for_update(of=_L)
)
_INSTALLMENTS = select(_I.c.id, _I.c.loan_id, _I.c.due_date, _I.c.amount_due_minor, _I.c.amount_paid_minor,
                       _I.c.covered_minor).where(_I.c.loan_id.in_(_IDS))
_PAYMENTS = select(_P.c.loan_id, _P.c.paid_at, _P.c.amount_minor).where(_P.c.loan_id.in_(_IDS))
_WRITE_COVER = update(_I).where(_I.c.id == bindparam("b_id")).values(
    covered_minor=bindparam("b_covered"), updated_at=bindparam("b_at", _I.c.updated_at.type))
_WRITE_LOAN = update(_L).where(_L.c.id == bindparam("b_id")).values(
    paid_stated_minor=bindparam("b_stated"), paid_stated_at=bindparam("b_stated_at", _L.c.paid_stated_at.type),
    credit_minor=bindparam("b_credit"))
# The lease is the attempt store's (bot.dispatch.attempts): a worker holding one finds the
# attempt no longer pending and lets it go, as after the planner cancels one.
_CANCELLED = {"status": AttemptStatus.CANCELLED.value, "next_attempt_at": None}
_OWING = (
    select(_I.c.id).select_from(_I.join(_L, _L.c.id == _I.c.loan_id))
    .where(_L.c.borrower_id == _A.c.borrower_id, _I.c.covered_minor < _I.c.amount_due_minor)
    .exists()
)
# Waiting attempts (not replies) about a paid installment, and waiting attempts about no
# installment in particular of borrowers who owe nothing now: one statement for both.
_CANCEL_PAID = (
    update(_A)
    .where(_A.c.status.in_(_WAITING), _A.c.source != AttemptSource.REPLY.value,
           or_(_A.c.installment_id.in_(bindparam("paid", expanding=True)),
               and_(_A.c.borrower_id.in_(bindparam("borrowers", expanding=True)), _A.c.installment_id.is_(None),
                    ~_OWING)))
    .values(decision=bindparam("b_decision", _A.c.decision.type), updated_at=bindparam("b_at", _A.c.updated_at.type),
            **_CANCELLED)
    .returning(_A.c.id, _A.c.installment_id, _A.c.loan_id)
)


def _settle_chunk(conn: Connection, ids: list[str], at: datetime) -> dict[str, LoanSettlement]:
    loans = conn.execute(_LOCK_LOANS, {"ids": ids}).all()
    if not loans:
        return {}
    rows: dict[str, list[tuple[str, date, int, int, int]]] = defaultdict(list)
    for iid, loan_id, due_date, due, stated, covered in conn.execute(_INSTALLMENTS, {"ids": ids}):
        rows[loan_id].append((iid, due_date, due, stated, covered))
    payments: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for loan_id, paid_at, amount in conn.execute(_PAYMENTS, {"ids": ids}):
        payments[loan_id].append((paid_at, amount))

    out: dict[str, LoanSettlement] = {}
    loan_updates: list[dict[str, Any]] = []
    cover_updates: list[dict[str, Any]] = []
    for loan_id, borrower_id, currency, old_stated, old_stated_at, old_credit, locale in loans:
        installments = rows.get(loan_id, [])
        stated = sum(r[3] for r in installments)
        changed_statement = old_stated is None or old_stated_at is None or stated != old_stated
        stated_at = at if changed_statement else old_stated_at
        total = loan_total(stated, payments.get(loan_id, []), stated_at)
        covers, credit = allocate([(r[0], r[1], r[2], r[3]) for r in installments], total)
        before = {r[0]: r[4] for r in installments}
        settlement = LoanSettlement(
            loan_id=loan_id, borrower_id=borrower_id, currency=currency, stated_minor=stated,
            payments_minor=sum(a for _, a in payments.get(loan_id, [])), total_minor=total,
            credit_minor=credit, installments=covers, locale=locale,
        )
        for cover in covers:
            old = before[cover.installment_id]
            if old != cover.covered_minor:
                cover_updates.append({"b_id": cover.installment_id, "b_covered": cover.covered_minor, "b_at": at})
                if cover.paid and old < cover.amount_due_minor:
                    settlement.newly_paid.append(cover.installment_id)
        if changed_statement or credit != old_credit:
            loan_updates.append({"b_id": loan_id, "b_stated": stated, "b_stated_at": stated_at, "b_credit": credit})
        out[loan_id] = settlement
    # one row (an API payment): a plain execute, not the executemany path
    if cover_updates:
        conn.execute(_WRITE_COVER, cover_updates[0] if len(cover_updates) == 1 else cover_updates)
    if loan_updates:
        conn.execute(_WRITE_LOAN, loan_updates[0] if len(loan_updates) == 1 else loan_updates)
    _cancel_paid(conn, out, at)
    return out


def _cancel_paid(conn: Connection, settled: dict[str, LoanSettlement], at: datetime) -> None:
    """Cancel the waiting attempts about what is now paid (see the module docstring)."""
    by_installment: dict[str, str] = {}
    for s in settled.values():
        for cover in s.installments:
            if cover.paid:
                by_installment[cover.installment_id] = s.loan_id
    params = {"b_decision": {"reasons": [PAID_REASON], "cancelled_at": at.isoformat(),
                             "detail": "what this contact is about is paid"}, "b_at": at}
    cancelled: list[Any] = []
    paid_ids = sorted(by_installment)
    borrowers = sorted({s.borrower_id for s in settled.values()})
    for start in range(0, max(len(paid_ids), len(borrowers)), _CHUNK):
        chunk = {"paid": paid_ids[start:start + _CHUNK], "borrowers": borrowers[start:start + _CHUNK]}
        cancelled.extend(conn.execute(_CANCEL_PAID, {**chunk, **params}).all())
    for attempt_id, installment_id, loan_id in cancelled:
        owner = by_installment.get(installment_id or "") or loan_id
        if owner in settled:
            settled[owner].cancelled_attempts.append(attempt_id)
    for s in settled.values():
        s.cancelled_attempts.sort()


def is_paid(conn: Connection | Session, installment_id: str) -> bool:
    """Whether this installment is fully covered (False for an unknown id)."""
    row = conn.execute(
        select(_I.c.covered_minor, _I.c.amount_due_minor).where(_I.c.id == installment_id)
    ).first()
    return row is not None and row[0] >= row[1]

