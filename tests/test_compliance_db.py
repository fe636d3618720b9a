"""The compliance loader and ``bot check`` on SQLite and PostgreSQL.

History is built in the database as imported contact attempts (source
``import``, status ``done``), exactly as ``bot import`` records it.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

import builders

from bot.compliance import HistoryEntry, StopState, Subject, check
from bot.compliance import loader as loader_module
from bot.compliance.loader import load_context, load_contexts
from bot.db import Database
from bot.db.models import Consent, ContactAttempt, Promise, Task
from bot.domain import Channel
from bot.errors import NotFoundError

NY = ZoneInfo("America/New_York")
SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 10, 1, tzinfo=UTC)
PHONE = "+12125551234"
EMAIL = "jane.doe@example.com"
_keys = itertools.count()


def add_borrower(session: Session, borrower_id: str, *, owed: bool = True, **kwargs: Any) -> None:
    """A borrower (tests/builders.py) on :data:`PHONE` and :data:`EMAIL` with one loan ``<id>-L1``:
    $25.00 of its $100.00 installment due 15 November paid (all of it unless ``owed``)."""
    values = {"phone": PHONE, "email": EMAIL, "at": T0, "due": date(2026, 11, 15), "paid": 2_500 if owed else 10_000}
    builders.add_account(session, borrower_id, **(values | kwargs))


def add_attempt(
    session: Session,
    borrower_id: str,
    channel: str,
    when: datetime | None,
    *,
    loan_id: str | None = "default",
    status: str = "done",
    outcome: str | None = "attempted",
    source: str = "import",
) -> None:
    session.add(ContactAttempt(
        dedupe_key=f"test:{next(_keys)}", borrower_id=borrower_id,
        loan_id=f"{borrower_id}-L1" if loan_id == "default" else loan_id,
        channel=channel, source=source, status=status, outcome=outcome,
        occurred_at=None if when is None else when.astimezone(UTC), created_at=T0, updated_at=T0,
    ))


def L(text: str, zone: ZoneInfo = NY) -> datetime:  # noqa: N802
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def bot_check(run_bot, db_url: str, *args: str) -> dict[str, object]:
    result = run_bot("check", *args, "--json", db_url=db_url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"allowed", "reasons", "next_allowed_at", "rule_set", "zones"}
    return data


# --- loader ------------------------------------------------------------------------------


def test_load_context_builds_subject_history_and_stop_state(db: Database) -> None:
    at = L("2026-11-30T12:00")
    with db.session() as s:
        add_borrower(s, "B1", timezone="America/New_York")
        # An older outstanding installment: the default loan.
        builders.add_loan(s, "B1", "B1-L0", [("B1-L0-I1", date(2026, 10, 15))], paid=2_500, at=T0)
        # An opt-out and a wrong-number flag on an OLD number do not count.
        s.add(Consent(borrower_id="B1", channel="sms", address="+12125550000", granted=True,
                      opted_out_at=T0, address_flag="wrong_number", updated_at=T0))
        # Opted out of email at the current address (address compared without case).
        email_row = s.query(Consent).filter_by(borrower_id="B1", channel="email").one()
        email_row.opted_out_at = T0
        email_row.address = EMAIL.upper()
        s.add(Promise(borrower_id="B1", loan_id=None, promised_date=date(2026, 12, 1), status="pending",
                      source="sms", created_at=T0))
        s.add(Promise(borrower_id="B1", loan_id=None, promised_date=date(2026, 12, 5), status="pending",
                      source="sms", created_at=T0))
        s.add(Promise(borrower_id="B1", loan_id=None, promised_date=date(2026, 12, 20), status="broken",
                      source="sms", created_at=T0))
        s.add(Task(borrower_id="B1", kind="dispute", status="open", source="sms", created_at=T0))
        add_attempt(s, "B1", "voice", at - timedelta(days=1), outcome="conversation")
        add_attempt(s, "B1", "sms", at - timedelta(days=2), outcome=None, status="sent", source="planner")
        add_attempt(s, "B1", "voice", at - timedelta(days=3), status="failed", loan_id=None)
        add_attempt(s, "B1", "sms", at + timedelta(hours=1), status="planned", source="planner")
        add_attempt(s, "B1", "sms", at - timedelta(hours=1), status="cancelled", source="planner")
        add_attempt(s, "B1", "sms", at - timedelta(hours=2), status="deferred", source="planner")
        add_attempt(s, "B1", "sms", None, status="sending", source="planner")
        add_attempt(s, "B1", "voice", at - timedelta(days=40))  # older than any rule looks back
        add_attempt(s, "B1", "fax", at - timedelta(days=1))  # a channel this version does not know
    with db.session() as s:
        ctx = load_context(s, "B1", at=at)
    assert ctx.subject == Subject("B1", "US", "NY", "America/New_York", PHONE, EMAIL, "en-US")
    assert ctx.loan_id == "B1-L0"
    assert ctx.history == [
        HistoryEntry(Channel.VOICE, at - timedelta(days=3), "attempted", None),
        HistoryEntry(Channel.SMS, at - timedelta(days=2), "attempted", "B1-L1"),
        HistoryEntry(Channel.VOICE, at - timedelta(days=1), "conversation", "B1-L1"),
    ]
    assert ctx.state == StopState(
        consent=frozenset(Channel),
        opted_out=frozenset({Channel.EMAIL}),
        paid=False,
        promise_until=date(2026, 12, 5),
        dispute_open=True,
        cease_communication=False,
        wrong_number=False,
    )


def test_load_context_flags_and_paid(db: Database) -> None:
    with db.session() as s:
        add_borrower(s, "B2", consent=("sms", "voice"), cease=T0, owed=False)
        s.add(Consent(borrower_id="B2", channel="voice", address="+19995550000", granted=False,
                      updated_at=T0))
        voice = s.query(Consent).filter_by(borrower_id="B2", channel="voice", address=PHONE).one()
        voice.address_flag = "wrong_number"
        sms = s.query(Consent).filter_by(borrower_id="B2", channel="sms").one()
        sms.address_flag = "landline"
        s.add(Task(borrower_id="B2", kind="dispute", status="closed", source="sms", created_at=T0))
        add_borrower(s, "B3", phone=None, email=None, consent=())
        s.add(Consent(borrower_id="B3", channel="email", address="old@example.com", granted=True,
                      updated_at=T0))
    with db.session() as s:
        b2 = load_context(s, "B2", at=L("2026-11-30T12:00"))
        b3 = load_context(s, "B3", at=L("2026-11-30T12:00"))
    assert b2.state.paid and b2.loan_id is None
    assert b2.state.cease_communication and b2.state.wrong_number and not b2.state.dispute_open
    assert b2.state.consent == {Channel.SMS, Channel.VOICE}
    assert b2.state.no_address == {Channel.SMS}
    assert b3.state.consent == frozenset()  # a consent for an address the borrower no longer has
    assert b3.subject.phone_e164 is None and b3.subject.email is None


def test_load_context_unknown_borrower_or_loan(db: Database) -> None:
    with db.session() as s:
        add_borrower(s, "B1")
        add_borrower(s, "B2")
    with db.session() as s:
        with pytest.raises(NotFoundError, match="no borrower"):
            load_context(s, "NOPE", at=T0)
        with pytest.raises(NotFoundError, match="no loan"):
            load_context(s, "B1", at=T0, loan_id="B2-L1")
        assert load_context(s, "B1", at=T0, loan_id="B1-L1").loan_id == "B1-L1"


def test_load_contexts_is_set_based_and_matches_one_by_one(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = L("2026-11-30T12:00")
    with db.session() as s:
        for i in range(7):
            add_borrower(s, f"B{i}", region=["NY", "MA", "CA"][i % 3], phone=f"+1212555{1000 + i}")
            for k in range(i):
                add_attempt(s, f"B{i}", ["sms", "voice"][k % 2], at - timedelta(hours=5 * k + 1))
        s.add(Promise(borrower_id="B4", loan_id=None, promised_date=date(2026, 12, 2), status="pending",
                      source="sms", created_at=T0))
    monkeypatch.setattr(loader_module, "CHUNK", 3)
    statements: list[str] = []

    from sqlalchemy import event

    def count(conn, cursor, statement, *args):  # noqa: ANN001
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as s:
            bulk = load_contexts(s, [f"B{i}" for i in range(7)] + ["NOPE"], at - timedelta(days=8))
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert sorted(bulk) == [f"B{i}" for i in range(7)]
    assert len(statements) == 3 * 6  # three chunks, six queries each
    for i in range(7):
        subject, history, state = bulk[f"B{i}"]
        assert len(history) == i
        assert [h.occurred_at for h in history] == sorted(h.occurred_at for h in history)
        assert state.paid is False
        with db.session() as s:
            single = load_context(s, f"B{i}", at=at)
        assert (subject, history) == (single.subject, single.history)
        assert state.promise_until == single.state.promise_until
    assert bulk["B4"][2].promise_until == date(2026, 12, 2)


# --- bot check ----------------------------------------------------------------------------


def test_check_new_york_before_eight(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1")
    data = bot_check(run_bot, db_url, "B1", "--channel", "voice", "--at", "2026-11-30T07:30:00-05:00")
    assert data == {
        "allowed": False,
        "reasons": ["quiet_hours"],
        "next_allowed_at": "2026-11-30T08:00:00-05:00",
        "rule_set": "us",
        "zones": ["America/New_York"],
    }
    ok = bot_check(run_bot, db_url, "B1", "--channel", "voice", "--at", "2026-11-30T13:00:00Z")
    assert ok["allowed"] is True and ok["reasons"] == []
    assert ok["next_allowed_at"] == "2026-11-30T08:00:00-05:00"


def test_check_region_ca_with_new_york_phone(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1", region="CA")
    data = bot_check(run_bot, db_url, "B1", "--channel", "sms", "--at", "2026-11-30T10:30:00-05:00")
    assert data["reasons"] == ["quiet_hours"]
    assert data["next_allowed_at"] == "2026-11-30T08:00:00-08:00"  # the primary zone: the region's
    assert data["zones"] == ["America/Los_Angeles", "America/New_York"]


def test_check_seven_imported_calls(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1")
        builders.add_loan(s, "B1", "B1-L2", [("B1-L2-I1", date(2026, 12, 15))], paid=2_500, at=T0)
        for day in range(24, 31):
            add_attempt(s, "B1", "voice", L(f"2026-11-{day}T10:00"))
    args = ("--at", "2026-11-30T15:00:00-05:00")
    call = bot_check(run_bot, db_url, "B1", "--channel", "voice", *args)
    assert call["reasons"] == ["frequency_cap"]
    assert call["next_allowed_at"] == "2026-12-01T10:00:00-05:00"
    assert bot_check(run_bot, db_url, "B1", "--channel", "sms", *args)["allowed"] is True
    # Per debt: the other loan's calls are not these.
    assert bot_check(run_bot, db_url, "B1", "--channel", "voice", "--loan", "B1-L2", *args)["allowed"] is True


def test_check_massachusetts_two_texts(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1", region="MA", phone="+16175551234")
        add_attempt(s, "B1", "sms", L("2026-11-26T10:00"), outcome="delivered")
        add_attempt(s, "B1", "sms", L("2026-11-28T10:00"), outcome="delivered")
    args = ("--at", "2026-11-30T12:00:00-05:00")
    for channel in ("sms", "voice"):
        data = bot_check(run_bot, db_url, "B1", "--channel", channel, *args)
        assert data["reasons"] == ["frequency_cap"], channel
        assert data["rule_set"] == "us+us-ma"
        assert data["next_allowed_at"] == "2026-12-03T10:00:00-05:00"
    assert bot_check(run_bot, db_url, "B1", "--channel", "email", *args)["allowed"] is True


def test_check_china(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "C1", country="CN", region="GD", phone="+8613812341234", email="li@example.cn")
    night = bot_check(run_bot, db_url, "C1", "--channel", "sms", "--at", "2026-11-30T22:30:00+08:00")
    assert night["reasons"] == ["quiet_hours"] and night["next_allowed_at"] == "2026-12-01T08:00:00+08:00"
    holiday = bot_check(run_bot, db_url, "C1", "--channel", "sms", "--at", "2026-10-02T10:00:00+08:00")
    assert holiday["reasons"] == ["holiday"] and holiday["next_allowed_at"] == "2026-10-08T08:00:00+08:00"
    saturday = bot_check(run_bot, db_url, "C1", "--channel", "voice", "--at", "2026-10-10T10:00:00+08:00")
    assert saturday["allowed"] is True and saturday["rule_set"] == "cn"


def test_check_post_conversation_wait(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1")
        add_attempt(s, "B1", "voice", L("2026-11-10T10:00"), outcome="conversation")
    day7 = bot_check(run_bot, db_url, "B1", "--channel", "voice", "--at", "2026-11-16T12:00:00-05:00")
    assert day7["reasons"] == ["post_conversation_wait"]
    assert day7["next_allowed_at"] == "2026-11-17T08:00:00-05:00"
    day8 = bot_check(run_bot, db_url, "B1", "--channel", "voice", "--at", "2026-11-17T08:00:00-05:00")
    assert day8["allowed"] is True


def test_check_promise_opt_out_dispute_paid(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "P1")
        s.add(Promise(borrower_id="P1", loan_id="P1-L1", promised_date=date(2026, 12, 5), status="pending",
                      source="sms", created_at=T0))
        add_borrower(s, "O1")
        s.query(Consent).filter_by(borrower_id="O1", channel="sms").one().opted_out_at = T0
        add_borrower(s, "D1")
        s.add(Task(borrower_id="D1", kind="dispute", status="open", source="sms", created_at=T0))
        add_borrower(s, "Z1", owed=False)
    at = ("--at", "2026-12-05T12:00:00-05:00")
    promise = bot_check(run_bot, db_url, "P1", "--channel", "sms", *at)
    assert promise["reasons"] == ["promise_pending"]
    assert promise["next_allowed_at"] == "2026-12-06T08:00:00-05:00"
    opted = bot_check(run_bot, db_url, "O1", "--channel", "sms", *at)
    assert opted["reasons"] == ["opted_out"] and opted["next_allowed_at"] is None
    assert bot_check(run_bot, db_url, "O1", "--channel", "voice", *at)["allowed"] is True
    assert bot_check(run_bot, db_url, "D1", "--channel", "email", *at)["reasons"] == ["dispute_open"]
    assert bot_check(run_bot, db_url, "Z1", "--channel", "email", *at)["reasons"] == ["paid"]


def test_check_human_output_explains_every_rule_and_masks(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1", region="MA", phone="+16175551234")
        add_attempt(s, "B1", "sms", L("2026-11-29T10:00"))
    result = run_bot("check", "B1", "--channel", "sms", "--at", "2026-11-30T07:30:00-05:00", db_url=db_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "decision   BLOCKED: quiet_hours" in out
    assert "next       2026-11-30T08:00:00-05:00" in out
    assert "rule set   us+us-ma" in out
    assert "loan       B1-L1 (oldest outstanding installment)" in out
    for rule in ("stop.paid", "stop.opt_out", "us.hours", "us.call_frequency", "us-ma.telephone_frequency"):
        assert rule in out
    assert "1 of 2 calls and texts in 7 days" in out
    assert "07:30 in America/New_York is outside 08:00–21:00" in out
    for secret in ("5551234", "jane", "Jane"):
        assert secret not in result.output


def test_check_without_at_uses_the_clock(db: Database, db_url: str, run_bot) -> None:
    with db.session() as s:
        add_borrower(s, "B1", consent=())
    data = bot_check(run_bot, db_url, "B1", "--channel", "sms")
    assert data["allowed"] is False and data["reasons"][0] == "no_consent"


def test_check_rules_file_and_setting(db: Database, db_url: str, run_bot, tmp_path: Path) -> None:
    with db.session() as s:
        add_borrower(s, "B1")
    rules = tmp_path / "strict.yaml"
    rules.write_text('rules:\n  us.hours:\n    end: "20:00"\n', encoding="utf-8")
    at = ("--at", "2026-11-30T20:30:00-05:00")
    assert bot_check(run_bot, db_url, "B1", "--channel", "sms", *at)["allowed"] is True
    assert bot_check(run_bot, db_url, "B1", "--channel", "sms", *at, "--rules", str(rules))["allowed"] is False
    result = run_bot("check", "B1", "--channel", "sms", *at, "--json", db_url=db_url,
                     env={"BOT_COMPLIANCE_FILE": str(rules)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reasons"] == ["quiet_hours"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  us.hours:\n    end: 21:00\n", encoding="utf-8")
    result = run_bot("check", "B1", "--channel", "sms", *at, "--rules", str(bad), db_url=db_url)
    assert result.exit_code == 2
    assert "bad.yaml: rules.us.hours.end" in " ".join(result.stderr.split())  # rich wraps lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("NOPE", "--channel", "sms"), "no borrower with id 'NOPE'"),
        (("B1", "--channel", "fax"), "Invalid value for '--channel'"),
        (("B1",), "Missing option '--channel'"),
        (("B1", "--channel", "sms", "--at", "tomorrow"), "not an ISO 8601 date-time"),
        (("B1", "--channel", "sms", "--at", "2026-11-30T10:00:00"), "has no UTC offset"),
        (("B1", "--channel", "sms", "--loan", "NOPE"), "has no loan with id 'NOPE'"),
    ],
)
def test_check_usage_errors_exit_2(db: Database, db_url: str, run_bot, args: tuple[str, ...], message: str) -> None:
    with db.session() as s:
        add_borrower(s, "B1")
    result = run_bot("check", *args, db_url=db_url)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_loader_output_feeds_check_directly(db: Database) -> None:
    """The planner's path: bulk contexts + per-installment paid into check()."""
    at = L("2026-11-30T15:00")
    with db.session() as s:
        add_borrower(s, "B1")
        for day in range(24, 31):
            add_attempt(s, "B1", "voice", L(f"2026-11-{day}T10:00"))
    with db.session() as s:
        subject, history, state = load_contexts(s, ["B1"], at - timedelta(days=8))["B1"]
    decision = check(subject, Channel.VOICE, at, history, state, loan_id="B1-L1")
    assert decision.reasons == ("frequency_cap",)


