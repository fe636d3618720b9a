"""``bot import``: formats, rejections, idempotency, atomicity and privacy.

Every database test runs on SQLite and PostgreSQL (the ``db``/``db_url``
fixtures) through the real ``bot`` entry point (``run_bot``).  Each test writes
its own small CSV files.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from bot.db import Database
from bot.db.models import AuditEvent, Base, Consent
from bot.importer import run as import_run
from bot.importer import store
from bot.importer.values import (
    BadValue,
    parse_amount_minor,
    parse_bool,
    parse_instant,
    parse_locale,
    parse_phone,
)

BORROWERS = "borrower_id,full_name,phone,email,locale,timezone,region,country,consent_sms,consent_voice,consent_email"
LOANS = "loan_id,borrower_id,product,principal,currency,opened_on"
INSTALLMENTS = "installment_id,loan_id,due_date,amount_due,amount_paid"
PAYMENTS = "payment_id,loan_id,paid_at,amount"
CONTACTS = "borrower_id,loan_id,channel,occurred_at,outcome"

# Personal data used in the files: none of it may appear in any output.
JANE = ("Jane Doe", "(212) 555-1234", "Jane.Doe@Example.COM")
WEI = ("张伟", "138 1234 5678", "wei@example.cn")
MINJUN = ("김민준", "010-1234-5678", "")


def write(path: Path, *lines: str, bom: bool = False) -> Path:
    """A CSV file written exactly as given (lines joined with CRLF, as Excel does)."""
    body = "\r\n".join(lines) + "\r\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode("utf-8"))
    return path


def portfolio(tmp_path: Path) -> dict[str, Path]:
    """A small, valid portfolio of every kind."""
    return {
        "borrowers": write(
            tmp_path / "borrowers.csv",
            BORROWERS,
            f"B1,{JANE[0]},{JANE[1]},{JANE[2]},en-US,America/New_York,ny,US,yes,no,1",
            f"B2,{WEI[0]},{WEI[1]},{WEI[2]},zh-CN,Asia/Shanghai,,CN,true,TRUE,",
            f"B3,{MINJUN[0]},{MINJUN[1]},,ko-KR,Asia/Seoul,,KR,0,false,no",
        ),
        "loans": write(
            tmp_path / "loans.csv",
            LOANS,
            "L1,B1,personal,1000.50,USD,2025-01-02",
            "L2,B2,consumer,5000,CNY,2025-03-01",
            "L3,B3,auto,1200000,KRW,2025-04-01",
        ),
        "installments": write(
            tmp_path / "installments.csv",
            INSTALLMENTS,
            "I1,L1,2026-01-01,100.25,",
            "I2,L1,2026-02-01,100.25,100.25",
            "I3,L2,2026-01-15,500.1,0",
            "I4,L3,2026-01-20,100000,50000",
        ),
        "payments": write(
            tmp_path / "payments.csv",
            PAYMENTS,
            "P1,L1,2026-02-01T10:15:00-05:00,100.25",
            "P2,L3,2026-01-20T09:00:00,50000",
            "P3,L2,2026-01-15,0.01",
        ),
        "contacts": write(
            tmp_path / "contacts.csv",
            CONTACTS,
            "B1,L1,sms,2026-01-02T09:30:00-05:00,delivered",
            "B1,,email,2026-01-03T12:00:00Z,attempted",
            "B2,L2,voice,2026-01-04T10:00:00+08:00,voicemail",
        ),
    }


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables


def run_import(run_bot, db_url: str, *files: Path | str, extra: tuple[str, ...] = ()):
    result = run_bot("import", "--json", *extra, *map(str, files), db_url=db_url)
    summary = json.loads(result.stdout) if result.stdout.strip() else None
    return result, summary


def by_kind(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["kind"]: f for f in summary["files"]}


def rejected(summary: dict[str, Any], kind: str) -> list[tuple[int, str | None, str]]:
    return [(r["line"], r["column"], r["reason"]) for r in by_kind(summary)[kind]["rejected"]]


def flat(text: str) -> str:
    """Text with runs of whitespace made single spaces (the console wraps long errors)."""
    return " ".join(text.split())


def assert_no_personal_data(output: str) -> None:
    for person in (JANE, WEI, MINJUN):
        for value in person:
            if value:
                assert value not in output
    for e164 in ("+12125551234", "+8613812345678", "+821012345678", "2125551234", "jane.doe"):
        assert e164 not in output.lower()


# --- accepted rows ------------------------------------------------------------------


def test_portfolio_is_stored_exactly(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    files = portfolio(tmp_path)
    result, summary = run_import(run_bot, db_url, *files.values())
    assert result.exit_code == 0, result.stderr
    counts = {k: (f["accepted"], f["inserted"], f["rejected"]) for k, f in by_kind(summary).items()}
    assert counts == {
        "borrowers": (3, 3, []),
        "loans": (3, 3, []),
        "installments": (4, 4, []),
        "payments": (3, 3, []),
        "contacts": (3, 3, []),
    }
    with db.engine.connect() as conn:
        borrowers = conn.execute(
            select(
                store.borrowers.c.id,
                store.borrowers.c.full_name,
                store.borrowers.c.phone_e164,
                store.borrowers.c.email,
                store.borrowers.c.locale,
                store.borrowers.c.timezone,
                store.borrowers.c.region,
                store.borrowers.c.country,
            ).order_by(store.borrowers.c.id)
        ).all()
        consents = conn.execute(
            select(Consent.borrower_id, Consent.channel, Consent.address, Consent.granted).order_by(
                Consent.borrower_id, Consent.channel
            )
        ).all()
        loans = conn.execute(
            select(store.loans.c.id, store.loans.c.principal_minor, store.loans.c.currency, store.loans.c.opened_on)
            .order_by(store.loans.c.id)
        ).all()
        installments = conn.execute(
            select(
                store.installments.c.id,
                store.installments.c.loan_id,
                store.installments.c.due_date,
                store.installments.c.amount_due_minor,
                store.installments.c.amount_paid_minor,
            ).order_by(store.installments.c.id)
        ).all()
        payments = conn.execute(
            select(store.payments.c.id, store.payments.c.paid_at, store.payments.c.amount_minor).order_by(
                store.payments.c.id
            )
        ).all()
        contacts = conn.execute(
            select(
                store.contact_attempts.c.dedupe_key,
                store.contact_attempts.c.borrower_id,
                store.contact_attempts.c.loan_id,
                store.contact_attempts.c.channel,
                store.contact_attempts.c.source,
                store.contact_attempts.c.status,
                store.contact_attempts.c.outcome,
                store.contact_attempts.c.occurred_at,
            ).order_by(store.contact_attempts.c.occurred_at)
        ).all()
    assert [tuple(r) for r in borrowers] == [
        ("B1", "Jane Doe", "+12125551234", "Jane.Doe@example.com", "en-US", "America/New_York", "NY", "US"),
        ("B2", "张伟", "+8613812345678", "wei@example.cn", "zh-CN", "Asia/Shanghai", None, "CN"),
        ("B3", "김민준", "+821012345678", None, "ko-KR", "Asia/Seoul", None, "KR"),
    ]
    assert [tuple(r) for r in consents] == [
        ("B1", "email", "Jane.Doe@example.com", True),
        ("B1", "sms", "+12125551234", True),
        ("B1", "voice", "+12125551234", False),
        ("B2", "email", "wei@example.cn", False),
        ("B2", "sms", "+8613812345678", True),
        ("B2", "voice", "+8613812345678", True),
        ("B3", "sms", "+821012345678", False),
        ("B3", "voice", "+821012345678", False),
    ]
    assert [tuple(r) for r in loans] == [
        ("L1", 100050, "USD", date(2025, 1, 2)),
        ("L2", 500000, "CNY", date(2025, 3, 1)),
        ("L3", 1200000, "KRW", date(2025, 4, 1)),  # KRW has no minor unit
    ]
    assert [tuple(r) for r in installments] == [
        ("I1", "L1", date(2026, 1, 1), 10025, 0),
        ("I2", "L1", date(2026, 2, 1), 10025, 10025),
        ("I3", "L2", date(2026, 1, 15), 50010, 0),
        ("I4", "L3", date(2026, 1, 20), 100000, 50000),
    ]
    assert [tuple(r) for r in payments] == [
        ("P1", datetime(2026, 2, 1, 15, 15, tzinfo=UTC), 10025),  # offset applied
        ("P2", datetime(2026, 1, 20, 9, 0, tzinfo=UTC), 50000),  # naive: UTC
        ("P3", datetime(2026, 1, 15, 0, 0, tzinfo=UTC), 1),  # a date: 00:00 UTC
    ]
    assert [tuple(r) for r in contacts] == [
        (
            "import:B1:L1:sms:2026-01-02T14:30:00+00:00",
            "B1", "L1", "sms", "import", "done", "delivered",
            datetime(2026, 1, 2, 14, 30, tzinfo=UTC),
        ),
        (
            "import:B1::email:2026-01-03T12:00:00+00:00",
            "B1", None, "email", "import", "done", "attempted",
            datetime(2026, 1, 3, 12, 0, tzinfo=UTC),
        ),
        (
            "import:B2:L2:voice:2026-01-04T02:00:00+00:00",
            "B2", "L2", "voice", "import", "done", "voicemail",
            datetime(2026, 1, 4, 2, 0, tzinfo=UTC),
        ),
    ]  # fmt: skip
    with db.engine.connect() as conn:
        created, updated = conn.execute(
            select(store.borrowers.c.created_at, store.borrowers.c.updated_at).where(store.borrowers.c.id == "B1")
        ).one()
    assert created == updated and created.tzinfo is not None


def test_bom_reordered_and_case_insensitive_headers(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    borrowers = write(
        tmp_path / "people.csv",
        " Country ,CONSENT_SMS,Consent_Voice,consent_email,Full_Name,Borrower_ID,Phone,Email,_note,",
        "us,Yes,No,0,Jane Doe,B1,212.555.1235,,anything here is ignored,",
        bom=True,
    )
    loans = write(tmp_path / "l.csv", "currency,opened_on,principal,borrower_id,loan_id", "jpy,2025-01-01,150000,B1,L1")
    result, summary = run_import(run_bot, db_url, loans, borrowers)
    assert result.exit_code == 0, result.stderr
    assert [f["kind"] for f in summary["files"]] == ["borrowers", "loans"]
    with db.engine.connect() as conn:
        row = conn.execute(
            select(
                store.borrowers.c.phone_e164,
                store.borrowers.c.email,
                store.borrowers.c.locale,
                store.borrowers.c.timezone,
                store.borrowers.c.country,
            )
        ).one()
        loan = conn.execute(select(store.loans.c.product, store.loans.c.principal_minor, store.loans.c.currency)).one()
    assert tuple(row) == ("+12125551235", None, "en-US", None, "US")
    assert tuple(loan) == ("", 150000, "JPY")


# --- rejections ---------------------------------------------------------------------


def test_every_borrower_rejection_with_line_and_column(
    db: Database, db_url: str, run_bot, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "borrowers.csv",
        BORROWERS,
        'B1,"Jane\r\nDoe",(212) 555-1234,,en-US,,,US,yes,yes,no',  # lines 2-3: a quoted newline
        "B2,Bad Phone,(212) 555-12345,,en-US,,,US,yes,yes,no",  # 4
        "B3,Bad Email,,jane@@example,en-US,,,US,yes,yes,no",  # 5
        "B4,Bad Zone,,,en-US,America/Atlantis,,US,yes,yes,no",  # 6
        "B5,Bad Locale,,,xx-QQ,,,US,yes,yes,no",  # 7
        "B6,Bad Country,,,en-US,,,QQ,yes,yes,no",  # 8
        "B7,Bad Boolean,,,en-US,,,US,maybe,yes,no",  # 9
        ",No Id,,,en-US,,,US,yes,yes,no",  # 10
        "B8,,,,en-US,,,US,yes,yes,no",  # 11: no name
        "B1,Twice,,,en-US,,,US,yes,yes,no",  # 12: duplicate id
        "B9,Too Many,,,en-US,,,US,yes,yes,no,extra",  # 13
        "B10,Too Few,,,en-US",  # 14
        "B11,No Country,,,en-US,,,,yes,yes,no",  # 15
        "B12,Bad Region,,,en-US,,New York,US,yes,yes,no",  # 16
        "B13,Good,,,,,,US,,,",  # 17
    )
    result, summary = run_import(run_bot, db_url, path)
    assert result.exit_code == 1
    assert rejected(summary, "borrowers") == [
        (4, "phone", "not a valid phone number for country US"),
        (5, "email", "not a valid email address"),
        (6, "timezone", "unknown time zone 'America/Atlantis' (expected an IANA name such as America/Chicago)"),
        (7, "locale", "unknown locale 'xx-QQ' (expected a tag such as en-US)"),
        (8, "country", "unknown country 'QQ' (expected an ISO 3166 alpha-2 code such as US)"),
        (9, "consent_sms", "bad boolean: use true/false, yes/no or 1/0"),
        (10, "borrower_id", "missing id"),
        (11, "full_name", "missing required value"),
        (12, "borrower_id", "duplicate borrower_id B1: first at borrowers.csv:2"),
        (13, None, "wrong number of fields: 12 where the header has 11"),
        (14, None, "wrong number of fields: 5 where the header has 11"),
        (15, "country", "missing required value"),
        (16, "region", "not a state/province code (1 to 3 letters or digits, e.g. CA)"),
    ]
    assert by_kind(summary)["borrowers"]["accepted"] == 2
    with db.engine.connect() as conn:
        ids = conn.execute(select(store.borrowers.c.id).order_by(store.borrowers.c.id)).scalars().all()
        name = conn.execute(select(store.borrowers.c.full_name).where(store.borrowers.c.id == "B1")).scalar()
    assert ids == ["B1", "B13"]
    assert name == "Jane\r\nDoe"
    # stderr: one line per rejected row, file:line: column: reason
    lines = result.stderr.strip().splitlines()
    assert f"{path}:4: phone: not a valid phone number for country US" in lines
    assert f"{path}:13: wrong number of fields: 12 where the header has 11" in lines
    assert len(lines) == 13


def test_loan_and_amount_rejections(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    borrowers = write(
        tmp_path / "borrowers.csv",
        BORROWERS,
        "B1,Ann,,,en-US,,,US,no,no,no",
        "B2,Bob,,,en-US,,,US,no,no,no",
        "B3,Cy,,,en-US,,,US,no,no,no",
        "B4,Di,,,en-US,,,US,no,no,no",
        "B5,Ed,,,en-US,,,US,no,no,no",
        "B6,Flo,,,en-US,,,US,no,no,no",
        "B7,Bad,,,en-US,,,XX,no,no,no",  # line 8: rejected
    )
    loans = write(
        tmp_path / "loans.csv",
        LOANS,
        "L1,B1,personal,1000.00,USD,2025-01-02",  # 2 ok
        "L2,B9,personal,10,USD,2025-01-02",  # 3 unknown borrower
        "L3,B7,personal,10,USD,2025-01-02",  # 4 borrower rejected in this run
        "L4,B2,personal,-10,USD,2025-01-02",  # 5 negative
        "L5,B3,personal,ten,USD,2025-01-02",  # 6 non-numeric
        "L6,B4,personal,10.001,USD,2025-01-02",  # 7 too many decimals
        "L7,B5,personal,10.5,JPY,2025-01-02",  # 8 too many decimals for a 0-decimal currency
        "L8,B6,personal,10,XYZ,2025-01-02",  # 9 unknown currency
        "L9,B6,personal,10,USD,2025/01/02",  # 10 bad date
        "L10,B6,personal,1e5,USD,2025-01-02",  # 11 exponent
        "L11,B6,personal,NaN,USD,2025-01-02",  # 12
        "L1,B6,personal,10,USD,2025-01-02",  # 13 duplicate
        ",B6,personal,10,USD,2025-01-02",  # 14 missing id
        "L12,B6,personal,,USD,2025-01-02",  # 15 missing principal
        "L13,B6,personal,10.50,usd,2025-02-30",  # 16 no such day
    )
    installments = write(
        tmp_path / "installments.csv",
        INSTALLMENTS,
        "I1,L1,2026-01-01,100.00,",  # 2 ok
        "I2,L1,2026-02-01,-1,",  # 3
        "I3,L1,2026-03-01,100,abc",  # 4
        "I4,L3,2026-03-01,100,",  # 5 loan rejected (its borrower was)
        "I5,L99,2026-03-01,100,",  # 6 unknown loan
        "I6,L1,2026-03-01,Infinity,",  # 7
        "I7,L1,,100,",  # 8 missing due date
        "I8,L1,2026-03-01,100.005,",  # 9
    )
    payments = write(
        tmp_path / "payments.csv",
        PAYMENTS,
        "P1,L1,2026-02-01T10:00:00Z,10",  # 2 ok
        "P2,L1,2026-02-01T10:00:00Z,0",  # 3 zero
        "P3,L1,yesterday,10",  # 4
        "P4,L4,2026-02-01,10",  # 5 loan L4 rejected
    )
    result, summary = run_import(run_bot, db_url, payments, installments, loans, borrowers)
    assert result.exit_code == 1
    assert rejected(summary, "borrowers") == [(8, "country", "unknown country 'XX' (expected an ISO 3166 alpha-2 code such as US)")]
    assert rejected(summary, "loans") == [
        (3, "borrower_id", "unknown borrower B9"),
        (4, "borrower_id", "unknown borrower B7 (its row in borrowers.csv line 8 was rejected)"),
        (5, "principal", "negative amount"),
        (6, "principal", "not a number (use plain decimal notation such as 1234.56)"),
        (7, "principal", "too many decimals for USD (at most 2)"),
        (8, "principal", "too many decimals for JPY (at most 0)"),
        (9, "currency", "unknown currency 'XYZ' (expected an ISO 4217 code such as USD)"),
        (10, "opened_on", "bad date: use YYYY-MM-DD"),
        (11, "principal", "not a number (use plain decimal notation such as 1234.56)"),
        (12, "principal", "not a number (use plain decimal notation such as 1234.56)"),
        (13, "loan_id", "duplicate loan_id L1: first at loans.csv:2"),
        (14, "loan_id", "missing id"),
        (15, "principal", "missing required value"),
        (16, "opened_on", "bad date: use YYYY-MM-DD"),
    ]
    assert rejected(summary, "installments") == [
        (3, "amount_due", "negative amount"),
        (4, "amount_paid", "not a number (use plain decimal notation such as 1234.56)"),
        (5, "loan_id", "unknown loan L3 (its row in loans.csv line 4 was rejected)"),
        (6, "loan_id", "unknown loan L99"),
        (7, "amount_due", "not a number (use plain decimal notation such as 1234.56)"),
        (8, "due_date", "missing required value"),
        (9, "amount_due", "too many decimals for USD (at most 2)"),
    ]
    assert rejected(summary, "payments") == [
        (3, "amount", "amount must be greater than zero"),
        (4, "paid_at", "bad date-time: use ISO 8601 such as 2026-03-01T14:30:00-05:00"),
        (5, "loan_id", "unknown loan L4 (its row in loans.csv line 5 was rejected)"),
    ]
    with db.engine.connect() as conn:
        assert conn.execute(select(store.loans.c.id)).scalars().all() == ["L1"]
        assert conn.execute(select(store.installments.c.id)).scalars().all() == ["I1"]
        assert conn.execute(select(store.payments.c.id)).scalars().all() == ["P1"]


def test_contact_rejections_and_duplicates(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    files = portfolio(tmp_path)
    contacts = write(
        tmp_path / "contacts.csv",
        CONTACTS,
        "B1,L1,sms,2026-01-02T09:30:00-05:00,delivered",  # 2 ok
        "B1,L1,SMS,2026-01-02T14:30:00Z,delivered",  # 3 same instant, channel case: duplicate
        "B1,L1,fax,2026-01-02T09:30:00-05:00,delivered",  # 4
        "B1,L1,sms,2026-01-02T09:30:00-05:00,ghosted",  # 5
        "B1,L2,sms,2026-01-05T09:30:00-05:00,failed",  # 6 loan of another borrower
        "B9,,sms,2026-01-05T09:30:00-05:00,failed",  # 7 unknown borrower
        "B1,L9,sms,2026-01-05T09:30:00-05:00,failed",  # 8 unknown loan
        "B1,,voice,not a time,connected",  # 9
        ",,voice,2026-01-05,connected",  # 10
    )
    result, summary = run_import(run_bot, db_url, files["borrowers"], files["loans"], contacts)
    assert result.exit_code == 1
    assert rejected(summary, "contacts") == [
        (3, "occurred_at", "duplicate contact: the same borrower, loan, channel and time as contacts.csv:2"),
        (4, "channel", "unknown channel 'fax' (expected one of email, sms, voice)"),
        (5, "outcome", "unknown outcome 'ghosted' (expected one of attempted, connected, conversation, delivered, "
                       "failed, voicemail)"),
        (6, "loan_id", "loan L2 belongs to another borrower, not B1"),
        (7, "borrower_id", "unknown borrower B9"),
        (8, "loan_id", "unknown loan L9"),
        (9, "occurred_at", "bad date-time: use ISO 8601 such as 2026-03-01T14:30:00-05:00"),
        (10, "borrower_id", "missing required value"),
    ]  # fmt: skip
    # Re-importing the history adds nothing.
    result, summary = run_import(run_bot, db_url, contacts)
    assert by_kind(summary)["contacts"]["inserted"] == 0
    assert by_kind(summary)["contacts"]["unchanged"] == 1


def test_an_id_in_two_files_of_a_kind_is_a_duplicate(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    """``bot import a.csv b.csv`` with the same id in both: the later row is rejected as a duplicate,
    as within one file, for every kind; the first file's rows are what is stored."""
    first = portfolio(tmp_path)
    later = tmp_path / "later"
    later.mkdir()
    files = [
        first["borrowers"],
        write(later / "b.csv", BORROWERS,
              "B4,New Person,,new@example.com,en-US,,,US,no,no,yes",  # 2: new, accepted
              "B1,Jane Roe,(212) 555-9876,,en-US,,,US,yes,yes,no"),  # 3: B1 again, another phone
        first["loans"], write(later / "l.csv", LOANS, "L1,B1,auto,99,USD,2025-01-01"),
        first["installments"], write(later / "i.csv", INSTALLMENTS, "I3,L2,2026-01-15,1,0"),
        first["payments"], write(later / "p.csv", PAYMENTS, "P2,L3,2026-01-20T09:00:00,1"),
        write(tmp_path / "c.csv", CONTACTS, "B1,L1,sms,2026-01-02T09:30:00-05:00,delivered"),
        write(later / "c.csv", CONTACTS, "B1,L1,SMS,2026-01-02T14:30:00Z,failed"),  # the same contact
    ]
    result, summary = run_import(run_bot, db_url, *files)
    assert result.exit_code == 1
    reasons = {Path(f["path"]).relative_to(tmp_path).as_posix(): [(r["line"], r["column"], r["reason"])
                                                                  for r in f["rejected"]] for f in summary["files"]}
    assert reasons == {
        "borrowers.csv": [], "loans.csv": [], "installments.csv": [], "payments.csv": [], "c.csv": [],
        "later/b.csv": [(3, "borrower_id", "duplicate borrower_id B1: first at borrowers.csv:2")],
        "later/l.csv": [(2, "loan_id", "duplicate loan_id L1: first at loans.csv:2")],
        "later/i.csv": [(2, "installment_id", "duplicate installment_id I3: first at installments.csv:4")],
        "later/p.csv": [(2, "payment_id", "duplicate payment_id P2: first at payments.csv:3")],
        # two files named c.csv: the first occurrence is named by its path
        "later/c.csv": [(2, "occurred_at", "duplicate contact: the same borrower, loan, channel and time as "
                                           f"{tmp_path / 'c.csv'}:2")],
    }
    assert f"{later / 'b.csv'}:3: borrower_id: duplicate borrower_id B1: first at borrowers.csv:2" in flat(result.stderr)
    assert (later / "b.csv.rejects.csv").exists()
    with db.engine.connect() as conn:
        phone, name = conn.execute(select(store.borrowers.c.phone_e164, store.borrowers.c.full_name)
                                   .where(store.borrowers.c.id == "B1")).one()
        addresses = sorted(conn.execute(select(Consent.address).where(Consent.borrower_id == "B1")).scalars())
        loan = conn.execute(select(store.loans.c.product).where(store.loans.c.id == "L1")).scalar()
        outcomes = list(conn.execute(text("SELECT outcome FROM contact_attempts")).scalars())
        ids = sorted(conn.execute(select(store.borrowers.c.id)).scalars())
    assert (phone, name, loan, outcomes) == ("+12125551234", JANE[0], "personal", ["delivered"])
    assert "+12125559876" not in addresses and "+12125551234" in addresses  # no consents of the second phone
    assert ids == ["B1", "B2", "B3", "B4"]


