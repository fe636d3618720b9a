"""Work for a person, opened by a reply: one open task per borrower, kind and note.

A borrower who writes "this is not my debt" three times has one open dispute
task, not three; each message is linked to it by an audit event.  The
``dedupe_key`` (``reply:<MessageSid>:<kind>:<borrower>``) makes a retried
webhook harmless even if the message itself were processed twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Task
from bot.domain import TaskKind, TaskStatus
from bot.events import emit
from bot.replies.records import audit, insert_ignore

__all__ = ["open_task"]


def open_task(
    session: Session,
    borrower_id: str,
    kind: TaskKind,
    note: str,
    *,
    dedupe_key: str,
    source: str,
    at: datetime,
    inbound_id: int | None = None,
    actor: str | None = None,
) -> int:
    """The id of the borrower's open task of this kind and note, opening one if there is none.

    ``note`` is a fixed phrase ("paid claim"), never text from the reply.
    ``source`` is stored on the task; the audit row names ``actor`` (a console
    user) when given, else the source.
    """
    existing = session.scalar(
        select(Task.id).where(Task.borrower_id == borrower_id, Task.kind == kind.value, Task.note == note,
                              Task.status == TaskStatus.OPEN.value).order_by(Task.id).limit(1)
    )
    opened = False
    if existing is None:
        opened = bool(insert_ignore(session, Task, {
            "borrower_id": borrower_id, "loan_id": None, "kind": kind.value, "status": TaskStatus.OPEN.value,
            "source": source, "dedupe_key": dedupe_key[:255], "assigned_to": None, "note": note,
            "created_at": at, "closed_at": None,
        }, ["dedupe_key"]))
        task_id = session.scalar(select(Task.id).where(Task.dedupe_key == dedupe_key[:255]))
        action = "task.opened"
    else:
        task_id, action = existing, "task.linked"
    assert task_id is not None
    audit(session, at, actor=actor or source, action=action, borrower_id=borrower_id,
          detail={"task_id": task_id, "kind": kind.value, "inbound_id": inbound_id})
    if opened:
        emit(session, "task.opened", borrower_id=borrower_id, at=at,
             data={"task_id": task_id, "kind": kind.value, "source": source, "note": note})
    return task_id
