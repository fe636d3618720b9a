"""Risk: the lender's score and segment, and the bot's own early-warning score.

Two scores, on the same 0-1000 scale (higher is riskier):

* the **lender's** ``risk_score`` and ``segment`` from the import or the API, on the
  borrower and on a loan (a loan's value, when set, overrides the borrower's);
* the **early-warning** score the bot computes from what it sees of the borrower's
  behaviour: :func:`early_warning` is a pure function of :class:`RiskFacts`, a sum of
  points from the :data:`WEIGHTS` table, each with its reason code and a sentence, so
  every point can be explained.  It is computed when needed (the planner, ``bot
  risk``, the console) from the current rows, never stored, so it cannot go stale: a
  change of one of its inputs is a change of a table whose triggers mark the borrower
  for planning again (migration 0009).

:func:`load_facts` reads the facts of many borrowers with a fixed number of
set-based queries.  docs/risk.md has the table and the rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from typing import TYPE_CHECKING

from bot.domain import AttemptSource, ContactOutcome, PromiseStatus

if TYPE_CHECKING:  # the policy imports the pure part; the database layer only when loading
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

__all__ = [
    "EARLY_WARNING",
    "LENDER",
    "MAX_SCORE",
    "WEIGHTS",
    "Reason",
    "RiskFacts",
    "RiskScore",
    "early_warning",
    "load_facts",
    "score_for",
    "summary",
    "watch_list",
]

MAX_SCORE = 1000
LENDER = "lender"
EARLY_WARNING = "early_warning"

#: How far back failed or unanswered contacts count.
CONTACT_DAYS = 30
#: Outcomes of a contact that went out and reached nobody.
UNREACHED = (ContactOutcome.ATTEMPTED.value, ContactOutcome.VOICEMAIL.value, ContactOutcome.FAILED.value)
#: Statuses of the bot's own attempts that really happened (the planner's pending rows do not count).
_HAPPENED = ("sending", "sent", "done", "failed", "unknown")

#: reason code -> (points per occurrence, most points in all).  docs/risk.md explains each.
WEIGHTS: dict[str, tuple[int, int]] = {
    "broken_promise": (150, 300),
    "first_payment_missed": (200, 200),
    "days_past_due_30": (100, 100),
    "days_past_due_60": (100, 100),
    "arrears_rising": (100, 100),
    "partial_payment": (50, 100),
    "unreached_contacts": (30, 150),
    "address_flagged": (100, 100),
    "phone_changed": (50, 100),
}


@dataclass(frozen=True, slots=True)
class Reason:
    points: int
    code: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"points": self.points, "code": self.code, "text": self.text}


@dataclass(frozen=True, slots=True)
class RiskScore:
    """A score with its source (``lender`` or ``early_warning``) and, for the early-warning
    score, the reasons its points come from (they add up to it, before the 1000 cap)."""

    score: int
    source: str
    reasons: tuple[Reason, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "source": self.source, "reasons": [r.to_json() for r in self.reasons]}


@dataclass(slots=True)
class RiskFacts:
    """What the early-warning score looks at for one borrower, as of one day."""

    broken_promises: int = 0
    first_payment_missed: int = 0  # loans whose first installment is overdue and not fully paid
    days_past_due: int = 0  # of the oldest overdue, not fully paid installment
    overdue_installments: int = 0  # overdue and not fully paid
    partial_payments: int = 0  # overdue installments partly paid
    unreached_contacts: int = 0  # in the last CONTACT_DAYS days: went out, reached nobody
    flagged_addresses: int = 0  # wrong number, landline, invalid...
    phone_numbers: int = 0  # distinct phone numbers the borrower has had
    # The lender's values: the borrower's, and each loan's (loan id -> value).
    risk_score: int | None = None
    segment: str | None = None
    loan_scores: dict[str, int | None] = field(default_factory=dict)
    loan_segments: dict[str, str | None] = field(default_factory=dict)

    def lender_score(self, loan_id: str | None = None) -> int | None:
        """The loan's score when it has one, else the borrower's; for the borrower as a
        whole (no loan) the highest of the loans' scores, else the borrower's."""
        if loan_id is not None:
            value = self.loan_scores.get(loan_id)
            return self.risk_score if value is None else value
        scores = [s for s in self.loan_scores.values() if s is not None]
        return max(scores) if scores else self.risk_score

    def lender_segment(self, loan_id: str | None = None) -> str | None:
        """The loan's segment when it has one, else the borrower's."""
        value = self.loan_segments.get(loan_id) if loan_id is not None else None
        return self.segment if value is None else value


def _add(out: list[Reason], code: str, count: int, text: str) -> None:
    per, most = WEIGHTS[code]
    if count > 0:
        out.append(Reason(min(per * count, most), code, text))


def early_warning(facts: RiskFacts) -> RiskScore:
    """The early-warning score of ``facts``: the sum of the reasons' points, at most 1000."""
    reasons: list[Reason] = []
    n = facts.broken_promises
    _add(reasons, "broken_promise", n, f"{n} broken promise{'s' if n != 1 else ''} to pay")
    n = facts.first_payment_missed
    _add(reasons, "first_payment_missed", n, "the first installment of a loan is overdue and unpaid")
    dpd = facts.days_past_due
    _add(reasons, "days_past_due_30", int(dpd > 30), f"{dpd} days past due (more than 30)")
    _add(reasons, "days_past_due_60", int(dpd > 60), f"{dpd} days past due (more than 60)")
    n = facts.overdue_installments
    _add(reasons, "arrears_rising", int(n >= 2), f"{n} installments overdue: the arrears are growing")
    n = facts.partial_payments
    _add(reasons, "partial_payment", n, f"{n} overdue installment{'s' if n != 1 else ''} only partly paid")
    n = facts.unreached_contacts
    _add(reasons, "unreached_contacts", n,
         f"{n} contact{'s' if n != 1 else ''} in the last {CONTACT_DAYS} days reached nobody")
    n = facts.flagged_addresses
    _add(reasons, "address_flagged", n, f"{n} address{'es' if n != 1 else ''} flagged (wrong number, invalid...)")
    n = max(facts.phone_numbers - 1, 0)
    _add(reasons, "phone_changed", n, f"the phone number changed {n} time{'s' if n != 1 else ''}")
    return RiskScore(min(sum(r.points for r in reasons), MAX_SCORE), EARLY_WARNING, tuple(reasons))


