"""Asking Twilio what a crash left unknown: the dispatcher's lookup protocols
(:class:`bot.dispatch.reconcile.ProviderLookup`, :class:`bot.dispatch.statuses.StatusLookup`).

One matching rule for SMS and calls (docs/dispatch.md, "Crashes").  Twilio has no
idempotency key, and neither its Message nor its Call resource shows the callback
URL (which names the attempt), so the lookup lists what was sent to the attempt's
number from the sender it used (``To``/``From`` filters, newest first, at most
:data:`MAX_LISTED`) and keeps the candidates: created by the REST API (direction
``outbound-api``), since the attempt was marked (minus :data:`CLOCK_SKEW`), whose
sid no other attempt recorded.  A call is the oldest candidate.  A message must
also match the SHA-256 of the body stored before sending (the oldest such); a body
Twilio redacted matches only when it is the one candidate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.channels.events import CallProgress
from bot.dispatch.reconcile import CannotTell, Found, LookupResult, NotFound, Stuck, body_hash
from bot.domain import Channel
from bot.providers.twilio.client import lookup_client
from bot.providers.twilio.webhooks import progress

__all__ = ["CLOCK_SKEW", "MAX_LISTED", "TwilioLookup", "call_status", "find_call", "match", "message_status"]

log = logging.getLogger("bot.dispatch.statuses")

MAX_LISTED = 200
CLOCK_SKEW = timedelta(minutes=5)


class TwilioLookup:
    """:class:`~bot.dispatch.reconcile.ProviderLookup` for SMS and calls with the official
    twilio client (sandbox or Twilio), and the dispatcher's status checks."""

    channels = frozenset({Channel.SMS.value, Channel.VOICE.value})

    def __init__(self, settings: Any = None, *, client: Any = None, timeout: float = 15.0) -> None:
        self.client = lookup_client(settings, timeout=timeout) if client is None else client

    async def find(self, stuck: Stuck) -> LookupResult:
        if stuck.channel == Channel.VOICE.value:  # calls: by number, caller id and time
            return await self._find_call(stuck)
        if stuck.channel != Channel.SMS.value or not stuck.sender or not stuck.body_sha256:
            return CannotTell("no_lookup_data")
        try:
            messages = await asyncio.to_thread(self._list, stuck)
        except Exception as exc:  # the provider could not be asked: try again later
            return CannotTell(f"lookup_error {getattr(exc, 'code', None) or type(exc).__name__}")
        return match(messages, stuck)

    async def _find_call(self, stuck: Stuck) -> LookupResult:
        if not stuck.sender:
            return CannotTell("no_lookup_data")
        try:
            call = await find_call(self.client, to=stuck.to, sender=stuck.sender, since=stuck.since,
                                   known=stuck.known_sids)
        except Exception as exc:  # the provider could not be asked: try again later
            return CannotTell(f"lookup_error {getattr(exc, 'code', None) or type(exc).__name__}")
        return NotFound() if call is None else Found(call.sid, call.date_created)

    async def message_status(self, sid: str) -> tuple[str, str | None] | None:
        """(status, error code) of message ``sid``; None when it cannot be asked."""
        return await message_status(self.client, sid)

    async def call_status(self, attempt_id: int, sid: str) -> CallProgress | None:
        """Attempt ``attempt_id``'s call as its status callback would tell it; None when it cannot be asked."""
        return await call_status(self.client, attempt_id, sid)

    def _list(self, stuck: Stuck) -> list[Any]:
        return list(self.client.messages.list(to=stuck.to, from_=stuck.sender, limit=MAX_LISTED,
                                              page_size=MAX_LISTED))


def _candidates(items: Sequence[Any], since: datetime, known: frozenset[str]) -> list[Any]:
    """The messages or calls an attempt marked at ``since`` may have created (the one rule)."""
    floor = since - CLOCK_SKEW
    return [
        i for i in items
        if (getattr(i, "direction", None) or "outbound-api") == "outbound-api"
        and i.sid not in known
        and (i.date_created is None or i.date_created >= floor)
    ]


def _oldest(items: Sequence[Any]) -> Any:
    return min(items, key=lambda i: (i.date_created is None, i.date_created, i.sid))


def match(messages: Sequence[Any], stuck: Stuck) -> LookupResult:
    """The message among ``messages`` (twilio MessageInstance-like) that ``stuck`` sent, if any."""
    candidates = _candidates(messages, stuck.since, stuck.known_sids)
    same = [m for m in candidates if m.body and body_hash(m.body) == stuck.body_sha256]
    if same:
        oldest = _oldest(same)
        return Found(oldest.sid, oldest.date_created)
    redacted = [m for m in candidates if not m.body]
    if len(redacted) == 1:
        return Found(redacted[0].sid, redacted[0].date_created)
    if redacted:
        return CannotTell("redacted_bodies")
    return NotFound()


async def find_call(client: Any, *, to: str, sender: str, since: datetime, known: frozenset[str]) -> Any | None:
    """The call an attempt left ``sending`` placed, from the Calls list (oldest match), or None.

    StartTime is not used as a server-side filter: a call still ``queued`` has none.
    """

    def listing() -> list[Any]:
        return list(client.calls.list(to=to, from_=sender, limit=MAX_LISTED, page_size=MAX_LISTED))

    candidates = _candidates(await asyncio.to_thread(listing), since, known)
    return _oldest(candidates) if candidates else None


async def call_status(client: Any, attempt_id: int, sid: str) -> CallProgress | None:
    """A call's progress from the twilio client, as its status callback would tell it (the neutral
    :class:`~bot.channels.events.CallProgress`); None when it cannot be asked."""
    try:
        call = await asyncio.to_thread(lambda: client.calls(sid).fetch())
    except Exception as exc:  # the provider could not be asked: the next pass asks again
        log.info("status of call %s not fetched: %s", sid, getattr(exc, "code", None) or type(exc).__name__)
        return None
    return progress(attempt_id, sid, str(call.status or ""), str(call.duration or ""),
                    str(getattr(call, "answered_by", None) or ""))


async def message_status(client: Any, sid: str) -> tuple[str, str | None] | None:
    """(status, error code) of a message from the twilio client, or None when it cannot be asked."""
    try:
        message = await asyncio.to_thread(lambda: client.messages(sid).fetch())
    except Exception as exc:  # the provider could not be asked: the next pass asks again
        log.info("status of message %s not fetched: %s", sid, getattr(exc, "code", None) or type(exc).__name__)
        return None
    code = getattr(message, "error_code", None)
    return str(message.status or ""), (str(code) if code else None)
