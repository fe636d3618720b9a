"""Event webhook subscriptions and deliveries over the API (scope ``webhooks:manage``).

The same service as ``bot webhook`` (:mod:`bot.events.subscriptions`): add (the signing
secret is in the 201 body, shown once), list, remove, list deliveries, replay.  A
subscription with unmasked payloads (``pii``) can be created only by a key that also
has ``pii:read``: a key cannot get, by webhook, what it may not read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, Response

from bot.api.deps import Caller, audit, require, writing
from bot.api.errors import ApiError, SafeRoute, error_responses
from bot.api.idempotency import idempotent
from bot.api.keys import Scope
from bot.api.portfolio import IdempotencyHeader
from bot.errors import NotFoundError, UsageError
from bot.events import EVENT_TYPES
from bot.events.subscriptions import (
    DeliveryView,
    add_subscription,
    list_deliveries,
    list_subscriptions,
    remove_subscription,
    replay,
)

__all__ = ["router"]

router = APIRouter(route_class=SafeRoute, tags=["webhooks"])
MANAGE = require(Scope.WEBHOOKS_MANAGE)
EventType = Literal[tuple(EVENT_TYPES)]  # type: ignore[valid-type]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "url": "https://crm.example.com/hooks/bot", "events": ["payment.applied", "promise.created"], "pii": False}]})

    url: str = Field(min_length=8, max_length=2048, description="Absolute http:// or https:// address.")
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))  # type: ignore[valid-type]
    pii: bool = Field(default=False, description="Unmasked payloads; needs a key with pii:read.")


class Subscription(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 1, "url": "https://crm.example.com/hooks/bot", "events": ["payment.applied"], "pii": False,
        "created_at": "2026-12-01T10:30:00+00:00", "pending": 0, "dead": 0}]})

    id: int
    url: str
    events: list[str]
    pii: bool
    created_at: datetime
    pending: int
    dead: int


class NewSubscription(Subscription):
    secret: str = Field(description="The Standard Webhooks signing secret (whsec_...): shown this once.")


class SubscriptionList(BaseModel):
    subscriptions: list[Subscription]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]  # the service's own view is the schema


class Replayed(BaseModel):
    queued: int


def _usage(exc: UsageError, field: str) -> ApiError:
    return ApiError(422, "invalid", str(exc).split(": ", 1)[-1], field)


@router.post("/webhooks", response_model=NewSubscription, status_code=201, responses=error_responses(403),
             summary="Subscribe an endpoint to events",
             description="Events are signed as Standard Webhooks specify (docs/events.md). The body of the 201 "
                         "holds the signing secret, shown once.")
def post_webhook(body: SubscriptionIn, caller: Caller = Depends(MANAGE),
                 idempotency_key: str | None = IdempotencyHeader()) -> JSONResponse:
    if body.pii and not caller.pii:
        raise ApiError(403, "forbidden", "a subscription with unmasked payloads needs a key with pii:read", "pii")

    def run(session: Session, _caller: Caller) -> tuple[int, dict[str, Any]]:
        try:
            view, secret = add_subscription(session, body.url, body.events, pii=body.pii, at=caller.now())
        except UsageError as exc:
            raise _usage(exc, "url") from None
        audit(session, caller, "api.webhook.add", "webhook_subscription", str(view.id),
              {"events": list(view.events), "pii": view.pii})
        return 201, view.to_json() | {"secret": secret}

    return idempotent(caller, idempotency_key, "/webhooks", body, run)


@router.get("/webhooks", response_model=SubscriptionList, responses=error_responses(403),
            summary="The subscriptions", description="URLs without credentials or query strings.")
def get_webhooks(caller: Caller = Depends(MANAGE)) -> JSONResponse:
    with caller.ctx.db.sessions() as session:
        return JSONResponse({"subscriptions": [v.to_json() for v in list_subscriptions(session)]})


@router.delete("/webhooks/{subscription_id}", status_code=204, response_class=Response,
               responses=error_responses(403, 404),
               summary="Remove a subscription", description="Its pending deliveries are never sent.")
def delete_webhook(subscription_id: int = Path(ge=1, le=2**31 - 1), caller: Caller = Depends(MANAGE)) -> Response:
    with writing(caller) as session:
        try:
            remove_subscription(session, subscription_id)
        except NotFoundError:
            raise ApiError(404, "not_found", "no webhook subscription with this id", "subscription_id") from None
        audit(session, caller, "api.webhook.remove", "webhook_subscription", str(subscription_id))
    return Response(status_code=204)


@router.get("/webhooks/deliveries", response_model=DeliveryList, responses=error_responses(403),
            summary="The latest deliveries, newest first")
def get_deliveries(status: Literal["pending", "delivered", "dead"] | None = Query(default=None),
                   subscription_id: int | None = Query(default=None, ge=1, le=2**31 - 1),
                   limit: int = Query(default=100, ge=1, le=500), caller: Caller = Depends(MANAGE)) -> JSONResponse:
    with caller.ctx.db.sessions() as session:
        rows = list_deliveries(session, status=status, subscription_id=subscription_id, limit=limit)
    return JSONResponse({"deliveries": [d.to_json() for d in rows]})


@router.post("/webhooks/deliveries/{delivery_id}/replay", response_model=Replayed, responses=error_responses(403, 404),
             summary="Send a delivery again", description="From now, with a fresh retry window and the same webhook-id.")
def post_replay(delivery_id: int = Path(ge=1, le=2**31 - 1), caller: Caller = Depends(MANAGE)) -> JSONResponse:
    with writing(caller) as session:
        try:
            queued = replay(session, at=caller.now(), delivery_ids=[delivery_id])
        except NotFoundError:
            raise ApiError(404, "not_found", "no webhook delivery with this id", "delivery_id") from None
        audit(session, caller, "api.webhook.replay", "webhook_delivery", str(delivery_id))
    return JSONResponse({"queued": queued})
