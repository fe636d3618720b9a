"""Server-side console sessions and their CSRF tokens.

The cookie holds a random token (256 bits, URL-safe base64); the database
holds only its SHA-256 (``console_sessions.id``), so a copy of the database
cannot be replayed as a cookie.  A session ends at ``expires_at`` (absolute
lifetime, setting ``console_session_hours``), after ``console_idle_minutes``
without a request, when its user is disabled, and at sign-out.

Each session has its own CSRF token, put in every form and checked on every
POST with a constant-time comparison.  The sign-in form, which has no session
yet, uses a double-submit cookie instead (:data:`LOGIN_CSRF_COOKIE`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.db.models import ConsoleSession, User

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SignedIn",
    "create_session",
    "csrf_matches",
    "end_session",
    "load_session",
    "new_token",
    "purge_expired",
    "session_id_for",
]

LOGIN_CSRF_COOKIE = "console_login_csrf"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
#: last_seen_at is written at most this often (one UPDATE per request would be wasteful).
TOUCH_EVERY = timedelta(seconds=15)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def session_id_for(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def csrf_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given or len(given) > 128:
        return False
    return hmac.compare_digest(expected.encode("ascii", "replace"), given.encode("ascii", "replace"))


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The signed-in user of a request."""

    session_id: str
    user_id: int
    name: str
    role: str
    csrf: str
    expires_at: datetime
    timezone: str | None = None  # the user's own zone (users.timezone); None: UTC
    locale: str | None = None  # the user's own language (users.locale); None: console_default_locale


def create_session(session: Session, user_id: int, *, at: datetime, lifetime: timedelta) -> str:
    """Start a session for ``user_id``; returns the token for the cookie (never stored)."""
    token = new_token()
    session.add(ConsoleSession(id=session_id_for(token), user_id=user_id, csrf_token=new_token(), created_at=at,
                               expires_at=at + lifetime, last_seen_at=at))
    session.flush()
    return token


def load_session(session: Session, token: str | None, *, at: datetime, idle: timedelta) -> SignedIn | None:
    """The session of a cookie token, or None (unknown, expired, idle too long, user disabled)."""
    if not token or not _TOKEN_RE.match(token):
        return None
    sid = session_id_for(token)
    row = session.execute(
        select(ConsoleSession, User.name, User.role, User.disabled, User.timezone,
               User.locale)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.id == sid)
    ).first()
    if row is None:
        return None
    console_session, name, role, disabled, timezone, locale = row
    if disabled or console_session.expires_at <= at or console_session.last_seen_at + idle <= at:
        session.execute(delete(ConsoleSession).where(ConsoleSession.id == sid))
        return None
    if at - console_session.last_seen_at >= TOUCH_EVERY:
        session.execute(update(ConsoleSession).where(ConsoleSession.id == sid).values(last_seen_at=at)
                        .execution_options(synchronize_session=False))
    return SignedIn(sid, console_session.user_id, name, role, console_session.csrf_token,
                    console_session.expires_at, timezone, locale)


def end_session(session: Session, session_id: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))


def purge_expired(session: Session, at: datetime, *, idle: timedelta) -> int:
    """Delete sessions past their lifetime or idle limit; the number deleted."""
    result = session.execute(
        delete(ConsoleSession).where((ConsoleSession.expires_at <= at) | (ConsoleSession.last_seen_at <= at - idle))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
