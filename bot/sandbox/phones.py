"""Simulated phones: what happens on the far side of a number.

A :class:`Persona` says how a destination behaves: what kind of line it is,
whether an SMS to it is delivered or fails (and with which error), what it
texts back and after how long, whether it has opted out, and how it
answers a call.  :class:`PhoneBook` maps numbers to personas, exactly
(``+15551230001``) or by a glob pattern (``+1555123*``, ``+1555?????99``);
an exact number wins over patterns, and patterns are tried in the order
they were added.  Unknown numbers get the default persona: a mobile that
receives everything and never replies.

Personas are pydantic models so the same shape is accepted from Python,
from the control API (JSON) and from a personas file (YAML).
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.sandbox.errors import DELIVERY_ERRORS

LineType = Literal["mobile", "landline", "voip", "invalid"]
Delivery = Literal["delivered", "undelivered", "failed"]
Answer = Literal["human", "machine", "busy", "no-answer", "failed"]

#: the error code a delivery failure gets when the persona names none
DEFAULT_ERROR = {"undelivered": 30003, "failed": 30008}
PATTERN_CHARS = set("*?[")


class ScriptedReply(BaseModel):
    """One text the phone sends back, *after* seconds after it received a message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    after: float | None = Field(default=None, ge=0)


class CallTurn(BaseModel):
    """What the person does at one ``<Gather>`` or ``<Record>`` of the bot, in order.

    Exactly one of: ``digits`` (keys pressed, e.g. ``"1"`` or ``"0312#"``),
    ``audio`` (a WAV clip spoken into a ``<Record>``: it becomes the
    recording), ``speech`` (the text a ``<Gather input="speech">`` hears, posted
    as ``SpeechResult``), ``silence: true`` (says nothing) or ``hangup: true``
    (hangs up).  ``finish`` says how an ``audio`` turn ends the recording:
    ``silence`` (the ``<Record timeout>`` runs out), ``key`` (presses a key of
    ``finishOnKey``) or ``hangup`` (hangs up: the action still gets the
    recording, with ``Digits=hangup``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    digits: str | None = Field(default=None, pattern=r"^[0-9*#]+$")
    audio: Path | None = None
    speech: str | None = Field(default=None, min_length=1)
    silence: bool = False
    hangup: bool = False
    finish: Literal["silence", "key", "hangup"] = "silence"

    @field_validator("digits", mode="before")
    @classmethod
    def _digits_as_text(cls, value: object) -> object:
        # YAML reads `digits: 1` as an integer; keys are text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> CallTurn:
        given = [
            name
            for name, present in (
                ("digits", self.digits is not None),
                ("audio", self.audio is not None),
                ("speech", self.speech is not None),
                ("silence", self.silence),
                ("hangup", self.hangup),
            )
            if present
        ]
        if len(given) != 1:
            raise ValueError("a turn is exactly one of digits, audio, speech, silence: true, hangup: true")
        if self.finish != "silence" and self.audio is None:
            raise ValueError("finish only applies to an audio turn")
        return self

    @property
    def kind(self) -> str:
        if self.digits is not None:
            return "digits"
        if self.audio is not None:
            return "audio"
        if self.speech is not None:
            return "speech"
        return "hangup" if self.hangup else "silence"


class CallBehaviour(BaseModel):
    """How the phone answers a call and what the person (or machine) does on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: Answer = "human"
    ring_seconds: float = Field(default=4.0, ge=0)
    #: the callee hangs up this long after answering wherever the call is; None: stays
    #: on the line until the bot hangs up, the TwiML runs out or a ``hangup`` turn
    talk_seconds: float | None = Field(default=None, ge=0)
    #: AnsweredBy reported with machine detection; default from ``answer`` and the AMD mode
    answered_by: str | None = None
    #: seconds after answering until machine detection decides (humans, ``Enable``)
    amd_seconds: float = Field(default=3.0, ge=0)
    #: machines: length of the voicemail greeting; the beep follows it
    greeting_seconds: float = Field(default=5.0, ge=0)
    #: a person's answers to the bot's ``<Gather>`` / ``<Record>``, in order; then silence
    turns: list[CallTurn] = Field(default_factory=list)

    @field_validator("turns", mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        # `- hangup` / `- silence` as plain strings are accepted for the flag turns.
        if isinstance(value, list):
            return [{item: True} if item in ("hangup", "silence") else item for item in value]
        return value

    def audio_files(self) -> list[tuple[str, Path]]:
        """``(field path, file)`` of every audio turn, for existence checks."""
        return [(f"call.turns.{i}.audio", t.audio) for i, t in enumerate(self.turns) if t.audio is not None]


class Persona(BaseModel):
    """The behaviour of one simulated phone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str | None = None
    #: ``invalid`` numbers are refused at create time (21211); ``landline`` see ``landline_sms``
    line_type: LineType = "mobile"
    #: SMS to a landline: ``reject`` at create time with 21614 (what Twilio does when its
    #: number lookup knows the line type) or ``undelivered`` later with 30006
    landline_sms: Literal["reject", "undelivered"] = "reject"
    delivery: Delivery = "delivered"
    error_code: int | None = None
    #: texts sent back, one per message received, in order (a plain string uses ``reply_after``)
    replies: list[ScriptedReply] = Field(default_factory=list)
    #: a text sent back to every message received, after the scripted ``replies`` are used up
    reply: str | None = None
    reply_after: float = Field(default=5.0, ge=0)
    #: starts opted out (as if it had replied STOP to every sandbox number)
    opted_out: bool = False
    call: CallBehaviour = Field(default_factory=CallBehaviour)

    @field_validator("replies", mode="before")
    @classmethod
    def _plain_strings(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"text": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _error_code_fits(self) -> Persona:
        if self.error_code is not None:
            if self.delivery == "delivered" and not (self.line_type == "landline" and self.landline_sms == "undelivered"):
                raise ValueError("error_code only applies when delivery is undelivered or failed")
            if self.error_code not in DELIVERY_ERRORS:
                known = ", ".join(str(code) for code in DELIVERY_ERRORS)
                raise ValueError(f"error_code must be a delivery error code ({known})")
        return self

    def sms_outcome(self) -> tuple[Delivery, int | None]:
        """Final status and error code of an SMS that reaches this phone's carrier."""
        if self.line_type == "landline" and self.landline_sms == "undelivered":
            return "undelivered", self.error_code or 30006
        if self.delivery == "delivered":
            return "delivered", None
        return self.delivery, self.error_code or DEFAULT_ERROR[self.delivery]

    def reply_for(self, index: int) -> ScriptedReply | None:
        """The reply to the *index*-th message (0-based) this phone received, if any."""
        if index < len(self.replies):
            scripted = self.replies[index]
            return scripted if scripted.after is not None else scripted.model_copy(update={"after": self.reply_after})
        if self.reply is not None:
            return ScriptedReply(text=self.reply, after=self.reply_after)
        return None


DEFAULT_PERSONA = Persona()


def is_pattern(match: str) -> bool:
    return any(ch in PATTERN_CHARS for ch in match)


@dataclass
class PhoneBook:
    """Personas by exact number or glob pattern, and how many messages each phone received.

    The persona is looked up each time it is needed, so adding or replacing
    a persona takes effect at once, also for phones that already received
    messages; the count of messages received (which scripted reply comes
    next) is kept per concrete number.
    """

    exact: dict[str, Persona] = field(default_factory=dict)
    patterns: list[tuple[str, Persona]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def add(self, match: str, persona: Persona) -> None:
        with self._lock:
            if is_pattern(match):
                self.patterns = [(p, v) for p, v in self.patterns if p != match]
                self.patterns.append((match, persona))
            else:
                self.exact[match] = persona

    def persona(self, number: str) -> Persona:
        with self._lock:
            if number in self.exact:
                return self.exact[number]
            for pattern, persona in self.patterns:
                if fnmatch.fnmatchcase(number, pattern):
                    return persona
            return DEFAULT_PERSONA

    def next_reply(self, number: str) -> ScriptedReply | None:
        """Count one more message received by *number* and return the reply it triggers."""
        with self._lock:
            index = self.received.get(number, 0)
            self.received[number] = index + 1
            return self.persona(number).reply_for(index)

    def entries(self) -> list[tuple[str, Persona]]:
        with self._lock:
            return list(self.exact.items()) + list(self.patterns)

    def clear(self) -> None:
        with self._lock:
            self.exact.clear()
            self.patterns.clear()
            self.received.clear()