def test_automatic_replies_do_not_count_towards_frequency_caps(db) -> None:
    """A reply to the borrower's own message is not a communication the lender initiated."""
    from datetime import UTC, datetime

    from bot.compliance.loader import load_contexts
    from bot.db.models import ContactAttempt

    at = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    with db.session() as s:
        builders.add_borrower(s, "BR1", name="Test Person", phone="+16175550123", email=None, region="MA",
                              consent=(), at=at)
        for i, source in enumerate(("reply", "reply", "planner")):
            s.add(ContactAttempt(dedupe_key=f"k{i}", borrower_id="BR1", channel="sms", source=source, status="sent",
                                 outcome="delivered", occurred_at=at.replace(hour=10 + i), created_at=at, updated_at=at))
    with db.session() as s:
        contexts = load_contexts(s, ["BR1"], at.replace(day=20))
    _subject, history, _state = contexts["BR1"]
    assert len(history) == 1


def test_active_holds_are_loaded_and_lifted_ones_are_not(db: Database) -> None:
    """The planner, the dispatcher's re-check and the voice answer-time check all read holds here."""
    from bot.db.models import Hold

    at = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    with db.session() as s:
        add_borrower(s, "B1")
        add_borrower(s, "B2")
        s.flush()
        s.add(Hold(borrower_id="B1", kind="deceased", created_at=T0, created_by="api:x"))
        s.add(Hold(borrower_id="B1", kind="legal", created_at=T0, created_by="api:x"))
        s.add(Hold(borrower_id="B2", kind="legal", created_at=T0, created_by="api:x", lifted_at=T0,
                   lifted_by="api:x"))
    with db.session() as s:
        one = load_context(s, "B1", at=at)
        two = load_context(s, "B2", at=at)
    assert one.state.holds == ("deceased", "legal") and two.state.holds == ()
    decision = check(one.subject, Channel.VOICE, at, one.history, one.state, loan_id=one.loan_id, explain=True)
    assert not decision.allowed and decision.reasons[0] == "hold" and decision.next_allowed_at is None
    assert {r.rule: r.detail for r in decision.results}["stop.hold"] == "on hold (deceased, legal)"
    assert "hold" not in check(two.subject, Channel.VOICE, at, two.history, two.state).reasons
