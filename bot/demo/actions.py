"""What simulated borrowers do besides texting: pay, keep promises, click unsubscribe links.

Payments reach the bot the way a lender's do: as a payments file and the updated
installments, imported with :func:`bot.importer.import_files` (the "payment
feed", kept in ``DIR/feed/`` for a look).  A borrower who pays settles every
outstanding installment due up to three days after their local today: the one
the reminder was about and anything overdue.

Unsubscribe clicks are the RFC 8058 one-click POST a mail provider sends for the
``List-Unsubscribe`` header of the email, to the bot's running web app.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from babel.numbers import get_currency_precision
from sqlalchemy import select

from bot.clock import Clock
from bot.compliance.zones import resolve_zones
from bot.db import Database
from bot.db.models import Borrower, Installment, Loan
from bot.demo.mailbox import Mail
from bot.ledger import OPEN

__all__ = ["PaymentFeed", "click_unsubscribe", "local_date"]

#: A payer settles installments due up to this many days after their local today.
PAY_AHEAD_DAYS = 3


def local_date(borrower: Borrower, at: datetime, default_timezone: str) -> date:
    """The borrower's date at ``at`` in their primary zone (as the planner reckons it)."""
    zones = resolve_zones(borrower.country, borrower.region, borrower.timezone, borrower.phone_e164,
                          default_timezone)
    return at.astimezone(zones.primary).date()


def _amount(minor: int, currency: str) -> str:
    decimals = get_currency_precision(currency)
    return str(Decimal(minor).scaleb(-decimals)) if decimals else str(minor)


@dataclass
class PaymentFeed:
    """Payments made since the last flush; :meth:`flush` imports them as the lender's files."""

    db: Database
    directory: Path
    clock: Clock
    default_timezone: str
    _pending: dict[str, datetime] = field(default_factory=dict)  # borrower id -> when they paid
    _serial: int = 0
    paid: dict[str, datetime] = field(default_factory=dict)  # every borrower who paid, and when

    def pay(self, borrower_id: str, at: datetime) -> None:
        if borrower_id not in self._pending:
            self._pending[borrower_id] = at

    def flush(self) -> int:
        """Import what was paid since the last flush; returns the number of payments."""
        if not self._pending:
            return 0
        payments: list[tuple[str, str, str, str]] = []
        installments: list[tuple[str, str, str, str, str]] = []
        with self.db.sessions() as session:
            rows = session.execute(
                select(Borrower, Loan, Installment)
                .join(Loan, Loan.borrower_id == Borrower.id)
                .join(Installment, Installment.loan_id == Loan.id)
                .where(Borrower.id.in_(sorted(self._pending)),
                       OPEN)
                .order_by(Borrower.id, Loan.id, Installment.due_date, Installment.id)
            ).all()
            by_loan: dict[str, list[Installment]] = {}
            loans: dict[str, Loan] = {}
            for borrower, loan, installment in rows:
                paid_at = self._pending[borrower.id]
                local_today = local_date(borrower, paid_at, self.default_timezone)
                if installment.due_date <= local_today + timedelta(days=PAY_AHEAD_DAYS):
                    by_loan.setdefault(loan.id, []).append(installment)
                    loans[loan.id] = loan
            for loan_id, due in by_loan.items():
                loan = loans[loan_id]
                owed = sum(i.outstanding_minor for i in due)
                self._serial += 1
                paid_at = self._pending[loan.borrower_id]
                payments.append((f"DEMO-P{self._serial:06d}", loan_id, paid_at.isoformat(),
                                 _amount(owed, loan.currency)))
                for i in due:
                    installments.append((i.id, loan_id, i.due_date.isoformat(),
                                         _amount(i.amount_due_minor, loan.currency),
                                         _amount(i.amount_due_minor, loan.currency)))
        self.paid.update(self._pending)
        self._pending.clear()
        if not payments:
            return 0
        self._import(payments, installments)
        return len(payments)

    def _import(self, payments: list[tuple[str, ...]], installments: list[tuple[str, ...]]) -> None:
        from bot.importer import import_files

        stamp = self.clock.now().strftime("%Y%m%dT%H%M")
        folder = self.directory / "feed"
        folder.mkdir(parents=True, exist_ok=True)
        files = [
            _write(folder / f"{stamp}-installments.csv",
                   ("installment_id", "loan_id", "due_date", "amount_due", "amount_paid"), installments),
            _write(folder / f"{stamp}-payments.csv", ("payment_id", "loan_id", "paid_at", "amount"), payments),
        ]
        import_files(self.db, files, clock=self.clock)


def _write(path: Path, header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def click_unsubscribe(mail: Mail, client: httpx.Client) -> bool:
    """The one-click unsubscribe POST for an email; True when the bot accepted it."""
    url = mail.unsubscribe_url()
    if url is None:
        return False
    response = client.post(url, data={"List-Unsubscribe": "One-Click"})
    return response.status_code == 200
