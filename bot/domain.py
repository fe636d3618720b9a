"""Plain enums and value types shared by every layer.

This module imports nothing from the rest of the bot: everything else may
import it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import ClassVar


class StrEnum(str, enum.Enum):
    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


class ContactOutcome(StrEnum):
    """What became of one contact attempt (the ``contacts`` import columns too)."""

    ATTEMPTED = "attempted"
    DELIVERED = "delivered"
    CONNECTED = "connected"
    CONVERSATION = "conversation"
    VOICEMAIL = "voicemail"
    FAILED = "failed"


class AttemptStatus(StrEnum):
    """Life cycle of a contact attempt the bot itself plans and sends.

    Imported history rows are recorded as ``done``.
    """

    PLANNED = "planned"  # allowed now; waiting for the dispatcher
    DEFERRED = "deferred"  # allowed later: next_attempt_at is when the rules allow it
    BLOCKED = "blocked"  # a stop condition (opt-out, dispute, ...): decision says why
    SENDING = "sending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # a crash left it "sending" and the provider cannot tell: a person reviews it


class AttemptSource(StrEnum):
    IMPORT = "import"
    PLANNER = "planner"
    MANUAL = "manual"
    REPLY = "reply"  # an automatic answer to a borrower's message


class PromiseStatus(StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


# Phone-based channels share the phone number as their address.
PHONE_CHANNELS = frozenset({Channel.SMS, Channel.VOICE})


class TaskKind(StrEnum):
    DISPUTE = "dispute"
    HARDSHIP = "hardship"
    CALLBACK = "callback"
    WRONG_NUMBER = "wrong_number"
    REVIEW = "review"
    HANDOFF = "handoff"


class TaskStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Intent(StrEnum):
    """What a borrower's reply means (bot.nlu classifies; docs/nlu.md)."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    PAID = "paid"
    PROMISE_TO_PAY = "promise_to_pay"
    DISPUTE = "dispute"
    WRONG_NUMBER = "wrong_number"
    HARDSHIP = "hardship"
    CALLBACK_REQUEST = "callback_request"
    IDENTITY_QUESTION = "identity_question"  # "who is this?", "what is this about?"
    BALANCE_INQUIRY = "balance_inquiry"  # "how much do I owe?"
    AFFIRM = "affirm"  # yes to a yes/no question (voice or yes_no context only)
    DENY = "deny"  # no to a yes/no question (voice or yes_no context only)
    SURVEY_RESPONSE = "survey_response"  # a 1-5 rating while a survey is pending (bot.replies.surveys; never from classify)
    OTHER = "other"


@dataclasses.dataclass(frozen=True, slots=True)
class PlanKey:
    """The dedupe key of a planned attempt: one per installment, ladder (arm), step day and channel.

    Written as ``plan:<installment>:<arm>:<day>:<channel>`` (:meth:`to_str`) and read back
    with :meth:`parse`, here only.  Installment ids may hold ``:``; the other parts may not.
    """

    installment_id: str
    arm: str
    day: int
    channel: str

    PREFIX: ClassVar[str] = "plan:"

    def to_str(self) -> str:
        return f"{self.PREFIX}{self.installment_id}:{self.arm}:{self.day}:{self.channel}"

    @classmethod
    def parse(cls, key: str) -> PlanKey | None:
        """The plan key ``key`` spells, or None when it is not one (a reply's, a manual call's)."""
        if not key.startswith(cls.PREFIX):
            return None
        parts = key[len(cls.PREFIX):].rsplit(":", 3)
        if len(parts) != 4:
            return None
        try:
            day = int(parts[2])
        except ValueError:
            return None
        return cls(parts[0], parts[1], day, parts[3])
