"""The planner's output on a seeded portfolio, pinned: every (attempt key, status,
next attempt, decision text) and every hand-off task, after several passes.

The golden file (tests/data/plan_golden.json) was computed by the planner before
its speed-ups (per-pass check memo, lighter context loading, shared payload
encoding); any change of a single decision fails here, on SQLite and on
PostgreSQL.  ``python tests/test_plan_golden.py --write`` rewrites it, which is
only right when a decision is *meant* to change.  Incremental passes must leave
exactly what full passes leave.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Text, cast, insert, select, update

from bot.db import Database
from bot.db.models import Borrower, Consent, ContactAttempt, Hold, Installment, Loan, Promise, Task
from bot.policy import Policy, load_policy
from bot.scheduler.planner import plan

GOLDEN = Path(__file__).parent / "data" / "plan_golden.json"
AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # Saturday, 10:00 in New York
TODAY = AT.date()
# Full passes at these instants, in order (day, night in the Americas, the next days).
PASSES = (AT, AT + timedelta(minutes=5), AT + timedelta(hours=9), AT + timedelta(days=1, hours=2),
          AT + timedelta(days=2, hours=-1))

PLACES = [  # country, region, explicit zone, phone prefix, locale
    ("US", "NY", None, "+1212555", "en-US"),
    ("US", "FL", None, "+1305555", "en-US"),  # two candidate zones
    ("US", "AZ", "America/Phoenix", "+1602555", "en-US"),
    ("US", "CA", None, "+1415555", "es-US"),
    ("US", None, None, "+1312555", "en-US"),  # zone from the phone number
    ("US", None, None, "+1800555", "en-US"),  # toll-free: the country's zones
    ("US", "MA", None, "+1617555", "en-US"),
    ("US", "TX", "America/Chicago", "+1512555", "en-US"),
    ("CN", "GD", None, "+86138", "zh-CN"),
    ("CN", "XJ", None, "+86139", "zh-CN"),
    ("CN", None, "Asia/Shanghai", "+86137", "zh-CN"),
    ("GB", None, None, "+44770090", "en-GB"),
    ("CA", "ON", None, "+1416555", "en-CA"),
]
FLAGS = (None, None, None, None, None, None, "wrong_number", "landline", "invalid")
OUTCOMES = ("attempted", "voicemail", "conversation", "connected", "delivered", "failed")


def seed(db: Database, borrowers: int = 160) -> None:
    """A varied portfolio: zones, missing addresses, opt-outs, flags, history, promises,
    holds, disputes, ceases, partial payments, several loans and installments."""
    rng = random.Random(20261204)
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (Borrower, Consent, Loan, Installment,
                                                             ContactAttempt, Promise, Hold, Task)}
    for n in range(borrowers):
        bid = f"B{n:04d}"
        country, region, tz, prefix, locale = PLACES[n % len(PLACES)]
        phone = None if n % 23 == 5 else f"{prefix}{n:04d}"
        email = None if n % 19 == 3 else f"b{n}@example.com"
        rows[Borrower].append({
            "id": bid, "full_name": "Sample Person", "phone_e164": phone, "email": email, "locale": locale,
            "timezone": tz, "region": region, "country": country,
            "cease_communication_at": AT - timedelta(days=2) if n % 41 == 7 else None,
            "created_at": AT, "updated_at": AT})
        for channel in ("sms", "voice", "email"):
            address = email if channel == "email" else phone
            if address is None or rng.random() < 0.08:
                continue
            rows[Consent].append({
                "borrower_id": bid, "channel": channel, "address": address, "granted": rng.random() < 0.93,
                "opted_out_at": AT - timedelta(days=3) if rng.random() < 0.07 else None, "opt_out_source": None,
                "address_flag": rng.choice(FLAGS) if channel != "email" else None, "updated_at": AT})
        if n % 17 == 4 and phone:  # an opt-out of an old number: does not count
            rows[Consent].append({"borrower_id": bid, "channel": "sms", "address": "+12025550000", "granted": True,
                                  "opted_out_at": AT - timedelta(days=9), "opt_out_source": "sms",
                                  "address_flag": None, "updated_at": AT})
        loans = [f"L{n:04d}{k}" for k in range(1 + n % 3)]
        for k, lid in enumerate(loans):
            rows[Loan].append({"id": lid, "borrower_id": bid, "product": "personal", "principal_minor": 100_000,
                               "currency": "CNY" if country == "CN" else "USD", "opened_on": date(2026, 1, 1),
                               "created_at": AT, "updated_at": AT})
            for j in range(1 + (n + k) % 3):
                due = TODAY - timedelta(days=rng.randint(-5, 40))
                amount = rng.choice((5_000, 20_000, 80_000))
                paid = rng.choice((0, 0, 0, amount // 4, amount // 2, amount, amount - 1))
                rows[Installment].append({"id": f"I{n:04d}{k}{j}", "loan_id": lid, "due_date": due,
                                          "amount_due_minor": amount, "amount_paid_minor": paid,
                                          "covered_minor": paid, "created_at": AT, "updated_at": AT})
        for h in range(rng.choice((0, 0, 0, 1, 2, 4, 8))):
            when = AT - timedelta(hours=rng.randint(1, 24 * 9), minutes=rng.randint(0, 59))
            rows[ContactAttempt].append({
                "dedupe_key": f"hist:{bid}:{h}", "borrower_id": bid,
                "loan_id": rng.choice(loans + [None]), "installment_id": None,
                "channel": rng.choice(("voice", "voice", "sms", "email")), "source": rng.choice(("import", "reply")),
                "status": rng.choice(("done", "sent", "failed")), "outcome": rng.choice(OUTCOMES),
                "occurred_at": when, "created_at": AT, "updated_at": AT})
        if n % 13 == 6:
            rows[Promise].append({"borrower_id": bid, "loan_id": loans[0], "status": "pending", "source": "sms",
                                  "promised_date": TODAY + timedelta(days=n % 4 - 1), "created_at": AT})
        if n % 29 == 11:
            rows[Hold].append({"borrower_id": bid, "kind": "bankruptcy", "created_at": AT, "created_by": "test"})
        if n % 31 == 13:
            rows[Task].append({"borrower_id": bid, "loan_id": loans[0], "kind": "dispute", "status": "open",
                               "source": "sms", "created_at": AT})
    with db.engine.begin() as conn:
        for table, values in rows.items():
            if values:
                conn.execute(insert(table), values)


def snapshot(db: Database, *, timeless: bool = False) -> dict[str, Any]:
    """Every planner row and hand-off task, the decision as stored (its exact text).

    ``timeless``: without what says when the row was planned (the instants, the local
    times in the rules' details): an incremental pass leaves them as the pass that last
    planned the borrower wrote them.  What is kept: key, status, step, address, reasons,
    zones, rule set, arm/step/offset/local date/locale, covered installments, and which
    rules allowed."""
    with db.sessions() as s:
        attempts = s.execute(
            select(ContactAttempt.dedupe_key, ContactAttempt.status, ContactAttempt.next_attempt_at,
                   ContactAttempt.step, ContactAttempt.address, cast(ContactAttempt.decision, Text))
            .where(ContactAttempt.source == "planner").order_by(ContactAttempt.dedupe_key)).all()
        tasks = s.execute(select(Task.dedupe_key, Task.status, Task.note).where(Task.source == "policy")
                          .order_by(Task.dedupe_key)).all()
    if timeless:
        attempts = [(key, status, None, step, address, _timeless(decision))
                    for key, status, next_at, step, address, decision in attempts]
    return {
        "attempts": [[key, status, next_at.isoformat() if next_at else None, step,
                      hashlib.sha256((address or "").encode()).hexdigest()[:12],
                      hashlib.sha256((decision or "").encode()).hexdigest()[:16]]
                     for key, status, next_at, step, address, decision in attempts],
        "tasks": [list(t) for t in tasks],
    }


def _timeless(decision: str | None) -> str | None:
    if decision is None:
        return None
    data = json.loads(decision)
    del data["planner"]["at"]
    return json.dumps([data["reasons"], data["zones"], data["rule_set"], data["planner"], data.get("covers"),
                       [(r["rule"], r["allowed"]) for r in data["results"]]])


def passes(db: Database, policy: Policy, *, incremental: bool = False, timeless: bool = False,
           instants: tuple[datetime, ...] = PASSES) -> list[dict[str, Any]]:
    """The passes of :data:`PASSES` (between the second and third, one sent row and a new
    opt-out); the snapshot and the report's counts after each."""
    seen = []
    for i, at in enumerate(instants):
        if i == 2:
            with db.session() as s:
                first = s.scalars(select(ContactAttempt.id).where(ContactAttempt.source == "planner",
                                                                  ContactAttempt.status == "planned")
                                  .order_by(ContactAttempt.dedupe_key).limit(3)).all()
                s.execute(update(ContactAttempt).where(ContactAttempt.id.in_(first))
                          .values(status="sent", occurred_at=at - timedelta(minutes=1), outcome="delivered"))
                s.execute(update(Consent).where(Consent.borrower_id == "B0000", Consent.channel == "sms")
                          .values(opted_out_at=at - timedelta(minutes=2)))
        with db.sessions() as s:
            report = plan(s, at, policy=policy, limit=0, batch_size=37, incremental_pass=incremental and i > 0)
        seen.append({"at": at.isoformat(), "selected": report.selected,
                     "by_status": dict(sorted(report.by_status.items())),
                     "by_reason": dict(sorted(report.by_reason.items())),
                     **snapshot(db, timeless=timeless)})
    return seen


def test_the_planner_decides_exactly_as_the_golden_file(db: Database) -> None:
    seed(db)
    got = passes(db, load_policy())
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["at"] == theirs["at"]
        assert mine["attempts"] == theirs["attempts"], f"attempts differ after the pass at {mine['at']}"
        assert mine == theirs
    assert sum(len(p["attempts"]) for p in got) > 500  # the portfolio plans a lot (not a vacuous golden)


def _clear(db: Database) -> None:
    with db.engine.begin() as conn:
        for table in reversed(Borrower.metadata.sorted_tables):
            if table.name not in ("alembic_version",):
                conn.execute(table.delete())


def test_incremental_passes_leave_what_full_passes_leave(db: Database) -> None:
    seed(db)
    policy = load_policy()
    # Minutes apart (a rule's verdict that only depends on the hour is refreshed when the
    # borrower is planned again, which an incremental pass leaves for later by design).
    instants = (AT, AT + timedelta(minutes=5), AT + timedelta(minutes=10))
    got = passes(db, policy, incremental=True, timeless=True, instants=instants)
    db.engine.dispose()
    _clear(db)
    seed(db)
    expected = passes(db, policy, timeless=True, instants=instants)
    assert any(p["attempts"] != q["attempts"] for p, q in zip(expected, expected[1:]))  # passes differ
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["attempts"] == theirs["attempts"], f"attempts differ after the pass at {mine['at']}"
        assert mine["tasks"] == theirs["tasks"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    from bot.db.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{tmp}/golden.db")
        upgrade(database.engine)
        seed(database)
        GOLDEN.write_text(json.dumps(passes(database, load_policy()), indent=0) + "\n", encoding="utf-8")
        database.dispose()
