"""The dialog engine: pure functions from (script, state, event) to (state, actions).

No I/O, no clock, no randomness: the same inputs give the same outputs, so a call can
be replayed from its events, and the state can be stored between webhooks as JSON
(:meth:`CallState.to_json` / :meth:`CallState.from_json`).

::

    state, actions = start(script, context, answered_by="human")
    # ... play the Say actions, listen as the Listen action says, then:
    state, actions = step(script, state, Heard(Intent.AFFIRM, confidence=0.95))

Rules the engine applies (docs/voice-scripts.md explains them):

* a node with ``when: <flag>`` is entered only while the context's flag holds; otherwise
  its ``otherwise`` node is entered in its place (the skipped node says and does nothing);
* entering a node emits its side effects (OptOut, FlagNumber, OpenTask, Flag,
  SendSms: each at most once per call), then its prompt (Say), then, by kind, the next
  node's, a Listen, or Outcome + Hangup;
* an answer is understood when a keypad entry is mapped (node keys over the script's
  global keys; in a date question a day of the month), or when speech gives an intent
  with at least ``min_confidence`` (a ``promise_to_pay`` needs a date); the node's own
  transition wins, then the global fallback for the phase (before / after the right
  party is confirmed); ``opt_out`` is always the global one;
* a spoken answer below the context's ``readback_below`` that would enter a node of the
  script's ``readback`` map (opt-out, wrong number, paid claim, dispute) enters that
  node's yes/no read-back instead, acting on nothing; there ``affirm`` enters the action
  node, ``deny`` returns to the question (``state.resume``), failures hand over;
* anything else is a failed answer: a re-ask, after ``keypad_after`` failures the keypad
  menu (and the keypad for the rest of the call), after ``retries`` the ``on_fail`` node;
* a hang-up before an ending is ``Outcome("partial")``; an answering machine reported
  before the right party was confirmed switches to the voicemail path;
* satisfaction survey: when the call ends with an outcome of the context's
  ``survey_after`` and the script names a ``survey`` node, the outcome is recorded and,
  instead of hanging up, the survey node asks its keypad question; a key mapped to
  ``survey_response`` emits ``Rating(score)`` (the digit).  The call's outcome stays the
  one recorded first (the survey's own ending records none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Literal

from bot.domain import Intent, TaskKind
from bot.rendering import format_day
from bot.scripts.model import CONFIRMATIONS, Node, Prompt, Script

__all__ = [
    "Action",
    "Answered",
    "CallContext",
    "CallState",
    "Event",
    "Facts",
    "Flag",
    "FlagNumber",
    "Hangup",
    "Heard",
    "HungUp",
    "Listen",
    "NoInput",
    "OpenTask",
    "OptOut",
    "Outcome",
    "Rating",
    "Say",
    "SendSms",
    "start",
    "step",
]

STATE_VERSION = 1
_MAX_CHAIN = 100  # nodes entered in one step; the loader forbids loops of `next`
_MAX_PROMISE_DAYS = 90  # the promise window of bot.nlu (a keypad day stays inside it)

# --- the call's inputs --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the prompts may say, prepared by the caller in the call's locale."""

    lender_name: str
    party_initials: str  # e.g. "J. S."
    amount_text: str  # e.g. "$123.45", already formatted for the locale
    due_date_text: str  # e.g. "January 15, 2026"
    callback_number_text: str  # the lender's number, written to be read aloud
    speech_available: bool  # False: keypad-only prompts from the start
    today: date  # the borrower's local date (a keypad day of the month resolves against it)
    #: what the bot may do to confirm a promise now: "sms" (text the number) or "none";
    #: the caller refreshes it before every step, so prompts say what is true when said,
    #: and ``send_sms`` actions are emitted only with "sms"
    confirmation: str = "sms"
    #: a spoken answer below this confidence that leads to a node of the script's ``readback``
    #: map (opt-out, paid claim, wrong number, dispute) is read back as a yes/no question
    #: first; keypad answers are exact and never read back
    readback_below: float = 0.9
    #: outcomes after which the script's ``survey`` node asks its keypad question (empty: never);
    #: the caller fills it from the policy's survey block and its once-per-days cap
    survey_after: tuple[str, ...] = ()
    #: a payment link can be texted now (the lender's payment URL is set, the call is about an
    #: installment, and ``confirmation`` is "sms"): nodes with ``when: payment_link`` are entered
    #: only while this holds; the caller refreshes it before every step, like ``confirmation``
    payment_link: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.readback_below <= 1.0:
            raise ValueError("CallContext.readback_below must be between 0 and 1")
        if self.confirmation not in CONFIRMATIONS:
            raise ValueError(f"CallContext.confirmation must be one of {', '.join(CONFIRMATIONS)}")
        for name in ("lender_name", "party_initials", "amount_text", "due_date_text", "callback_number_text"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"CallContext.{name} must be a str")
        if type(self.today) is not date:
            raise TypeError("CallContext.today must be a date (the borrower's local date), not a datetime")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["today"] = self.today.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallContext:
        values = dict(data)
        values["today"] = date.fromisoformat(values["today"])
        values["survey_after"] = tuple(values.get("survey_after") or ())
        return cls(**values)


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answered:
    """Answering-machine detection's verdict, when it arrives after the call started."""

    answered_by: Literal["human", "machine"]


