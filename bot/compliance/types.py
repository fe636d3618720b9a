"""The compliance engine's inputs and output (a contract shared with the planner).

Everything here is plain data: the engine (:func:`bot.compliance.check`) is a
pure function of these values, so it can be tested with case tables and run
for a million installments without touching the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.domain import Channel


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rules need to know about the borrower being contacted."""

    borrower_id: str
    country: str  # ISO 3166 alpha-2, e.g. "US", "CN"
    region: str | None = None  # state / province code, e.g. "NY", "MA"
    timezone: str | None = None  # explicit IANA zone from the borrower file
    phone_e164: str | None = None
    email: str | None = None
    locale: str = "en-US"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One past contact attempt (imported history or one the bot made)."""

    channel: Channel
    occurred_at: datetime  # UTC, aware
    outcome: str  # bot.domain.ContactOutcome value
    loan_id: str | None = None


@dataclass(frozen=True, slots=True)
class StopState:
    """Facts that stop contact regardless of the clock.

    ``consent`` and ``opted_out`` are per channel for the borrower's *current*
    address on that channel (an opt-out of an old number does not count).
    """

    consent: frozenset[Channel] = frozenset()
    opted_out: frozenset[Channel] = frozenset()
    paid: bool = False  # the installment this contact is about is fully paid
    promise_until: date | None = None  # pending promise date (pause until the day after)
    dispute_open: bool = False
    cease_communication: bool = False
    wrong_number: bool = False  # the phone number is flagged as not the borrower's
    inconvenient_times: Sequence[tuple[int, int]] = ()  # extra blocked local minutes-of-day ranges
    # Added (optional): channels whose current address is flagged unusable
    # (``invalid``; ``landline`` for SMS).  A missing address on the Subject counts too.
    no_address: frozenset[Channel] = frozenset()
    # Kinds of the borrower's active holds (bot.db.models.Hold): any stops every contact.
    holds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The verdict of one named rule."""

    rule: str  # e.g. "us.hours", "us-ma.telephone_frequency"
    allowed: bool
    reason: str | None = None  # a reason code when blocked
    next_allowed_at: datetime | None = None  # when this rule would allow it again (None: never / not by time)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...]
    next_allowed_at: datetime | None  # earliest instant all rules allow again, None if none or not time-bound
    rule_set: str  # e.g. "us+us-ma" or "cn"
    zones: tuple[str, ...]
    results: tuple[RuleResult, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "next_allowed_at": self.next_allowed_at.isoformat() if self.next_allowed_at else None,
            "rule_set": self.rule_set,
            "zones": list(self.zones),
        }