def test_bad_rows_leave_everything_else_unchanged(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    files = portfolio(tmp_path)
    assert run_import(run_bot, db_url, *files.values())[0].exit_code == 0
    before = dump(db)
    more = write(
        tmp_path / "more.csv",
        BORROWERS,
        "B1,Jane Doe,(212) 555-1234,Jane.Doe@Example.COM,en-US,America/New_York,NY,US,yes,no,1",  # unchanged
        "B4,New Person,,new@example.com,en-US,,,US,no,no,yes",  # new
        "B5,Broken,not a phone,,en-US,,,US,no,no,no",  # rejected
    )
    result, summary = run_import(run_bot, db_url, more)
    assert result.exit_code == 1
    report = by_kind(summary)["borrowers"]
    assert (report["accepted"], report["inserted"], report["updated"], report["unchanged"]) == (2, 1, 0, 1)
    assert rejected(summary, "borrowers") == [(4, "phone", "not a valid phone number for country US")]
    after = dump(db)
    assert [r for r in after["borrowers"] if r[0] != "B4"] == before["borrowers"]
    assert [r[0] for r in after["borrowers"] if r not in before["borrowers"]] == ["B4"]
    assert [r for r in after["consents"] if r[1] != "B4"] == before["consents"]
    for table in ("loans", "installments", "payments", "contact_attempts"):
        assert after[table] == before[table]


def test_existing_borrower_rejected_in_this_run_is_unknown(
    db: Database, db_url: str, run_bot, tmp_path: Path
) -> None:
    files = portfolio(tmp_path)
    assert run_import(run_bot, db_url, *files.values())[0].exit_code == 0
    bad = write(tmp_path / "fix.csv", BORROWERS, "B1,Jane Doe,(212) 555-12,,en-US,,,US,yes,no,no")
    loans = write(tmp_path / "new-loans.csv", LOANS, "L9,B1,personal,10,USD,2025-01-01", "L8,B2,personal,10,USD,2025-01-01")
    result, summary = run_import(run_bot, db_url, loans, bad)
    assert result.exit_code == 1
    assert rejected(summary, "loans") == [
        (2, "borrower_id", "unknown borrower B1 (its row in fix.csv line 2 was rejected)")
    ]
    with db.engine.connect() as conn:  # B1 itself is left as it was
        phone = conn.execute(select(store.borrowers.c.phone_e164).where(store.borrowers.c.id == "B1")).scalar()
        assert sorted(conn.execute(select(store.loans.c.id)).scalars()) == ["L1", "L2", "L3", "L8"]
    assert phone == "+12125551234"


# --- idempotency ------------------------------------------------------------------------


def test_second_run_changes_nothing(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    files = portfolio(tmp_path)
    assert run_import(run_bot, db_url, *files.values())[0].exit_code == 0
    first = dump(db)
    result, summary = run_import(run_bot, db_url, *files.values())
    assert result.exit_code == 0
    for report in summary["files"]:
        assert (report["inserted"], report["updated"], report["unchanged"]) == (0, 0, report["accepted"])
    second = dump(db)
    second.pop("audit_events"), first.pop("audit_events")
    assert second == first  # updated_at included: nothing was rewritten

    # One changed installment: exactly that row is updated, created_at kept.
    write(
        files["installments"],
        INSTALLMENTS,
        "I1,L1,2026-01-01,100.25,50",
        "I2,L1,2026-02-01,100.25,100.25",
        "I3,L2,2026-01-15,500.1,0",
        "I4,L3,2026-01-20,100000,50000",
    )
    result, summary = run_import(run_bot, db_url, files["installments"])
    report = by_kind(summary)["installments"]
    assert (report["inserted"], report["updated"], report["unchanged"]) == (0, 1, 3)
    third = dump(db)
    changed = [r for r in third["installments"] if r not in first["installments"]]
    col = {c.name: i for i, c in enumerate(store.installments.columns)}
    assert len(changed) == 1 and changed[0][0] == "I1" and changed[0][col["amount_paid_minor"]] == 5000
    assert changed[0][col["covered_minor"]] == 5000  # settled in the same run
    old = next(r for r in first["installments"] if r[0] == "I1")
    assert changed[0][col["created_at"]] == old[col["created_at"]]
    assert changed[0][col["updated_at"]] > old[col["updated_at"]]  # updated_at moved


def test_opt_out_survives_reimport_and_new_phone_adds_rows(
    db: Database, db_url: str, run_bot, tmp_path: Path
) -> None:
    path = write(tmp_path / "b.csv", BORROWERS, "B1,Jane Doe,(212) 555-1234,,en-US,,,US,yes,yes,no")
    assert run_import(run_bot, db_url, path)[0].exit_code == 0
    opted_out = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    with db.session() as session:
        session.execute(
            update(Consent)
            .where(Consent.channel == "sms")
            .values(opted_out_at=opted_out, opt_out_source="sms:STOP", address_flag="landline")
        )
    write(path, BORROWERS, "B1,Jane Doe,(212) 555-1234,,en-US,,,US,yes,no,no")
    assert run_import(run_bot, db_url, path)[0].exit_code == 0
    write(path, BORROWERS, "B1,Jane Doe,(212) 555-9876,,en-US,,,US,true,true,no")
    assert run_import(run_bot, db_url, path)[0].exit_code == 0
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(Consent.channel, Consent.address, Consent.granted, Consent.opted_out_at,
                   Consent.opt_out_source, Consent.address_flag)
            .order_by(Consent.address, Consent.channel)
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        ("sms", "+12125551234", True, opted_out, "sms:STOP", "landline"),
        ("voice", "+12125551234", False, None, None, None),
        ("sms", "+12125559876", True, None, None, None),
        ("voice", "+12125559876", True, None, None, None),
    ]


# --- rejects file ------------------------------------------------------------------------


def test_rejects_file_round_trip_with_formulas(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    path = write(
        tmp_path / "borrowers.csv",
        BORROWERS + ",_note",
        '=HYPERLINK("x"),"=1+2",,,en-US,,,US,no,no,no,keep',  # 2: formula text is fine
        "B2,+Plus Name,12345,,en-US,,,US,yes,no,no,",  # 3: bad phone
        "B3,@Someone,,,en-US,,,ZZ,no,no,no,",  # 4: bad country
    )
    loans = write(tmp_path / "loans.csv", LOANS, "L1,B2,personal,-5,USD,2025-01-01")
    result, summary = run_import(run_bot, db_url, path, loans)
    assert result.exit_code == 1
    with db.engine.connect() as conn:
        assert conn.execute(select(store.borrowers.c.id, store.borrowers.c.full_name)).all() == [
            ('=HYPERLINK("x")', "=1+2")
        ]
    rejects = tmp_path / "borrowers.csv.rejects.csv"
    assert by_kind(summary)["borrowers"]["rejects_file"] == str(rejects)
    with rejects.open(newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [
            ["_line", "_column", "_reason", *BORROWERS.split(",")],
            ["3", "phone", "not a valid phone number for country US", "B2", "'+Plus Name", "12345",
             "", "en-US", "", "", "US", "yes", "no", "no"],
            ["4", "country", "unknown country 'ZZ' (expected an ISO 3166 alpha-2 code such as US)",
             "B3", "'@Someone", "", "", "en-US", "", "", "ZZ", "no", "no", "no"],
        ]  # fmt: skip
    loan_rejects = (tmp_path / "loans.csv.rejects.csv").read_text(encoding="utf-8")
    assert "L1,B2,personal,'-5,USD,2025-01-01" in loan_rejects
    assert "unknown borrower B2 (its row in borrowers.csv line 3 was rejected)" in loan_rejects

    # Fix the rejects files and import them as they are: _ columns are ignored,
    # the csv_safe quote is undone.
    fixed = rejects.read_text(encoding="utf-8").replace(",12345,", ",(212) 555-1234,").replace(",ZZ,", ",US,")
    rejects.write_text(fixed, encoding="utf-8")
    loan_fixed = (tmp_path / "loans.csv.rejects.csv")
    loan_fixed.write_text(loan_rejects.replace("'-5", "5"), encoding="utf-8")
    result, summary = run_import(run_bot, db_url, rejects, loan_fixed)
    assert result.exit_code == 0, result.stderr
    with db.engine.connect() as conn:
        names = dict(conn.execute(select(store.borrowers.c.id, store.borrowers.c.full_name)).all())
        assert conn.execute(select(store.loans.c.principal_minor)).scalar() == 500
    assert names["B2"] == "+Plus Name" and names["B3"] == "@Someone"

    # The original file, fixed, leaves no stale rejects file behind.
    assert rejects.exists()
    write(path, BORROWERS, "B2,+Plus Name,(212) 555-1234,,en-US,,,US,yes,no,no")
    result, summary = run_import(run_bot, db_url, path)
    assert result.exit_code == 0
    assert by_kind(summary)["borrowers"]["rejects_file"] is None
    assert not rejects.exists()


def test_json_summary_shape_and_audit(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    path = write(tmp_path / "borrowers.csv", BORROWERS, "B1,Ann,,,en-US,,,US,no,no,no", "B2,Bob,,,en-US,,,QQ,no,no,no")
    result, summary = run_import(run_bot, db_url, path)
    assert result.exit_code == 1
    assert summary == {
        "files": [
            {
                "path": str(path),
                "kind": "borrowers",
                "accepted": 1,
                "rejected": [
                    {
                        "line": 3,
                        "column": "country",
                        "reason": "unknown country 'QQ' (expected an ISO 3166 alpha-2 code such as US)",
                    }
                ],
                "inserted": 1,
                "updated": 0,
                "unchanged": 0,
                "rejects_file": str(path) + ".rejects.csv",
            }
        ]
    }
    with db.engine.connect() as conn:
        events = conn.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.detail)).all()
    assert [tuple(e) for e in events] == [
        (
            "cli",
            "import",
            {"files": [{"file": "borrowers.csv", "kind": "borrowers", "accepted": 1, "rejected": 1,
                        "inserted": 1, "updated": 0, "unchanged": 0}],
             "settled_loans": 0, "newly_paid_installments": 0, "cancelled_attempts": 0},
        )
    ]  # fmt: skip


def test_human_summary_and_privacy(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    path = write(
        tmp_path / "borrowers.csv",
        BORROWERS,
        f"B1,{JANE[0]},{JANE[1]},{JANE[2]},en-US,,,US,yes,no,1",
        f"B2,{WEI[0]},{WEI[1]},not-an-email-{WEI[2]}@,zh-CN,,,CN,yes,no,1",
        f"B3,{MINJUN[0]},{MINJUN[1]}99,,ko-KR,,,KR,yes,no,1",
        f"B4,{JANE[0]},{JANE[1]},{JANE[2]},en-US,,,US,perhaps,no,1",
        f"B5,{JANE[0]},{JANE[1]},{JANE[2]},{JANE[2]},,,US,yes,no,1",
        f"B6,{JANE[0]},{JANE[1]},{JANE[2]},en-US,,,{JANE[1]},yes,no,1",
    )
    result = run_bot("import", str(path), db_url=db_url)
    assert result.exit_code == 1
    assert "borrowers" in result.stdout and "Accepted" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 5
    assert f"{path}:3: email: not a valid email address" in result.stderr
    assert f"{path}:4: phone: not a valid phone number for country KR" in result.stderr
    assert f"{path}:6: locale: unknown locale (expected a tag such as en-US)" in result.stderr
    assert_no_personal_data(result.output)
    json_result, _ = run_import(run_bot, db_url, path)
    assert_no_personal_data(json_result.output)


# --- whole-file problems: exit 2, nothing imported ------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "missing.csv: no such file"),
        ("empty.csv", b"", "empty.csv: is empty"),
        ("blank.csv", b"\xef\xbb\xbf\r\n\r\n", "blank.csv: is empty"),
        ("latin1.csv", (BORROWERS + "\nB9,Jos\xe9,,,en-US,,,US,no,no,no\n").encode("latin-1"),
         "latin1.csv: is not UTF-8: invalid byte 0xe9 at byte offset 111 (line 2)"),
        ("unknown.csv", b"borrower_id,full_name,shoe_size\nB9,X,42\n",
         "unknown.csv:1: header not recognised: unknown column(s) shoe_size"),
        ("partial.csv", b"borrower_id,full_name,phone,email,country\nB9,X,,,US\n",
         "partial.csv:1: header of a borrowers file lacks required column(s): consent_sms, consent_voice, "
         "consent_email"),
        ("twice.csv", b"loan_id,LOAN_ID,borrower_id,principal,currency,opened_on\n",
         "twice.csv:1: column(s) named twice in the header: loan_id"),
    ],
)  # fmt: skip
def test_unreadable_files_stop_everything(
    db: Database, db_url: str, run_bot, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    good = portfolio(tmp_path)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    before = dump(db)
    result, summary = run_import(run_bot, db_url, *good.values(), tmp_path / name)
    assert result.exit_code == 2
    assert summary is None
    assert flat(message) in flat(result.stderr)
    assert dump(db) == before
    assert not list(tmp_path.glob("*.rejects.csv"))


def test_forced_kind(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    files = portfolio(tmp_path)
    result, _ = run_import(run_bot, db_url, files["loans"], extra=("--kind", "borrowers"))
    assert result.exit_code == 2
    assert "not part of a borrowers file" in flat(result.stderr)
    # Two ambiguous-looking columns, forced as contacts... still needs the contact columns.
    result, summary = run_import(run_bot, db_url, files["borrowers"], extra=("--kind", "BORROWERS"))
    assert result.exit_code == 0
    assert summary["files"][0]["kind"] == "borrowers"


# --- atomicity -----------------------------------------------------------------------------


def test_failure_after_first_batch_rolls_back_everything(
    db: Database, db_url: str, run_bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = portfolio(tmp_path)
    stale = tmp_path / "installments.csv.rejects.csv"
    stale.write_text("kept as it was\n", encoding="utf-8")
    write(files["installments"], INSTALLMENTS, "I1,L1,2026-01-01,100.25,", "I2,L1,2026-02-01,-1,", "I3,L1,2026-03-01,1,")
    monkeypatch.setattr(import_run, "BATCH_SIZE", 2)
    original = store.Upserter.write
    calls = {"installments": 0}

    def failing_write(self: store.Upserter, rows: Any) -> store.Counts:
        if self.table is store.installments:
            calls["installments"] += 1
            if calls["installments"] == 2:  # the first batch of installments went through
                raise RuntimeError("disk on fire")
        return original(self, rows)

    monkeypatch.setattr(store.Upserter, "write", failing_write)
    before = dump(db)
    result, summary = run_import(run_bot, db_url, *files.values())
    assert result.exit_code == 2
    assert calls["installments"] == 2
    assert "nothing was imported" in flat(result.stderr)
    assert "RuntimeError" in result.stderr
    assert summary is None
    assert dump(db) == before
    assert stale.read_text(encoding="utf-8") == "kept as it was\n"
    assert sorted(p.name for p in tmp_path.iterdir() if "rejects" in p.name) == ["installments.csv.rejects.csv"]


def test_interrupt_rolls_back(db: Database, db_url: str, run_bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = portfolio(tmp_path)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(import_run, "_audit", interrupted)
    before = dump(db)
    result = run_bot("import", *map(str, files.values()), db_url=db_url)
    assert result.exit_code == 130
    assert "nothing was imported" in result.stderr
    assert dump(db) == before


def test_database_error_message_has_no_personal_data(
    db: Database, db_url: str, run_bot, tmp_path: Path
) -> None:
    files = portfolio(tmp_path)
    # A constraint the importer does not expect: +86 and +82 clash.  The
    # PostgreSQL schema is shared by the whole test session: drop it again.
    with db.engine.begin() as conn:
        conn.execute(text("CREATE UNIQUE INDEX uq_test_phone ON borrowers (substr(phone_e164, 1, 2))"))
    try:
        result = run_bot("import", str(files["borrowers"]), db_url=db_url)
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("DROP INDEX uq_test_phone"))
    assert result.exit_code == 2
    assert "nothing was imported" in flat(result.stderr)
    assert "uq_test_phone" in flat(result.stderr)
    assert_no_personal_data(result.output)
    with db.engine.connect() as conn:
        assert conn.execute(select(store.borrowers.c.id)).all() == []


# --- cell parsers (no database) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "decimals", "expected"),
    [
        ("100.25", "USD", 2, 10025),
        ("100.250", "USD", 2, 10025),
        ("0.5", "USD", 2, 50),
        (".5", "USD", 2, 50),
        ("7", "JPY", 0, 7),
        ("7.000", "JPY", 0, 7),
        ("1.234", "KWD", 3, 1234),
        ("100.255", "USD", 2, "too many decimals for USD (at most 2)"),
        ("1e5", "USD", 2, "not a number (use plain decimal notation such as 1234.56)"),
        ("1_000", "USD", 2, "not a number (use plain decimal notation such as 1234.56)"),
        ("١٢٣", "USD", 2, "not a number (use plain decimal notation such as 1234.56)"),
        ("-0.01", "USD", 2, "negative amount"),
        ("", "USD", 2, "missing required value"),
        ("99999999999999999999", "USD", 2, "amount too large"),
    ],
)
def test_parse_amount(text: str, currency: str, decimals: int, expected: int | str) -> None:
    if isinstance(expected, int):
        assert parse_amount_minor(text, currency, decimals) == expected
    else:
        with pytest.raises(BadValue, match=f"^{expected.replace('(', '.').replace(')', '.')}$"):
            parse_amount_minor(text, currency, decimals)


def test_parse_other_cells() -> None:
    assert [parse_bool(t) for t in ("TRUE", "yes", "1", "", "No", "false", "0")] == [True] * 3 + [False] * 4
    with pytest.raises(BadValue):
        parse_bool("y")
    assert parse_instant("2026-03-01T14:30:00+08:00") == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert parse_instant("2026-03-01 14:30") == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    with pytest.raises(BadValue):
        parse_instant("2026-03-01T25:00:00")
    assert [parse_locale(t) for t in ("en-us", "zh_cn", "zh-Hant-TW", "")] == ["en-US", "zh-CN", "zh-Hant-TW", "en-US"]
    assert parse_phone("011 44 20 7946 0958", "US") == "+442079460958"
    assert parse_phone("+82 10 1234 5678", "US") == "+821012345678"


def test_rejects_file_given_with_its_original_is_refused(
    db: Database, db_url: str, run_bot, tmp_path: Path
) -> None:
    """`bot import data/*.csv` after a run with rejects also matches X.csv.rejects.csv."""
    files = portfolio(tmp_path)
    companion = files["borrowers"].with_name(files["borrowers"].name + ".rejects.csv")
    companion.write_text("_line,_column,_reason\n", encoding="utf-8")
    before = dump(db)
    result = run_bot("import", str(files["borrowers"]), str(companion), db_url=db_url)
    assert result.exit_code == 2
    assert "rejects file" in flat(result.stderr) and "on its own" in flat(result.stderr)
    assert dump(db) == before
