"""The one way the tests write borrowers, consents, loans and installments.

Not a test module: pytest collects nothing here.  tests/conftest.py exposes it
as the ``build`` fixture (bound to the test's ``db``); support modules and tests
that write inside a session of their own call the functions directly.

It writes the rows an import of the same borrower leaves: the borrower, a
granted consent per channel that has an address, the loan, its installments,
and, as the importer does, the loan settled by :func:`bot.ledger.settle_loans`
in the same transaction (so ``covered_minor`` and ``credit_minor`` are what
every reader expects; ``settle=False`` for a test that adds payments and
settles itself).

Defaults describe an ordinary borrower in New York owing $100.00; every column a
test relies on is a keyword.  ``phone``/``email`` default to addresses derived
from the digits of the borrower id (``B2`` is ``+12125550002`` and
``borrower2@example.com``), so several borrowers never share one; pass
``phone=None``/``email=None`` for a borrower without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.db import Database
from bot.db.models import Borrower, Consent, Installment, Loan
from bot.ledger import settle_loans

#: Saturday 10:00 in New York: the tests' usual "now" and the rows' default creation time.
AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
CHANNELS = ("sms", "voice", "email")
DERIVED: Any = object()  # ``phone``/``email`` default: derived from the borrower id

#: ``(id, due date)``, ``(id, due date, amount due)`` or ``(id, due date, amount due, amount paid)``.
InstallmentSpec = Sequence[Any]


def derived_phone(borrower_id: str) -> str:
    """The default phone of ``borrower_id``: ``+1212555`` and the id's digits on four places."""
    return f"+1212555{_number(borrower_id):04d}"


def derived_email(borrower_id: str) -> str:
    return f"borrower{_number(borrower_id)}@example.com"


def _number(borrower_id: str) -> int:
    return int("".join(ch for ch in borrower_id if ch.isdigit()) or "0")


@contextlib.contextmanager
def _session(target: Database | Session) -> Iterator[Session]:
    """``target`` itself when it is a session (the caller commits), else a new committed one."""
    if isinstance(target, Session):
        yield target
        target.flush()
    else:
        with target.session() as session:
            yield session


def add_borrower(
    target: Database | Session,
    borrower_id: str = "B1",
    *,
    name: str = "Jane Doe",
    phone: str | None = DERIVED,
    email: str | None = DERIVED,
    locale: str = "en-US",
    region: str | None = "NY",
    country: str = "US",
    timezone: str | None = None,
    consent: Iterable[str] = CHANNELS,
    opted_out: Iterable[str] = (),
    refused: Iterable[str] = (),
    cease: datetime | None = None,
    at: datetime = AT,
) -> None:
    """A borrower with a consent row for each channel of ``consent`` that has an address: granted
    but for those in ``refused``; those in ``opted_out`` were opted out by SMS the day before ``at``."""
    phone = derived_phone(borrower_id) if phone is DERIVED else phone
    email = derived_email(borrower_id) if email is DERIVED else email
    opted, denied = set(opted_out), set(refused)
    with _session(target) as s:
        s.add(Borrower(id=borrower_id, full_name=name, phone_e164=phone, email=email, locale=locale,
                       timezone=timezone, region=region, country=country, cease_communication_at=cease,
                       created_at=at, updated_at=at))
        s.flush()
        for channel in consent:
            address = email if channel == "email" else phone
            if address:
                s.add(Consent(borrower_id=borrower_id, channel=channel, address=address, granted=channel not in denied,
                              opted_out_at=at - timedelta(days=1) if channel in opted else None,
                              opt_out_source="sms" if channel in opted else None, updated_at=at))


def add_loan(
    target: Database | Session,
    borrower_id: str,
    loan_id: str,
    installments: Iterable[InstallmentSpec],
    *,
    amount: int = 10_000,
    paid: int = 0,
    currency: str = "USD",
    principal: int = 100_000,
    product: str = "personal",
    opened_on: date = date(2026, 1, 1),
    at: datetime = AT,
    settle: bool = True,
) -> None:
    """A loan of ``borrower_id`` with ``installments`` (``amount``/``paid`` unless a spec says), settled."""
    with _session(target) as s:
        s.add(Loan(id=loan_id, borrower_id=borrower_id, product=product, principal_minor=principal,
                   currency=currency, opened_on=opened_on, created_at=at, updated_at=at))
        s.flush()
        for spec in installments:
            installment_id, due, *figures = spec
            due_minor = figures[0] if len(figures) > 0 else amount
            paid_minor = figures[1] if len(figures) > 1 else paid
            s.add(Installment(id=installment_id, loan_id=loan_id, due_date=due, amount_due_minor=due_minor,
                              amount_paid_minor=paid_minor, created_at=at, updated_at=at))
        s.flush()
        if settle:
            settle_loans(s, [loan_id], at=at)


def add_account(
    target: Database | Session,
    borrower_id: str = "B1",
    *,
    due: date = date(2026, 11, 20),
    amount: int = 10_000,
    paid: int = 0,
    currency: str | None = None,
    loan_id: str | None = None,
    installment_id: str | None = None,
    principal: int = 100_000,
    **borrower: Any,
) -> None:
    """:func:`add_borrower` (``borrower`` keywords) with one loan ``<id>-L1`` and its one installment
    ``<loan>-I1`` due ``due``; the currency is CNY for a borrower in China, else USD."""
    at = borrower.get("at", AT)
    loan_id = loan_id or f"{borrower_id}-L1"
    with _session(target) as s:
        add_borrower(s, borrower_id, **borrower)
        add_loan(s, borrower_id, loan_id, [(installment_id or f"{loan_id}-I1", due, amount, paid)], at=at,
                 currency=currency or ("CNY" if borrower.get("country") == "CN" else "USD"), principal=principal)


@dataclass(frozen=True)
class Build:
    """The builder bound to one database (the ``build`` fixture): ``build.borrower(...)``,
    ``build.loan(...)``, ``build.account(...)`` take the functions' arguments after the target."""

    db: Database

    def borrower(self, borrower_id: str = "B1", **kwargs: Any) -> None:
        add_borrower(self.db, borrower_id, **kwargs)

    def loan(self, borrower_id: str, loan_id: str, installments: Iterable[InstallmentSpec], **kwargs: Any) -> None:
        add_loan(self.db, borrower_id, loan_id, installments, **kwargs)

    def account(self, borrower_id: str = "B1", **kwargs: Any) -> None:
        add_account(self.db, borrower_id, **kwargs)
