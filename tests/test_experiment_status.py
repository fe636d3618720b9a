"""``bot experiment status`` end to end on a seeded two-arm portfolio (SQLite and PostgreSQL).

Each arm has 100 borrowers, picked by the policy's own stable assignment
(``policy.arm_for``), each with one installment of 100.00 USD due 2026-11-01 and one
SMS of the experiment's step on 2026-11-05 10:00 UTC (D+4, so every reached borrower
is overdue at the contact):

| arm | delivered | promises (kept / broken / pending) | paid in full 11-06 | opt-outs | disputes |
|---|---|---|---|---|---|
| A (champion) | 30 | 6 (2 / 2 / 2) | 2 | 1 | 1 |
| B | 45 | 9 (6 / 1 / 2) | 3 | 3 | 1 |

Only reached borrowers promise, pay, opt out or dispute (so last touch gives the
outcome to the arm's SMS).  Unit cost 5 per SMS: 500 per arm.  Expected figures are
worked out by hand in the comments (z = 1.959964, z² = 3.841459, z_{0.8} = 0.841621).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from builders import add_borrower, add_loan

from bot.db import Database
from bot.db import models as m
from bot.ledger import settle_loans
from bot.policy import Policy, load_policy

T0 = datetime(2026, 10, 1, tzinfo=UTC)
CONTACT = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)
POLICY = """\
version: 1
experiment:
  name: overdue-tone
  split: 50
  start: 2026-11-01
  end: 2026-11-30
  a:
    steps:
      - {day: 4, channel: sms, template: reminder_overdue}
  b:
    steps:
      - {day: 4, channel: sms, template: reminder_due}
