"""The README's demo command works end to end and shows no personal data."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import func, select

from bot.db import Database
from bot.db.models import Borrower, ContactAttempt, Installment


def test_demo_runs_end_to_end(run_bot, tmp_path: Path) -> None:
    result = run_bot("demo", "--dir", str(tmp_path / "demo"), "--borrowers", "60", "--at", "2026-11-28T15:00:00Z")
    assert result.exit_code == 0, result.output
    for step in ("create the database", "sample portfolio", "import it", "portfolio summary", "plan today's contacts"):
        assert step in result.stderr
    assert "0 rejected" in result.stdout and "contacts" in result.stdout

    db = Database(f"sqlite:///{tmp_path / 'demo' / 'bot.db'}")
    try:
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Borrower)) == 60
            assert s.scalar(select(func.count()).select_from(Installment)) > 300
            planned = s.scalar(select(func.count()).select_from(ContactAttempt).where(ContactAttempt.source == "planner"))
            assert planned and planned > 0
    finally:
        db.dispose()

    # Nothing personal on screen: no raw phone number, email or name of the sample borrowers.
    with (tmp_path / "demo" / "borrowers.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            assert row["full_name"] not in result.output
            if row["email"]:
                assert row["email"] not in result.output
            digits = "".join(ch for ch in row["phone"] if ch.isdigit())
            assert digits[-10:] not in result.output.replace("-", "").replace(" ", "")


def test_demo_is_repeatable(run_bot, tmp_path: Path) -> None:
    args = ("demo", "--dir", str(tmp_path / "d"), "--borrowers", "20", "--at", "2026-11-28T15:00:00Z")
    first = run_bot(*args)
    second = run_bot(*args)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
