"""Console users: roles, argon2 password hashes, sign-in with lock-out.

Roles, each including the one before:

* ``viewer`` reads every page, masked; changes nothing and reveals nothing;
* ``supervisor`` also reviews calls, corrects intents and promise dates,
  writes notes, escalates, works the task queue and reveals single fields;
* ``admin`` also reads the audit log.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory
profile); a hash made with older parameters is upgraded at the next sign-in.
After ``max_failed`` wrong passwords in a row a user is locked for
``lockout`` (settings ``console_max_failed_logins`` and
``console_lockout_minutes``); while locked even the right password is
refused.  Every sign-in, failure, refusal and lock-out is an audit event.
Unknown and disabled users cost the same hashing time as real ones, and every
refusal looks the same to the person signing in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.clock import Clock, SystemClock
from bot.console.audit import record
from bot.console.i18n import LOCALES, N_, Message, field_message
from bot.db import Database
from bot.db.models import ConsoleSession, User
from bot.errors import NotFoundError, UsageError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "LoginResult",
    "UserError",
    "add_user",
    "authenticate",
    "ensure_user",
    "has_role",
    "hash_password",
    "list_users",
    "set_disabled",
    "unlock_user",
    "validate_name",
    "validate_password",
    "validate_role",
    "set_locale",
    "set_timezone",
    "validate_locale",
    "validate_timezone",
]

ROLES = ("viewer", "supervisor", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 12
#: Longer passwords are refused before hashing (a megabyte "password" must not cost a core).
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anybody's")


class UserError(UsageError):
    """A user name, role or password that cannot be used (exit status 2)."""


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UserError("user name: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    return name


def validate_role(role: str) -> str:
    if role not in _RANK:
        raise UserError(f"role: must be one of {', '.join(ROLES)}")
    return role


def validate_timezone(zone: str | None) -> str | None:
    """An IANA zone name (``Europe/Paris``) the console can show times in, or None (UTC)."""
    if zone is None or zone == "":
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if len(zone) > 64 or zone.startswith(("/", ".")) or ".." in zone:
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise UserError("timezone: not a known IANA time zone (e.g. Europe/Paris, America/New_York)") from None
    return zone


def validate_locale(locale: str | None) -> str | None:
    """A console language (``en``, ``zh-CN``, ``ko-KR``), or None (``console_default_locale``)."""
    if locale is None or locale == "":
        return None
    if locale not in LOCALES:
        raise UserError(field_message("locale", Message(N_("must be one of %(values)s"), values=", ".join(LOCALES))))
    return locale


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password: at most {MAX_PASSWORD_LENGTH} characters")
    return password


def has_role(role: str, needed: str) -> bool:
    """Does ``role`` include ``needed`` (admin includes supervisor includes viewer)?"""
    return _RANK.get(role, 0) >= _RANK[needed]


def hash_password(password: str) -> str:
    return _hasher.hash(validate_password(password))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _by_name(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"no console user named {name}")
    return user


def add_user(session: Session, name: str, role: str, password: str, *, at: datetime, actor: str = "cli",
             timezone: str | None = None, locale: str | None = None) -> User:
    """Create a user; :class:`UserError` if the name is taken or a value is not allowed."""
    validate_name(name)
    validate_role(role)
    timezone = validate_timezone(timezone)
    locale = validate_locale(locale)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise UserError(f"user name: {name} exists already")
    user = User(name=name, password_hash=hash_password(password), role=role, failed_logins=0, locked_until=None,
                disabled=False, created_at=at, last_login_at=None, timezone=timezone,
                locale=locale)
    session.add(user)
    session.flush()
    record(session, at, actor=actor, action="user.added", subject_type="user", subject_id=name,
           detail={"role": role})
    return user


def ensure_user(db: Database, name: str, role: str, password: str, *, clock: Clock | None = None,
                timezone: str | None = None, locale: str | None = None) -> User:
    """The user ``name`` with this role and password, enabled and unlocked, creating it if needed.

    For the demo and set-up scripts: calling it again resets the password and role.
    """
    at = (clock or SystemClock()).now()
    validate_name(name)
    validate_role(role)
    timezone = validate_timezone(timezone)
    locale = validate_locale(locale)
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            return add_user(session, name, role, password, at=at, actor="setup", timezone=timezone, locale=locale)
        user.timezone = timezone
        user.locale = locale
        user.password_hash = hash_password(password)
        user.role = role
        user.disabled = False
        user.failed_logins = 0
        user.locked_until = None
        record(session, at, actor="setup", action="user.reset", subject_type="user", subject_id=name,
               detail={"role": role})
        session.flush()
        return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def set_disabled(session: Session, name: str, disabled: bool, *, at: datetime, actor: str = "cli") -> User:
    """Disable (ending every session of the user) or enable a user."""
    user = _by_name(session, name)
    user.disabled = disabled
    if disabled:
        session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    record(session, at, actor=actor, action="user.disabled" if disabled else "user.enabled", subject_type="user",
           subject_id=name)
    session.flush()
    return user


def _set_own(session: Session, name: str, field: str, value: str | None, *, at: datetime, actor: str) -> User:
    user = _by_name(session, name)
    setattr(user, field, value)
    record(session, at, actor=actor, action=f"user.{field}", subject_type="user", subject_id=name,
           detail={field: value})
    session.flush()
    return user


def set_locale(session: Session, name: str, locale: str | None, *, at: datetime, actor: str = "cli") -> User:
    """Set a user's console language (None or "": back to ``console_default_locale``)."""
    return _set_own(session, name, "locale", validate_locale(locale), at=at, actor=actor)