@dataclass(frozen=True, slots=True)
class Heard:
    """One answer: speech understood by bot.speech, or keypad digits (``source="dtmf"``)."""

    intent: Intent
    text_redacted: str = ""
    confidence: float = 1.0
    promise_date: date | None = None
    source: Literal["speech", "dtmf"] = "speech"
    digits: str | None = None


@dataclass(frozen=True, slots=True)
class NoInput:
    """Silence: the listen timed out."""


@dataclass(frozen=True, slots=True)
class HungUp:
    """The caller hung up."""


Event = Answered | Heard | NoInput | HungUp

# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    text: str  # to synthesise and play
    node: str
    key: str  # which prompt: "verify.say", "verify.keypad_say", "messages.not_understood", ...


@dataclass(frozen=True, slots=True)
class Listen:
    mode: Literal["speech", "dtmf", "both"]
    expect: Literal["yes_no", "date", "intent", "digits"]
    timeout_s: int
    max_length_s: int
    num_digits: int | None  # None: until # or the timeout


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    promise_date: date | None = None


@dataclass(frozen=True, slots=True)
class OpenTask:
    kind: TaskKind


@dataclass(frozen=True, slots=True)
class OptOut:
    """The borrower asked not to be called (voice opt-out of this number)."""


@dataclass(frozen=True, slots=True)
class FlagNumber:
    reason: str


@dataclass(frozen=True, slots=True)
class SendSms:
    template: str
    promise_date: date | None = None  # the confirmed promise, for the confirmation text


@dataclass(frozen=True, slots=True)
class Flag:
    reason: str  # a review flag


@dataclass(frozen=True, slots=True)
class Rating:
    """The caller's answer to the survey question: a key 1..5."""

    score: int


Action = Say | Listen | Hangup | Outcome | OpenTask | OptOut | FlagNumber | SendSms | Flag | Rating

