"""Reason codes: why a contact is not allowed.

They are part of the bot's external interface (``bot check --json``, the
``contact_attempts.decision`` column, the console), so they are fixed strings
and never renamed.  :class:`Reason` is a ``str`` enum, so a code compares equal
to its plain string.
"""

from __future__ import annotations

from bot.domain import StrEnum


class Reason(StrEnum):
    # Stop conditions: not lifted by the passage of time (next_allowed_at is None).
    PAID = "paid"
    HOLD = "hold"  # a hold placed through the API (dispute, bankruptcy, deceased, ...)
    CEASE_COMMUNICATION = "cease_communication"
    DISPUTE_OPEN = "dispute_open"
    WRONG_NUMBER = "wrong_number"
    OPTED_OUT = "opted_out"
    NO_CONSENT = "no_consent"
    NO_ADDRESS = "no_address"
    # Pauses and windows: lifted at a computable instant.
    PROMISE_PENDING = "promise_pending"
    INCONVENIENT_TIME = "inconvenient_time"
    HOLIDAY = "holiday"
    SUNDAY = "sunday"  # any configured rest day; named for the default
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    POST_CONVERSATION_WAIT = "post_conversation_wait"


ALL_REASONS: tuple[str, ...] = tuple(r.value for r in Reason)
