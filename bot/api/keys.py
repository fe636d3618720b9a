"""API keys: created by ``bot apikey create``, shown once, stored as a SHA-256.

A key reads ``bk_<id>_<secret>``: ``id`` (12 hex digits) is public and names
the key in ``bot apikey list`` and in audit events (actor ``api:<id>``);
``secret`` holds 256 random bits.  Only ``sha256(key)`` is stored: a fast hash
is right for a high-entropy random key (nothing to brute-force), and it is
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from bot.db.models import ApiKey
from bot.domain import StrEnum
from bot.errors import NotFoundError, UsageError

__all__ = ["Scope", "KeyInfo", "authenticate", "create_key", "list_keys", "revoke_key", "stale_use", "touch_key"]


class Scope(StrEnum):
    PORTFOLIO_WRITE = "portfolio:write"  # PUT borrowers, loans, installments; consents and holds
    PAYMENTS_WRITE = "payments:write"  # POST payments
    READ = "read"  # GET, personal data masked
    PII_READ = "pii:read"  # GET with personal data unmasked
    WEBHOOKS_MANAGE = "webhooks:manage"  # event webhook subscriptions and deliveries (bot.api.webhooks)


SCOPES: tuple[str, ...] = tuple(s.value for s in Scope)
_KEY_RE = re.compile(r"bk_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"api:{self.id}"

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, tuple(row.scopes), row.created_at, row.revoked_at, row.last_used_at)


def create_key(session: Session, name: str, scopes: list[str], at: datetime) -> tuple[KeyInfo, str]:
    """A new key: its record and the key itself (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise UsageError("the key's name must be 1 to 64 characters")
    if not scopes:
        raise UsageError("give at least one --scope")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise UsageError(f"unknown scope(s) {', '.join(unknown)} (expected: {', '.join(SCOPES)})")
    ordered = [s for s in SCOPES if s in set(scopes)]
    key_id = secrets.token_hex(6)
    key = f"bk_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, name=name, key_hash=_digest(key), scopes=ordered, created_at=at)
    session.add(row)
    session.flush()
    return _info(row), key


def list_keys(session: Session) -> list[KeyInfo]:
    return [_info(r) for r in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]


def revoke_key(session: Session, key_id: str, at: datetime) -> KeyInfo:
    """Revoke a key (at once, for every worker); revoking a revoked key changes nothing."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFoundError(f"no API key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = at
        session.flush()
    return _info(row)


_K = ApiKey.__table__
# Built once: a request pays only for running them.
_BY_ID = select(_K.c.id, _K.c.name, _K.c.key_hash, _K.c.scopes, _K.c.created_at, _K.c.revoked_at,
                _K.c.last_used_at).where(_K.c.id == bindparam("id"))
_TOUCH = update(_K).where(_K.c.id == bindparam("b_id")).values(last_used_at=bindparam("b_at", _K.c.last_used_at.type))


def authenticate(bind: Connection | Session, key: str, at: datetime, *, touch: bool = True) -> KeyInfo | None:
    """The active key ``key`` is, or None (unknown, malformed or revoked).

    One look-up by the key's id (the primary key) reads the hash, the scopes and the
    revocation together, on every request: a revoke takes effect on the next one.
    ``touch``: record the last use (:func:`touch_key`) when :func:`stale_use` says so;
    a caller authenticating inside a write transaction records it on a connection of its
    own instead, so a rolled-back write does not take the last use with it."""
    match = _KEY_RE.fullmatch(key)
    if match is None:
        return None
    row = bind.execute(_BY_ID, {"id": match.group(1)}).first()
    if row is None or not hmac.compare_digest(row.key_hash, _digest(key)) or row.revoked_at is not None:
        return None
    info = KeyInfo(row.id, row.name, tuple(row.scopes), row.created_at, row.revoked_at, row.last_used_at)
    if touch and stale_use(info, at):
        touch_key(bind, info.id, at)
    return info


def stale_use(info: KeyInfo, at: datetime) -> bool:
    """Whether the key's last use is due to be rewritten: at a minute's precision, so a busy
    client does not rewrite the row on every call."""
    return info.last_used_at is None or (at - info.last_used_at).total_seconds() >= 60


def touch_key(bind: Connection | Session, key_id: str, at: datetime) -> None:
    """Record ``at`` as the last use of the key ``key_id``."""
    bind.execute(_TOUCH, {"b_id": key_id, "b_at": at})