# --- state -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    right_party_confirmed: bool = False
    disclosed: bool = False  # the collection disclosure has been said
    promise_date: date | None = None  # the date offered (confirmed when promise_confirmed)
    promise_confirmed: bool = False
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class CallState:
    """Everything the engine needs between two webhooks (stored as JSON)."""

    script: str
    locale: str
    context: CallContext
    node: str
    retries: int = 0  # failed answers in the current node
    turns: int = 0  # answers and silences in the whole call
    keypad_only: bool = False
    facts: Facts = field(default_factory=Facts)
    path: tuple[str, ...] = ()  # every node entered, in order
    ended: bool = False
    emitted: tuple[str, ...] = ()  # once-per-call actions already emitted
    resume: str | None = None  # in a read-back: the question a "no" returns to

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict (``json.dumps`` it, or store it in a JSON column)."""
        facts = asdict(self.facts)
        facts["promise_date"] = self.facts.promise_date.isoformat() if self.facts.promise_date else None
        return {
            "version": STATE_VERSION,
            "script": self.script,
            "locale": self.locale,
            "context": self.context.to_json(),
            "node": self.node,
            "retries": self.retries,
            "turns": self.turns,
            "keypad_only": self.keypad_only,
            "facts": facts,
            "path": list(self.path),
            "ended": self.ended,
            "emitted": list(self.emitted),
            "resume": self.resume,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> CallState:
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        assert isinstance(data, Mapping)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"call state version {data.get('version')!r} is not {STATE_VERSION}")
        facts = dict(data["facts"])
        facts["promise_date"] = date.fromisoformat(facts["promise_date"]) if facts.get("promise_date") else None
        return cls(
            script=data["script"],
            locale=data["locale"],
            context=CallContext.from_json(data["context"]),
            node=data["node"],
            retries=int(data["retries"]),
            turns=int(data["turns"]),
            keypad_only=bool(data["keypad_only"]),
            facts=Facts(**facts),
            path=tuple(data["path"]),
            ended=bool(data["ended"]),
            emitted=tuple(data["emitted"]),
            resume=data.get("resume"),
        )


# --- the engine ------------------------------------------------------------------------


def start(script: Script, context: CallContext, *, answered_by: str) -> tuple[CallState, list[Action]]:
    """The first actions of a call answered by a person (``human``) or a machine."""
    if answered_by not in ("human", "machine"):
        raise ValueError("answered_by must be 'human' or 'machine'")
    state = CallState(
        script=script.name, locale=script.locale, context=context,
        node=script.start if answered_by == "human" else script.voicemail,
        keypad_only=not context.speech_available,
    )
    run = _Run(script, state)
    run.enter(state.node)
    return run.finish()


def step(script: Script, state: CallState, event: Event) -> tuple[CallState, list[Action]]:
    """The actions that answer ``event``; an ended call answers nothing."""
    if state.script != script.name or state.locale != script.locale:
        raise ValueError(f"the state belongs to script {state.script}/{state.locale}, "
                         f"not {script.name}/{script.locale}")
    if state.node not in script.nodes:
        raise ValueError(f"the state's node '{state.node}' is not in script {script.name}/{script.locale}")
    if state.ended:
        return state, []
    if script.nodes[state.node].listen is None:
        raise ValueError(f"the state's node '{state.node}' does not wait for an answer")
    run = _Run(script, state)
    if isinstance(event, HungUp):
        run.end("partial", hangup=False)
    elif isinstance(event, Answered):
        if event.answered_by == "machine" and not state.facts.right_party_confirmed:
            run.enter(script.voicemail)
    elif isinstance(event, NoInput):
        run.answer(None, failure="no_input")
    elif isinstance(event, Heard):
        run.answer(event, failure="not_understood")
    else:
        raise TypeError(f"unknown event {type(event).__name__}")
    return run.finish()


def understood(script: Script, state: CallState, heard: Heard) -> tuple[Intent, date | None] | None:
    """What ``heard`` means at the state's node (intent and promise date), as :func:`step` reads it;
    None when it is not understood there.  For keypad answers this is the only record of the
    intent (the digits carry none): the call's turn stores it."""
    node = script.nodes.get(state.node)
    if node is None or node.listen is None or state.ended:
        return None
    return _Run(script, state).understand(node, heard)


