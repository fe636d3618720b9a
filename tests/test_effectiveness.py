"""Effectiveness metrics (bot.effectiveness, ``bot report``) on a portfolio with known answers.

Every expected figure below was worked out by hand from the rows this file writes
(the comments say how), not from the code, and is checked on SQLite and PostgreSQL.

The window is November 2026, ``[2026-11-01, 2026-12-01)``; attribution 7 days, cure
30 days; unit costs 5 per SMS, 10 per call minute started, 1 per email (USD).

* B1 (UTC, USD), loan L1: I1z due 09-15 (50.00, paid in full 09-20: neither reached
  overdue nor in a roll), I1a due 10-15 (100.00), I1b due 11-15 (100.00).
  C1 imported SMS 11-02 delivered; C2 the bot's call A:D+20 11-04 conversation (61 s);
  promise 11-04 10:05 kept 11-05; P1 11-05 100.00 (two reached contacts before it: C2
  wins); C3 the bot's SMS A:D+1 11-16 delivered; P2 11-20 100.00 (to C3).
  I1a: overdue at C1, paid by P1 → cured in C1's group; I1b: overdue at C3, paid by P2.
  A reply from another number is not a right-party contact.
* B2 (Asia/Seoul, KRW), loan L2: I2 due 10-20 (500,000).  C4 SMS B:D+12 at 10-31 16:00
  UTC = 11-01 01:00 in Seoul (in the window); C5 at 11-30 16:00 UTC = 12-01 in Seoul (not);
  the borrower's reply 11-01 (right party, to C4); P3 11-03 200,000 (to C4, partial: no
  cure); a promise made 10-25 broken 11-10 (no contact in the 7 days before 10-25:
  unattributed).
* B3 (New York, USD), loan L3: I3 due 09-01 (300.00).  C6 email A:D+60 11-01 delivered;
  C7 call A:D+70 11-10 voicemail (30 s: not reached, costs one minute); C8 failed before
  sending, C9 only planned (neither went out); a dispute 11-05 (to C6); an SMS opt-out
  11-10 (C6 is 9 days old: unattributed); P4 11-20 50.00 (19 days after C6: unattributed);
  P5 12-01 03:00 UTC = 11-30 22:00 in New York 10.00 (in the window, unattributed).
* B4 (UTC, EUR), loan L4: I4 due 11-01 (80.00).  C10 imported call 11-06 09:00
  connected; C11 imported SMS 09:30 failed (not reached, step "=1+1"); P6 10:00 80.00
  goes to C10, the most recent *reached* contact; I4 cured in C10's group.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from builders import add_borrower, add_loan

from bot.db import Database
from bot.db.models import (
    CallSession,
    Consent,
    ContactAttempt,
    InboundMessage,
    Payment,
    Promise,
    Survey,
    Task,
)
from bot.effectiveness import Costs, Window, build_report
from bot.effectiveness.report import month_ends
from bot.ledger import settle_loans

T0 = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = Window(date(2026, 11, 1), date(2026, 12, 1), "America/New_York", attribution_days=7, cure_days=30)
COSTS = Costs(sms_segment_minor=5, call_minute_minor=10, email_minor=1, currency="USD")
PHONES = {"B1": "+15550100001", "B2": "+821055500002", "B3": "+15550100003", "B4": "+15550100004"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _seed(db: Database) -> None:
    with db.session() as s:
        for bid, locale, zone, cur, inst in [
            ("B1", "en-US", "UTC", "USD", [("I1z", "2026-09-15", 5000), ("I1a", "2026-10-15", 10000),
                                           ("I1b", "2026-11-15", 10000)]),
            ("B2", "ko-KR", "Asia/Seoul", "KRW", [("I2", "2026-10-20", 500000)]),
            ("B3", "en-US", "America/New_York", "USD", [("I3", "2026-09-01", 30000)]),
            ("B4", "en-US", "UTC", "EUR", [("I4", "2026-11-01", 8000)]),
        ]:
            lid = "L" + bid[1:]
            add_borrower(s, bid, name="Test Person", phone=PHONES[bid], email=None, locale=locale, timezone=zone,
                         region=None, consent=(), at=T0)
            # settled below, once the payments are in
            add_loan(s, bid, lid, [(iid, date.fromisoformat(due), amount) for iid, due, amount in inst],
                     currency=cur, product="p", at=T0, settle=False)
        s.flush()
        attempts = {}
        for name, bid, channel, source, status, outcome, step, when, sent in [
            ("C1", "B1", "sms", "import", "done", "delivered", None, "2026-11-02 10:00", False),
            ("C2", "B1", "voice", "planner", "sent", "conversation", "A:D+20:voice", "2026-11-04 10:00", True),
            ("C3", "B1", "sms", "planner", "sent", "delivered", "A:D+1:sms", "2026-11-16 10:00", True),
            ("C4", "B2", "sms", "planner", "sent", "delivered", "B:D+12:sms", "2026-10-31 16:00", True),
            ("C5", "B2", "sms", "planner", "sent", "delivered", "B:D+41:sms", "2026-11-30 16:00", True),
            ("C6", "B3", "email", "planner", "sent", "delivered", "A:D+60:email", "2026-11-01 12:00", True),
            ("C7", "B3", "voice", "planner", "sent", "voicemail", "A:D+70:voice", "2026-11-10 15:00", True),
            ("C8", "B3", "sms", "planner", "failed", "failed", "A:D+71:sms", "2026-11-11 15:00", False),
            ("C9", "B3", "sms", "planner", "planned", None, "A:D+72:sms", None, False),
            ("C10", "B4", "voice", "import", "done", "connected", None, "2026-11-06 09:00", False),
            ("C11", "B4", "sms", "import", "done", "failed", "=1+1", "2026-11-06 09:30", False),
        ]:
            instant = at(when) if when else None
            a = ContactAttempt(dedupe_key=name, borrower_id=bid, loan_id="L" + bid[1:], channel=channel,
                               source=source, status=status, outcome=outcome, step=step, occurred_at=instant,
                               sent_at=instant if sent else None, created_at=T0, updated_at=T0)
            s.add(a)
            s.flush()
            attempts[name] = a.id
        for name, seconds in (("C2", 61.0), ("C7", 30.0)):
            s.add(CallSession(attempt_id=attempts[name], call_sid="CA" + name, borrower_id="B1" if name == "C2" else "B3",
                              locale="en-US", script="reminder", status="completed", started_at=T0,
                              duration_s=seconds, created_at=T0, updated_at=T0))
        for pid, lid, when, amount in [
            ("P1", "L1", "2026-11-05 09:00", 10000), ("P2", "L1", "2026-11-20 10:00", 10000),
            ("P3", "L2", "2026-11-03 00:00", 200000), ("P4", "L3", "2026-11-20 12:00", 5000),
            ("P5", "L3", "2026-12-01 03:00", 1000), ("P6", "L4", "2026-11-06 10:00", 8000),
            ("P0", "L3", "2026-10-31 03:00", 700),  # 10-30 in New York: before the window
            ("Pz", "L1", "2026-09-20 10:00", 5000),  # pays I1z in full before the window
        ]:
            s.add(Payment(id=pid, loan_id=lid, paid_at=at(when), amount_minor=amount, created_at=T0, updated_at=T0))
        s.add_all([
            Promise(borrower_id="B1", loan_id="L1", promised_date=date(2026, 11, 5), amount_minor=10000,
                    status="kept", source="voice", created_at=at("2026-11-04 10:05"), resolved_at=at("2026-11-05 09:00")),
            Promise(borrower_id="B2", loan_id="L2", promised_date=date(2026, 10, 30), amount_minor=300000,
                    status="broken", source="sms", created_at=at("2026-10-25 10:00"), resolved_at=at("2026-11-10 12:00")),
            Task(borrower_id="B3", loan_id="L3", kind="dispute", status="open", source="sms",
                 created_at=at("2026-11-05 10:00")),
            Task(borrower_id="B3", loan_id="L3", kind="hardship", status="open", source="sms",
                 created_at=at("2026-11-05 11:00")),
            Consent(borrower_id="B3", channel="sms", address=PHONES["B3"], granted=True,
                    opted_out_at=at("2026-11-10 16:00"), updated_at=T0),
            InboundMessage(channel="sms", borrower_id="B2", from_address=PHONES["B2"], to_address="+15005550006",
                           body_redacted="ok", received_at=at("2026-11-01 02:00")),
            InboundMessage(channel="sms", borrower_id="B1", from_address="+15550109999", to_address="+15005550006",
                           body_redacted="who", received_at=at("2026-11-05 02:00")),
            # satisfaction answers, each attributed to the last reached contact before it was asked
            *(Survey(borrower_id=bid, channel=channel, trigger="promise", asked_at=at(asked),
                     expires_at=at(asked) + timedelta(hours=48), answered_at=at(answered) if answered else None,
                     score=score)
              for bid, channel, asked, answered, score in [
                  ("B1", "sms", "2026-11-04 10:06", "2026-11-04 10:30", 5),  # after C2: voice A USD
                  ("B1", "voice", "2026-11-04 10:07", "2026-11-04 10:07", 4),  # the same call's keypad
                  ("B2", "sms", "2026-11-01 02:05", "2026-11-01 03:00", 2),  # after C4: sms B KRW
                  ("B4", "sms", "2026-11-06 09:05", "2026-11-06 09:40", 4),  # after C10 (C11 failed): voice none EUR
                  ("B3", "sms", "2026-11-10 16:00", None, None),  # never answered: not counted
                  ("B1", "sms", "2026-10-20 10:00", "2026-10-20 11:00", 1),  # answered before the window
              ]),
        ])
        s.flush()
        settle_loans(s, ["L1", "L2", "L3", "L4"], at=at("2026-12-02 00:00"))


def _csat(mean: float | None = None, **scores: int) -> dict[str, Any]:
    """The report's csat: ``_csat(4.5, s4=1, s5=1)``."""
    distribution = {str(n): scores.get(f"s{n}", 0) for n in range(1, 6)}
    return {"mean": mean, "n": sum(distribution.values()), "distribution": distribution}


