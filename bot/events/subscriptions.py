"""Webhook subscriptions and their deliveries: the functions behind ``bot webhook``.

Each function takes the caller's session (the caller commits), so an HTTP API
can call them as the CLI does.  Nothing returned holds a secret except
:func:`add_subscription`'s, once; URLs are shown without credentials or query
string (:func:`display_url`).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.db.models import OutboxEvent, WebhookDelivery, WebhookSubscription
from bot.errors import NotFoundError, UsageError
from bot.events.types import EVENT_TYPES, UnknownEventType, check_type

__all__ = [
    "DELIVERY_STATUSES",
    "DeliveryView",
    "SubscriptionView",
    "add_subscription",
    "display_url",
    "list_deliveries",
    "list_subscriptions",
    "new_secret",
    "remove_subscription",
    "replay",
]

DELIVERY_STATUSES = ("pending", "delivered", "dead")


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def display_url(url: str) -> str:
    """``url`` without user, password, query string or fragment (for lists and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("URL: must be an absolute http:// or https:// address")
    return url.strip()


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    id: int
    url: str  # display_url: no credentials, no query string
    events: tuple[str, ...]
    pii: bool
    created_at: datetime
    pending: int = 0
    dead: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events), "pii": self.pii,
                "created_at": self.created_at.isoformat(), "pending": self.pending, "dead": self.dead}


def add_subscription(session: Session, url: str, events: Iterable[str], *, pii: bool = False,
                     at: datetime) -> tuple[SubscriptionView, str]:
    """Subscribe ``url`` to ``events``; the subscription and its signing secret (shown once)."""
    url = _check_url(url)
    wanted = set(events)
    if not wanted:
        raise UsageError("--event: name at least one event type")
    try:
        for event_type in sorted(wanted):
            check_type(event_type)
    except UnknownEventType as exc:
        raise UsageError(f"--event: {exc}") from None
    types = sorted(wanted, key=EVENT_TYPES.index)
    secret = new_secret()
    row = WebhookSubscription(url=url, secret=secret, events={"types": types}, pii=pii, created_at=at)
    session.add(row)
    session.flush()
    return SubscriptionView(row.id, display_url(url), tuple(types), pii, at), secret


def list_subscriptions(session: Session) -> list[SubscriptionView]:
    counts: dict[tuple[int, str], int] = {
        (sid, status): n for sid, status, n in session.execute(
            select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count())
            .where(WebhookDelivery.status.in_(("pending", "dead")))
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status))
    }
    return [
        SubscriptionView(row.id, display_url(row.url), tuple((row.events or {}).get("types") or ()), row.pii,
                         row.created_at, counts.get((row.id, "pending"), 0), counts.get((row.id, "dead"), 0))
        for row in session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
    ]


def remove_subscription(session: Session, subscription_id: int) -> None:
    """Delete a subscription and its deliveries (pending ones are never sent)."""
    row = session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFoundError(f"no webhook subscription {subscription_id}")
    session.execute(WebhookDelivery.__table__.delete().where(WebhookDelivery.subscription_id == subscription_id))
    session.delete(row)
    session.flush()


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    event: str  # the event's public id (the webhook-id header)
    type: str
    subscription_id: int
    borrower_id: str | None
    status: str
    tries: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {"id": self.id, "event": self.event, "type": self.type, "subscription_id": self.subscription_id,
                "borrower_id": self.borrower_id, "status": self.status, "tries": self.tries,
                "next_attempt_at": iso(self.next_attempt_at), "last_error": self.last_error,
                "last_status_code": self.last_status_code, "created_at": iso(self.created_at),
                "delivered_at": iso(self.delivered_at)}


def list_deliveries(session: Session, *, status: str | None = None, subscription_id: int | None = None,
                    limit: int = 100) -> list[DeliveryView]:
    """The latest deliveries (newest first), optionally of one status or subscription."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise UsageError(f"--status: {status!r} is not one of {', '.join(DELIVERY_STATUSES)}")
    d = WebhookDelivery
    stmt = (select(d.id, OutboxEvent.public_id, OutboxEvent.type, d.subscription_id, d.borrower_id, d.status,
                   d.tries, d.next_attempt_at, d.last_error, d.last_status_code, d.created_at, d.delivered_at)
            .join(OutboxEvent, OutboxEvent.id == d.event_id).order_by(d.id.desc()).limit(limit))
    if status is not None:
        stmt = stmt.where(d.status == status)
    if subscription_id is not None:
        stmt = stmt.where(d.subscription_id == subscription_id)
    return [DeliveryView(*row) for row in session.execute(stmt)]


def replay(session: Session, *, at: datetime, delivery_ids: Sequence[int] = (), dead: bool = False) -> int:
    """Send deliveries again from now (a fresh retry window); how many were queued.

    ``delivery_ids``: those deliveries, whatever their status (a delivered one is
    sent once more, with the same ``webhook-id``); ``dead``: every dead delivery.
    """
    if not delivery_ids and not dead:
        raise UsageError("replay: give a delivery id or --dead")
    d = WebhookDelivery
    if delivery_ids:
        known = set(session.scalars(select(d.id).where(d.id.in_(list(delivery_ids)))))
        missing = sorted(set(delivery_ids) - known)
        if missing:
            raise NotFoundError(f"no webhook delivery {', '.join(map(str, missing))}")
        where = d.id.in_(sorted(known))
    else:
        where = d.status == "dead"
    result = session.execute(
        update(d).where(where).values(status="pending", next_attempt_at=at, retry_since=at, claimed_by=None,
                                      claimed_until=None, delivered_at=None, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
