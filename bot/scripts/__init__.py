"""Voice scripts as data, and the pure dialog engine that walks them.

A script is one YAML file per name and locale, ``bot/scripts/<name>/<locale>.yaml``
(docs/voice-scripts.md is the format reference).  :func:`load_script` validates it
completely (file and line in every error) and returns an immutable :class:`Script`;
:func:`start` and :func:`step` are pure functions from a script, a
JSON-serialisable :class:`CallState` and an event to a new state and the actions to
perform (say, listen, hang up, record an outcome, open a task, ...).

Pure: no database, no network, no clock; the voice integration does the I/O.
"""

from __future__ import annotations

from bot.scripts.engine import (
    Action,
    Answered,
    CallContext,
    CallState,
    Event,
    Facts,
    Flag,
    FlagNumber,
    Hangup,
    Heard,
    HungUp,
    Listen,
    NoInput,
    OpenTask,
    OptOut,
    Outcome,
    Rating,
    Say,
    SendSms,
    start,
    step,
    understood,
)
from bot.scripts.loader import DEFAULT_SCRIPTS_DIR, ScriptError, load_script, script_file, validate_all
from bot.scripts.model import OUTCOME_KINDS, Node, Script

__all__ = [
    "DEFAULT_SCRIPTS_DIR",
    "OUTCOME_KINDS",
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
    "Node",
    "NoInput",
    "OpenTask",
    "OptOut",
    "Outcome",
    "Rating",
    "Say",
    "Script",
    "ScriptError",
    "SendSms",
    "load_script",
    "script_file",
    "start",
    "step",
    "understood",
    "validate_all",
]
