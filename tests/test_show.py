"""``bot show`` and ``bot summary`` on rows inserted with the ORM."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from builders import add_borrower, add_loan

from bot.db import Database
from bot.db.models import (
    AuditEvent,
    Consent,
    ContactAttempt,
    Installment,
    Payment,
    Promise,
    Task,
)
from bot.portfolio import installment_status, load_borrower, portfolio_summary

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
TODAY = date(2026, 11, 28)  # in New York at 15:00 UTC
AT = "2026-11-28T15:00:00Z"
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def people(db: Database) -> Database:
    """B1 (New York, USD, every installment state, 53 contacts, consents with an
    opt-out and a flag, promises, tasks), B2 (Seoul, KRW), B3 (Shanghai, CNY)."""
    d = TODAY
    with db.session() as s:
        add_borrower(s, "B1", name="Jane Q Doe", phone="+12125550147", email="jane.doe@example.com",
                     timezone="America/New_York", consent=(), at=NOW)
        add_borrower(s, "B2", name="김민준", phone="+821012345678", email=None, locale="ko-KR", timezone="Asia/Seoul",
                     region="11", country="KR", consent=(), at=NOW)
        add_borrower(s, "B3", name="张伟", phone="+8613812345678", email="wei@example.net", locale="zh-CN",
                     region="SH", country="CN", cease=NOW, consent=(), at=NOW)
        loan = functools.partial(add_loan, s, principal=120_000, opened_on=date(2026, 6, 1), at=NOW)
        loan("B1", "L1", [
            ("I1", d - timedelta(days=45), 10_000, 10_000),  # paid
            ("I2", d - timedelta(days=31), 10_000, 4_000),  # partly paid, 31 days late
            ("I3", d - timedelta(days=8), 10_000),  # overdue 8
            ("I4", d - timedelta(days=1), 10_000),  # overdue 1
            ("I5", d, 10_000),  # due today
            ("I6", d + timedelta(days=7), 10_000),  # due in 7 days
            ("I7", d + timedelta(days=8), 10_000),  # later
        ])  # fmt: skip
        loan("B1", "L1b", [("I8", d - timedelta(days=7), 5_000)], principal=50_000)  # overdue 7
        loan("B2", "L2", [("I21", d + timedelta(days=1), 1_500_000),
                          ("I22", d - timedelta(days=30), 1_500_000, 1_500_000)], currency="KRW", principal=3_000_000)
        loan("B3", "L3", [("I31", d - timedelta(days=2), 314_245, 100_000)], currency="CNY", principal=1_000_000)
        s.add(Payment(id="P1", loan_id="L1", paid_at=NOW - timedelta(days=44), amount_minor=10_000,
                      created_at=NOW, updated_at=NOW))  # fmt: skip
        s.add_all([
            Consent(borrower_id="B1", channel="sms", address="+12125550147", granted=True,
                    opted_out_at=NOW - timedelta(days=2), opt_out_source="sms_stop", updated_at=NOW),
            Consent(borrower_id="B1", channel="voice", address="+12125550147", granted=True,
                    address_flag="wrong_number", updated_at=NOW),
            Consent(borrower_id="B1", channel="email", address="jane.doe@example.com", granted=False, updated_at=NOW),
        ])  # fmt: skip
        for n in range(53):
            s.add(ContactAttempt(
                dedupe_key=f"k{n}", borrower_id="B1", loan_id="L1", channel="voice" if n % 2 else "sms",
                source="import", status="done", outcome="delivered", address="+12125550147",
                occurred_at=NOW - timedelta(hours=n + 1), created_at=NOW, updated_at=NOW,
            ))  # fmt: skip
        s.add(ContactAttempt(
            dedupe_key="planned", borrower_id="B1", loan_id="L1", channel="email", source="planner",
            status="deferred", address="jane.doe@example.com", next_attempt_at=NOW + timedelta(hours=3),
            decision={"allowed": False, "reasons": ["us.hours"]}, created_at=NOW, updated_at=NOW,
        ))  # fmt: skip
        s.add_all([
            Promise(borrower_id="B1", loan_id="L1", promised_date=d + timedelta(days=3), amount_minor=20_000,
                    status="pending", source="sms", created_at=NOW),
            Promise(borrower_id="B1", loan_id=None, promised_date=d - timedelta(days=20), amount_minor=None,
                    status="broken", source="voice", created_at=NOW - timedelta(days=25)),
            Task(borrower_id="B1", loan_id="L1", kind="dispute", status="open", source="sms",
                 note="says call +1 212 555 0147 instead", created_at=NOW),
            Task(borrower_id="B1", kind="callback", status="closed", source="voice", created_at=NOW,
                 closed_at=NOW),
            Promise(borrower_id="B2", loan_id="L2", promised_date=d, amount_minor=None, status="kept",
                    source="sms", created_at=NOW),
        ])  # fmt: skip
    return db


def show(run_bot, db_url: str, *args: str) -> dict[str, Any]:
    result = run_bot("show", *args, "--json", db_url=db_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- installment status ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("due_offset", "paid", "status", "dpd"),
    [
        (-10, 100, "paid", 0),
        (-10, 150, "paid", 0),  # overpaid
        (-10, 40, "partly paid", 10),
        (5, 40, "partly paid", 0),
        (-10, 0, "overdue", 10),
        (-1, 0, "overdue", 1),
        (0, 0, "due", 0),
        (3, 0, "due", 0),
        (3, 100, "paid", 0),  # paid early
    ],
)
def test_installment_status(due_offset: int, paid: int, status: str, dpd: int) -> None:
    inst = Installment(id="I", loan_id="L", due_date=TODAY + timedelta(days=due_offset), amount_due_minor=100,
                       amount_paid_minor=paid, covered_minor=paid)  # fmt: skip
    assert installment_status(inst, TODAY) == (status, dpd)


# --- bot show --------------------------------------------------------------------------------


def test_show_json_document(run_bot, db_url: str, people: Database) -> None:
    doc = show(run_bot, db_url, "B1", "--at", AT)
    assert set(doc) == {"at", "masked", "borrower", "loans", "consents", "contacts", "promises", "open_tasks"}
    assert doc["masked"] is True and doc["at"] == "2026-11-28T15:00:00+00:00"
    b = doc["borrower"]
    assert (b["name"], b["phone"], b["email"]) == ("J*** Q*** D***", "+1 ***-***-0147", "j***@example.com")
    assert b["zones"] == ["America/New_York"] and b["local_today"] == "2026-11-28"
    loan = doc["loans"][0]
    assert loan["id"] == "L1" and loan["principal"] == {"minor": 120_000, "currency": "USD", "text": "$1,200.00"}
    rows = {r["id"]: r for r in loan["installments"]}
    assert [(rows[i]["status"], rows[i]["days_past_due"]) for i in ("I1", "I2", "I3", "I4", "I5", "I6", "I7")] == [
        ("paid", 0), ("partly paid", 31), ("overdue", 8), ("overdue", 1), ("due", 0), ("due", 0), ("due", 0)]
    assert rows["I2"]["outstanding"] == {"minor": 6_000, "currency": "USD", "text": "$60.00"}
    assert rows["I2"]["amount_paid"]["text"] == "$40.00"
    assert loan["outstanding"]["minor"] == 6_000 + 5 * 10_000
    assert loan["overdue"]["minor"] == 6_000 + 2 * 10_000
    assert loan["payments"] == [
        {"id": "P1", "paid_at": "2026-10-15T08:00:00-04:00", "amount": {"minor": 10_000, "currency": "USD",
                                                                       "text": "$100.00"}}]  # fmt: skip
    assert [c["address"] for c in doc["consents"]] == ["j***@example.com", "+1 ***-***-0147", "+1 ***-***-0147"]
    sms = next(c for c in doc["consents"] if c["channel"] == "sms")
    assert sms["opted_out_at"] and sms["opt_out_source"] == "sms_stop"
    voice = next(c for c in doc["consents"] if c["channel"] == "voice")
    assert voice["address_flag"] == "wrong_number"
    assert doc["promises"][0]["amount"]["text"] == "$200.00" and doc["promises"][1]["amount"] is None
    assert [t["kind"] for t in doc["open_tasks"]] == ["dispute"]
    assert doc["open_tasks"][0]["note"] == "says call +1 ***-***-0147 instead"


def test_show_contacts_most_recent_first_and_capped(run_bot, db_url: str, people: Database) -> None:
    contacts = show(run_bot, db_url, "B1", "--at", AT)["contacts"]
    assert contacts["total"] == 54 and len(contacts["items"]) == 50 and contacts["more"] == 4
    first, second = contacts["items"][0], contacts["items"][1]
    assert first["status"] == "deferred" and first["reasons"] == ["us.hours"] and first["occurred_at"] is None
    assert first["address"] == "j***@example.com"
    assert second["occurred_at"] == "2026-11-28T06:00:00-05:00" and second["address"] == "+1 ***-***-0147"
    times = [c["occurred_at"] for c in contacts["items"][1:]]
    assert times == sorted(times, reverse=True)
    table = run_bot("show", "B1", "--at", AT, db_url=db_url, env=WIDE)
    assert "+4 more" in table.stdout


def test_days_past_due_use_the_borrowers_local_day(run_bot, db_url: str, people: Database) -> None:
    # 03:00 UTC on the 28th is still the 27th in New York and already the 28th in Seoul
    early = "2026-11-28T03:00:00Z"
    ny = show(run_bot, db_url, "B1", "--at", early)
    assert ny["borrower"]["local_today"] == "2026-11-27"
    rows = {r["id"]: r for r in ny["loans"][0]["installments"]}
    assert (rows["I4"]["status"], rows["I4"]["days_past_due"]) == ("due", 0)
    assert rows["I3"]["days_past_due"] == 7
    seoul = show(run_bot, db_url, "B2", "--at", "2026-11-28T15:30:00Z")
    assert seoul["borrower"]["local_today"] == "2026-11-29"
    assert seoul["loans"][0]["installments"][1]["status"] == "due"  # due on the 29th


def test_money_in_the_borrowers_locale(run_bot, db_url: str, people: Database) -> None:
    kr = show(run_bot, db_url, "B2", "--at", AT)
    assert kr["loans"][0]["installments"][0]["amount_due"] == {"minor": 1_500_000, "currency": "KRW",
                                                               "text": "₩1,500,000"}  # fmt: skip
    cn = show(run_bot, db_url, "B3", "--at", AT)
    inst = cn["loans"][0]["installments"][0]
    assert (inst["amount_due"]["text"], inst["outstanding"]["text"]) == ("¥3,142.45", "¥2,142.45")
    assert cn["borrower"]["zones"] == ["Asia/Shanghai"]  # no timezone column: from the region
    assert cn["borrower"]["cease_communication_at"] is not None
    assert (cn["borrower"]["name"], cn["borrower"]["phone"]) == ("张*", "+86 138****5678")


def test_show_table(run_bot, db_url: str, people: Database) -> None:
    result = run_bot("show", "B1", "--at", AT, db_url=db_url, env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("B1", "J*** Q*** D***", "Loan L1 ", "Loan L1b ", "$1,200.00", "partly paid", "overdue", "$60.00",
                 "sms_stop", "wrong_number", "Promises", "$200.00", "dispute", "+1 ***-***-0147",
                 "--reveal shows it and is audited"):  # fmt: skip
        assert text in out, text
    assert "callback" not in out  # closed tasks are not listed
    assert "Jane" not in result.output and "2125550147" not in result.output and "jane.doe" not in result.output
    ceased = run_bot("show", "B3", "--at", AT, db_url=db_url, env=WIDE)
    assert "cease all communication" in ceased.stdout
    assert "no open tasks" in ceased.stdout and "no contacts" in ceased.stdout


def test_reveal_is_audited(run_bot, db_url: str, people: Database, clock) -> None:
    result = run_bot("show", "B1", "--reveal", "--at", AT, db_url=db_url, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Jane Q Doe" in result.stdout and "+12125550147" in result.stdout and "jane.doe@example.com" in result.stdout
    assert "--reveal shows it" not in result.stdout
    doc = show(run_bot, db_url, "B1", "--reveal")
    assert doc["masked"] is False and doc["borrower"]["name"] == "Jane Q Doe"
    assert doc["open_tasks"][0]["note"] == "says call +1 212 555 0147 instead"
    with people.session() as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert len(events) == 2
    assert {(e.actor, e.action, e.subject_type, e.subject_id) for e in events} == {("cli", "reveal", "borrower", "B1")}
    assert events[0].detail == {"fields": ["full_name", "phone", "email", "consent_addresses", "contact_addresses"]}
    # the audit time is the real time of the reveal, not --at
    assert abs((events[0].at - datetime.now(UTC)).total_seconds()) < 600


def test_help_says_reveals_are_audited(run_bot) -> None:
    result = run_bot("show", "--help")
    assert result.exit_code == 0
    assert "audit" in " ".join(result.stdout.split())


def test_unknown_borrower(run_bot, db_url: str, people: Database) -> None:
    result = run_bot("show", "B404", db_url=db_url)
    assert result.exit_code == 2
    assert "no borrower with id B404" in result.stderr
    assert result.stdout == ""


@contextmanager
def count_queries(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def test_show_runs_a_fixed_number_of_queries(people: Database) -> None:
    with count_queries(people) as few, people.session() as s:
        load_borrower(s, "B2")  # one loan
    with people.session() as s:
        for n in range(10):
            add_loan(s, "B2", f"LX{n}", [(f"IX{n}", TODAY, 1000)], currency="KRW", at=NOW)
            s.add(Payment(id=f"PX{n}", loan_id=f"LX{n}", paid_at=NOW, amount_minor=10, created_at=NOW, updated_at=NOW))
    with count_queries(people) as many, people.session() as s:
        record = load_borrower(s, "B2")
    assert len(record.borrower.loans) == 11
    assert len(few) == len(many) <= 9


# --- bot summary ----------------------------------------------------------------------------------


def test_portfolio_summary(people: Database) -> None:
    with people.session() as s:
        summary = portfolio_summary(s, TODAY)
    assert summary["today"] == "2026-11-28"
    assert summary["borrowers"] == {"total": 3, "by_country": {"CN": 1, "KR": 1, "US": 1},
                                    "by_locale": {"en-US": 1, "ko-KR": 1, "zh-CN": 1}, "cease_communication": 1}
    assert summary["loans"] == {"total": 4, "by_currency": {"CNY": 1, "KRW": 1, "USD": 2}}
    inst = summary["installments"]
    assert inst["total"] == 11
    # unpaid: I2 (31 days) I3 (8) I4 (1) I5 (today) I6 (+7) I7 (+8) I8 (7) I21 (+1) I31 (2)
    assert inst["unpaid"] == 9
    assert inst["overdue"] == {"1-7": 3, "8-30": 1, "31+": 1}
    assert (inst["due_today"], inst["due_next_7_days"], inst["later"]) == (1, 2, 1)
    usd = summary["amounts"]["USD"]
    assert usd["outstanding"]["minor"] == 6_000 + 5 * 10_000 + 5_000
    assert usd["overdue"] == {"minor": 6_000 + 2 * 10_000 + 5_000, "currency": "USD", "text": "$310.00"}
    assert summary["amounts"]["KRW"]["outstanding"]["text"] == "₩1,500,000"
    assert summary["amounts"]["CNY"]["overdue"]["minor"] == 214_245
    assert summary["consents"] == {
        "email": {"addresses": 1, "granted": 0, "not_granted": 1, "opted_out": 0, "flagged": 0},
        "sms": {"addresses": 1, "granted": 1, "not_granted": 0, "opted_out": 1, "flagged": 0},
        "voice": {"addresses": 1, "granted": 1, "not_granted": 0, "opted_out": 0, "flagged": 1},
    }
    assert (summary["promises_pending"], summary["open_tasks"]) == (1, 1)


def test_summary_on_an_empty_database(db: Database) -> None:
    with db.session() as s:
        summary = portfolio_summary(s, TODAY)
    assert summary["borrowers"]["total"] == 0 and summary["amounts"] == {} and summary["consents"] == {}
    assert summary["installments"]["overdue"] == {"1-7": 0, "8-30": 0, "31+": 0}


def test_summary_command(run_bot, db_url: str, people: Database) -> None:
    # 03:00 UTC is still the 27th in the default zone (America/New_York)
    doc = json.loads(run_bot("summary", "--json", "--at", "2026-11-28T03:00:00Z", db_url=db_url).stdout)
    assert doc["today"] == "2026-11-27"
    assert doc["installments"]["due_today"] == 1  # I4, due on the 27th
    table = run_bot("summary", "--at", AT, db_url=db_url, env=WIDE)
    assert table.exit_code == 0, table.output
    for text in ("Portfolio on 2026-11-28", "due today", "overdue 31+ days", "$310.00", "₩1,500,000", "Opted out", "KRW"):
        assert text in table.stdout, text


def test_data_is_never_read_as_markup(run_bot, db_url: str, people: Database) -> None:
    with people.session() as s:
        s.add(Task(borrower_id="B2", kind="review", status="open", source="sms", note="[/] [bold]x[/bold]",
                   created_at=NOW))  # fmt: skip
    result = run_bot("show", "B2", "--at", AT, db_url=db_url, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "[/] [bold]x[/bold]" in result.stdout


def test_an_80_column_terminal_shows_every_value_whole(run_bot, db_url: str, people: Database) -> None:
    """Nothing is cut ("pendin", "deferr"): narrow tables wrap at spaces or abbreviate legibly,
    and every line fits the terminal."""
    result = run_bot("show", "B1", "--at", AT, db_url=db_url, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    # Tables fit the terminal (the free-text lines above them are left to the terminal to wrap).
    table_lines = [line for line in out.splitlines() if line.startswith(" ")]
    assert table_lines and all(len(line) <= 80 for line in table_lines), max(table_lines, key=len)
    words = {word.rstrip(",") for word in out.split()}
    for whole in ("pending", "deferred", "broken", "partly", "delivered", "us.hours", "sms_stop", "wrong_number",
                  "dispute", "Outstanding", "2026-11-28", "$1,200.00", "Opted", "L1b", "+1", "***-***-0147"):
        assert whole in words, (whole, out)
    for table in ("Installments", "Consents", "Contacts", "Promises", "Open tasks"):
        assert table in out