class _Run:
    """One start/step: a mutable copy of the state and the actions emitted so far."""

    def __init__(self, script: Script, state: CallState) -> None:
        self.script = script
        self.state = state
        self.actions: list[Action] = []

    def finish(self) -> tuple[CallState, list[Action]]:
        return self.state, self.actions

    # helpers

    @property
    def node(self) -> Node:
        return self.script.nodes[self.state.node]

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def facts(self, **changes: Any) -> None:
        self.state = replace(self.state, facts=replace(self.state.facts, **changes))

    def once(self, key: str, action: Action) -> None:
        if key in self.state.emitted:
            return
        self.update(emitted=(*self.state.emitted, key))
        self.actions.append(action)

    def values(self) -> dict[str, str]:
        ctx = self.state.context
        values = {
            "confirmation": ctx.confirmation,
            "lender_name": ctx.lender_name,
            "party_initials": ctx.party_initials,
            "amount_text": ctx.amount_text,
            "due_date_text": ctx.due_date_text,
            "callback_number_text": ctx.callback_number_text,
        }
        values["disclosure"] = self.script.disclosure.render(values)
        if self.state.facts.promise_date is not None:
            values["promise_date_text"] = format_day(self.state.facts.promise_date, self.script.locale, "full")
        return values

    def say(self, prompt: Prompt) -> None:
        self.actions.append(Say(prompt.render(self.values()), self.state.node, prompt.key))

    def keypad_mode(self, node: Node) -> bool:
        assert node.listen is not None
        return self.state.keypad_only or node.listen.input == "keypad" or node.listen.keypad_after == 0

    # moving through the script

    def holds(self, condition: str) -> bool:
        """Whether a node's ``when`` condition holds now (model.CONDITIONS)."""
        ctx = self.state.context
        if condition == "payment_link":
            return ctx.payment_link and ctx.confirmation == "sms"
        raise ValueError(f"unknown node condition {condition!r}")

    def enter(self, name: str) -> None:
        for _ in range(_MAX_CHAIN):
            when = self.script.nodes[name].when
            if when is not None and not self.holds(when):
                otherwise = self.script.nodes[name].otherwise
                assert otherwise is not None
                name = otherwise  # skipped: nothing of it is said, done or recorded in the path
                continue
            self.update(node=name, retries=0, path=(*self.state.path, name))
            node = self.node
            if node.check != "readback":
                self.update(resume=None)
            self.side_effects(node)
            if node.listen is not None and self.keypad_mode(node):
                assert node.keypad_say is not None
                self.say(node.keypad_say)
            else:
                self.say(node.say)
            if "disclosure" in node.variables:
                self.facts(disclosed=True)
            if node.end is not None:
                self.end(node.end, hangup=True)
                return
            if node.next is None:
                self.listen(node)
                return
            name = node.next
        raise RuntimeError(f"script {self.script.name}: more than {_MAX_CHAIN} nodes without listening")

    def side_effects(self, node: Node) -> None:
        acts = node.actions
        if acts.opt_out:
            self.once("opt_out", OptOut())
        if acts.flag_number:
            self.once(f"flag_number:{acts.flag_number}", FlagNumber(acts.flag_number))
        if acts.open_task is not None:
            self.once(f"open_task:{acts.open_task.value}", OpenTask(acts.open_task))
        if acts.flag:
            self.once(f"flag:{acts.flag}", Flag(acts.flag))
        if acts.send_sms and self.state.context.confirmation == "sms":  # never a text the bot may not send
            promised = self.state.facts.promise_date if self.state.facts.promise_confirmed else None
            self.once(f"send_sms:{acts.send_sms}", SendSms(acts.send_sms, promised))

    def end(self, kind: str, *, hangup: bool) -> None:
        facts = self.state.facts
        if "outcome" not in self.state.emitted:  # after the survey question the outcome is the one before it
            promised = facts.promise_date if kind == "promise" and facts.promise_confirmed else None
            self.once("outcome", Outcome(kind, promised))
            self.facts(outcome=kind)
        survey = self.script.survey
        if hangup and survey is not None and kind in self.state.context.survey_after \
                and "survey" not in self.state.emitted:
            self.update(emitted=(*self.state.emitted, "survey"))
            self.enter(survey)
            return
        self.update(ended=True)
        if hangup:
            self.actions.append(Hangup())

    def listen(self, node: Node) -> None:
        spec = node.listen
        assert spec is not None
        keys = self.script.keypad_for(node)
        num_digits = None if spec.expect == "date" or not keys else max(len(k) for k in keys)
        if self.keypad_mode(node):
            self.actions.append(Listen("dtmf", "digits", spec.timeout_s, spec.max_length_s, num_digits))
        else:
            mode: Literal["speech", "both"] = "speech" if spec.input == "speech" else "both"
            self.actions.append(Listen(mode, spec.expect, spec.timeout_s, spec.max_length_s,  # type: ignore[arg-type]
                                       None if mode == "speech" else num_digits))

    def answer(self, heard: Heard | None, *, failure: str) -> None:
        node = self.node
        self.update(turns=self.state.turns + 1)
        if self.state.turns > self.script.max_turns:
            self.enter(node.on_fail or self.script.on_fail)
            return
        understood = self.understand(node, heard) if heard is not None else None
        target = None
        if understood is not None:
            intent, _ = understood
            target = node.on.get(intent)
            if target is None and node.check == "readback" and intent is Intent.DENY:
                target = self.state.resume  # "no": back to the question, nothing done
            if target is None and intent in self.script.globals:
                route = self.script.globals[intent]
                target = route.to if self.state.facts.right_party_confirmed else route.unconfirmed
        if understood is None or target is None:
            self.fail(node, failure)
            return
        intent, promise_date = understood
        assert heard is not None
        if intent is Intent.SURVEY_RESPONSE:
            digits = (heard.digits or "").strip().rstrip("#")
            if (heard.source != "dtmf" and heard.digits is None) or not digits.isdigit():
                self.fail(node, failure)  # a rating is a key, never a guess from speech
                return
            self.actions.append(Rating(int(digits)))
        question = self.script.readback.get(target)
        if question is not None and self.unsure(heard) and not (question == node.name and intent is Intent.AFFIRM):
            if question == node.name:  # the same request again, still unsure: only a yes acts
                self.fail(node, failure)
                return
            # not sure enough to act: ask "is that right?" first, remember where "no" returns
            self.enter(question)
            if self.state.resume is None or node.check != "readback":
                self.update(resume=node.name)
            return
        if node.check == "right_party" and intent is Intent.AFFIRM:
            self.facts(right_party_confirmed=True)
        if intent is Intent.PROMISE_TO_PAY:
            self.facts(promise_date=promise_date, promise_confirmed=False)
        if node.check == "promise" and intent is Intent.AFFIRM:
            self.facts(promise_confirmed=self.state.facts.promise_date is not None)
        if node.check == "promise" and intent is Intent.DENY:
            self.facts(promise_date=None, promise_confirmed=False)
        self.enter(target)

    def unsure(self, heard: Heard) -> bool:
        """A spoken answer below the context's read-back confidence (keys are exact)."""
        spoken = heard.source == "speech" and heard.digits is None
        return spoken and heard.confidence < self.state.context.readback_below

    def understand(self, node: Node, heard: Heard) -> tuple[Intent, date | None] | None:
        """The intent (and promise date) of an answer, or None when it is not understood."""
        if heard.source == "dtmf" or heard.digits is not None:
            digits = (heard.digits or "").strip().rstrip("#")
            keys = self.script.keypad_for(node)
            if digits in keys:
                return keys[digits], None
            assert node.listen is not None
            if node.listen.expect == "date" and digits.isdigit() and 1 <= len(digits) <= 2:
                day = _day_of_month(int(digits), self.state.context.today)
                if day is not None:
                    return Intent.PROMISE_TO_PAY, day
            return None
        if heard.confidence < self.script.min_confidence:
            return None
        if heard.intent is Intent.PROMISE_TO_PAY:
            today = self.state.context.today
            when = heard.promise_date
            if when is None or not today <= when <= today + timedelta(days=_MAX_PROMISE_DAYS):
                return None
            return Intent.PROMISE_TO_PAY, when
        return heard.intent, None

    def fail(self, node: Node, failure: str) -> None:
        spec = node.listen
        assert spec is not None
        retries = self.state.retries + 1
        self.update(retries=retries)
        if retries > spec.retries:
            self.enter(node.on_fail or self.script.on_fail)
            return
        if retries >= spec.keypad_after and not self.state.keypad_only:
            self.update(keypad_only=True)
        message = self.script.no_input if failure == "no_input" else self.script.not_understood
        self.say(message)
        if self.keypad_mode(node):
            assert node.keypad_say is not None
            self.say(node.keypad_say)
        else:
            self.say(node.reprompt or node.say)
        self.listen(node)


def _day_of_month(day: int, today: date) -> date | None:
    """A day of the month entered on the keypad: this month's if not past, else next month's."""
    if not 1 <= day <= 31:
        return None
    for months_ahead in (0, 1):
        year, month = today.year, today.month + months_ahead
        if month > 12:
            year, month = year + 1, 1
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None