def _zero(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "contacts": 0, "reached": 0, "contact_rate": None, "right_party_contacts": 0, "right_party_rate": None,
        "promises": 0, "kept": 0, "broken": 0, "kept_rate": None, "payments": 0, "reached_overdue": 0,
        "cured": 0, "cure_rate": None, "opt_outs": 0, "opt_out_rate": None, "disputes": 0, "dispute_rate": None,
        "complaints": 0, "complaint_rate": None, "cost_minor": 0, "cost_currency": "USD", "promised_minor": 0,
        "recovered_minor": 0, "cost_per_recovered": None, "csat": _csat(),
    }
    base.update(kw)
    return base


def _contacted(contacts: int, reached: int, *, rpc: int = 0, dispute_rate: float = 0.0, **kw: Any) -> dict[str, Any]:
    """A group with contacts: its rates over contacts are numbers, not None."""
    return _zero(contacts=contacts, reached=reached, contact_rate=reached / contacts, right_party_contacts=rpc,
                 right_party_rate=rpc / contacts, opt_out_rate=0.0, dispute_rate=dispute_rate, complaint_rate=0.0,
                 **kw)


EXPECTED_BY_CHANNEL_ARM = {
    # C6; the dispute; I3 reached overdue, unpaid
    ("email", "A", "USD"): _contacted(1, 1, disputes=1, dispute_rate=1.0, reached_overdue=1, cure_rate=0.0,
                                      cost_minor=1, currency="USD"),
    # C1 imported: I1a's first reached contact while overdue, paid by P1 on 11-05
    ("sms", "none", "USD"): _contacted(1, 1, reached_overdue=1, cured=1, cure_rate=1.0, currency="USD"),
    # C3; P2; I1b cured; one SMS: 5
    ("sms", "A", "USD"): _contacted(1, 1, payments=1, recovered_minor=10000, reached_overdue=1, cured=1,
                                    cure_rate=1.0, cost_minor=5, cost_per_recovered=0.0005, currency="USD"),
    # C4 (11-01 in Seoul); the borrower's reply; P3; I2 reached overdue, only partly paid
    ("sms", "B", "KRW"): _contacted(1, 1, rpc=1, payments=1, recovered_minor=200000,
                                    reached_overdue=1, cure_rate=0.0, cost_minor=5, currency="KRW",
                                    csat=_csat(2.0, s2=1)),
    # C11 imported, failed
    ("sms", "none", "EUR"): _contacted(1, 0, currency="EUR"),
    # C2 (conversation, 2 minutes) and C7 (voicemail, 1 minute); the promise and its keeping; P1
    ("voice", "A", "USD"): _contacted(2, 1, rpc=1, promises=1, promised_minor=10000,
                                      kept=1, kept_rate=1.0, payments=1, recovered_minor=10000, cost_minor=30,
                                      cost_per_recovered=0.003, currency="USD", csat=_csat(4.5, s4=1, s5=1)),
    # C10 imported, connected; P6; I4 cured
    ("voice", "none", "EUR"): _contacted(1, 1, payments=1, recovered_minor=8000, reached_overdue=1, cured=1,
                                         cure_rate=1.0, currency="EUR", csat=_csat(4.0, s4=1)),
    # P4 and P5 (no reached contact in the 7 days before); B3's opt-out
    ("unattributed", "unattributed", "USD"): _zero(payments=2, recovered_minor=6000, opt_outs=1, currency="USD",
                                                   cost_per_recovered=0.0),
    # the promise broken in the window, made when no contact was recent
    ("unattributed", "unattributed", "KRW"): _zero(broken=1, kept_rate=0.0, currency="KRW"),
}

