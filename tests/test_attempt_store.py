"""The attempt store (bot.dispatch.attempts): lease transitions, stale lease takeover, the typed
dispatch metadata on both databases, the plan key, and the migration of old rows."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from bot.db import Database
from alembic.script import ScriptDirectory

from bot.db.migrate import MIGRATIONS, upgrade
from bot.db.models import ContactAttempt
from bot.dispatch.attempts import AttemptStore, DispatchMeta, VerdictRow, with_decision
from bot.dispatch.reconcile import stuck_from
from bot.dispatch.records import Retry, Sent
from bot.domain import PlanKey

from conftest import BACKENDS, PG_URL, _pg_url_for
from builders import AT, add_borrower

LEASE = timedelta(minutes=5)
#: The migration that moves the dispatch metadata out of ``decision["dispatch"]``, and the one before it.
META_REVISION = "0016"
BEFORE_META = str(ScriptDirectory(str(MIGRATIONS)).get_revision(META_REVISION).down_revision)


def _attempt(db: Database, key: str, *, status: str = "planned", channel: str = "sms", **values: object) -> int:
    with db.session() as s:
        row = ContactAttempt(dedupe_key=key, borrower_id="B1", channel=channel, source="planner", status=status,
                             address="+12125550001", next_attempt_at=AT, tries=0, created_at=AT, updated_at=AT,
                             **values)
        s.add(row)
        s.flush()
        return row.id


def _row(db: Database, attempt_id: int) -> ContactAttempt:
    with db.sessions() as s:
        row = s.get(ContactAttempt, attempt_id)
        assert row is not None
        return row


def _lease(db: Database, attempt_id: int) -> tuple[str | None, object, str]:
    row = _row(db, attempt_id)
    return row.claimed_by, row.claimed_until, row.status


def test_a_lease_is_claimed_marked_renewed_and_released_on_the_result(db: Database) -> None:
    add_borrower(db, "B1", phone="+12125550001")
    first, second = _attempt(db, "k1"), _attempt(db, "k2")
    w1 = AttemptStore("w1", lease=LEASE)
    with db.session() as s:
        assert w1.claim_due(s, now=AT, channels={"sms"}, limit=1) == [first]
    assert _lease(db, first) == ("w1", AT + LEASE, "planned")
    with db.session() as s:  # a second worker finds only what is free
        assert AttemptStore("w2", lease=LEASE).claim_due(s, now=AT, channels={"sms"}, limit=5) == [second]
        assert AttemptStore("w2", lease=LEASE).claim_due(s, now=AT, channels={"email"}, limit=5) == []
    later = AT + timedelta(seconds=30)
    with db.session() as s:  # marking sending renews the lease from now
        assert w1.mark_sending(s, [first, second], later) == {first}  # the other is w2's
    assert _lease(db, first) == ("w1", later + LEASE, "sending")
    with db.session() as s:
        assert w1.record(s, [Sent(first, "sms", "SM1", "queued")], later) == 1
    row = _row(db, first)
    assert (row.claimed_by, row.claimed_until, row.status, row.tries, row.provider_id) == (None, None, "sent", 1, "SM1")


def test_release_gives_back_only_pending_claims_of_this_worker(db: Database) -> None:
    add_borrower(db, "B1", phone="+12125550001")
    pending, sending = _attempt(db, "k1"), _attempt(db, "k2")
    w1 = AttemptStore("w1", lease=LEASE)
    with db.session() as s:
        w1.claim_due(s, now=AT, channels={"sms"}, limit=5)
        w1.mark_sending(s, [sending], AT)
    with db.session() as s:
        assert AttemptStore("w2", lease=LEASE).release_own(s, now=AT) == 0
        assert w1.release_own(s, now=AT) == 1
    assert _lease(db, pending) == (None, None, "planned")
    assert _lease(db, sending) == ("w1", AT + LEASE, "sending")  # in flight: reconciled, never released


def test_a_stale_lease_is_taken_over_and_the_old_worker_cannot_write(db: Database) -> None:
    add_borrower(db, "B1", phone="+12125550001")
    attempt_id = _attempt(db, "k1")
    dead, alive = AttemptStore("dead", lease=LEASE), AttemptStore("alive", lease=LEASE)
    with db.session() as s:
        dead.claim_due(s, now=AT, channels={"sms"}, limit=5)
        dead.mark_sending(s, [attempt_id], AT)
    with db.session() as s:  # the lease is live: nobody takes it
        assert alive.claim_stuck(s, now=AT + LEASE - timedelta(seconds=1), limit=5) == []
    after = AT + LEASE + timedelta(seconds=1)
    with db.session() as s:
        assert alive.claim_stuck(s, now=after, limit=5) == [attempt_id]
    assert _lease(db, attempt_id) == ("alive", after + LEASE, "sending")
    with db.session() as s:  # the dead worker's late result is not written
        assert dead.record(s, [Retry(attempt_id, "sms", after, "transient: X")], after) == 0
        dead.expire_soon(s, attempt_id, until=after, now=after)
    assert _lease(db, attempt_id) == ("alive", after + LEASE, "sending")
    with db.session() as s:
        alive.expire_soon(s, attempt_id, until=after + timedelta(seconds=2), now=after)
        assert alive.resolve_stuck(s, attempt_id, status="planned", now=after, error="reconcile: not found")
    assert _lease(db, attempt_id) == (None, None, "planned")


def test_claim_takes_only_free_pending_attempts(db: Database) -> None:
    add_borrower(db, "B1", phone="+12125550001")
    free, held, done = _attempt(db, "k1"), _attempt(db, "k2"), _attempt(db, "k3", status="sent")
    with db.session() as s:
        AttemptStore("other", lease=LEASE).claim(s, [held], now=AT)
    with db.session() as s:
        assert AttemptStore("w1", lease=LEASE).claim(s, [free, held, done], now=AT) == [free]
    with db.session() as s:
        AttemptStore("w1", lease=LEASE).release(s, [free, held], now=AT)
    assert _lease(db, free)[0] is None and _lease(db, held)[0] == "other"


def test_dispatch_metadata_round_trips_through_the_verdict_write(db: Database) -> None:
    add_borrower(db, "B1", phone="+12125550001")
    call, limited = _attempt(db, "k1", channel="voice"), _attempt(db, "k2")
    store = AttemptStore("w1", lease=LEASE)
    meta = DispatchMeta(sender="+15005550006", body_sha256="ab" * 32, call_script="first_stage",
                        call_locale="es-US")
    held = DispatchMeta(sender="+15005550006", body_sha256="cd" * 32, rate_limited_until=AT + timedelta(seconds=3))
    decision = with_decision({"planner": {"step": "due"}}, {"at": AT.isoformat(), "action": "send", "allowed": True,
                                                           "reasons": [], "results": [{"rule": "hours"}]})
    with db.session() as s:
        store.claim(s, [call, limited], now=AT)
        store.write_verdicts(s, [VerdictRow(call, "sending", None, decision, release=False, meta=meta),
                                 VerdictRow(limited, "planned", AT + timedelta(seconds=3), decision, release=True,
                                            meta=held)], AT)
    assert DispatchMeta.of(_row(db, call)) == meta
    assert DispatchMeta.of(_row(db, limited)) == held
    row = _row(db, call)
    assert row.decision == {"planner": {"step": "due"}, "allowed": True, "reasons": [], "results": [{"rule": "hours"}],
                            "dispatch": {"at": AT.isoformat(), "action": "send", "allowed": True, "reasons": []}}
    stuck = stuck_from(row, frozenset())
    assert (stuck.sender, stuck.body_sha256) == ("+15005550006", "ab" * 32)
    with db.session() as s:  # a later verdict that sends nothing clears what an earlier try stored
        store.claim(s, [limited], now=AT)
        store.write_verdicts(s, [VerdictRow(limited, "blocked", None, decision, release=True)], AT)
    assert DispatchMeta.of(_row(db, limited)) == DispatchMeta()


@pytest.mark.parametrize(("key", "parsed"), [
    ("plan:I1:main:3:sms", PlanKey("I1", "main", 3, "sms")),
    ("plan:L-7:I:2:watch:-1:voice", PlanKey("L-7:I:2", "watch", -1, "voice")),
    ("plan:B1-I1:sms", None),
    ("plan:I1:main:x:sms", None),
    ("reply:SM123", None),
    ("manual:call:B1:2026-12-04T10:00:00+00:00", None),
])
def test_the_plan_key_is_written_and_read_in_one_place(key: str, parsed: PlanKey | None) -> None:
    assert PlanKey.parse(key) == parsed
    if parsed is not None:
        assert parsed.to_str() == key


# --- the migration: old rows move out of decision.dispatch -------------------------------------


@pytest.fixture(params=BACKENDS)
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database at the revision before the metadata columns, on each backend."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade(db.engine, BEFORE_META)
        yield db
        db.dispose()
        return
    import psycopg

    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(plain, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - the database is part of CI
        pytest.skip(f"PostgreSQL not reachable at {plain}: {exc}")
    schema = f"bot_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    db = Database(_pg_url_for(schema))
    try:
        upgrade(db.engine, BEFORE_META)
        yield db
    finally:
        db.dispose()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


def test_the_migration_moves_old_dispatch_metadata_into_columns(old_db: Database) -> None:
    meta = sa.MetaData()
    borrowers = sa.Table("borrowers", meta, autoload_with=old_db.engine)
    attempts = sa.Table("contact_attempts", meta, autoload_with=old_db.engine)
    assert "sender" not in attempts.c
    base = {"borrower_id": "B1", "channel": "sms", "source": "planner", "status": "sent", "tries": 1,
            "created_at": AT, "updated_at": AT}
    old = {
        "sms": {"allowed": True, "reasons": [], "dispatch": {
            "at": AT.isoformat(), "action": "send", "from": "+15005550006", "body_sha256": "ab" * 32}},
        "call": {"dispatch": {"action": "send", "from": "+15005550007", "body_sha256": "cd" * 32,
                              "call": {"locale": "es-US", "script": "first_stage", "loan_id": "L1"}}},
        "limited": {"dispatch": {"action": "send", "rate_limited_until": (AT + timedelta(seconds=2)).isoformat()}},
        "plain": {"planner": {"step": "due"}},
    }
    with old_db.engine.begin() as conn:
        conn.execute(borrowers.insert().values(id="B1", full_name="Jane Doe", locale="en-US", country="US",
                                               created_at=AT, updated_at=AT))
        for key, decision in [*old.items(), ("none", None)]:
            conn.execute(attempts.insert().values(dedupe_key=key, decision=decision, **base))

    upgrade(old_db.engine)

    with old_db.sessions() as s:
        rows = {r.dedupe_key: r for r in s.scalars(select(ContactAttempt))}
        got = {k: (DispatchMeta.of(r), r.decision) for k, r in rows.items()}
    assert got["sms"] == (DispatchMeta(sender="+15005550006", body_sha256="ab" * 32),
                          {"allowed": True, "reasons": [], "dispatch": {"at": AT.isoformat(), "action": "send"}})
    assert got["call"] == (DispatchMeta(sender="+15005550007", body_sha256="cd" * 32, call_script="first_stage",
                                        call_locale="es-US"), {"dispatch": {"action": "send"}})
    assert got["limited"] == (DispatchMeta(rate_limited_until=AT + timedelta(seconds=2)),
                              {"dispatch": {"action": "send"}})
    assert got["plain"] == (DispatchMeta(), {"planner": {"step": "due"}})
    assert got["none"] == (DispatchMeta(), None)
