"""``GET /attempts``: contact attempts changed since an instant, in (updated_at, id) order.

For a lender's system to follow what the bot did: ask with ``since``, then
follow ``next_cursor``; keep the last cursor (or the last ``updated_at``) for
the next poll.  An attempt that changes again later comes again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import and_, or_, select
from starlette.responses import JSONResponse

from bot.api.deps import Caller, require
from bot.api.errors import ApiError, SafeRoute, error_responses
from bot.api.keys import Scope
from bot.api.paging import decode_cursor, encode_cursor
from bot.api.schemas import AttemptPage
from bot.api.timeline import _masked
from bot.db.models import ContactAttempt

__all__ = ["router"]

router = APIRouter(route_class=SafeRoute, tags=["attempts"])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _attempt(a: ContactAttempt, reveal: bool) -> dict[str, Any]:
    return {
        "id": a.id, "borrower_id": a.borrower_id, "loan_id": a.loan_id, "installment_id": a.installment_id,
        "channel": a.channel, "source": a.source, "status": a.status, "outcome": a.outcome, "step": a.step,
        "template": a.template, "address": _masked(a.channel, a.address, reveal),
        "occurred_at": _iso(a.occurred_at), "next_attempt_at": _iso(a.next_attempt_at), "sent_at": _iso(a.sent_at),
        "provider_status": a.provider_status,
        "reasons": [str(r) for r in (a.decision or {}).get("reasons") or []],
        "created_at": a.created_at.isoformat(), "updated_at": a.updated_at.isoformat(),
    }


@router.get("/attempts", response_model=AttemptPage, responses=error_responses(403),
            summary="Contact attempts changed since an instant, a page at a time",
            description="Ordered by (updated_at, id). Addresses are masked unless the key has pii:read.")
def list_attempts(
    since: datetime | None = Query(default=None, description="Only attempts updated at or after this instant "
                                                             "(ISO 8601 with an offset)."),
    cursor: str | None = Query(default=None, max_length=512, description="next_cursor of a page."),
    limit: int = Query(default=100, ge=1, le=500),
    caller: Caller = Depends(require(Scope.READ, Scope.PII_READ)),
) -> JSONResponse:
    if since is not None:
        if since.tzinfo is None:
            raise ApiError(422, "invalid", "give the instant with an offset, e.g. 2026-12-01T00:00:00Z", "since")
        try:
            since = since.astimezone(UTC)
        except OverflowError:
            raise ApiError(422, "invalid", "instant out of range", "since") from None
    a = ContactAttempt
    query = select(a)
    if since is not None:
        query = query.where(a.updated_at >= since)
    if cursor:
        at, ident = decode_cursor(cursor, (int,))
        query = query.where(or_(a.updated_at > at, and_(a.updated_at == at, a.id > ident)))
    with caller.ctx.db.session() as session:
        rows = session.scalars(query.order_by(a.updated_at, a.id).limit(limit + 1)).all()
        items = [_attempt(r, caller.pii) for r in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1].updated_at, rows[limit - 1].id) if len(rows) > limit else None
    data = {"items": items, "next_cursor": next_cursor}
    return JSONResponse(AttemptPage.model_validate(data).model_dump(mode="json"))
