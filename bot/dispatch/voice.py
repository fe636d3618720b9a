"""The dispatcher's voice branch: compose a call, write its call session, find it after a crash.

A voice attempt has no text: its ``template`` is the policy step's ``script``
(``first_stage``), and "composing" it means choosing the script and the
locale it is spoken in and checking the script loads.  The adapter
(bot.channels.voice) gives Twilio the answer and status URLs of the attempt;
the script runs when the call is answered (bot.voice).

Crash safety is the SMS story (docs/dispatch.md, "Crashes"):

* in the pass's write transaction the attempt is marked ``sending`` **and** its
  ``call_sessions`` row is written (``attempt_id`` is unique, insert-or-ignore:
  one session per attempt, whatever retries happen), before Twilio is asked;
* a crash after that leaves ``sending``: reconciliation first trusts a CallSid
  that a webhook already recorded (the answer and status URLs carry the
  attempt id), else lists the calls to the number from the caller id used
  (stored in ``decision.dispatch.from``) created since the attempt was marked
  (:func:`bot.providers.twilio.lookup.find_call`).  Found: ``sent``; not there: planned again, checked again.

The call session's writes are in bot.dispatch.call_sessions (re-exported here);
``bot call`` (:func:`~bot.dispatch.manual.place_call`) is in bot.dispatch.manual.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.dispatch.call_sessions import (
    DEFAULT_SCRIPT,
    FALLBACK_LOCALE,
    SessionSeed,
    ensure_call_sessions,
    link_call_sids,
    mark_unplaced,
)
from bot.domain import Channel
from bot.voice.urls import status_url

__all__ = [
    "CALL_KEY",
    "ComposedCall",
    "compose_call",
    "SessionSeed",
    "ensure_call_sessions",
    "link_call_sids",
    "mark_unplaced",
]

log = logging.getLogger(__name__)

#: Where the call's locale and script are kept in ``decision["dispatch"]``.
CALL_KEY = "call"


class CallComposeError(Exception):
    """The call cannot be composed (no usable script): ``reason`` goes to ``last_error``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ComposedCall:
    """What the adapter and the call session need: no text (the script runs on answer)."""

    attempt_id: int
    to: str
    idempotency_key: str
    locale: str
    script: str
    status_callback: str
    loan_id: str | None = None
    body: str = ""

    def approve_fields(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "channel": Channel.VOICE,
            "to": self.to,
            "body": "",
            "idempotency_key": self.idempotency_key,
            "status_callback": self.status_callback,
        }

    def call_json(self) -> dict[str, Any]:
        return {"locale": self.locale, "script": self.script, "loan_id": self.loan_id}


@lru_cache(maxsize=64)
def _script_ok(name: str, locale: str, scripts_dir: str | None) -> str | None:
    """None when script ``name`` loads for ``locale``, else the problem (cached per process)."""
    from bot.scripts import load_script

    try:
        load_script(name, locale, scripts_dir=Path(scripts_dir) if scripts_dir else None)
    except Exception as exc:  # ScriptError, a missing file: the script cannot run in this locale
        return type(exc).__name__
    return None


def _dir(value: Any) -> str | None:
    return str(value) if value else None


def script_locale(name: str, wanted: str | None, *, scripts_dir: str | None = None) -> str:
    """The locale to speak script ``name`` in: the borrower's if the script has it, else en-US."""
    tag = (wanted or FALLBACK_LOCALE).replace("_", "-")
    for candidate in dict.fromkeys((tag, FALLBACK_LOCALE)):
        if _script_ok(name, candidate, scripts_dir) is None:
            return candidate
    raise CallComposeError("script_error", f"voice script {name!r} does not load for {tag} nor {FALLBACK_LOCALE}")


def compose_call(data: Any, attempt: Any, settings: Any, *, at: datetime | None = None) -> ComposedCall:
    """The call of a voice attempt (``data`` is its :class:`~bot.messages.MessageData` or None).

    Raises :class:`bot.messages.ComposeError` when there is no number, no
    borrower, or the script does not load.
    """
    from bot.messages import ComposeError

    if not attempt.address:
        raise ComposeError("no_address", f"attempt {attempt.id} has no number", template=attempt.template)
    if data is None:
        raise ComposeError("missing_data", f"attempt {attempt.id}: its borrower is not in the database")
    script = attempt.template or DEFAULT_SCRIPT
    planner = (attempt.decision or {}).get("planner") if isinstance(attempt.decision, Mapping) else None
    wanted = planner.get("locale") if isinstance(planner, Mapping) and planner.get("locale") else data.locale
    try:
        locale = script_locale(script, wanted, scripts_dir=_dir(getattr(settings, "voice_scripts_dir", None)))
    except CallComposeError as exc:
        raise ComposeError(exc.reason, str(exc), template=script) from None
    return ComposedCall(
        attempt_id=attempt.id,
        to=attempt.address,
        idempotency_key=attempt.dedupe_key,
        locale=locale,
        script=script,
        status_callback=status_url(settings.public_base_url, attempt.id),
        loan_id=attempt.loan_id or data.loan_id,
    )
