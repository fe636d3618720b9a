"""Read models behind ``bot show`` and ``bot summary``.

Two questions people ask of a portfolio:

* *Who is this borrower and where do they stand?*  :func:`load_borrower` runs a
  fixed handful of queries per borrower (``selectinload`` for loans with their
  installments and payments, one query each for contacts, promises and tasks:
  never one query per loan), and :func:`borrower_document` turns the result into
  a plain, JSON-ready document, masked unless the caller reveals.
* *How does the whole book look today?*  :func:`portfolio_summary` answers with
  set-based aggregates (``GROUP BY`` and ``CASE``) that load no rows: a couple
  of seconds on a million installments.

Money is shown with Babel's ``format_currency`` in the borrower's locale; the
number of decimals of each currency is Babel's CLDR precision (0 for KRW), the
same rule the importer uses to turn file amounts into minor units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from bot.compliance.zones import resolve_zones
from bot.db.models import (
    AuditEvent,
    Borrower,
    Consent,
    ContactAttempt,
    Installment,
    Loan,
    Promise,
    Task,
)
from bot.domain import PromiseStatus, TaskStatus
from bot.errors import NotFoundError
from bot.ledger import OPEN, OUTSTANDING
from bot.privacy import mask_address, mask_email, mask_name, mask_phone, redact

__all__ = [
    "BorrowerRecord",
    "CONTACT_LIMIT",
    "audit_reveal",
    "borrower_document",
    "format_money",
    "installment_status",
    "load_borrower",
    "money",
    "portfolio_summary",
]

#: Contacts listed by ``bot show``; older ones are counted ("+N more").
CONTACT_LIMIT = 50

# --- money ------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _babel_locale(tag: str | None) -> Locale:
    try:
        return Locale.parse((tag or "en-US").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en_US")


def format_money(minor: int, currency: str, locale: str | None) -> str:
    """``123450, "USD", "en-US"`` → ``$1,234.50``; ``1500000, "KRW", "ko-KR"`` → ``₩1,500,000``."""
    precision = get_currency_precision(currency)
    return format_currency(Decimal(minor).scaleb(-precision), currency, locale=_babel_locale(locale))


def money(minor: int, currency: str, locale: str | None) -> dict[str, Any]:
    """The JSON form of an amount: exact minor units plus the text people read."""
    return {"minor": minor, "currency": currency, "text": format_money(minor, currency, locale)}


# --- one borrower ------------------------------------------------------------------------


@dataclass(frozen=True)
class BorrowerRecord:
    """Everything ``bot show`` prints about one borrower, as loaded from the database."""

    borrower: Borrower
    contacts: Sequence[ContactAttempt]  # most recent first, at most the limit asked for
    contact_total: int
    promises: Sequence[Promise]
    open_tasks: Sequence[Task]


def load_borrower(session: Session, borrower_id: str, *, contact_limit: int = CONTACT_LIMIT) -> BorrowerRecord:
    """Load a borrower with a fixed number of queries (nine), however many loans they have.

    Raises :class:`NotFoundError` for an unknown id.
    """
    borrower = session.get(
        Borrower,
        borrower_id,
        options=[
            selectinload(Borrower.loans).selectinload(Loan.installments),
            selectinload(Borrower.loans).selectinload(Loan.payments),
            selectinload(Borrower.consents),
        ],
    )
    if borrower is None:
        raise NotFoundError(f"no borrower with id {borrower_id}")
    when = func.coalesce(ContactAttempt.occurred_at, ContactAttempt.next_attempt_at, ContactAttempt.created_at)
    contacts = session.scalars(
        select(ContactAttempt)
        .where(ContactAttempt.borrower_id == borrower_id)
        .order_by(when.desc(), ContactAttempt.id.desc())
        .limit(contact_limit)
    ).all()
    total = session.scalar(
        select(func.count()).select_from(ContactAttempt).where(ContactAttempt.borrower_id == borrower_id)
    )
    promises = session.scalars(
        select(Promise).where(Promise.borrower_id == borrower_id).order_by(Promise.created_at.desc(), Promise.id.desc())
    ).all()
    tasks = session.scalars(
        select(Task)
        .where(Task.borrower_id == borrower_id, Task.status == TaskStatus.OPEN.value)
        .order_by(Task.created_at, Task.id)
    ).all()
    return BorrowerRecord(borrower, contacts, int(total or 0), promises, tasks)


def installment_status(installment: Installment, today: date) -> tuple[str, int]:
    """``(status, days past due)`` of an installment on the borrower's ``today``.

    Status says how much is paid, then whether the rest is late: ``paid``,
    ``partly paid``, ``overdue`` (nothing paid, due date passed) or ``due``
    (nothing paid yet, due today or later).  Days past due count from the day
    after the due date and are 0 once the installment is paid.
    """
    outstanding = installment.outstanding_minor
    late = (today - installment.due_date).days
    days_past_due = late if outstanding > 0 and late > 0 else 0
    if outstanding == 0:
        return "paid", 0
    if installment.covered_minor > 0:
        return "partly paid", days_past_due
    return ("overdue" if days_past_due else "due"), days_past_due


def _iso(value: datetime | date | None, zone: ZoneInfo | None = None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime) and zone is not None:
        return value.astimezone(zone).isoformat()
    return value.isoformat()


def borrower_document(
    record: BorrowerRecord, *, at: datetime, default_timezone: str, reveal: bool = False
) -> dict[str, Any]:
    """The document ``bot show --json`` prints (shape in docs/cli.md).

    Masked unless ``reveal``: the name, phone number, email address, consent
    and contact addresses go through :mod:`bot.privacy`; task notes (stored
    redacted) are redacted again as a second line of defence.
    """
    b = record.borrower
    zones = resolve_zones(b.country, b.region, b.timezone, b.phone_e164, default_timezone)
    zone = zones.primary
    today = at.astimezone(zone).date()
    locale = b.locale

    def shown(value: str | None, mask: Any) -> str | None:
        if value is None:
            return None
        return value if reveal else mask(value)

    loans = []
    currency_of: dict[str, str] = {}
    for loan in b.loans:
        currency_of[loan.id] = loan.currency
        rows = []
        outstanding = overdue = 0
        for inst in loan.installments:
            status, dpd = installment_status(inst, today)
            outstanding += inst.outstanding_minor
            if dpd:
                overdue += inst.outstanding_minor
            rows.append({
                "id": inst.id,
                "due_date": inst.due_date.isoformat(),
                "amount_due": money(inst.amount_due_minor, loan.currency, locale),
                "amount_paid": money(inst.covered_minor, loan.currency, locale),
                "outstanding": money(inst.outstanding_minor, loan.currency, locale),
                "status": status,
                "days_past_due": dpd,
            })  # fmt: skip
        loans.append({
            "id": loan.id,
            "product": loan.product,
            "currency": loan.currency,
            "opened_on": loan.opened_on.isoformat(),
            "principal": money(loan.principal_minor, loan.currency, locale),
            "outstanding": money(outstanding, loan.currency, locale),
            "overdue": money(overdue, loan.currency, locale),
            "installments": rows,
            "payments": [
                {"id": p.id, "paid_at": _iso(p.paid_at, zone), "amount": money(p.amount_minor, loan.currency, locale)}
                for p in loan.payments
            ],
        })  # fmt: skip

    currencies = sorted(set(currency_of.values()))
    only_currency = currencies[0] if len(currencies) == 1 else None

    def promise_amount(p: Promise) -> dict[str, Any] | None:
        if p.amount_minor is None:
            return None
        currency = currency_of.get(p.loan_id or "", only_currency)
        if currency is None:
            return {"minor": p.amount_minor, "currency": None, "text": str(p.amount_minor)}
        return money(p.amount_minor, currency, locale)

    return {
        "at": at.isoformat(),
        "masked": not reveal,
        "borrower": {
            "id": b.id,
            "name": shown(b.full_name, mask_name),
            "phone": shown(b.phone_e164, mask_phone),
            "email": shown(b.email, mask_email),
            "locale": b.locale,
            "country": b.country,
            "region": b.region,
            "timezone": b.timezone,
            "zones": list(zones.names),
            "local_today": today.isoformat(),
            "cease_communication_at": _iso(b.cease_communication_at),
        },
        "loans": loans,
        "consents": [
            {
                "channel": c.channel,
                "address": c.address if reveal else mask_address(c.address, c.channel),
                "granted": c.granted,
                "opted_out_at": _iso(c.opted_out_at),
                "opt_out_source": c.opt_out_source,
                "address_flag": c.address_flag,
            }
            for c in b.consents
        ],
        "contacts": {
            "total": record.contact_total,
            "more": max(record.contact_total - len(record.contacts), 0),
            "items": [
                {
                    "occurred_at": _iso(c.occurred_at, zone),
                    "next_attempt_at": _iso(c.next_attempt_at, zone),
                    "channel": c.channel,
                    "loan_id": c.loan_id,
                    "installment_id": c.installment_id,
                    "source": c.source,
                    "status": c.status,
                    "outcome": c.outcome,
                    "step": c.step,
                    "address": c.address if reveal else mask_address(c.address, c.channel),
                    "reasons": list((c.decision or {}).get("reasons") or []),
                }
                for c in record.contacts
            ],
        },
        "promises": [
            {
                "id": p.id,
                "loan_id": p.loan_id,
                "promised_date": p.promised_date.isoformat(),
                "amount": promise_amount(p),
                "status": p.status,
                "source": p.source,
                "created_at": _iso(p.created_at, zone),
                "resolved_at": _iso(p.resolved_at, zone),
            }
            for p in record.promises
        ],
        "open_tasks": [
            {
                "id": t.id,
                "kind": t.kind,
                "loan_id": t.loan_id,
                "source": t.source,
                "assigned_to": t.assigned_to,
                "created_at": _iso(t.created_at, zone),
                "note": t.note if (reveal or t.note is None) else redact(t.note),
            }
            for t in record.open_tasks
        ],
    }


def revealed_fields(record: BorrowerRecord) -> list[str]:
    """The personal fields a reveal of this borrower shows (for the audit record)."""
    b = record.borrower
    fields = ["full_name"]
    if b.phone_e164:
        fields.append("phone")
    if b.email:
        fields.append("email")
    if b.consents:
        fields.append("consent_addresses")
    if any(c.address for c in record.contacts):
        fields.append("contact_addresses")
    return fields


def audit_reveal(session: Session, record: BorrowerRecord, *, actor: str, at: datetime) -> AuditEvent:
    """Record that ``actor`` saw this borrower unmasked; the detail names fields, never values."""
    event = AuditEvent(
        at=at,
        actor=actor,
        action="reveal",
        subject_type="borrower",
        subject_id=record.borrower.id,
        detail={"fields": revealed_fields(record)},
    )
    session.add(event)
    session.flush()
    return event


# --- the whole portfolio ----------------------------------------------------------------------

#: Buckets of unpaid installments by due date relative to ``today``, in display order.
BUCKETS = ("overdue_31_plus", "overdue_8_30", "overdue_1_7", "due_today", "due_next_7_days", "later")


def portfolio_summary(session: Session, today: date, *, locale: str = "en-US") -> dict[str, Any]:
    """Counts and amounts of the whole portfolio on ``today`` (one calendar day for all).

    Unpaid installments (amount paid below amount due) fall in one bucket each:
    overdue 31+ days, 8-30, 1-7, due today, due in the next 7 days (tomorrow
    to today + 7), later.  Seven aggregate queries, none of which loads rows.
    """
    by_country = dict(
        session.execute(select(Borrower.country, func.count()).group_by(Borrower.country).order_by(Borrower.country)).all()
    )
    by_locale = dict(
        session.execute(select(Borrower.locale, func.count()).group_by(Borrower.locale).order_by(Borrower.locale)).all()
    )
    ceased = session.scalar(select(func.count()).where(Borrower.cease_communication_at.is_not(None)))
    loans_by_currency = dict(
        session.execute(select(Loan.currency, func.count()).group_by(Loan.currency).order_by(Loan.currency)).all()
    )
    installments_total = session.scalar(select(func.count()).select_from(Installment))

    due = Installment.due_date
    bucket = case(
        (due < today - timedelta(days=30), "overdue_31_plus"),
        (due < today - timedelta(days=7), "overdue_8_30"),
        (due < today, "overdue_1_7"),
        (due == today, "due_today"),
        (due <= today + timedelta(days=7), "due_next_7_days"),
        else_="later",
    ).label("bucket")
    unpaid = OUTSTANDING.label("unpaid")
    # The CASE sits in a subquery so that GROUP BY names a column: PostgreSQL
    # would not match a repeated CASE whose dates are separate bind parameters.
    open_rows = (
        select(Loan.currency.label("currency"), bucket, unpaid)
        .select_from(Installment)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(OPEN)
        .subquery()
    )
    rows = session.execute(
        select(open_rows.c.currency, open_rows.c.bucket, func.count(), func.sum(open_rows.c.unpaid))
        .group_by(open_rows.c.currency, open_rows.c.bucket)
        .order_by(open_rows.c.currency, open_rows.c.bucket)
    ).all()
    counts = dict.fromkeys(BUCKETS, 0)
    amounts: dict[str, dict[str, int]] = {}
    for currency, name, count, total in rows:
        counts[name] += int(count)
        per = amounts.setdefault(currency, {"outstanding": 0, "overdue": 0})
        per["outstanding"] += int(total or 0)
        if name.startswith("overdue"):
            per["overdue"] += int(total or 0)

    consent_rows = session.execute(
        select(
            Consent.channel,
            func.count(),
            func.sum(case((Consent.granted.is_(True), 1), else_=0)),
            func.sum(case((Consent.opted_out_at.is_not(None), 1), else_=0)),
            func.sum(case((Consent.address_flag.is_not(None), 1), else_=0)),
        )
        .group_by(Consent.channel)
        .order_by(Consent.channel)
    ).all()
    promises_pending = session.scalar(
        select(func.count()).select_from(Promise).where(Promise.status == PromiseStatus.PENDING.value)
    )
    open_tasks = session.scalar(select(func.count()).select_from(Task).where(Task.status == TaskStatus.OPEN.value))

    return {
        "today": today.isoformat(),
        "borrowers": {
            "total": sum(by_country.values()),
            "by_country": by_country,
            "by_locale": by_locale,
            "cease_communication": int(ceased or 0),
        },
        "loans": {"total": sum(loans_by_currency.values()), "by_currency": loans_by_currency},
        "installments": {
            "total": int(installments_total or 0),
            "unpaid": sum(counts.values()),
            "due_today": counts["due_today"],
            "due_next_7_days": counts["due_next_7_days"],
            "overdue": {
                "1-7": counts["overdue_1_7"],
                "8-30": counts["overdue_8_30"],
                "31+": counts["overdue_31_plus"],
            },
            "later": counts["later"],
        },
        "amounts": {
            currency: {
                "outstanding": money(v["outstanding"], currency, locale),
                "overdue": money(v["overdue"], currency, locale),
            }
            for currency, v in sorted(amounts.items())
        },
        "consents": {
            channel: {
                "addresses": int(total),
                "granted": int(granted or 0),
                "not_granted": int(total) - int(granted or 0),
                "opted_out": int(opted or 0),
                "flagged": int(flagged or 0),
            }
            for channel, total, granted, opted, flagged in consent_rows
        },
        "promises_pending": int(promises_pending or 0),
        "open_tasks": int(open_tasks or 0),
    }
