"""What every route of the API needs: the bot's context, the caller's key, a write transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session
from starlette.requests import Request

from bot.api.errors import KEY_TO_CHECK, ApiError
from bot.api.keys import KeyInfo, Scope, authenticate, stale_use, touch_key
from bot.compliance.config import ComplianceConfig, cached_compliance_config
from bot.db.models import AuditEvent
from bot.http.context import WebContext
from bot.importer import write_transaction

__all__ = ["Caller", "KeyToCheck", "audit", "require", "require_in_write", "writing",
           "writing_as"]

bearer = HTTPBearer(auto_error=False, description="An API key from `bot apikey create`.")


def api_context(request: Request) -> WebContext:
    """The bot's context, read from the app the API is mounted in (it may be replaced at run time)."""
    parent = getattr(request.app.state, "parent", None)
    context = (parent or request.app).state.bot
    assert isinstance(context, WebContext)
    return context


T = TypeVar("T")

#: The portfolio writes one web worker process runs at once (``api_write_concurrency``), in
#: threads of their own: the rest wait their turn in arrival order.  A few at a time finish
#: sooner than dozens sharing one interpreter: at 300 payments a second on 2 cores, p95 about
#: 22 ms instead of 70-90 ms with the 40 threads of the shared pool (docs/benchmarks.md).
_WRITE_TURNS = CapacityLimiter(4)


async def in_write_turn(ctx: WebContext, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread once one of the ``api_write_concurrency`` turns is free."""
    tokens = ctx.settings.api_write_concurrency
    if _WRITE_TURNS.total_tokens != tokens:
        _WRITE_TURNS.total_tokens = tokens
    return await anyio.to_thread.run_sync(fn, *args, limiter=_WRITE_TURNS)


@dataclass(frozen=True, slots=True)
class Caller:
    key: KeyInfo
    ctx: WebContext

    @property
    def actor(self) -> str:
        return self.key.actor

    @property
    def pii(self) -> bool:
        return Scope.PII_READ.value in self.key.scopes

    def now(self) -> datetime:
        return self.ctx.clock.now()

    def compliance(self) -> ComplianceConfig:
        s = self.ctx.settings
        return cached_compliance_config(str(s.compliance_file) if s.compliance_file else None, s.default_timezone)


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The bearer key of the request (401 when there is none)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "an API key is required: Authorization: Bearer KEY")
    return credentials.credentials


def _autocommit(ctx: WebContext) -> Connection:
    # autocommit: the look-up (and the minutely last-use write) is one statement each, so no
    # BEGIN/COMMIT round trips around it
    return ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _caller(key: KeyInfo | None, names: tuple[str, ...], ctx: WebContext) -> Caller:
    """The caller with ``key``, which must exist and have one of the scopes ``names`` (401, 403)."""
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    if not set(names) & set(key.scopes):
        raise ApiError(403, "forbidden", f"this API key lacks the scope {' or '.join(names)}")
    return Caller(key, ctx)


def require(*any_of: Scope) -> Callable[..., Caller]:
    """A dependency: the caller's active key, which must have one of ``any_of`` (401, 403)."""
    names = tuple(s.value for s in any_of)

    def dependency(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        token = _token(credentials)
        ctx = api_context(request)
        with _autocommit(ctx) as conn:
            key = authenticate(conn, token, ctx.clock.now())
        return _caller(key, names, ctx)

    return dependency


@dataclass(frozen=True, slots=True)
class KeyToCheck:
    """A request's bearer key, read but not yet looked up: a write route checks it on its own
    write transaction's connection (:func:`writing_as`), which saves the request a connection
    checkout and a thread-pool hop.  Checked before anything else of the route runs, with the
    same 401 and 403 as :func:`require`; a request whose body or headers fail validation is
    checked by the validation error's handler first (bot.api.errors), so a bad key still
    answers 401 before a bad body answers 422."""

    token: str
    names: tuple[str, ...]
    ctx: WebContext

    def lookup(self, conn: Connection) -> KeyInfo | None:
        """The active key, looked up on ``conn`` (its last use is written by :func:`writing_as`)."""
        return authenticate(conn, self.token, self.ctx.clock.now(), touch=False)

    def check_alone(self) -> Caller:
        with _autocommit(self.ctx) as conn:
            return _caller(authenticate(conn, self.token, self.ctx.clock.now()), self.names, self.ctx)


def require_in_write(*any_of: Scope) -> Callable[..., Any]:
    """A dependency for a route that writes in one transaction: the request's :class:`KeyToCheck`
    (401 at once when there is no key), for :func:`writing_as`."""
    names = tuple(s.value for s in any_of)

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> KeyToCheck:
        pending = KeyToCheck(_token(credentials), names, api_context(request))
        setattr(request.state, KEY_TO_CHECK, pending)  # for the handler of a validation error
        return pending

    return dependency


@contextmanager
def writing_as(who: Caller | KeyToCheck) -> Iterator[tuple[Caller, Session]]:
    """The caller and a session in one write transaction (SQLite's write lock taken at once, as
    ``bot import`` does).  A :class:`KeyToCheck` is looked up first, on the transaction's own
    connection (401, 403); its last use is written after the transaction, on a connection of its
    own (a rolled-back write keeps it, and SQLite's write lock is not waited for)."""
    key: KeyInfo | None = None
    try:
        with write_transaction(who.ctx.db) as conn, Session(bind=conn) as session:
            if isinstance(who, KeyToCheck):
                key = who.lookup(conn)
                caller = _caller(key, who.names, who.ctx)
            else:
                caller = who
            yield caller, session
            session.flush()
    finally:
        if key is not None and stale_use(key, now := who.ctx.clock.now()):
            with _autocommit(who.ctx) as own:
                touch_key(own, key.id, now)


@contextmanager
def writing(caller: Caller) -> Iterator[Session]:
    """A session in one write transaction (:func:`writing_as`)."""
    with writing_as(caller) as (_caller, session):
        yield session


_AUDIT = insert(AuditEvent.__table__)  # one Core INSERT of the table: no unit of work, no ORM bulk path


def audit(session: Session, caller: Caller, action: str, subject_type: str, subject_id: str,
          detail: dict[str, Any] | None = None) -> None:
    """One audit event in the key's name (``api:<id>``); ``detail`` holds no personal data."""
    session.connection().execute(_AUDIT, {"at": caller.now(), "actor": caller.actor, "action": action,
                                          "subject_type": subject_type, "subject_id": subject_id[:64],
                                          "detail": detail})
