"""What counts as paid (bot.ledger): the rule, and every command that must obey it.

The rule is tested pure (a case table of statements and payments), then end to end
through the real importer and the commands a lender uses (``bot import``,
``bot check``, ``bot why``, ``bot plan``, ``bot show``) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.db.models import ContactAttempt, Installment, Loan
from bot.ledger import allocate, loan_total, settle_loans

BORROWERS = "borrower_id,full_name,phone,email,locale,timezone,region,country,consent_sms,consent_voice,consent_email"
LOANS = "loan_id,borrower_id,product,principal,currency,opened_on"
INSTALLMENTS = "installment_id,loan_id,due_date,amount_due,amount_paid"
PAYMENTS = "payment_id,loan_id,paid_at,amount"

# Monday 30 November 2026, 14:00 UTC = 09:00 in New York: inside contact hours.
AT = "2026-11-30T14:00:00Z"
T0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


# --- the rule, pure --------------------------------------------------------------------


def _i(iid: str, due: str, amount: int, stated: int = 0) -> tuple[str, date, int, int]:
    return (iid, date.fromisoformat(due), amount, stated)


THREE = [_i("I1", "2026-10-01", 100), _i("I2", "2026-11-01", 100), _i("I3", "2026-12-01", 100)]


@pytest.mark.parametrize(
    ("installments", "total", "covered", "credit"),
    [
        (THREE, 0, [0, 0, 0], 0),  # nothing paid
        (THREE, 100, [100, 0, 0], 0),  # one installment, oldest first
        (THREE, 150, [100, 50, 0], 0),  # partial: the rest stays owed
        (THREE, 250, [100, 100, 50], 0),  # across installments
        (THREE, 350, [100, 100, 100], 50),  # overpayment: credit
        # out of order in the input: allocation follows the due date, then the id
        (list(reversed(THREE)), 150, [100, 50, 0], 0),
        # a statement that marks a later installment paid keeps it; the rest goes oldest first
        ([_i("I1", "2026-10-01", 100), _i("I2", "2026-11-01", 100, stated=100)], 150, [50, 100], 0),
        # a stated amount above the amount due counts as paid on the loan (credit)
        ([_i("I1", "2026-10-01", 100, stated=130), _i("I2", "2026-11-01", 100)], 130, [100, 30], 0),
    ],
)
def test_allocation(installments: list, total: int, covered: list[int], credit: int) -> None:
    covers, left = allocate(installments, total)
    by_id = {c.installment_id: c.covered_minor for c in covers}
    assert [by_id[i] for i in ("I1", "I2", "I3")[: len(covered)]] == covered
    assert left == credit
    assert sum(by_id.values()) + left == max(total, sum(i[3] for i in installments))


STATED_AT = datetime(2026, 11, 20, tzinfo=UTC)
BEFORE, AFTER = STATED_AT - timedelta(days=3), STATED_AT + timedelta(days=1)


@pytest.mark.parametrize(
    ("stated", "payments", "total"),
    [
        (0, [(BEFORE, 100)], 100),  # payments only
        (100, [], 100),  # statements only
        (100, [(BEFORE, 100)], 100),  # both, consistent: not counted twice
        (100, [(BEFORE, 60)], 100),  # a statement above the payments it includes wins
        (100, [(BEFORE, 100), (BEFORE, 50)], 150),  # payments above the statement win
        (100, [(AFTER, 40)], 140),  # a payment after the statement adds to it
        (100, [(BEFORE, 100), (AFTER, 40)], 140),
        (0, [(STATED_AT, 70)], 70),  # at the instant of the statement: part of it
    ],
)
def test_loan_total(stated: int, payments: list[tuple[datetime, int]], total: int) -> None:
    assert loan_total(stated, payments, STATED_AT) == total


# --- through the importer and the commands ----------------------------------------------


def write(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def loan_files(tmp_path: Path) -> dict[str, Path]:
    """One New York borrower, one loan, three installments: one overdue (D+10), one due in
    two days, one next month; nothing paid in the statement."""
    return {
        "borrowers": write(tmp_path / "borrowers.csv", BORROWERS,
                           "B1,Ann Lee,+12125550143,ann@example.com,en-US,America/New_York,NY,US,yes,yes,yes"),
        "loans": write(tmp_path / "loans.csv", LOANS, "L1,B1,personal,3000.00,USD,2026-01-01"),
        "installments": write(tmp_path / "installments.csv", INSTALLMENTS,
                              "I1,L1,2026-11-20,100.00,0", "I2,L1,2026-12-02,100.00,0",
                              "I3,L1,2027-01-02,100.00,0"),
    }


def imported(run_bot, db_url: str, *files: Path) -> dict:
    result = run_bot("import", "--json", *map(str, files), db_url=db_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check(run_bot, db_url: str, channel: str = "sms") -> dict:
    result = run_bot("check", "B1", "--channel", channel, "--at", AT, "--json", db_url=db_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def covered(db: Database) -> dict[str, int]:
    with db.sessions() as s:
        return dict(s.execute(select(Installment.id, Installment.covered_minor)).all())


def planned(run_bot, db_url: str) -> list[ContactAttempt]:
    result = run_bot("plan", "--at", AT, "--json", db_url=db_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_payments_file_that_pays_in_full_stops_contact(db: Database, db_url: str, run_bot,
                                                         loan_files: dict[str, Path], tmp_path: Path) -> None:
    files = dict(loan_files)
    files["installments"] = write(tmp_path / "one.csv", INSTALLMENTS, "I1,L1,2026-11-20,100.00,0")
    imported(run_bot, db_url, *files.values())
    assert check(run_bot, db_url)["allowed"] is True
    payments = write(tmp_path / "payments.csv", PAYMENTS, "P1,L1,2026-11-29T10:00:00Z,100.00")
    imported(run_bot, db_url, payments)
    for channel in ("sms", "email", "voice"):
        decision = check(run_bot, db_url, channel)
        assert decision["allowed"] is False and "paid" in decision["reasons"], decision
    why = run_bot("why", "B1", "--at", AT, db_url=db_url)
    assert why.exit_code == 0 and "paid" in why.output
    report = planned(run_bot, db_url)
    assert report["by_status"].get("planned", 0) == 0 and report["selected_installments"] == 0


def test_installments_only_feed(db: Database, db_url: str, run_bot, loan_files: dict[str, Path],
                                tmp_path: Path) -> None:
    imported(run_bot, db_url, *loan_files.values())
    write(loan_files["installments"], INSTALLMENTS, "I1,L1,2026-11-20,100.00,100.00",
          "I2,L1,2026-12-02,100.00,0", "I3,L1,2027-01-02,100.00,0")
    imported(run_bot, db_url, loan_files["installments"])
    assert covered(db) == {"I1": 10_000, "I2": 0, "I3": 0}
    # I2 (due in two days) is still owed: the borrower is contactable about it, not about I1
    assert check(run_bot, db_url)["allowed"] is True
    with db.sessions() as s:
        about = {a.installment_id for a in s.scalars(select(ContactAttempt))}
    assert "I1" not in about


def test_statement_and_payments_together_are_not_counted_twice(db: Database, db_url: str, run_bot,
                                                              loan_files: dict[str, Path], tmp_path: Path) -> None:
    write(loan_files["installments"], INSTALLMENTS, "I1,L1,2026-11-20,100.00,100.00",
          "I2,L1,2026-12-02,100.00,0", "I3,L1,2027-01-02,100.00,0")
    payments = write(tmp_path / "payments.csv", PAYMENTS, "P1,L1,2026-11-19T10:00:00Z,100.00")
    imported(run_bot, db_url, *loan_files.values(), payments)
    assert covered(db) == {"I1": 10_000, "I2": 0, "I3": 0}
    # The same payment file again, in a later run: still once
    imported(run_bot, db_url, payments)
    assert covered(db) == {"I1": 10_000, "I2": 0, "I3": 0}
    # A payment posted after the statement adds to it
    later = write(tmp_path / "later.csv", PAYMENTS, "P2,L1,2026-11-30T13:00:00Z,100.00")
    imported(run_bot, db_url, later)
    assert covered(db) == {"I1": 10_000, "I2": 10_000, "I3": 0}
    # ... and a new statement that includes it does not count it twice
    write(loan_files["installments"], INSTALLMENTS, "I1,L1,2026-11-20,100.00,100.00",
          "I2,L1,2026-12-02,100.00,100.00", "I3,L1,2027-01-02,100.00,0")
    imported(run_bot, db_url, loan_files["installments"])
    assert covered(db) == {"I1": 10_000, "I2": 10_000, "I3": 0}


def test_a_partial_payment_keeps_the_installment_contactable_for_the_rest(
        db: Database, db_url: str, run_bot, loan_files: dict[str, Path], tmp_path: Path) -> None:
    payments = write(tmp_path / "payments.csv", PAYMENTS, "P1,L1,2026-11-25T10:00:00Z,40.00")
    imported(run_bot, db_url, *loan_files.values(), payments)
    assert covered(db) == {"I1": 4_000, "I2": 0, "I3": 0}
    assert check(run_bot, db_url)["allowed"] is True
    shown = run_bot("show", "B1", "--json", db_url=db_url)
    assert shown.exit_code == 0, shown.output
    [loan] = json.loads(shown.stdout)["loans"]
    first = next(i for i in loan["installments"] if i["id"] == "I1")
    assert first["status"] == "partly paid" and first["outstanding"]["minor"] == 6_000


def test_an_overpayment_covers_later_installments_and_stays_as_credit(
        db: Database, db_url: str, run_bot, loan_files: dict[str, Path], tmp_path: Path) -> None:
    payments = write(tmp_path / "payments.csv", PAYMENTS, "P1,L1,2026-11-25T10:00:00Z,250.00",
                     "P2,L1,2026-11-26T10:00:00Z,100.00")
    imported(run_bot, db_url, *loan_files.values(), payments)
    assert covered(db) == {"I1": 10_000, "I2": 10_000, "I3": 10_000}
    with db.sessions() as s:
        assert s.scalar(select(Loan.credit_minor).where(Loan.id == "L1")) == 5_000
    decision = check(run_bot, db_url)
    assert decision["allowed"] is False and "paid" in decision["reasons"]
    # A new installment is covered by the credit, as far as it goes
    more = write(tmp_path / "more.csv", INSTALLMENTS, "I4,L1,2027-02-02,100.00,0")
    imported(run_bot, db_url, more)
    assert covered(db)["I4"] == 5_000
    with db.sessions() as s:
        assert s.scalar(select(Loan.credit_minor).where(Loan.id == "L1")) == 0


def test_a_payment_between_plan_and_send_cancels_what_was_waiting(
        db: Database, db_url: str, run_bot, loan_files: dict[str, Path], tmp_path: Path) -> None:
    imported(run_bot, db_url, *loan_files.values())
    report = planned(run_bot, db_url)
    assert report["by_status"]["planned"] >= 1
    with db.sessions() as s:
        waiting = {a.id: a.installment_id for a in s.scalars(
            select(ContactAttempt).where(ContactAttempt.status.in_(("planned", "deferred"))))}
    assert "I1" in waiting.values()
    payments = write(tmp_path / "payments.csv", PAYMENTS, "P1,L1,2026-11-30T13:30:00Z,100.00")
    summary = imported(run_bot, db_url, payments)
    assert summary["files"][0]["inserted"] == 1
    with db.sessions() as s:
        rows = {a.id: a for a in s.scalars(select(ContactAttempt))}
    for attempt_id, installment_id in waiting.items():
        row = rows[attempt_id]
        if installment_id == "I1":
            assert row.status == "cancelled" and row.decision["reasons"] == ["paid"], row.decision
        else:
            assert row.status in {"planned", "deferred"}
    # Planning again changes nothing about I1
    planned(run_bot, db_url)
    with db.sessions() as s:
        live = s.scalars(select(ContactAttempt).where(ContactAttempt.installment_id == "I1",
                                                      ContactAttempt.status.in_(("planned", "deferred")))).all()
    assert live == []


def test_settling_is_idempotent_and_locks_nothing_it_does_not_need(db: Database) -> None:
    with db.session() as s:
        assert settle_loans(s, ["no-such-loan"], at=T0) == {}
