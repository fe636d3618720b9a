"""Retention: what is older than its category's period is deleted (docs/operations.md, "Retention").

Nine categories, each with its own period (``retention_<category>_days``; 0 or None keeps it
forever; the defaults and the legal reasoning are in docs/compliance.md, "Record keeping"):

* ``recordings``: borrowers' recorded answers (files under ``media_dir/recordings`` and
  ``call_turns.audio_ref``) of turns older than the period, and the whole calls' recordings
  (``call_sessions.recording_ref``) of calls started before it; the file goes, the reference is cleared.
* ``transcripts``: the redacted text of call turns and of inbound messages (set empty).
* ``attempts``: contact attempts (final ones: never planned, deferred or sending), call
  sessions with their turns and recordings, inbound messages.
* ``audit``: audit events.
* ``webhooks``: delivered and dead webhook deliveries, then events without deliveries left.
* ``notes``: people's notes on a call, borrower or task, by when they were written.  A note
  also goes with its call or task, in the same transaction, whenever that is deleted.
* ``tasks``: closed tasks, by when they were closed (open ones never, however old).
* ``promises``: kept, broken and cancelled promises, by when they were resolved (pending ones never).
* ``surveys``: answered and expired satisfaction surveys, by when they were answered or expired.

A borrower with an active ``legal`` hold (table ``holds``) keeps everything: no row about
them is touched in any category, whatever its age.  A note is the borrower's of its call or
task (or the borrower it is on); one whose call or task is gone is nobody's.

Deleting runs in batches of ``batch_size`` rows, one short transaction each, so a purge never
holds locks for long and can be interrupted (what was committed stays deleted; the next run
goes on).  Within a category, children go before their parents (turns before sessions,
sessions and replies' and surveys' references before attempts, deliveries before events,
notes before their call or task).  A recording's file is removed before its row is updated:
a crash in between leaves a reference to a missing file, which the next run clears, never a
file no row knows about.  ``dry_run`` only counts.
Nothing is logged but counts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Select,
    String,
    and_,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.db import Database
from bot.db.models import (
    AuditEvent,
    CallSession,
    CallTurn,
    ContactAttempt,
    Hold,
    InboundMessage,
    Note,
    OutboxEvent,
    Promise,
    Survey,
    Task,
    WebhookDelivery,
)
from bot.domain import AttemptStatus, PromiseStatus, TaskStatus

__all__ = ["CATEGORIES", "PurgeReport", "RetentionPolicy", "purge"]

log = logging.getLogger("bot.retention")

#: In the order they run: notes before attempts and tasks, whose deletion takes the newer notes along.
CATEGORIES = ("recordings", "transcripts", "notes", "attempts", "audit", "webhooks", "tasks", "promises", "surveys")
LEGAL_HOLD = "legal"
DEFAULT_BATCH_SIZE = 1000
RECORDINGS_PREFIX = "recordings/"
#: Attempts still on their way are never deleted, however old.
_OPEN_STATUSES = (AttemptStatus.PLANNED.value, AttemptStatus.DEFERRED.value, AttemptStatus.SENDING.value)

#: progress(what, rows so far) after every committed batch
Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each category is kept (None: forever)."""

    days: dict[str, int | None]

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        return cls({name: getattr(settings, f"retention_{name}_days") or None for name in CATEGORIES})

    def cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        return {name: None if days is None else now - timedelta(days=days) for name, days in self.days.items()}


@dataclass
class PurgeReport:
    at: datetime
    dry_run: bool
    cutoffs: dict[str, datetime | None]
    held_borrowers: int = 0
    #: rows per table and action, e.g. ``contact_attempts`` (deleted), ``call_turns.text`` (cleared)
    counts: dict[str, int] = field(default_factory=dict)
    files_removed: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "cutoffs": {k: None if v is None else v.isoformat() for k, v in self.cutoffs.items()},
            "held_borrowers": self.held_borrowers,
            "counts": dict(self.counts),
            "files_removed": self.files_removed,
        }


def _held() -> Select[tuple[str]]:
    return select(Hold.borrower_id).where(Hold.kind == LEGAL_HOLD, Hold.lifted_at.is_(None))


def _free(column: Any) -> ColumnElement[bool]:
    """Rows of no borrower on a legal hold (a row without a borrower is nobody's)."""
    return or_(column.is_(None), column.not_in(_held()))