EXPECTED_TOTALS = {
    # C1 C2 C3 C4 C6 C7 C10 C11 went out; C7 (voicemail) and C11 (failed) did not reach
    "contacts": 8, "reached": 6, "contact_rate": 0.75,
    "right_party_contacts": 2, "right_party_rate": 0.25,  # C2's conversation, B2's reply
    "promises": 1, "kept": 1, "broken": 1, "kept_rate": 0.5,
    "payments": 6,  # P1-P6 (P0 is before the window)
    "reached_overdue": 5, "cured": 3, "cure_rate": 0.6,  # I1a, I1b, I4 of I1a, I1b, I2, I3, I4
    "opt_outs": 1, "opt_out_rate": 0.125, "disputes": 1, "dispute_rate": 0.125,
    "complaints": 0, "complaint_rate": 0.0,
    "cost_minor": 41, "cost_currency": "USD",  # 1 email + 2 SMS x 5 + 3 minutes x 10
    # 5, 4, 2 and 4 answered in the window: (5 + 4 + 2 + 4) / 4
    "csat": {"mean": 3.75, "n": 4, "distribution": {"1": 0, "2": 1, "3": 0, "4": 2, "5": 1}},
    "currencies": [
        {"currency": "EUR", "promised_minor": 0, "recovered_minor": 8000, "cost_per_recovered": None},
        {"currency": "KRW", "promised_minor": 0, "recovered_minor": 200000, "cost_per_recovered": None},
        # 36 / 26000 = 0.00138461... to six decimals (cost of the USD contacts: 1 + 5 + 30)
        {"currency": "USD", "promised_minor": 10000, "recovered_minor": 26000, "cost_per_recovered": 0.001385},
    ],
    "roll_rates": [
        # at 10-31: current I1b (due 11-15), I4 (11-01); 1-30 I1a (16 days), I2 (11); 31-60 I3 (60)
        # at 11-30: I1a, I1b, I4 paid; I2 41 days (31-60); I3 90 days (61-90)
        {"from_month_end": "2026-10-31", "to_month_end": "2026-11-30", "from": "current", "to": "1-30",
         "installments": 2, "rolled": 0, "rate": 0.0},
        {"from_month_end": "2026-10-31", "to_month_end": "2026-11-30", "from": "1-30", "to": "31-60",
         "installments": 2, "rolled": 1, "rate": 0.5},
        {"from_month_end": "2026-10-31", "to_month_end": "2026-11-30", "from": "31-60", "to": "61-90",
         "installments": 1, "rolled": 1, "rate": 1.0},
        {"from_month_end": "2026-10-31", "to_month_end": "2026-11-30", "from": "61-90", "to": "91+",
         "installments": 0, "rolled": 0, "rate": None},
    ],
}


