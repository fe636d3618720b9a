"""The transactional outbox: an event is written in the transaction of the change it reports.

:func:`emit` adds one ``outbox_events`` row and one ``webhook_deliveries`` row
per subscription that wants the type, in the caller's session: if the caller's
transaction rolls back, the event was never there; if it commits, the event is
delivered at least once (bot.events.delivery).  No subscription for the type:
nothing is written.

Call it where the change is made, after the statement that made it (and only
when it changed something: a duplicate webhook emits nothing).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.db.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from bot.events.types import check_type

__all__ = ["Event", "emit", "emit_many", "subscribed"]



@dataclass(frozen=True, slots=True)
class Event:
    type: str
    borrower_id: str | None
    data: Mapping[str, Any]
    at: datetime


_SUBSCRIPTIONS = select(WebhookSubscription.id, WebhookSubscription.events).order_by(WebhookSubscription.id)


def _subscribers(session: Session) -> list[tuple[int, frozenset[str]]]:
    rows = session.execute(_SUBSCRIPTIONS).all()
    return [(sid, frozenset((events or {}).get("types") or ())) for sid, events in rows]


def subscribed(session: Session, *types: str) -> set[str]:
    """Which of ``types`` some subscription wants (to skip building events nobody receives)."""
    wanted: set[str] = set()
    for _, subscribed_types in _subscribers(session):
        wanted |= subscribed_types
    return wanted & set(types)


def emit(session: Session, type: str, *, borrower_id: str | None, data: Mapping[str, Any],  # noqa: A002
         at: datetime) -> int | None:
    """Record one event in the caller's transaction; its id, or None when no subscription wants it."""
    ids = emit_many(session, [Event(type, borrower_id, data, at)])
    return ids[0] if ids else None


def emit_many(session: Session, events: Sequence[Event]) -> list[int]:
    """:func:`emit` for several events (one subscription lookup); the ids of the events written."""
    if not events:
        return []
    for event in events:
        check_type(event.type)
    subscribers = _subscribers(session)
    if not subscribers:
        return []
    written: list[int] = []
    deliveries: list[dict[str, Any]] = []
    for event in events:
        wanted = [sid for sid, types in subscribers if event.type in types]
        if not wanted:
            continue
        event_id = session.scalar(insert(OutboxEvent).values(
            public_id="evt_" + secrets.token_hex(16), type=event.type, borrower_id=event.borrower_id,
            data=_jsonable(event.data), occurred_at=event.at, created_at=event.at,
        ).returning(OutboxEvent.id))
        assert event_id is not None
        written.append(event_id)
        deliveries.extend(
            {"event_id": event_id, "subscription_id": sid, "borrower_id": event.borrower_id, "status": "pending",
             "tries": 0, "next_attempt_at": event.at, "retry_since": event.at, "created_at": event.at,
             "updated_at": event.at}
            for sid in wanted
        )
    if deliveries:
        session.execute(insert(WebhookDelivery), deliveries)
    return written


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Dates and instants as ISO 8601 strings (UTC instants with ``Z``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out