def _about_held(subject_type: Any, subject_id: Any) -> ColumnElement[bool]:
    """A row about a borrower on a legal hold, by its subject: the borrower, one of their calls or tasks."""
    held_calls = select(cast(CallSession.id, String)).where(CallSession.borrower_id.in_(_held()))
    held_tasks = select(cast(Task.id, String)).where(Task.borrower_id.in_(_held()))
    return or_(
        and_(subject_type == "borrower", subject_id.in_(_held())),
        and_(subject_type == "call", subject_id.in_(held_calls)),
        and_(subject_type == "task", subject_id.in_(held_tasks)),
    )


@dataclass
class _Purger:
    db: Database
    media_dir: Path
    dry_run: bool
    batch_size: int
    progress: Progress | None
    report: PurgeReport
    #: the notes category's cutoff: the notes older than it went before their call or task
    notes_cutoff: datetime | None = None

    def drain(self, what: str, ids: Select[Any], apply: Callable[[Session, list[Any]], None], *,
              notes_on: str | None = None) -> int:
        """Apply ``apply`` to the rows ``ids`` selects (their primary keys), a batch per transaction;
        ``ids`` must stop selecting a row once it was applied.  Dry run: count them.  ``notes_on``:
        the rows are notes' subjects of that type, and their notes go first in the same transaction."""
        if self.dry_run:
            with self.db.session() as session:
                total = int(session.scalar(select(func.count()).select_from(ids.subquery())) or 0)
                if notes_on is not None:
                    going = select(cast(ids.subquery().c[0], String))
                    notes = select(func.count(Note.id)).where(Note.subject_type == notes_on, Note.subject_id.in_(going))
                    if self.notes_cutoff is not None:  # those the notes category counted already
                        notes = notes.where(Note.created_at >= self.notes_cutoff)
                    self._count("notes", int(session.scalar(notes) or 0))
        else:
            total = 0
            while True:
                with self.db.session() as session:
                    batch = list(session.scalars(ids.limit(self.batch_size)))
                    if batch:
                        if notes_on is not None:
                            gone = session.execute(delete(Note).where(
                                Note.subject_type == notes_on, Note.subject_id.in_([str(i) for i in batch])))
                            self._count("notes", int(gone.rowcount or 0))  # type: ignore[attr-defined]
                        apply(session, batch)
                if not batch:
                    break
                total += len(batch)
                if self.progress is not None:
                    self.progress(what, total)
                if len(batch) < self.batch_size:
                    break
        self._count(what, total)
        return total

    def _count(self, what: str, n: int) -> None:
        self.report.counts[what] = self.report.counts.get(what, 0) + n

    def unlink(self, refs: list[str | None]) -> None:
        root = self.media_dir
        for ref in refs:
            if not ref or not ref.startswith(RECORDINGS_PREFIX):
                continue
            target = (root / ref).resolve()
            if root not in target.parents:  # never outside the media directory
                continue
            try:
                target.unlink()
                self.report.files_removed += 1
            except FileNotFoundError:
                pass
            _remove_if_empty(target.parent, root)

    # --- categories ------------------------------------------------------------------------

    def recordings(self, cutoff: datetime) -> None:
        ids = (select(CallTurn.id).join(CallSession, CallSession.id == CallTurn.session_id)
               .where(CallTurn.at < cutoff, CallTurn.audio_ref.like(RECORDINGS_PREFIX + "%"),
                      _free(CallSession.borrower_id))
               .order_by(CallTurn.id))

        def clear(session: Session, batch: list[int]) -> None:
            refs = list(session.scalars(select(CallTurn.audio_ref).where(CallTurn.id.in_(batch))))
            self.unlink(refs)  # the files first: a crash leaves a dangling reference, never an orphan file
            session.execute(update(CallTurn).where(CallTurn.id.in_(batch)).values(audio_ref=None)
                            .execution_options(synchronize_session=False))

        self.drain("call_turns.recording", ids, clear)
        calls = (select(CallSession.id)
                 .where(CallSession.started_at < cutoff, CallSession.recording_ref.like(RECORDINGS_PREFIX + "%"),
                        _free(CallSession.borrower_id))
                 .order_by(CallSession.id))

        def clear_calls(session: Session, batch: list[int]) -> None:
            self.unlink(list(session.scalars(select(CallSession.recording_ref).where(CallSession.id.in_(batch)))))
            session.execute(update(CallSession).where(CallSession.id.in_(batch)).values(recording_ref=None)
                            .execution_options(synchronize_session=False))

        self.drain("call_sessions.recording", calls, clear_calls)

    def transcripts(self, cutoff: datetime) -> None:
        turns = (select(CallTurn.id).join(CallSession, CallSession.id == CallTurn.session_id)
                 .where(CallTurn.at < cutoff, CallTurn.text_redacted.is_not(None), _free(CallSession.borrower_id))
                 .order_by(CallTurn.id))
        self.drain("call_turns.text", turns, lambda session, batch: session.execute(
            update(CallTurn).where(CallTurn.id.in_(batch)).values(text_redacted=None)
            .execution_options(synchronize_session=False)))
        inbound = (select(InboundMessage.id)
                   .where(InboundMessage.received_at < cutoff, InboundMessage.body_redacted != "",
                          _free(InboundMessage.borrower_id))
                   .order_by(InboundMessage.id))
        self.drain("inbound_messages.body", inbound, lambda session, batch: session.execute(
            update(InboundMessage).where(InboundMessage.id.in_(batch)).values(body_redacted="")
            .execution_options(synchronize_session=False)))

    def attempts(self, cutoff: datetime) -> None:
        sessions = (select(CallSession.id)
                    .where(CallSession.started_at < cutoff, _free(CallSession.borrower_id),
                           or_(CallSession.attempt_id.is_(None),
                               ~exists().where(ContactAttempt.id == CallSession.attempt_id,
                                               ContactAttempt.status.in_(_OPEN_STATUSES))))
                    .order_by(CallSession.id))

        def drop_sessions(session: Session, batch: list[int]) -> None:
            refs = list(session.scalars(select(CallTurn.audio_ref).where(CallTurn.session_id.in_(batch))))
            refs += session.scalars(select(CallSession.recording_ref).where(CallSession.id.in_(batch)))
            self.unlink(refs)
            session.execute(delete(CallTurn).where(CallTurn.session_id.in_(batch)))
            session.execute(delete(CallSession).where(CallSession.id.in_(batch)))

        self.drain("call_sessions", sessions, drop_sessions, notes_on="call")
        inbound = (select(InboundMessage.id)
                   .where(InboundMessage.received_at < cutoff, _free(InboundMessage.borrower_id))
                   .order_by(InboundMessage.id))
        self.drain("inbound_messages", inbound, lambda session, batch: session.execute(
            delete(InboundMessage).where(InboundMessage.id.in_(batch))))
        attempts = (select(ContactAttempt.id)
                    .where(func.coalesce(ContactAttempt.occurred_at, ContactAttempt.created_at) < cutoff,
                           ContactAttempt.status.not_in(_OPEN_STATUSES), _free(ContactAttempt.borrower_id))
                    .order_by(ContactAttempt.id))

        def drop_attempts(session: Session, batch: list[int]) -> None:
            # Rows that point at these attempts and stay (a newer reply, a call kept by its own date)
            # lose the reference first, on either database whatever its foreign-key enforcement.
            session.execute(update(InboundMessage).where(InboundMessage.reply_attempt_id.in_(batch))
                            .values(reply_attempt_id=None).execution_options(synchronize_session=False))
            session.execute(update(CallSession).where(CallSession.attempt_id.in_(batch))
                            .values(attempt_id=None).execution_options(synchronize_session=False))
            session.execute(update(Survey).where(Survey.attempt_id.in_(batch))
                            .values(attempt_id=None).execution_options(synchronize_session=False))
            session.execute(delete(ContactAttempt).where(ContactAttempt.id.in_(batch)))

        self.drain("contact_attempts", attempts, drop_attempts)

    def audit(self, cutoff: datetime) -> None:
        about_held = _about_held(AuditEvent.subject_type, AuditEvent.subject_id)
        ids = select(AuditEvent.id).where(AuditEvent.at < cutoff, ~about_held).order_by(AuditEvent.id)
        self.drain("audit_events", ids, lambda session, batch: session.execute(
            delete(AuditEvent).where(AuditEvent.id.in_(batch))))

    def webhooks(self, cutoff: datetime) -> None:
        deliveries = (select(WebhookDelivery.id)
                      .where(WebhookDelivery.created_at < cutoff, WebhookDelivery.status.in_(("delivered", "dead")),
                             _free(WebhookDelivery.borrower_id))
                      .order_by(WebhookDelivery.id))
        self.drain("webhook_deliveries", deliveries, lambda session, batch: session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.id.in_(batch))))
        events = (select(OutboxEvent.id)
                  .where(OutboxEvent.created_at < cutoff, _free(OutboxEvent.borrower_id),
                         ~exists().where(WebhookDelivery.event_id == OutboxEvent.id))
                  .order_by(OutboxEvent.id))
        if self.dry_run:  # their deliveries are still there: count the events they would leave empty
            events = (select(OutboxEvent.id)
                      .where(OutboxEvent.created_at < cutoff, _free(OutboxEvent.borrower_id),
                             ~exists().where(WebhookDelivery.event_id == OutboxEvent.id,
                                             or_(WebhookDelivery.created_at >= cutoff,
                                                 WebhookDelivery.status.not_in(("delivered", "dead")))))
                      .order_by(OutboxEvent.id))
        self.drain("outbox_events", events, lambda session, batch: session.execute(
            delete(OutboxEvent).where(OutboxEvent.id.in_(batch))))


    def notes(self, cutoff: datetime) -> None:
        ids = (select(Note.id)
               .where(Note.created_at < cutoff, Note.subject_type.in_(("borrower", "call", "task")),
                      ~_about_held(Note.subject_type, Note.subject_id))
               .order_by(Note.id))
        self.drain("notes", ids, lambda session, batch: session.execute(delete(Note).where(Note.id.in_(batch))))

    def tasks(self, cutoff: datetime) -> None:
        ids = (select(Task.id)
               .where(Task.status == TaskStatus.CLOSED.value, func.coalesce(Task.closed_at, Task.created_at) < cutoff,
                      _free(Task.borrower_id))
               .order_by(Task.id))
        self.drain("tasks", ids, lambda session, batch: session.execute(delete(Task).where(Task.id.in_(batch))),
                   notes_on="task")

    def promises(self, cutoff: datetime) -> None:
        ids = (select(Promise.id)
               .where(Promise.status != PromiseStatus.PENDING.value,
                      func.coalesce(Promise.resolved_at, Promise.created_at) < cutoff, _free(Promise.borrower_id))
               .order_by(Promise.id))
        self.drain("promises", ids, lambda session, batch: session.execute(
            delete(Promise).where(Promise.id.in_(batch))))

    def surveys(self, cutoff: datetime) -> None:
        # answered, or expired unanswered (one still waiting for its answer is never taken)
        ids = (select(Survey.id)
               .where(func.coalesce(Survey.answered_at, Survey.expires_at) < cutoff,
                      or_(Survey.answered_at.is_not(None), Survey.expires_at <= self.report.at),
                      _free(Survey.borrower_id))
               .order_by(Survey.id))
        self.drain("surveys", ids, lambda session, batch: session.execute(delete(Survey).where(Survey.id.in_(batch))))


