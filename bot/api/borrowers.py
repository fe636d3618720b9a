"""One borrower: where they stand and whether the bot may contact them now, their timeline,
consents (opt-out / opt-in) and holds.

The standing comes from the read model behind ``bot show``
(:func:`bot.portfolio.load_borrower`, :func:`~bot.portfolio.borrower_document`,
masked unless the key has ``pii:read``); the per-channel verdicts from what
``bot check`` runs (:func:`bot.compliance.loader.load_context` and
:func:`bot.compliance.check`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from bot.api.deps import Caller, audit, require, writing
from bot.api.errors import ApiError, SafeRoute, error_responses
from bot.api.idempotency import idempotent
from bot.api.keys import Scope
from bot.api.portfolio import IdempotencyHeader, IdPath
from bot.api.schemas import Borrower as BorrowerOut
from bot.api.schemas import ConsentIn, ConsentResult, Hold, HoldIn, TimelinePage
from bot.api.timeline import timeline_page
from bot.compliance import check
from bot.compliance.loader import load_context
from bot.events import emit
from bot.db.models import Borrower
from bot.db.models import Hold as HoldRow
from bot.domain import PHONE_CHANNELS, Channel, PromiseStatus
from bot.errors import NotFoundError
from bot.portfolio import borrower_document, load_borrower, money
from bot.privacy import mask_address
from bot.replies.consent import record_opt_in, record_opt_out
from bot.risk import load_facts, summary

__all__ = ["router"]

router = APIRouter(route_class=SafeRoute, tags=["borrowers"])

READ = require(Scope.READ, Scope.PII_READ)
WRITE = require(Scope.PORTFOLIO_WRITE)


def _not_found(borrower_id: str) -> ApiError:
    return ApiError(404, "not_found", "no borrower with this id", "borrower_id")


def hold_json(h: HoldRow) -> dict[str, Any]:
    return {"id": h.id, "borrower_id": h.borrower_id, "kind": h.kind, "active": h.lifted_at is None,
            "created_at": h.created_at.isoformat(), "created_by": h.created_by,
            "lifted_at": h.lifted_at.isoformat() if h.lifted_at else None, "lifted_by": h.lifted_by}


def _standing(session: Session, caller: Caller, borrower_id: str) -> dict[str, Any]:
    at = caller.now()
    try:
        record = load_borrower(session, borrower_id, contact_limit=0)
    except NotFoundError:
        raise _not_found(borrower_id) from None
    doc = borrower_document(record, at=at, default_timezone=caller.ctx.settings.default_timezone,
                            reveal=caller.pii)
    b, locale = doc["borrower"], record.borrower.locale
    outstanding: dict[str, int] = defaultdict(int)
    overdue: dict[str, int] = defaultdict(int)
    worst = 0
    loans = []
    for loan in doc["loans"]:
        dpd = max((i["days_past_due"] for i in loan["installments"]), default=0)
        worst = max(worst, dpd)
        outstanding[loan["currency"]] += loan["outstanding"]["minor"]
        overdue[loan["currency"]] += loan["overdue"]["minor"]
        loans.append({"id": loan["id"], "currency": loan["currency"], "outstanding": loan["outstanding"],
                      "overdue": loan["overdue"], "days_past_due": dpd})
    pending = [p for p in doc["promises"] if p["status"] == PromiseStatus.PENDING.value]
    promise = max(pending, key=lambda p: p["promised_date"]) if pending else None
    config = caller.compliance()
    context = load_context(session, borrower_id, at=at, config=config)
    contact = {}
    for channel in Channel:
        decision = check(context.subject, channel, at, context.history, context.state,
                         loan_id=context.loan_id, config=config)
        contact[channel.value] = {"allowed": decision.allowed, "reasons": list(decision.reasons),
                                  "next_allowed_at": decision.next_allowed_at.isoformat()
                                  if decision.next_allowed_at else None}
    facts = load_facts(session, [borrower_id], at, caller.ctx.settings.default_timezone)[borrower_id]
    holds = session.scalars(select(HoldRow).where(HoldRow.borrower_id == borrower_id, HoldRow.lifted_at.is_(None))
                            .order_by(HoldRow.id)).all()
    return {
        "id": b["id"], "masked": doc["masked"], "name": b["name"], "phone": b["phone"], "email": b["email"],
        "locale": b["locale"], "country": b["country"], "region": b["region"], "timezone": b["timezone"],
        "zones": b["zones"], "local_today": b["local_today"],
        "outstanding": [money(v, c, locale) for c, v in sorted(outstanding.items())],
        "overdue": [money(v, c, locale) for c, v in sorted(overdue.items())],
        "days_past_due": worst,
        "loans": loans,
        "pending_promise": None if promise is None else {
            "id": promise["id"], "loan_id": promise["loan_id"], "promised_date": promise["promised_date"],
            "amount": promise["amount"], "source": promise["source"]},
        "open_tasks": [{"id": t["id"], "kind": t["kind"], "loan_id": t["loan_id"], "source": t["source"],
                        "created_at": t["created_at"]} for t in doc["open_tasks"]],
        "holds": [hold_json(h) for h in holds],
        "consents": doc["consents"],
        "contact": contact,
        "risk": summary(facts),
    }


@router.get("/borrowers/{borrower_id}", response_model=BorrowerOut, responses=error_responses(403, 404),
            summary="A borrower's standing and whether the bot may contact them now",
            description="Outstanding and overdue amounts, days past due, the pending promise, open tasks, "
                        "active holds, and per channel the decision of `bot check` now with its reason codes. "
                        "Personal data is masked unless the key has pii:read.")
def get_borrower(borrower_id: str = IdPath(), caller: Caller = Depends(READ)) -> JSONResponse:
    with caller.ctx.db.session() as session:
        data = _standing(session, caller, borrower_id)
    return JSONResponse(BorrowerOut.model_validate(data).model_dump(mode="json"))


@router.get("/borrowers/{borrower_id}/timeline", response_model=TimelinePage, responses=error_responses(403, 404),
            summary="What happened with a borrower, oldest first, a page at a time",
            description="Contact attempts, replies, promises, tasks and holds in a stable order by (time, kind, "
                        "id). Follow next_cursor until it is null.")
def get_timeline(borrower_id: str = IdPath(),
                 cursor: str | None = Query(default=None, max_length=512, description="next_cursor of a page."),
                 limit: int = Query(default=100, ge=1, le=500),
                 caller: Caller = Depends(READ)) -> JSONResponse:
    with caller.ctx.db.session() as session:
        if session.get(Borrower, borrower_id) is None:
            raise _not_found(borrower_id)
        page = timeline_page(session, borrower_id, cursor, limit, reveal=caller.pii)
    return JSONResponse(TimelinePage.model_validate(page).model_dump(mode="json"))


def _address(borrower: Borrower, channel: Channel) -> str:
    address = borrower.phone_e164 if channel in PHONE_CHANNELS else borrower.email
    if not address:
        raise ApiError(422, "invalid", f"the borrower has no {channel.value} address on file", "channel")
    return address


@router.post("/borrowers/{borrower_id}/consents", response_model=ConsentResult, status_code=200,
             responses=error_responses(403, 404), summary="Opt a borrower out of a channel, or back in",
             description="For the borrower's current address on the channel (as an SMS STOP would). An opt-in "
                         "only clears an opt-out; consent itself is what the lender's data says.")
def post_consent(body: ConsentIn, borrower_id: str = IdPath(), caller: Caller = Depends(WRITE),
                 idempotency_key: str | None = IdempotencyHeader()) -> JSONResponse:
    def run(session: Session, _caller: Caller) -> tuple[int, dict[str, Any]]:
        borrower = session.get(Borrower, borrower_id)
        if borrower is None:
            raise _not_found(borrower_id)
        address = _address(borrower, body.channel)
        at = caller.now()
        if body.action == "opt_out":
            changed = record_opt_out(session, borrower_id, body.channel.value, address, body.source, at,
                                     actor=caller.actor)
        else:
            changed = record_opt_in(session, borrower_id, body.channel.value, address, body.source, at,
                                    actor=caller.actor)
        shown = address if caller.pii else mask_address(address, body.channel.value)
        return 200, {"borrower_id": borrower_id, "channel": body.channel.value, "address": shown,
                     "opted_out": body.action == "opt_out", "changed": changed}

    return idempotent(caller, idempotency_key, f"/borrowers/{borrower_id}/consents", body, run)


@router.post("/borrowers/{borrower_id}/holds", response_model=Hold, status_code=201,
             responses=error_responses(403, 404), summary="Put a borrower on hold: every contact stops",
             description="Kinds: dispute, bankruptcy, deceased, cease_communication, legal. While any hold is "
                         "active nothing is planned, sent or called (compliance reason `hold`).")
def post_hold(body: HoldIn, borrower_id: str = IdPath(), caller: Caller = Depends(WRITE),
              idempotency_key: str | None = IdempotencyHeader()) -> JSONResponse:
    def run(session: Session, _caller: Caller) -> tuple[int, dict[str, Any]]:
        if session.get(Borrower, borrower_id) is None:
            raise _not_found(borrower_id)
        hold = HoldRow(borrower_id=borrower_id, kind=body.kind.value, created_at=caller.now(),
                       created_by=caller.actor)
        session.add(hold)
        session.flush()
        audit(session, caller, "api.hold.place", "borrower", borrower_id, {"hold_id": hold.id, "kind": hold.kind})
        emit(session, "hold.changed", borrower_id=borrower_id, at=caller.now(),
             data={"hold_id": hold.id, "active": True, "kind": hold.kind, "source": caller.actor})
        return 201, hold_json(hold)

    return idempotent(caller, idempotency_key, f"/borrowers/{borrower_id}/holds", body, run)


@router.delete("/borrowers/{borrower_id}/holds/{hold_id}", response_model=Hold,
               responses=error_responses(403, 404), summary="Lift a hold",
               description="Contact resumes when no other hold is active. Lifting a lifted hold changes nothing.")
def delete_hold(borrower_id: str = IdPath(), hold_id: int = Path(ge=1, le=2**31 - 1),
                caller: Caller = Depends(WRITE)) -> JSONResponse:
    with writing(caller) as session:
        hold = session.get(HoldRow, hold_id)
        if hold is None or hold.borrower_id != borrower_id:
            raise ApiError(404, "not_found", "this borrower has no hold with this id", "hold_id")
        if hold.lifted_at is None:
            at: datetime = caller.now()
            session.execute(update(HoldRow).where(HoldRow.id == hold_id).values(lifted_at=at, lifted_by=caller.actor))
            session.refresh(hold)
            audit(session, caller, "api.hold.lift", "borrower", borrower_id, {"hold_id": hold_id, "kind": hold.kind})
            emit(session, "hold.changed", borrower_id=borrower_id, at=at,
                 data={"hold_id": hold_id, "active": False, "kind": hold.kind, "source": caller.actor})
        data = hold_json(hold)
    return JSONResponse(data)
