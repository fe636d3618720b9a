"""A borrower's timeline, paged with an opaque cursor in a stable order: (time, kind, id).

Five sources (contact attempts, replies, promises, tasks, holds), each read
with its own keyset query past the cursor and merged, so a page costs five
indexed queries of at most ``limit + 1`` rows however long the history is.
A kind's time: an attempt's ``sent_at``, else ``occurred_at``, else
``next_attempt_at``, else ``created_at``; a reply's ``received_at``; the
others' ``created_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from bot.api.paging import decode_cursor, encode_cursor
from bot.db.models import ContactAttempt, Hold, InboundMessage, Promise, Task
from bot.privacy import mask_address, redact

__all__ = ["timeline_page"]


def _masked(channel: str | None, address: str | None, reveal: bool) -> str | None:
    if not address or reveal:
        return address
    return mask_address(address, channel)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _attempt(a: ContactAttempt, reveal: bool) -> tuple[str | None, str, dict[str, Any]]:
    outcome = f", {a.outcome}" if a.outcome else ""
    return a.channel, f"{a.channel} {a.status}{outcome}", {
        "status": a.status, "outcome": a.outcome, "source": a.source, "step": a.step, "template": a.template,
        "loan_id": a.loan_id, "installment_id": a.installment_id, "address": _masked(a.channel, a.address, reveal),
        "reasons": [str(r) for r in (a.decision or {}).get("reasons") or []]}


def _reply(m: InboundMessage, reveal: bool) -> tuple[str | None, str, dict[str, Any]]:
    data: dict[str, Any] = {"intent": m.intent, "promise_date": _iso(m.promise_date), "confidence": m.confidence}
    if reveal:
        data["text"] = m.body_redacted
    return m.channel, f"reply: {m.intent or 'unclassified'}", data


def _promise(p: Promise, reveal: bool) -> tuple[str | None, str, dict[str, Any]]:
    return None, f"promise to pay on {p.promised_date.isoformat()}", {
        "promised_date": p.promised_date.isoformat(), "status": p.status, "source": p.source,
        "loan_id": p.loan_id, "amount_minor": p.amount_minor, "resolved_at": _iso(p.resolved_at)}


def _task(t: Task, reveal: bool) -> tuple[str | None, str, dict[str, Any]]:
    note = t.note if (reveal or t.note is None) else redact(t.note)
    return None, f"task: {t.kind} ({t.status})", {
        "kind": t.kind, "status": t.status, "source": t.source, "loan_id": t.loan_id,
        "closed_at": _iso(t.closed_at), "note": note if reveal else None}


def _hold(h: Hold, reveal: bool) -> tuple[str | None, str, dict[str, Any]]:
    state = "active" if h.lifted_at is None else "lifted"
    return None, f"hold: {h.kind} ({state})", {
        "kind": h.kind, "created_by": h.created_by, "lifted_at": _iso(h.lifted_at), "lifted_by": h.lifted_by}


# kind -> (model, its time, its borrower column, render); kinds sort alphabetically
_SOURCES: dict[str, tuple[Any, Any, Any, Callable[[Any, bool], tuple[str | None, str, dict[str, Any]]]]] = {
    "attempt": (ContactAttempt, func.coalesce(ContactAttempt.sent_at, ContactAttempt.occurred_at,
                                              ContactAttempt.next_attempt_at, ContactAttempt.created_at),
                ContactAttempt.borrower_id, _attempt),
    "hold": (Hold, Hold.created_at, Hold.borrower_id, _hold),
    "promise": (Promise, Promise.created_at, Promise.borrower_id, _promise),
    "reply": (InboundMessage, InboundMessage.received_at, InboundMessage.borrower_id, _reply),
    "task": (Task, Task.created_at, Task.borrower_id, _task),
}


def _after(kind: str, when: Any, ident: Any, cursor: tuple[Any, ...] | None) -> ColumnElement[bool] | None:
    if cursor is None:
        return None
    at, c_kind, c_id = cursor
    if kind > c_kind:
        return when >= at
    if kind < c_kind:
        return when > at
    return or_(when > at, and_(when == at, ident > c_id))


def timeline_page(session: Session, borrower_id: str, cursor: str | None, limit: int, *,
                  reveal: bool) -> dict[str, Any]:
    position = decode_cursor(cursor, (str, int)) if cursor else None
    found: list[tuple[datetime, str, int, Any, Callable[..., Any]]] = []
    for kind, (model, when, owner, render) in _SOURCES.items():
        query = select(when, model).where(owner == borrower_id)
        condition = _after(kind, when, model.id, position)
        if condition is not None:
            query = query.where(condition)
        for at, row in session.execute(query.order_by(when, model.id).limit(limit + 1)):
            found.append((at, kind, row.id, row, render))
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    items = []
    for at, kind, ident, row, render in found[:limit]:
        channel, summary, data = render(row, reveal)
        items.append({"id": f"{kind}:{ident}", "kind": kind, "at": at.isoformat(), "channel": channel,
                      "summary": summary, "data": data})
    next_cursor = None
    if len(found) > limit:
        at, kind, ident = found[limit - 1][:3]
        next_cursor = encode_cursor(at, kind, ident)
    return {"items": items, "next_cursor": next_cursor}