def _remove_if_empty(directory: Path, root: Path) -> None:
    """Remove a call's recording folder once its last recording is gone."""
    if directory == root or root not in directory.parents:
        return
    try:
        os.rmdir(directory)
    except OSError:  # not empty, or gone
        pass


def purge(db: Database, settings: Any, now: datetime, *, before: datetime | None = None, dry_run: bool = False,
          batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None) -> PurgeReport:
    """Delete what is past its retention at ``now`` (or, with ``before``, everything older than
    it in every category); a borrower on a legal hold keeps everything.  ``dry_run``: count only."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if before is not None:
        cutoffs: dict[str, datetime | None] = dict.fromkeys(CATEGORIES, before)
    else:
        cutoffs = RetentionPolicy.from_settings(settings).cutoffs(now)
    report = PurgeReport(at=now, dry_run=dry_run, cutoffs=cutoffs)
    with db.session() as session:
        report.held_borrowers = int(session.scalar(
            select(func.count(func.distinct(Hold.borrower_id))).where(Hold.kind == LEGAL_HOLD,
                                                                     Hold.lifted_at.is_(None))) or 0)
    media = Path(settings.media_dir).expanduser().resolve()
    purger = _Purger(db, media, dry_run=dry_run, batch_size=batch_size, progress=progress, report=report,
                     notes_cutoff=cutoffs["notes"])
    for name in CATEGORIES:
        cutoff = cutoffs[name]
        if cutoff is not None:
            getattr(purger, name)(cutoff)
    if report.total and not dry_run:
        log.info("retention: %s (borrowers on legal hold kept: %d)",
                 ", ".join(f"{k} {v}" for k, v in report.counts.items() if v), report.held_borrowers)
    return report
