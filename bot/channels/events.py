"""What a provider tells the bot, in the bot's own words: the channel contract's incoming side.

A provider package (bot.providers.twilio) verifies each webhook and turns it into one of
these frozen events; the core (bot.replies, bot.voice, the delivery statuses) reads only
them and never a provider's field names.  Going out, a call's next step is a
:class:`CallPlan` that the provider renders in its own language (TwiML for Twilio).

Status words are the lower-case progress words every telephony provider uses
(``queued``, ``sent``, ``delivered``, ``failed``, ``ringing``, ``in-progress``,
``completed``, ``busy``, ``no-answer``, ...); the provider ranks them.

This module is pure (standard library only): every layer may read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = [
    "Answerer",
    "AudioRef",
    "CallAnswered",
    "CallHeard",
    "CallPlan",
    "CallProgress",
    "DeliveryUpdate",
    "InboundText",
    "ListenPlan",
    "RecordingReady",
]

#: Who picked up a call: a person, an answering machine, a fax, or nobody could tell.
Answerer = Literal["person", "machine", "fax", "unknown"]


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundText:
    """A text message to one of the bot's addresses."""

    message_id: str  # the provider's id of the message (idempotency key)
    sender: str  # the address it came from
    recipient: str  # the bot's address it was sent to
    body: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """A message's delivery status moved at the provider."""

    message_id: str
    status: str  # queued, sending, sent, delivered, undelivered, failed, canceled, read, ...
    error_code: str | None = None  # the provider's error code, when it gave one
    error_effect: str | None = None  # what the error means for the address: opt_out, invalid, landline
    attempt_id: int | None = None  # the attempt the callback URL names, when it names one


# --- calls ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """A placed call was picked up (or the provider gave up detecting who did)."""

    attempt_id: int
    call_id: str
    answered_by: Answerer = "unknown"
    answered_by_detail: str | None = None  # the provider's own word for it, kept on the call's record
    status: str | None = None
    detection_s: float = 0.0  # how long telling a machine from a person took after the pick-up


@dataclass(frozen=True, slots=True)
class AudioRef:
    """Where a recording the provider made can be fetched (through the provider's client)."""

    recording_id: str
    location: str
    duration_s: float | None = None


@dataclass(frozen=True, slots=True)
class CallHeard:
    """The answer to one listen of a call: keys, a spoken recording, or silence (neither)."""

    attempt_id: int
    call_id: str
    turn: int
    digits: str | None = None
    audio: AudioRef | None = None

    @property
    def silence(self) -> bool:
        return self.digits is None and self.audio is None


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A call's status moved (initiated, ringing, answered, one of the final statuses)."""

    attempt_id: int
    call_id: str
    status: str
    duration_s: float | None = None
    answered_by_detail: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingReady:
    """The whole call's recording can be fetched."""

    attempt_id: int
    call_id: str
    audio: AudioRef
    status: str = "completed"
    started_at: datetime | None = None  # when the recording started, as the provider tells it


# --- a call's next step, for the provider to render ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenPlan:
    """How to listen after the prompts and where to post what was heard."""

    mode: str  # speech | dtmf | both
    timeout_s: int
    max_length_s: int
    num_digits: int | None
    action: str  # the input URL of this turn
    silence: str  # the same URL with silence=1 (a recording falls through on silence)


@dataclass(frozen=True, slots=True)
class CallPlan:
    """One step of a call: the prompts to play (URLs, in order), then listen or hang up."""

    prompts: Sequence[str]
    listen: ListenPlan | None
    hangup: bool
