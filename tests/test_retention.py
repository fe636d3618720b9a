"""Retention (bot.retention, `bot purge`): what is older goes, what is newer stays, a legal hold
wins, a dry run deletes nothing, recordings' files go with their rows.  SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from builders import add_borrower

from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import (
    AuditEvent,
    CallSession,
    CallTurn,
    ContactAttempt,
    Hold,
    InboundMessage,
    OutboxEvent,
    WebhookDelivery,
    WebhookSubscription,
)
from bot.policy import load_policy
from bot.retention import purge
from bot.scheduler.service import RETENTION_JOB, PlannerService, build_scheduler
from test_web_support import harness, web  # noqa: F401 - fixtures

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2000)  # past every default period (1830 days)
NEW = NOW - timedelta(days=10)  # within every one
TABLES = (ContactAttempt, CallSession, CallTurn, InboundMessage, AuditEvent, OutboxEvent, WebhookDelivery)


def seed(db: Database, media: Path, *, holds: dict[str, tuple[str, datetime | None]]) -> None:
    """B1..: per borrower an old and a new attempt, call (turn with a recording file and text),
    reply, audit event and delivered webhook; an old attempt still planned; the given holds."""
    with db.session() as s:
        sub = WebhookSubscription(url="https://hooks.example.com/x", secret="whsec_x", events={"types": ["*"]},
                                  created_at=OLD)
        s.add(sub)
        for bid in ("B1", *holds):
            add_borrower(s, bid, phone=None, email=None, timezone="America/New_York", consent=(), at=OLD)
        s.flush()
        for bid, (kind, lifted) in holds.items():
            s.add(Hold(borrower_id=bid, kind=kind, created_at=OLD, created_by="api:k", lifted_at=lifted))
        for bid in ("B1", *holds):
            for age, at in (("old", OLD), ("new", NEW)):
                key = f"{bid}-{age}"
                attempt = ContactAttempt(dedupe_key=key, borrower_id=bid, channel="voice", source="bot", status="sent",
                                         occurred_at=at, created_at=at, updated_at=at)
                s.add(attempt)
                s.flush()
                call = CallSession(attempt_id=attempt.id, call_sid=f"CA{key}", borrower_id=bid, locale="en-US",
                                   script="reminder", status="completed", started_at=at, created_at=at, updated_at=at)
                s.add(call)
                s.flush()
                ref = f"recordings/{call.id}/1-RE{age}.wav"
                (media / ref).parent.mkdir(parents=True, exist_ok=True)
                (media / ref).write_bytes(b"RIFF")
                s.add(CallTurn(session_id=call.id, seq=1, speaker="borrower", at=at, source="speech",
                               text_redacted="I will pay friday", audio_ref=ref))
                s.add(InboundMessage(provider_id=f"SM{key}", channel="sms", borrower_id=bid, from_address="+1",
                                     to_address="+2", body_redacted="paid already", received_at=at,
                                     reply_attempt_id=attempt.id))
                s.add(AuditEvent(at=at, actor="user:1", action="reveal", subject_type="borrower", subject_id=bid))
                s.add(AuditEvent(at=at, actor="user:1", action="play", subject_type="call", subject_id=str(call.id)))
                event = OutboxEvent(public_id=f"msg_{key}", type="attempt.sent", borrower_id=bid, data={},
                                    occurred_at=at, created_at=at)
                s.add(event)
                s.flush()
                s.add(WebhookDelivery(event_id=event.id, subscription_id=sub.id, borrower_id=bid, status="delivered",
                                      next_attempt_at=at, retry_since=at, created_at=at, updated_at=at))
            s.add(ContactAttempt(dedupe_key=f"{bid}-open", borrower_id=bid, channel="sms", source="bot",
                                 status="planned", occurred_at=None, created_at=OLD, updated_at=OLD))


def rows(db: Database, bid: str) -> dict[str, int]:
    """Rows about a borrower per table, and how many still have text, a recording, a reply link."""
    with db.sessions() as s:
        calls = select(CallSession.id).where(CallSession.borrower_id == bid)
        count = lambda stmt: s.scalar(select(func.count()).select_from(stmt.subquery()))
        return {
            "attempts": count(select(ContactAttempt.id).where(ContactAttempt.borrower_id == bid)),
            "calls": count(calls),
            "turns": count(select(CallTurn.id).where(CallTurn.session_id.in_(calls))),
            "texts": count(select(CallTurn.id).where(CallTurn.session_id.in_(calls), CallTurn.text_redacted.is_not(None))),
            "recordings": count(select(CallTurn.id).where(CallTurn.session_id.in_(calls), CallTurn.audio_ref.is_not(None))),
            "inbound": count(select(InboundMessage.id).where(InboundMessage.borrower_id == bid)),
            "bodies": count(select(InboundMessage.id).where(InboundMessage.borrower_id == bid,
                                                            InboundMessage.body_redacted != "")),
            "audit": count(select(AuditEvent.id).where(
                ((AuditEvent.subject_type == "borrower") & (AuditEvent.subject_id == bid))
                | ((AuditEvent.subject_type == "call") & AuditEvent.subject_id.in_(
                    select(func.cast(CallSession.id, AuditEvent.subject_id.type)).where(CallSession.borrower_id == bid))))),
            "events": count(select(OutboxEvent.id).where(OutboxEvent.borrower_id == bid)),
            "deliveries": count(select(WebhookDelivery.id).where(WebhookDelivery.borrower_id == bid)),
        }


ALL = {"attempts": 3, "calls": 2, "turns": 2, "texts": 2, "recordings": 2, "inbound": 2, "bodies": 2, "audit": 4,
       "events": 2, "deliveries": 2}
NEWER = {"attempts": 2, "calls": 1, "turns": 1, "texts": 1, "recordings": 1, "inbound": 1, "bodies": 1, "audit": 2,
         "events": 1, "deliveries": 1}  # the new rows and the old attempt still planned


def files(media: Path) -> list[str]:
    return sorted(p.relative_to(media).as_posix() for p in media.rglob("*.wav"))


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    return path


@pytest.fixture
def settings(media: Path) -> Settings:
    return load_settings(media_dir=str(media))


HOLDS = {"B2": ("legal", None), "B3": ("legal", OLD + timedelta(days=1)), "B4": ("dispute", None)}


def test_older_goes_newer_stays_and_a_legal_hold_keeps_everything(db: Database, settings: Settings,
                                                                   media: Path) -> None:
    seed(db, media, holds=HOLDS)
    assert len(files(media)) == 8
    report = purge(db, settings, NOW, batch_size=2)  # several batches per table
    assert report.held_borrowers == 1
    assert rows(db, "B1") == NEWER
    assert rows(db, "B3") == NEWER  # a lifted legal hold protects nothing
    assert rows(db, "B4") == NEWER  # nor a hold of another kind
    assert rows(db, "B2") == ALL  # an active legal hold wins over every period
    # recordings' files went with their rows; the held borrower's stayed; empty call folders removed
    with db.sessions() as s:
        kept_refs = sorted(s.scalars(select(CallTurn.audio_ref).where(CallTurn.audio_ref.is_not(None))))
    assert files(media) == kept_refs and len(kept_refs) == 5 and report.files_removed == 3
    assert sum(1 for d in (media / "recordings").iterdir()) == 5
    assert report.counts["contact_attempts"] == 3 and report.counts["call_sessions"] == 3
    assert report.counts["audit_events"] == 6 and report.counts["outbox_events"] == 3
    # the planned attempt, however old, is still there
    with db.sessions() as s:
        assert s.scalar(select(ContactAttempt.status).where(ContactAttempt.dedupe_key == "B1-open")) == "planned"
    # a second run finds nothing
    assert purge(db, settings, NOW).total == 0


def test_a_legal_hold_placed_and_lifted_through_the_api(web, db: Database, clock: FixedClock,  # noqa: ANN001, F811
                                                        settings: Settings, media: Path) -> None:
    from api_support import Api, new_key

    seed(db, media, holds={})
    api = Api(web, new_key(db, clock)[1])
    hold = api("POST", "/borrowers/B1/holds", json={"kind": "legal"})
    assert hold.status_code == 201, hold.text
    assert purge(db, settings, NOW).total == 0 and len(files(media)) == 2
    assert rows(db, "B1") == {**ALL, "audit": 5}  # and the API's audit event of the hold
    assert api("DELETE", f"/borrowers/B1/holds/{hold.json()['id']}").status_code in (200, 204)
    assert purge(db, settings, NOW).counts["contact_attempts"] == 1  # lifted: the periods apply again
    assert rows(db, "B1") == {**NEWER, "audit": 4} and len(files(media)) == 1  # the two API events are new


def test_dry_run_counts_and_deletes_nothing(db: Database, settings: Settings, media: Path) -> None:
    seed(db, media, holds={"B2": ("legal", None)})
    before = files(media)
    dry = purge(db, settings, NOW, dry_run=True)
    assert rows(db, "B1") == ALL and rows(db, "B2") == ALL and files(media) == before
    assert dry.total > 0 and dry.files_removed == 0
    real = purge(db, settings, NOW)
    assert real.counts == dry.counts  # the dry run counted exactly what then went


def test_each_category_has_its_own_period_and_zero_keeps_forever(db: Database, media: Path) -> None:
    seed(db, media, holds={})
    settings = load_settings(media_dir=str(media), retention_recordings_days=5, retention_transcripts_days=0,
                             retention_attempts_days=None, retention_audit_days=0, retention_webhooks_days=5)
    report = purge(db, settings, NOW)
    assert report.cutoffs["attempts"] is None and report.cutoffs["recordings"] == NOW - timedelta(days=5)
    left = rows(db, "B1")
    assert left["recordings"] == 0 and files(media) == []  # 10 days old is past 5
    assert left["texts"] == 2 and left["bodies"] == 2 and left["attempts"] == 3 and left["audit"] == 4
    assert left["calls"] == 2 and left["events"] == 0 and left["deliveries"] == 0


def test_transcripts_are_cleared_rows_stay(db: Database, media: Path) -> None:
    seed(db, media, holds={})
    settings = load_settings(media_dir=str(media), retention_recordings_days=0, retention_transcripts_days=30,
                             retention_attempts_days=0, retention_audit_days=0, retention_webhooks_days=0,
                             retention_notes_days=0, retention_tasks_days=0, retention_promises_days=0,
                             retention_surveys_days=0)
    report = purge(db, settings, NOW)
    assert report.counts == {"call_turns.text": 1, "inbound_messages.body": 1}
    assert rows(db, "B1") == {**ALL, "texts": 1, "bodies": 1}


def test_pending_webhook_deliveries_are_kept(db: Database, settings: Settings, media: Path) -> None:
    seed(db, media, holds={})
    with db.session() as s:
        s.execute(WebhookDelivery.__table__.update().values(status="pending"))
    purge(db, settings, NOW)
    assert rows(db, "B1")["deliveries"] == 2 and rows(db, "B1")["events"] == 2


@pytest.mark.parametrize(("category", "floor"), [("attempts", 180), ("tasks", 180), ("surveys", 365)])
def test_retention_has_a_floor(category: str, floor: int) -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=f"BOT_RETENTION_{category.upper()}_DAYS: .*at least {floor}"):
        load_settings(**{f"retention_{category}_days": floor - 1})
    assert getattr(load_settings(**{f"retention_{category}_days": floor}), f"retention_{category}_days") == floor
    assert getattr(load_settings(**{f"retention_{category}_days": 0}), f"retention_{category}_days") == 0


def test_the_scheduler_purges_daily(db: Database, settings: Settings, media: Path) -> None:
    seed(db, media, holds={})
    service = PlannerService(db=db, clock=FixedClock(NOW), policy=load_policy(), settings=settings)
    jobs = {job.id: job for job in build_scheduler(service, plan_interval=120).get_jobs()}
    assert jobs[RETENTION_JOB].trigger.interval == timedelta(days=1) and jobs[RETENTION_JOB].func == service.retention_job
    assert service.retention_job() > 0
    assert rows(db, "B1") == NEWER


def test_purge_command(run_bot, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    media = tmp_path / "media"
    media.mkdir()
    db = Database(db_url)
    try:
        seed(db, media, holds={"B2": ("legal", None)})
    finally:
        db.dispose()
    env = {"BOT_MEDIA_DIR": str(media)}
    dry = run_bot("purge", "--before", OLD.date().isoformat(), "--dry-run", "--json", db_url=db_url, env=env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["counts"]["contact_attempts"] == 0  # nothing is older than that day
    dry = run_bot("purge", "--before", (OLD + timedelta(days=1)).date().isoformat(), "--dry-run", "--json",
                  db_url=db_url, env=env)
    counted = json.loads(dry.stdout)
    assert counted["dry_run"] is True and counted["counts"]["contact_attempts"] == 1 and len(files(media)) == 4
    done = run_bot("purge", "--before", (OLD + timedelta(days=1)).isoformat(), "--batch-size", "1",
                   db_url=db_url, env=env)
    assert done.exit_code == 0, done.output
    assert "contact_attempts: 1 removed" in done.stdout and "so far" in done.stderr
    assert "borrowers on legal hold kept whole: 1" in done.stderr
    assert len(files(media)) == 3
    future = run_bot("purge", "--before", "2999-01-01", db_url=db_url, env=env)
    assert future.exit_code == 2 and "--before" in future.output
