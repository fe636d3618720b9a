"""Events out: a transactional outbox and signed webhooks to the lender (docs/events.md).

* :func:`emit` — record an event in the caller's transaction (:mod:`bot.events.outbox`);
* :mod:`bot.events.subscriptions` — add, list, remove subscriptions; list and replay deliveries;
* :func:`deliver_due` — claim, sign (Standard Webhooks), POST, retry (:mod:`bot.events.delivery`).

The delivery module (httpx, standardwebhooks) is imported only by whoever delivers.
"""

from bot.events.outbox import Event, emit, emit_many, subscribed
from bot.events.types import EVENT_TYPES, UnknownEventType, masked, payload

__all__ = ["EVENT_TYPES", "Event", "UnknownEventType", "emit", "emit_many", "masked", "payload", "subscribed"]
