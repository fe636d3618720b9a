"""``Idempotency-Key`` on every POST: the first response is stored and replayed for 24 hours.

The key is per API key.  The stored row holds a SHA-256 of the request
(method, path and the parsed body, canonical JSON), the status and the JSON
response; it is written in the same transaction as the effect, so an effect
without its stored response (or the reverse) cannot exist.  The table lives
in the database, so every worker sees it.  Two requests racing with one key:
the second's insert conflicts (primary key), its transaction rolls back, and
it is answered from the first's row.  The same key with a different request
is refused (422 ``idempotency_key_reused``).  Error responses are not stored:
a retry after a 4xx or 5xx runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from bot.api.deps import Caller, KeyToCheck, writing_as
from bot.api.errors import ApiError
from bot.db.models import IdempotencyKey

__all__ = ["RETENTION", "idempotent"]

RETENTION = timedelta(hours=24)

Outcome = tuple[int, dict[str, Any]]


def _fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    text = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stored(session: Session, caller: Caller, key: str, fingerprint: str) -> Outcome | None:
    row = session.execute(
        select(IdempotencyKey.request_hash, IdempotencyKey.status_code, IdempotencyKey.response,
               IdempotencyKey.created_at)
        .where(IdempotencyKey.api_key_id == caller.key.id, IdempotencyKey.key == key)
    ).first()
    if row is None:
        return None
    if row.created_at <= caller.now() - RETENTION:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.api_key_id == caller.key.id,
                                                     IdempotencyKey.key == key))
        return None
    if row.request_hash != fingerprint:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used with a different request in the last 24 hours",
                       "Idempotency-Key")
    return row.status_code, row.response


def idempotent(who: Caller | KeyToCheck, key: str | None, path: str, body: BaseModel,
               run: Callable[[Session, Caller], Outcome]) -> JSONResponse:
    """The response of a POST to ``path``: ``run`` in a write transaction, or a replay for ``key``.
    ``who``: the caller, or its key still to be checked in that transaction (:func:`writing_as`)."""
    status, data = _outcome(who, key, "POST", path, body, run)
    return JSONResponse(data, status_code=status)


def _outcome(who: Caller | KeyToCheck, key: str | None, method: str, path: str, body: BaseModel,
             run: Callable[[Session, Caller], Outcome]) -> Outcome:
    if key is None:
        with writing_as(who) as (caller, session):
            return run(session, caller)
    fingerprint = _fingerprint(method, path, body.model_dump(mode="json"))
    for attempt in range(2):
        try:
            with writing_as(who) as (caller, session):
                prune(session, caller)
                found = _stored(session, caller, key, fingerprint)
                if found is not None:
                    return found
                status, response = run(session, caller)
                session.execute(insert(IdempotencyKey).values(
                    api_key_id=caller.key.id, key=key, request_hash=fingerprint, status_code=status,
                    response=response, created_at=caller.now()))
                return status, response
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def prune(session: Session, caller: Caller) -> int:
    """Delete stored responses older than the retention (called now and then by POSTs)."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at <= caller.now() - RETENTION))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