def score_for(facts: RiskFacts, loan_id: str | None = None, source: str | None = None) -> RiskScore | None:
    """The score a policy condition compares: with ``source`` None the lender's score when
    there is one, else the early-warning score; ``lender`` (None without a lender's score)
    or ``early_warning`` to ask for one of them."""
    if source != EARLY_WARNING:
        lender = facts.lender_score(loan_id)
        if lender is not None:
            return RiskScore(lender, LENDER)
        if source == LENDER:
            return None
    return early_warning(facts)


def summary(facts: RiskFacts) -> dict[str, Any]:
    """The borrower as a whole, for people (``bot why``, the console, the API): the score a
    condition compares with its source, the lender's values, the early warning with its reasons."""
    chosen = score_for(facts)
    assert chosen is not None  # without a source asked for there is always the early warning
    return {"score": chosen.score, "source": chosen.source, "lender_score": facts.lender_score(),
            "segment": facts.segment, "early_warning": early_warning(facts).to_json()}


# --- loading, set-based --------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def load_facts(db: Session | Connection, borrower_ids: Collection[str], at: datetime,
               default_timezone: str) -> dict[str, RiskFacts]:
    """The facts of these borrowers at instant ``at`` (days past due in the borrower's own
    day: ``borrowers.timezone``, else ``default_timezone``), in six queries per 500 borrowers."""
    ids = sorted(set(borrower_ids))
    out: dict[str, RiskFacts] = {}
    for start in range(0, len(ids), 500):
        out.update(_load_chunk(db, ids[start:start + 500], at, default_timezone))
    return out


def _load_chunk(db: Session | Connection, ids: list[str], at: datetime,
                default_timezone: str) -> dict[str, RiskFacts]:
    from sqlalchemy import func, select

    from bot.db.models import Borrower, Consent, ContactAttempt, Loan, Promise

    facts: dict[str, RiskFacts] = {}
    today: dict[str, date] = {}
    for bid, score, segment, zone in db.execute(
            select(Borrower.id, Borrower.risk_score, Borrower.segment, Borrower.timezone)
            .where(Borrower.id.in_(ids))):
        facts[bid] = RiskFacts(risk_score=score, segment=segment)
        today[bid] = at.astimezone(_zone(zone or default_timezone)).date()
    for loan_id, bid, score, segment in db.execute(
            select(Loan.id, Loan.borrower_id, Loan.risk_score, Loan.segment).where(Loan.borrower_id.in_(ids))):
        facts[bid].loan_scores[loan_id] = score
        facts[bid].loan_segments[loan_id] = segment
    _installments(db, ids, facts, today)
    for bid, n in db.execute(
            select(Promise.borrower_id, func.count()).where(
                Promise.borrower_id.in_(ids), Promise.status == PromiseStatus.BROKEN.value)
            .group_by(Promise.borrower_id)):
        facts[bid].broken_promises = int(n)
    a = ContactAttempt
    went_out = (a.source == AttemptSource.IMPORT.value) | a.status.in_(_HAPPENED)
    for bid, n in db.execute(
            select(a.borrower_id, func.count()).where(
                a.borrower_id.in_(ids), went_out, a.outcome.in_(UNREACHED),
                a.occurred_at >= at - timedelta(days=CONTACT_DAYS), a.occurred_at <= at)
            .group_by(a.borrower_id)):
        facts[bid].unreached_contacts = int(n)
    phone = Consent.channel.in_(("sms", "voice"))
    for bid, numbers, flagged in db.execute(
            select(Consent.borrower_id,
                   func.count(func.distinct(Consent.address)).filter(phone),
                   func.count(func.distinct(Consent.address)).filter(Consent.address_flag.is_not(None)))
            .where(Consent.borrower_id.in_(ids)).group_by(Consent.borrower_id)):
        facts[bid].phone_numbers = int(numbers or 0)
        facts[bid].flagged_addresses = int(flagged or 0)
    return facts


