"""The event types and what of their payloads is personal.

Pure: no database.  :func:`payload` builds the body a subscription receives:
``{"type", "timestamp", "data"}`` (the Standard Webhooks shape), with personal
fields masked unless the subscription was created with ``--pii``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bot.privacy import mask_address

EVENT_TYPES: tuple[str, ...] = (
    "attempt.sent",
    "attempt.delivered",
    "attempt.failed",
    "reply.received",
    "promise.created",
    "promise.kept",
    "promise.broken",
    "consent.changed",
    "hold.changed",
    "task.opened",
    "call.completed",
    "payment.applied",
    "payment_link.clicked",
)


class UnknownEventType(ValueError):
    """An event type that is not one of :data:`EVENT_TYPES`."""


def check_type(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    return event_type


def _mask_address(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    return mask_address(value)


def _drop(_value: Any) -> None:
    return None


#: Personal fields of any payload and what a subscription without ``pii`` gets instead.
PERSONAL: dict[str, Callable[[Any], Any]] = {
    "address": _mask_address,  # a phone number or an email address
    "text": _drop,  # the (redacted) text of a reply
}


def masked(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with its personal fields masked (addresses) or nulled (text)."""
    return {key: PERSONAL[key](value) if key in PERSONAL else value for key, value in data.items()}


def payload(event_type: str, occurred_at: datetime, data: Mapping[str, Any], *, pii: bool) -> dict[str, Any]:
    """The JSON document sent for one event."""
    return {
        "type": event_type,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": dict(data) if pii else masked(data),
    }
