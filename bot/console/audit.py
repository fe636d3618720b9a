"""Audit events written by the console: who did what, when, to what, and why.

``detail`` names fields, ids, intents and reasons; never a phone number, an
email address or a name (a stated reason is redacted before it is stored).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.db.models import AuditEvent

__all__ = ["record"]


def record(
    session: Session,
    at: datetime,
    *,
    actor: str,
    action: str,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Add one :class:`AuditEvent` (flushed, so it has an id); the caller commits."""
    event = AuditEvent(
        at=at,
        actor=actor[:64],
        action=action[:64],
        subject_type=subject_type[:32] if subject_type else None,
        subject_id=str(subject_id)[:64] if subject_id is not None else None,
        detail=dict(detail) if detail else None,
    )
    session.add(event)
    session.flush()
    return event