def set_timezone(session: Session, name: str, timezone: str | None, *, at: datetime, actor: str = "cli") -> User:
    """Set the zone the console shows a user times in (None or "": UTC)."""
    return _set_own(session, name, "timezone", validate_timezone(timezone), at=at, actor=actor)


def unlock_user(session: Session, name: str, *, at: datetime, actor: str = "cli") -> User:
    user = _by_name(session, name)
    user.failed_logins = 0
    user.locked_until = None
    record(session, at, actor=actor, action="user.unlocked", subject_type="user", subject_id=name)
    session.flush()
    return user


@dataclass(frozen=True, slots=True)
class LoginResult:
    ok: bool
    reason: str  # ok | bad_credentials | locked | disabled
    user_id: int | None = None
    name: str | None = None
    role: str | None = None


def authenticate(
    session: Session,
    name: str,
    password: str,
    *,
    at: datetime,
    max_failed: int,
    lockout: timedelta,
    client: str | None = None,
) -> LoginResult:
    """Check a sign-in and record it (see the module docstring); the caller commits.

    ``client`` (the peer address) goes into the audit detail.  An unknown name
    is audited as actor ``anonymous`` without the name (people type passwords
    into the name field).
    """
    where = {"client": client} if client else {}
    user = session.scalar(select(User).where(User.name == name)) if NAME_RE.match(name or "") else None
    too_long = len(password) > MAX_PASSWORD_LENGTH
    if user is None:
        if not too_long:
            _verify(_DUMMY_HASH, password)
        record(session, at, actor="anonymous", action="console.login_failed", subject_type="user",
               detail={"reason": "unknown_user", **where})
        return LoginResult(False, "bad_credentials")
    if user.disabled:
        if not too_long:
            _verify(_DUMMY_HASH, password)
        record(session, at, actor=user.name, action="console.login_failed", subject_type="user",
               subject_id=user.name, detail={"reason": "disabled", **where})
        return LoginResult(False, "disabled")
    if user.locked_until is not None and user.locked_until > at:
        if not too_long:
            _verify(_DUMMY_HASH, password)
        record(session, at, actor=user.name, action="console.login_refused_locked", subject_type="user",
               subject_id=user.name, detail={"locked_until": user.locked_until.isoformat(), **where})
        return LoginResult(False, "locked")
    if too_long or not _verify(user.password_hash, password):
        if user.locked_until is not None:  # an expired lock: start counting again
            session.execute(update(User).where(User.id == user.id).values(failed_logins=0, locked_until=None)
                            .execution_options(synchronize_session=False))
        failed = session.execute(
            update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins).execution_options(synchronize_session=False)
        ).scalar_one()
        record(session, at, actor=user.name, action="console.login_failed", subject_type="user",
               subject_id=user.name, detail={"reason": "bad_password", "failed_logins": failed, **where})
        if failed >= max_failed:
            until = at + lockout
            session.execute(update(User).where(User.id == user.id).values(locked_until=until)
                            .execution_options(synchronize_session=False))
            record(session, at, actor=user.name, action="console.lockout", subject_type="user",
                   subject_id=user.name, detail={"failed_logins": failed, "locked_until": until.isoformat(), **where})
        session.expire(user)
        return LoginResult(False, "bad_credentials")
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": at}
    if _hasher.check_needs_rehash(user.password_hash):
        values["password_hash"] = _hasher.hash(password)
    user_id, role = user.id, user.role
    session.execute(update(User).where(User.id == user_id).values(**values)
                    .execution_options(synchronize_session=False))
    record(session, at, actor=name, action="console.login", subject_type="user", subject_id=name,
           detail=where or None)
    session.expire(user)
    return LoginResult(True, "ok", user_id, name, role)