"""
#: arm → (delivered, promises, kept, broken, paid, opt-outs, disputes)
PLAN = {"A": (30, 6, 2, 2, 2, 1, 1), "B": (45, 9, 6, 1, 3, 3, 1)}
ENV = {"BOT_COST_SMS_SEGMENT_MINOR": "5", "BOT_DEFAULT_TIMEZONE": "UTC"}


def _ids(policy: Policy) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {"A": [], "B": []}
    n = 0
    while min(len(v) for v in ids.values()) < 100:
        bid = f"X{n:05d}"
        arm = policy.arm_for(bid)
        if len(ids[arm]) < 100:
            ids[arm].append(bid)
        n += 1
    return ids


def _seed(db: Database, policy: Policy) -> None:
    at = datetime.fromisoformat
    with db.session() as s:
        for arm, bids in _ids(policy).items():
            delivered, promises, kept, broken, paid, opt_outs, disputes = PLAN[arm]
            for i, bid in enumerate(bids):
                lid = "L" + bid
                add_borrower(s, bid, name="Test Person", phone=f"+1555{i:07d}", email=None, timezone="UTC",
                             region=None, consent=(), at=T0)
                add_loan(s, bid, lid, [("I" + bid, date(2026, 11, 1))], amount=10000, principal=10000, product="p",
                         at=T0, settle=False)  # settled below, once the payments are in
                s.add(m.ContactAttempt(dedupe_key=f"plan:I{bid}:{arm}:4:sms", borrower_id=bid, loan_id=lid,
                                     channel="sms", source="planner", status="sent",
                                     outcome="delivered" if i < delivered else "failed", step=f"{arm}:D+4:sms",
                                     occurred_at=CONTACT, sent_at=CONTACT, created_at=T0, updated_at=T0))
                if i < promises:
                    status = "kept" if i < kept else "broken" if i < kept + broken else "pending"
                    s.add(m.Promise(borrower_id=bid, loan_id=lid, promised_date=date(2026, 11, 7), amount_minor=10000,
                                  status=status, source="sms", created_at=at("2026-11-05T11:00+00:00"),
                                  resolved_at=None if status == "pending" else at("2026-11-08T12:00+00:00")))
                if i < 2:  # two satisfaction answers per arm, after the arm's (delivered) text
                    s.add(m.Survey(borrower_id=bid, channel="sms", trigger="promise",
                                   asked_at=at("2026-11-05T11:01+00:00"), expires_at=at("2026-11-07T11:01+00:00"),
                                   answered_at=at("2026-11-05T11:30+00:00"), score={"A": (5, 3), "B": (2, 4)}[arm][i]))
                if i < paid:
                    s.add(m.Payment(id="P" + bid, loan_id=lid, paid_at=at("2026-11-06T09:00+00:00"), amount_minor=10000,
                                  created_at=T0, updated_at=T0))
                if i < opt_outs:
                    s.add(m.Consent(borrower_id=bid, channel="sms", address=f"+1555{i:07d}", granted=True,
                                  opted_out_at=at("2026-11-06T12:00+00:00"), updated_at=T0))
                if i < disputes:
                    s.add(m.Task(borrower_id=bid, loan_id=lid, kind="dispute", status="open", source="sms",
                               created_at=at("2026-11-06T13:00+00:00")))
        s.flush()
        settle_loans(s, [f"L{b}" for bids in _ids(policy).values() for b in bids], at=at("2026-11-20T00:00+00:00"))


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "ab.yaml"
    path.write_text(POLICY, encoding="utf-8")
    db = Database(db_url)
    try:
        _seed(db, load_policy(path))
    finally:
        db.dispose()
    return db_url, path


def test_status_json(seeded: tuple[str, Path], run_bot: Any) -> None:
    db_url, policy = seeded
    result = run_bot("experiment", "status", "overdue-tone", "--json", "--policy", str(policy),
                     "--at", "2026-11-20T12:00:00Z", db_url=db_url, env=ENV)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["from"], doc["to"], doc["champion"], doc["challenger"]) == ("2026-11-01", "2026-11-21", "A", "B")
    a, b = doc["arms"]
    assert (a["arm"], a["role"], a["contacts"], b["arm"], b["role"], b["contacts"]) == \
        ("A", "champion", 100, "B", "challenger", 100)

    # contact rate A 30/100: centre (0.30 + 0.01920729) / 1.03841459 = 0.307398,
    #   half 1.959964 * sqrt(0.0021 + 0.0000960365) / 1.03841459 = 0.088450 → [0.2189, 0.3958]
    # B 45/100: [0.3561, 0.5476] (tests/test_experiment_stats.py)
    # z-test: pooled 0.375, se sqrt(0.234375 * 0.02) = 0.0684653, z = 0.15 / 0.0684653 = 2.1909, p = 0.0285
    # MDE at the champion's 0.30 with 100 + 100: 2.801585 * sqrt(0.21 * 0.02) = 2.801585 * 0.0648074 = 0.1816
    assert a["rates"]["contact_rate"] == {"count": 30, "of": 100, "rate": 0.3, "ci95": [0.2189, 0.3958]}
    assert b["rates"]["contact_rate"] == {"count": 45, "of": 100, "rate": 0.45, "ci95": [0.3561, 0.5476],
                                          "difference": 0.15, "z": 2.1909, "p_value": 0.0285, "mde": 0.1816}
    # promise rate over contacts 6/100 vs 9/100: pooled 0.075, se sqrt(0.069375 * 0.02) = 0.0372492,
    #   z = 0.03 / 0.0372492 = 0.8054, p = 2 * (1 - Φ(0.8054)) = 0.4206
    assert (b["rates"]["promise_rate"]["rate"], b["rates"]["promise_rate"]["p_value"]) == (0.09, 0.4206)
    # kept rate over resolved promises: A 2/4, B 6/7
    assert (a["rates"]["kept_rate"]["count"], a["rates"]["kept_rate"]["of"]) == (2, 4)
    assert (b["rates"]["kept_rate"]["count"], b["rates"]["kept_rate"]["of"], b["rates"]["kept_rate"]["rate"]) == \
        (6, 7, 0.8571)
    # cure rate over reached overdue installments: A 2/30, B 3/45 = same rate, z = 0, p = 1
    assert (a["rates"]["cure_rate"]["count"], a["rates"]["cure_rate"]["of"]) == (2, 30)
    assert b["rates"]["cure_rate"]["difference"] == 0.0 and b["rates"]["cure_rate"]["p_value"] == 1.0
    # recovered and cost: 100 SMS × 5 = 500; A 20000 → 500 / 20000 = 0.025, B 30000 → 0.016667 (six decimals)
    assert (a["recovered_minor"], a["cost_minor"], a["cost_per_recovered"]) == ({"USD": 20000}, 500, 0.025)
    assert (b["recovered_minor"], b["cost_minor"], b["cost_per_recovered"]) == ({"USD": 30000}, 500, 0.016667)
    # guardrails: opt-outs 1/100 vs 3/100: +0.02 > margin 0.005 → flagged (pooled 0.02,
    #   se sqrt(0.0196 * 0.02) = 0.0197990, z = 1.0102, p = 0.3124); disputes 1 vs 1: not flagged
    opt = b["guardrails"]["opt_out_rate"]
    assert (opt["difference"], opt["z"], opt["p_value"], opt["flagged"]) == (0.02, 1.0102, 0.3124, True)
    assert b["guardrails"]["dispute_rate"]["flagged"] is False
    assert doc["flagged"] == ["opt_out_rate"]
    # satisfaction: A (5 + 3) / 2, B (2 + 4) / 2
    assert (a["csat"]["mean"], a["csat"]["n"], b["csat"]["mean"], b["csat"]["distribution"]) == (
        4.0, 2, 3.0, {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0})


def test_status_table_window_and_errors(seeded: tuple[str, Path], run_bot: Any) -> None:
    db_url, policy = seeded
    args = ("experiment", "status", "overdue-tone", "--policy", str(policy))
    result = run_bot(*args, "--at", "2026-11-20T12:00:00Z", db_url=db_url, env=ENV)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "arm A (champion): 100 contacts" in out and "arm B (challenger): 100 contacts" in out
    assert any(line.split()[:2] == ["opt", "out"] and line.endswith("WORSE") for line in out.splitlines())
    assert "guardrails worse by more than 0.5 pt: opt_out_rate" in out
    assert [line.split() for line in out.splitlines() if line.strip().startswith("csat")] == [
        ["csat", "4.00", "(n=2)"], ["csat", "3.00", "(n=2)"]]
    # before any contact: nothing counted, no statistics, nothing flagged
    result = run_bot(*args, "--at", "2026-11-03T00:00:00Z", "--json", db_url=db_url, env=ENV)
    doc = json.loads(result.stdout)
    assert doc["to"] == "2026-11-04" and doc["arms"][1]["contacts"] == 0 and doc["flagged"] == []
    assert doc["arms"][1]["rates"]["contact_rate"] == {"count": 0, "of": 0, "rate": None, "ci95": None,
                                                        "difference": None, "z": None, "p_value": None, "mde": None}
    # after the end: the window stops at the experiment's end
    result = run_bot(*args, "--at", "2027-01-15T00:00:00Z", "--json", db_url=db_url, env=ENV)
    assert json.loads(result.stdout)["to"] == "2026-12-01"
    result = run_bot(*args, "--at", "2026-10-01T00:00:00Z", db_url=db_url, env=ENV)
    assert result.exit_code == 2 and "starts on 2026-11-01" in result.output
    result = run_bot("experiment", "status", "other", "--policy", str(policy), db_url=db_url, env=ENV)
    assert result.exit_code == 2 and "no experiment other" in result.output and "overdue-tone" in result.output