def _by_key(report: dict[str, Any], *names: str) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(g["key"][n] for n in (*names, "currency")): g["metrics"] for g in report["groups"]}


def test_every_metric_by_channel_and_arm(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        report = build_report(s, WINDOW, ["channel", "arm"], COSTS)
    assert report["from"] == "2026-11-01" and report["to"] == "2026-12-01" and report["by"] == ["channel", "arm"]
    assert _by_key(report, "channel", "arm") == EXPECTED_BY_CHANNEL_ARM
    assert report["totals"] == EXPECTED_TOTALS


def test_steps_days_and_months(db: Database) -> None:
    _seed(db)
    with db.session() as s:
        by_step = build_report(s, WINDOW, ["step"], COSTS)
        by_day = build_report(s, WINDOW, ["channel", "day"], COSTS)
        by_month = build_report(s, WINDOW, ["month", "locale"], COSTS)
    steps = _by_key(by_step, "step")
    # the planner's "<arm>:<day>:<channel>" label loses its arm; imported contacts have no step
    assert set(steps) == {("D+60:email", "USD"), ("none", "USD"), ("D+1:sms", "USD"), ("D+12:sms", "KRW"),
                          ("=1+1", "EUR"), ("D+20:voice", "USD"), ("D+70:voice", "USD"), ("none", "EUR"),
                          ("unattributed", "USD"), ("unattributed", "KRW")}
    assert steps[("D+20:voice", "USD")]["contacts"] == 1 and steps[("D+70:voice", "USD")]["reached"] == 0
    days = _by_key(by_day, "channel", "day")
    # C4 and the reply that counts for it fall on 11-01 in Seoul; P3 on 11-03 (its own day)
    assert days[("sms", "2026-11-01", "KRW")]["contacts"] == 1
    assert days[("sms", "2026-11-01", "KRW")]["right_party_contacts"] == 1
    assert days[("sms", "2026-11-03", "KRW")]["recovered_minor"] == 200000
    # P5 at 12-01 03:00 UTC is 11-30 in New York
    assert days[("unattributed", "2026-11-30", "USD")]["recovered_minor"] == 1000
    months = _by_key(by_month, "month", "locale")
    assert set(months) == {("2026-11", "en-US", "USD"), ("2026-11", "en-US", "EUR"), ("2026-11", "ko-KR", "KRW")}
    assert months[("2026-11", "en-US", "USD")]["recovered_minor"] == 26000
    assert months[("2026-11", "en-US", "USD")]["contacts"] == 5


def test_attribution_window_is_a_setting(db: Database) -> None:
    """With 20 days, P4 (19 days after C6) and the opt-out (9 days) count for C6's email."""
    _seed(db)
    window = Window(WINDOW.start, WINDOW.end, WINDOW.default_timezone, attribution_days=20, cure_days=30)
    with db.session() as s:  # the 7-day report first: the same statement shape must not reuse its SQL
        seven = _by_key(build_report(s, WINDOW, ["channel"], COSTS), "channel")
    with db.session() as s:
        groups = _by_key(build_report(s, window, ["channel"], COSTS), "channel")
    assert seven[("email", "USD")]["recovered_minor"] == 0
    assert groups[("email", "USD")]["recovered_minor"] == 5000
    assert groups[("email", "USD")]["opt_outs"] == 1
    assert groups[("unattributed", "USD")]["recovered_minor"] == 1000


def test_month_ends() -> None:
    assert month_ends(WINDOW) == [date(2026, 10, 31), date(2026, 11, 30)]
    q = Window(date(2026, 1, 1), date(2026, 4, 1), "UTC")
    assert month_ends(q) == [date(2025, 12, 31), date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    assert month_ends(Window(date(2026, 11, 10), date(2026, 11, 20), "UTC")) == []


def test_bad_grouping_and_window() -> None:
    with pytest.raises(ValueError, match="unknown report grouping product"):
        build_report(None, WINDOW, ["product"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not after its start"):
        Window(date(2026, 11, 2), date(2026, 11, 1), "UTC")


ENV = {"BOT_COST_SMS_SEGMENT_MINOR": "5", "BOT_COST_CALL_MINUTE_MINOR": "10", "BOT_COST_EMAIL_MINOR": "1"}


def test_report_command_json_csv_table(db_url: str, run_bot: Any, tmp_path: Any) -> None:
    db = Database(db_url)
    try:
        _seed(db)
    finally:
        db.dispose()
    args = ("report", "--from", "2026-11-01", "--to", "2026-12-01")
    result = run_bot(*args, "--by", "channel", "--by", "arm", "--format", "json", db_url=db_url, env=ENV)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["from", "to", "by", "groups", "totals"]
    assert _by_key(doc, "channel", "arm") == EXPECTED_BY_CHANNEL_ARM
    assert doc["totals"] == EXPECTED_TOTALS

    out = tmp_path / "r.csv"
    result = run_bot(*args, "--by", "step", "--format", "csv", "--out", str(out), db_url=db_url, env=ENV)
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0])[:3] == ["step", "currency", "contacts"]
    assert "'=1+1" in {r["step"] for r in rows}  # formula-safe: the imported step is not a formula
    assert {r["step"]: r["recovered_minor"] for r in rows if r["currency"] == "USD"}["D+1:sms"] == "10000"
    csat_columns = ("csat_mean", "csat_n", "csat_1", "csat_2", "csat_3", "csat_4", "csat_5")
    assert {r["step"]: tuple(r[c] for c in csat_columns) for r in rows}["D+20:voice"] == (
        "4.5", "2", "0", "0", "0", "1", "1")

    result = run_bot(*args, "--by", "channel", db_url=db_url, env=ENV)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "channel=voice  currency=EUR" in lines
    assert any(line.split()[:3] == ["contacts", "8", "reached"] for line in lines)
    assert any("1-30 -> 31-60" in line and "50.0%" in line for line in lines)
    assert any("csat" in line and "3.75 (n=4)" in line for line in lines)
    # 36 / 26000 as a share of what was recovered (not rounded away to 0.0000)
    assert "  USD: promised $100.00, recovered $260.00, cost/recovered 0.138%" in lines
    every = [x for key in ("step", "arm", "channel", "locale", "day", "week", "month") for x in ("--by", key)]
    result = run_bot(*args, *every, db_url=db_url, env=ENV)  # long keys wrap, never widen the table
    assert result.exit_code == 0 and max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "month=2026-11  currency=KRW" in result.stdout


def test_report_command_errors(run_bot: Any, tmp_path: Any) -> None:
    result = run_bot("report", "--from", "2026-11-05", "--to", "2026-11-01", db_url=f"sqlite:///{tmp_path}/x.db")
    assert result.exit_code == 2 and "--to" in result.output
    result = run_bot("report", "--from", "2026-11-01", "--to", "2026-12-01", "--by", "product")
    assert result.exit_code == 2 and "product" in result.output
