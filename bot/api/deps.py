"""What every route of the API needs: the bot's context, the caller's key, a write transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import insert
from sqlalchemy.orm import Session
from starlette.requests import Request

from bot.api.errors import ApiError
from bot.api.keys import KeyInfo, Scope, authenticate
from bot.compliance.config import ComplianceConfig, cached_compliance_config
from bot.db.models import AuditEvent
from bot.importer import write_transaction
from bot.web.context import WebContext

__all__ = ["Caller", "audit", "require", "writing"]

bearer = HTTPBearer(auto_error=False, description="An API key from `bot apikey create`.")


def api_context(request: Request) -> WebContext:
    """The bot's context, read from the app the API is mounted in (it may be replaced at run time)."""
    parent = getattr(request.app.state, "parent", None)
    context = (parent or request.app).state.bot
    assert isinstance(context, WebContext)
    return context


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


def require(*any_of: Scope) -> Callable[..., Caller]:
    """A dependency: the caller's active key, which must have one of ``any_of`` (401, 403)."""
    names = tuple(s.value for s in any_of)

    def dependency(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "unauthorized", "an API key is required: Authorization: Bearer KEY")
        ctx = api_context(request)
        # autocommit: the look-up (and the minutely last-use write) is one statement each, so no
        # BEGIN/COMMIT round trips around it
        with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            key = authenticate(conn, credentials.credentials, ctx.clock.now())
        if key is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        if not set(names) & set(key.scopes):
            raise ApiError(403, "forbidden", f"this API key lacks the scope {' or '.join(names)}")
        return Caller(key, ctx)

    return dependency


@contextmanager
def writing(caller: Caller) -> Iterator[Session]:
    """A session in one write transaction (SQLite's write lock taken at once, as ``bot import`` does)."""
    with write_transaction(caller.ctx.db) as conn, Session(bind=conn) as session:
        yield session
        session.flush()


_AUDIT = insert(AuditEvent)  # one Core INSERT: no unit of work to flush


def audit(session: Session, caller: Caller, action: str, subject_type: str, subject_id: str,
          detail: dict[str, Any] | None = None) -> None:
    """One audit event in the key's name (``api:<id>``); ``detail`` holds no personal data."""
    session.execute(_AUDIT, {"at": caller.now(), "actor": caller.actor, "action": action,
                             "subject_type": subject_type, "subject_id": subject_id[:64], "detail": detail})