def _installments(db: Session | Connection, ids: list[str], facts: dict[str, RiskFacts],
                  today: dict[str, date]) -> None:
    """Days past due, overdue and partly paid installments, missed first installments."""
    from sqlalchemy import select

    from bot.db.models import Installment, Loan

    by_loan: dict[str, list[Any]] = defaultdict(list)
    for row in db.execute(
            select(Loan.borrower_id, Installment.loan_id, Installment.due_date, Installment.amount_due_minor,
                   Installment.covered_minor)
            .join(Loan, Loan.id == Installment.loan_id).where(Loan.borrower_id.in_(ids))
            .order_by(Installment.loan_id, Installment.due_date, Installment.id)):
        by_loan[row.loan_id].append(row)
    for rows in by_loan.values():
        f = facts[rows[0].borrower_id]
        day = today[rows[0].borrower_id]
        overdue = [r for r in rows if r.due_date < day and r.covered_minor < r.amount_due_minor]
        f.first_payment_missed += int(bool(overdue) and overdue[0] is rows[0])
        f.overdue_installments += len(overdue)
        f.partial_payments += sum(1 for r in overdue if r.covered_minor > 0)
        if overdue:
            f.days_past_due = max(f.days_past_due, (day - overdue[0].due_date).days)


# --- the borrowers to watch (``bot risk``) ---------------------------------------------------

#: Installments falling due within this many days count as "soon due" for ``bot risk``.
SOON_DAYS = 7


def watch_list(session: Session, at: datetime, *, default_timezone: str, top: int = 20,
               soon_days: int = SOON_DAYS) -> dict[str, Any]:
    """Borrowers with an outstanding installment overdue or due within ``soon_days`` of ``at``'s
    UTC date, ranked by the score a policy compares (the lender's, else the early warning),
    then by the early-warning score and the id.  Names and phone numbers are masked."""
    from sqlalchemy import func, select

    from bot.db.models import Borrower, Installment, Loan
    from bot.ledger import OPEN
    from bot.privacy import mask_name, mask_phone

    horizon = at.date() + timedelta(days=soon_days)
    next_due = dict(session.execute(
        select(Loan.borrower_id, func.min(Installment.due_date))
        .join(Installment, Installment.loan_id == Loan.id)
        .where(OPEN, Installment.due_date <= horizon).group_by(Loan.borrower_id)).all())
    facts = load_facts(session, next_due, at, default_timezone)
    ranked = []
    for bid, f in facts.items():
        warning = early_warning(f)
        lender = f.lender_score()
        chosen = warning if lender is None else RiskScore(lender, LENDER)  # score_for, computed once
        ranked.append((chosen.score, warning.score, bid, chosen, warning, f))
    ranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
    shown = ranked[:top]
    people = {bid: (name, phone) for bid, name, phone in session.execute(
        select(Borrower.id, Borrower.full_name, Borrower.phone_e164).where(Borrower.id.in_([r[2] for r in shown])))}
    rows = []
    for score, _ew, bid, chosen, warning, f in shown:
        name, phone = people[bid]
        rows.append({
            "borrower_id": bid, "name": mask_name(name), "phone": mask_phone(phone),
            "score": score, "source": chosen.source, "lender_score": f.lender_score(), "segment": f.segment,
            "early_warning": warning.score, "days_past_due": f.days_past_due,
            "next_due": next_due[bid].isoformat(),
            "reasons": [r.to_json() for r in warning.reasons],
        })
    return {"at": at.isoformat(), "soon_days": soon_days, "borrowers": len(ranked), "top": top, "items": rows}
