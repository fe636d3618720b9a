"""Delivery statuses whose callbacks never arrived: asked at the provider.

Twilio reports an SMS's fate (``delivered``, ``undelivered``, ``failed``) only by
status callbacks.  A callback the bot could not take (the web app or the
database was down: it answered 503, or nobody answered) is lost: Twilio does
not send message status callbacks again.  So each dispatch pass looks for sent
SMS with a ``provider_id`` whose ``provider_status`` is not final and whose row
has had no news for ``status_check_after_minutes`` (``updated_at``), sent
within the last :data:`WINDOW`, at most :data:`LIMIT` a pass, oldest news
first; it fetches each message (bot.providers.twilio.lookup: the twilio client's
``messages(sid).fetch()``) and records the status exactly as the callback would
have (:func:`bot.dispatch.delivery.apply_status`: forward only, 21610 records the
opt-out).  A checked attempt's ``updated_at`` moves to now, so a message the
carrier never reports on is asked about again only after the same wait.

Calls likewise: a placed call whose session has no final status (``completed``,
``busy``, ``no-answer``, ``failed``, ``canceled``) and no news for the same wait is
fetched (``calls(sid).fetch()``) and, once the provider says it ended, its end is
recorded exactly as the call's final status callback would have
(:meth:`bot.voice.service.CallService.apply_status`: the outcome, a hang-up in the
middle of the script, ``call.completed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.channels.events import CallProgress
from bot.db.models import ContactAttempt
from bot.db.retry import lock_ids
from bot.dispatch.delivery import apply_status
from bot.domain import AttemptStatus, Channel
from bot.providers.twilio.statuses import CALL_FINAL, MESSAGE_FINAL, STATUS_RANK

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)  # older sends are no longer asked about
LIMIT = 200  # lookups per pass: each is one API request
#: Provider statuses after which nothing more is expected.
FINAL = MESSAGE_FINAL

_A = ContactAttempt


class StatusLookup(Protocol):
    async def message_status(self, sid: str) -> tuple[str, str | None] | None:
        """(status, error code) of message ``sid`` at the provider; None when it cannot be asked."""

    async def call_status(self, attempt_id: int, sid: str) -> CallProgress | None:
        """Attempt ``attempt_id``'s call as its status callback would tell it (status, duration,
        who answered); None when it cannot be asked."""


@dataclass(frozen=True, slots=True)
class Checked:
    attempt_id: int
    provider_id: str
    status: str | None
    error_code: str | None


def due_for_check(session: Session, *, now: datetime, after: timedelta, limit: int = LIMIT) -> list[tuple[int, str]]:
    """(attempt id, provider id) of sent SMS without a final status and without news for ``after``."""
    rows = session.execute(
        select(_A.id, _A.provider_id)
        .where(_A.status == AttemptStatus.SENT.value, _A.channel == Channel.SMS.value,
               _A.provider_id.is_not(None),
               or_(_A.provider_status.is_(None), _A.provider_status.not_in(FINAL)),
               _A.updated_at <= now - after, _A.sent_at >= now - WINDOW)
        .order_by(_A.updated_at, _A.id)
        .limit(limit)
    ).all()
    return [(int(i), str(sid)) for i, sid in rows]


def calls_due_for_check(session: Session, *, now: datetime, after: timedelta,
                        limit: int = LIMIT) -> list[tuple[int, str]]:
    """(attempt id, call SID) of placed calls whose session has no final status and no news for ``after``."""
    from bot.db.models import CallSession

    rows = session.execute(
        select(_A.id, _A.provider_id)
        .join(CallSession, CallSession.attempt_id == _A.id)
        .where(_A.status == AttemptStatus.SENT.value, _A.channel == Channel.VOICE.value,
               _A.provider_id.is_not(None), CallSession.status.not_in(CALL_FINAL),
               _A.updated_at <= now - after, _A.sent_at >= now - WINDOW)
        .order_by(_A.updated_at, _A.id)
        .limit(limit)
    ).all()
    return [(int(i), str(sid)) for i, sid in rows]


async def fetch_call_statuses(lookup: StatusLookup, due: Sequence[tuple[int, str]], *,
                              concurrency: int = 8) -> list[tuple[int, CallProgress | None]]:
    """Ask the provider about each call of ``due``, a few at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(attempt_id: int, sid: str) -> tuple[int, CallProgress | None]:
        async with gate:
            return attempt_id, await lookup.call_status(attempt_id, sid)

    return list(await asyncio.gather(*(one(i, sid) for i, sid in due)))


def touch(session: Session, attempt_ids: Sequence[int], now: datetime) -> None:
    """Lock these attempts (the lock order) and mark them checked now."""
    lock_ids(session, ContactAttempt, sorted(attempt_ids))
    _mark_checked(session, attempt_ids, now)


def _mark_checked(session: Session, attempt_ids: Sequence[int], now: datetime) -> None:
    """Checked now: the next check waits ``status_check_after_minutes`` again (rows already locked)."""
    ids = sorted(attempt_ids)
    if ids:
        session.execute(update(ContactAttempt).where(ContactAttempt.id.in_(ids), ContactAttempt.updated_at < now)
                        .values(updated_at=now).execution_options(synchronize_session=False))


async def fetch_statuses(lookup: StatusLookup, due: Sequence[tuple[int, str]], *,
                         concurrency: int = 8) -> list[Checked]:
    """Ask the provider about each of ``due``, a few at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(attempt_id: int, sid: str) -> Checked:
        async with gate:
            found = await lookup.message_status(sid)
        status, code = found if found is not None else (None, None)
        return Checked(attempt_id, sid, status, code)

    return list(await asyncio.gather(*(one(i, sid) for i, sid in due)))


def record_statuses(session: Session, checked: Sequence[Checked], now: datetime) -> int:
    """Apply what the provider said as status callbacks; how many moved an attempt's status.

    Rows are locked in id order first (the lock order, docs/dispatch.md)."""
    lock_ids(session, ContactAttempt, [c.attempt_id for c in checked])
    moved = 0
    for c in sorted(checked, key=lambda c: c.attempt_id):
        if c.status in STATUS_RANK:
            moved += apply_status(session, message_sid=c.provider_id, status=c.status, error_code=c.error_code,
                                  attempt_id=c.attempt_id, at=now).applied
    _mark_checked(session, [c.attempt_id for c in checked if c.status is not None], now)
    return moved
