"""``bot attempts``: the attempts a person must look at (``unknown`` by default), masked."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.db import Database
from bot.db.models import ContactAttempt
from builders import AT, add_borrower

PHONE = "+12125550001"
EMAIL = "jane.doe@example.com"


def seed(db_url: str) -> None:
    db = Database(db_url)
    try:
        add_borrower(db, "B1", phone=PHONE, email=EMAIL)
        add_borrower(db, "B2")
        with db.session() as s:
            rows = [
                # (id hint, borrower, channel, status, address, minutes before AT it was marked sending)
                ("B1", "email", "unknown", EMAIL, 30, "reconcile: the email provider cannot be asked; review"),
                ("B2", "sms", "unknown", "+12125550002", 90, "reconcile: redacted_bodies; review"),
                ("B1", "sms", "sent", PHONE, 10, None),
                ("B2", "email", "failed", "borrower2@example.com", 5, "permanent: 550 SmtpPermanentError"),
            ]
            for n, (borrower, channel, status, address, minutes, error) in enumerate(rows):
                s.add(ContactAttempt(
                    dedupe_key=f"plan:I{n}:main:0:{channel}", borrower_id=borrower, channel=channel,
                    source="planner", status=status, step=f"main:D0:{channel}", template="reminder_due",
                    address=address, occurred_at=AT - timedelta(minutes=minutes), tries=1, last_error=error,
                    provider_id=f"attempt-{n}.abc@mail.example.com" if channel == "email" else None,
                    created_at=AT, updated_at=AT))
    finally:
        db.dispose()


def test_lists_unknown_attempts_oldest_first_masked(run_bot, db_url: str) -> None:
    seed(db_url)
    result = run_bot("attempts", "--json", db_url=db_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["statuses"] == ["unknown"] and data["total"] == 2 and data["shown"] == 2
    assert [(i["borrower_id"], i["channel"], i["address"]) for i in data["items"]] == [
        ("B2", "sms", "+1 ***-***-0002"), ("B1", "email", "j***@example.com")]
    assert data["items"][1]["last_error"] == "reconcile: the email provider cannot be asked; review"
    assert data["items"][1]["provider_id"] == "attempt-0.abc@mail.example.com"
    assert PHONE not in result.output and EMAIL not in result.output and "+12125550002" not in result.output


def test_the_table_and_the_filters(run_bot, db_url: str) -> None:
    seed(db_url)
    table = run_bot("attempts", db_url=db_url)
    assert table.exit_code == 0, table.output
    assert "2 attempt(s) in status unknown" in table.stdout and "j***@example.com" in table.stdout
    assert "cannot tell" in table.stderr  # what a person does about them
    assert EMAIL not in table.output

    email_only = json.loads(run_bot("attempts", "--channel", "email", "--json", db_url=db_url).stdout)
    assert [i["borrower_id"] for i in email_only["items"]] == ["B1"]
    several = json.loads(run_bot("attempts", "--status", "unknown", "--status", "failed", "--limit", "1",
                                 "--json", db_url=db_url).stdout)
    assert several["total"] == 3 and several["shown"] == 1 and several["items"][0]["borrower_id"] == "B2"
    assert json.loads(run_bot("attempts", "--borrower", "B1", "--json", db_url=db_url).stdout)["total"] == 1


def test_nothing_to_review(run_bot, db_url: str) -> None:
    result = run_bot("attempts", db_url=db_url)
    assert result.exit_code == 0 and "no attempts in status unknown" in result.stderr


def test_a_bad_status_is_a_usage_error(run_bot, db_url: str) -> None:
    result = run_bot("attempts", "--status", "lost", db_url=db_url)
    assert result.exit_code == 2 and "--status" in result.stderr
