"""Reconciling attempts a crash left ``sending``: look them up, never simply resend.

The dispatcher commits ``status = 'sending'`` before it calls the adapter and
records the provider's answer right after.  A worker that dies in between leaves
the attempt ``sending`` with a lease that runs out.  The provider may or may not
have accepted the message, so sending it again could send it twice.  Instead:

* **SMS** (Twilio has no idempotency key for Messages): the message is looked up
  at the provider (a :class:`ProviderLookup`; for Twilio
  :class:`bot.providers.twilio.lookup.TwilioLookup`, one matching rule for SMS and
  calls).  Before sending, the dispatcher stored the SHA-256 of the body and the
  sender number with the attempt (bot.dispatch.attempts.DispatchMeta); the lookup lists the messages to the
  attempt's number from that sender, keeps those created since the attempt was
  marked (minus a clock skew) whose sid no other attempt recorded, and matches the
  body hash.  Twilio's Message resource does not expose the ``StatusCallback`` URL, so
  the ``?attempt=`` id in it cannot be matched; the body hash is the method.
  Found (or already named by a status callback that overtook the crashed worker:
  the callback URL carries the attempt id): recorded as sent (``reconciled``).  Not found: the provider never took it
  (the lease is minutes, an HTTP request seconds), so it is planned again and goes
  through the send-time check once more (``requeued``).  A body the provider
  redacted matches only when it is the one candidate.  When the provider cannot
  be asked, the attempt waits for the next pass; stuck longer than ``max_age`` it
  becomes ``unknown``.
* **email**: SMTP has no way to ask whether a message was accepted, so the
  attempt becomes ``unknown`` for a person to review (the console lists them).
  Its ``Message-ID`` is derived from the attempt, so if a person does resend it,
  receivers that de-duplicate see the same message.
* anything else (no lookup configured, no stored hash): ``unknown``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import ContactAttempt
from bot.dispatch.attempts import DispatchMeta
from bot.domain import AttemptStatus, Channel

log = logging.getLogger(__name__)


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Stuck:
    """What reconciliation knows about one attempt left ``sending``."""

    attempt_id: int
    channel: str
    to: str
    sender: str | None
    body_sha256: str | None
    since: datetime  # when it was marked sending
    known_sids: frozenset[str] = frozenset()  # provider ids other attempts already recorded
    provider_id: str | None = None  # set by a status callback that overtook the crashed worker


@dataclass(frozen=True, slots=True)
class Found:
    provider_id: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NotFound:
    pass


@dataclass(frozen=True, slots=True)
class CannotTell:
    reason: str


LookupResult = Found | NotFound | CannotTell


class ProviderLookup(Protocol):
    """Finds at the provider the message a stuck attempt may have sent."""

    channels: frozenset[str]  # the channels it can look up

    async def find(self, stuck: Stuck) -> LookupResult: ...


def stuck_from(attempt: ContactAttempt, known_sids: frozenset[str]) -> Stuck:
    meta = DispatchMeta.of(attempt)
    return Stuck(
        attempt_id=attempt.id,
        channel=attempt.channel,
        to=attempt.address or "",
        sender=meta.sender,
        body_sha256=meta.body_sha256,
        since=attempt.occurred_at or attempt.updated_at,
        known_sids=known_sids - {attempt.provider_id} if attempt.provider_id else known_sids,
        provider_id=attempt.provider_id,
    )


def known_provider_ids(session: Session, attempts: Sequence[ContactAttempt]) -> dict[str, frozenset[str]]:
    """Provider ids already recorded for each SMS or voice address of ``attempts``."""
    phone = (Channel.SMS.value, Channel.VOICE.value)
    addresses = sorted({a.address for a in attempts if a.address and a.channel in phone})
    found: dict[str, set[str]] = {a: set() for a in addresses}
    for start in range(0, len(addresses), 500):
        for address, provider_id in session.execute(
            select(ContactAttempt.address, ContactAttempt.provider_id).where(
                ContactAttempt.channel.in_(phone),
                ContactAttempt.address.in_(addresses[start:start + 500]),
                ContactAttempt.provider_id.is_not(None))
        ):
            found[address].add(provider_id)
    return {a: frozenset(s) for a, s in found.items()}


@dataclass
class Resolution:
    """What reconciliation decided for one stuck attempt."""

    attempt_id: int
    channel: str
    status: str  # sent | planned | unknown | sending (ask again later)
    outcome: str  # the report's: reconciled | requeued | unknown | (none when asked again later)
    provider_id: str | None = None
    sent_at: datetime | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def resolve(stuck: Stuck, lookup: ProviderLookup | None, *, now: datetime, give_up_after: timedelta) -> Resolution:
    """Decide what a stuck attempt is (see the module docstring)."""
    if stuck.provider_id:  # a status callback named its message: the provider has it
        return Resolution(stuck.attempt_id, stuck.channel, AttemptStatus.SENT.value, "reconciled",
                          provider_id=stuck.provider_id,
                          error="reconcile: the provider reported it (status callback) after a crash")
    if lookup is None or stuck.channel not in lookup.channels:
        return Resolution(stuck.attempt_id, stuck.channel, AttemptStatus.UNKNOWN.value, "unknown",
                          error=f"reconcile: the {stuck.channel} provider cannot be asked; review")
    result = await lookup.find(stuck)
    if isinstance(result, Found):
        return Resolution(stuck.attempt_id, stuck.channel, AttemptStatus.SENT.value, "reconciled",
                          provider_id=result.provider_id, sent_at=result.created_at,
                          error="reconcile: found at the provider after a crash")
    if isinstance(result, NotFound):
        return Resolution(stuck.attempt_id, stuck.channel, AttemptStatus.PLANNED.value, "requeued",
                          error="reconcile: not at the provider after a crash; planned again")
    if now - stuck.since > give_up_after or result.reason in ("no_lookup_data", "redacted_bodies"):
        return Resolution(stuck.attempt_id, stuck.channel, AttemptStatus.UNKNOWN.value, "unknown",
                          error=f"reconcile: {result.reason}; review")
    return Resolution(stuck.attempt_id, stuck.channel, AttemptStatus.SENDING.value, "",
                      error=f"reconcile: {result.reason}; will ask again")
