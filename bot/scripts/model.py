"""A loaded, validated voice script: immutable data the engine walks.

Built only by :mod:`bot.scripts.loader`, which checks everything docs/voice-scripts.md
lists before a :class:`Script` exists; the engine trusts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2

from bot.domain import Intent, TaskKind

__all__ = [
    "AMOUNT_VARIABLES",
    "CHECKS",
    "CONDITIONS",
    "CONFIRMATIONS",
    "CONTEXT_VARIABLES",
    "EXPECTS",
    "INPUTS",
    "MESSAGE_VARIABLES",
    "OUTCOME_KINDS",
    "PROMPT_VARIABLES",
    "REVEALING_VARIABLES",
    "VOICEMAIL_VARIABLES",
    "ListenSpec",
    "Node",
    "NodeActions",
    "Prompt",
    "Route",
    "Script",
]

#: CallContext fields a prompt may use (the text ones; speech_available and today steer the engine).
CONTEXT_VARIABLES = ("lender_name", "party_initials", "amount_text", "due_date_text", "callback_number_text")
#: How the bot may confirm a promise when the prompt is said: "sms" (the number may be
#: texted now) or "none" (no SMS consent, opted out, flagged): a prompt that speaks of a
#: confirmation chooses its words with ``{% if confirmation == "sms" %}``.
CONFIRMATIONS = ("sms", "none")
#: Every variable a node prompt may use: the context ones, the script's disclosure text, the
#: promise date being read back (formatted by the engine in the script's locale) and
#: ``confirmation`` (one of :data:`CONFIRMATIONS`).
PROMPT_VARIABLES = (*CONTEXT_VARIABLES, "disclosure", "promise_date_text", "confirmation")
#: Variables that say something about the debt: never before the right party is confirmed.
REVEALING_VARIABLES = frozenset({"amount_text", "due_date_text", "disclosure", "promise_date_text"})
#: Variables that need the collection disclosure to have been said first.
AMOUNT_VARIABLES = frozenset({"amount_text", "due_date_text"})
#: The limited-content voicemail may say only these (Reg F 1006.2(j)).
VOICEMAIL_VARIABLES = frozenset({"lender_name", "callback_number_text"})
#: The script-wide messages (no input, not understood) and the disclosure text itself.
MESSAGE_VARIABLES = frozenset({"lender_name", "party_initials", "callback_number_text"})

OUTCOME_KINDS = (
    "promise", "paid_claim", "dispute", "hardship", "callback", "opt_out", "wrong_party",
    "voicemail", "no_answer", "partial", "refused", "completed",
)
OutcomeKind = Literal[
    "promise", "paid_claim", "dispute", "hardship", "callback", "opt_out", "wrong_party",
    "voicemail", "no_answer", "partial", "refused", "completed",
]
INPUTS = ("speech", "keypad", "both")
EXPECTS = ("yes_no", "date", "intent", "digits")
CHECKS = ("right_party", "promise", "readback")
#: Context flags a node's ``when`` may name: the node is entered only while its flag holds,
#: else its ``otherwise`` node is entered instead (nothing of the skipped node is said or done).
#: ``payment_link``: a payment link can be texted now (:attr:`bot.scripts.engine.CallContext.payment_link`).
CONDITIONS = ("payment_link",)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One text template of a node (``say``, ``keypad_say``, ``reprompt``) or of the script."""

    key: str  # "verify.say", "messages.no_input", "disclosure"
    source: str
    template: jinja2.Template
    variables: frozenset[str]
    line: int

    def render(self, values: Mapping[str, Any]) -> str:
        return " ".join(self.template.render(**values).split())


@dataclass(frozen=True, slots=True)
class ListenSpec:
    input: str  # speech | keypad | both
    expect: str  # yes_no | date | intent | digits
    timeout_s: int
    max_length_s: int
    retries: int  # failed answers tolerated before on_fail
    keypad_after: int  # failed answers after which the keypad menu is used


@dataclass(frozen=True, slots=True)
class NodeActions:
    """Side effects of entering a node, each emitted at most once per call."""

    opt_out: bool = False
    flag_number: str | None = None
    open_task: TaskKind | None = None
    flag: str | None = None
    send_sms: str | None = None

    def __bool__(self) -> bool:
        return bool(self.opt_out or self.flag_number or self.open_task or self.flag or self.send_sms)


@dataclass(frozen=True, slots=True)
class Route:
    """A global fallback: where an intent goes from any listening node."""

    to: str  # once the right party is confirmed
    unconfirmed: str | None  # before that (None: the fallback does not apply yet)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    line: int
    say: Prompt
    keypad_say: Prompt | None
    reprompt: Prompt | None
    listen: ListenSpec | None
    keypad: Mapping[str, Intent]  # this node's keys (merged with the script's at run time)
    on: Mapping[Intent, str]
    next: str | None
    end: str | None  # outcome kind
    check: str | None  # right_party | promise | readback
    actions: NodeActions
    on_fail: str | None
    when: str | None = None  # one of CONDITIONS: the node is entered only while it holds
    otherwise: str | None = None  # entered instead when ``when`` does not hold

    @property
    def prompts(self) -> tuple[Prompt, ...]:
        return tuple(p for p in (self.say, self.keypad_say, self.reprompt) if p is not None)

    @property
    def variables(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for prompt in self.prompts:
            out |= prompt.variables
        return out


@dataclass(frozen=True)
class Script:
    name: str
    locale: str
    source: str  # the file it came from
    start: str
    voicemail: str
    on_fail: str
    max_turns: int
    min_confidence: float
    disclosure: Prompt
    no_input: Prompt
    not_understood: Prompt
    keypad: Mapping[str, Intent]  # global keys
    globals: Mapping[Intent, Route]
    nodes: Mapping[str, Node]
    #: acting node -> the yes/no question asked before entering it on an unsure spoken answer
    readback: Mapping[str, str] = field(default_factory=dict)
    #: the optional satisfaction question asked at the end of a qualifying call (bot.scripts.engine)
    survey: str | None = None

    def keypad_for(self, node: Node) -> dict[str, Intent]:
        """The keys that work in ``node``: the script's global keys (not while a date is
        being entered, where a lone digit is a day) overlaid by the node's own."""
        keys: dict[str, Intent] = {}
        if node.listen is not None and node.listen.expect != "date":
            keys.update(self.keypad)
        keys.update(node.keypad)
        return keys
