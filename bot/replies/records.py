"""Small writing helpers shared by the reply effects: audit events and insert-or-ignore.

Kept apart so that every effect writes its audit event the same way: an actor,
an action, the borrower as subject and a ``detail`` that never holds personal
data (no address, no name, no text from the reply; ids, channels, intents and
rule names only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.models import AuditEvent

__all__ = ["audit", "insert_ignore"]


def audit(
    session: Session,
    at: datetime,
    *,
    actor: str,
    action: str,
    borrower_id: str | None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Add one :class:`AuditEvent` about a borrower (``subject_type`` ``borrower``)."""
    session.add(AuditEvent(
        at=at,
        actor=actor[:64],
        action=action[:64],
        subject_type="borrower" if borrower_id is not None else None,
        subject_id=borrower_id,
        detail=dict(detail) if detail else None,
    ))


def insert_ignore(session: Session, model: Any, values: Mapping[str, Any], conflict: list[str]) -> int:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING``; returns 1 when a row was inserted.

    On PostgreSQL a concurrent insert of the same key waits for the other
    transaction and then does nothing, so two webhooks racing to create the
    same consent row cannot both fail or both insert.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=conflict)
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
