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

:func:`place_call` is ``bot call``: one manual attempt, the same send-time
check, the same adapter, at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.models import CallSession, ContactAttempt, Installment, Loan
from bot.domain import AttemptSource, AttemptStatus, Channel
from bot.ledger import OPEN
from bot.voice.urls import status_url

__all__ = [
    "CALL_KEY",
    "ComposedCall",
    "PlacedCall",
    "compose_call",
    "ensure_call_sessions",
    "link_call_sids",
    "mark_unplaced",
    "place_call",
]

log = logging.getLogger(__name__)

#: Where the call's locale and script are kept in ``decision["dispatch"]``.
CALL_KEY = "call"
DEFAULT_SCRIPT = "first_stage"
FALLBACK_LOCALE = "en-US"


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


# --- call sessions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionSeed:
    attempt_id: int
    borrower_id: str
    call: Mapping[str, Any]  # decision.dispatch.call: locale, script, loan_id


def ensure_call_sessions(session: Session, seeds: Iterable[SessionSeed], now: datetime) -> None:
    """One ``call_sessions`` row per attempt (insert-or-ignore on the unique ``attempt_id``).

    Runs in the transaction that marks the attempts ``sending``, so a session
    exists exactly for the attempts that may have become calls.
    """
    from bot.replies.records import insert_ignore

    for seed in seeds:
        insert_ignore(session, CallSession, {
            "attempt_id": seed.attempt_id, "call_sid": None, "borrower_id": seed.borrower_id,
            "loan_id": seed.call.get("loan_id"), "locale": str(seed.call.get("locale") or FALLBACK_LOCALE),
            "script": str(seed.call.get("script") or DEFAULT_SCRIPT), "state": None, "status": "queued",
            "answered_by": None, "outcome": None, "promise_date": None, "speech": True, "flagged": False,
            "flags": None, "min_confidence": None, "decision": None, "recording_dir": None,
            "started_at": now, "answered_at": None, "ended_at": None, "duration_s": None, "reviewed_at": None,
            "reviewed_by": None, "created_at": now, "updated_at": now,
        }, ["attempt_id"])


def link_call_sids(session: Session, pairs: Sequence[tuple[int, str]], now: datetime) -> None:
    """Record each placed call's SID on its session (unless a webhook already did).

    The caller holds the attempts' row locks: a voice webhook locks the attempt before its
    session too (bot.voice.service), so the two never wait for each other in a cycle."""
    for attempt_id, sid in sorted(pairs):
        session.execute(
            update(CallSession)
            .where(CallSession.attempt_id == attempt_id, CallSession.call_sid.is_(None))
            .values(call_sid=sid[:64], updated_at=now)
            .execution_options(synchronize_session=False)
        )


def mark_unplaced(session: Session, attempt_ids: Sequence[int], now: datetime, *, status: str = "failed") -> None:
    """End the sessions of attempts that will never become calls (no CallSid): status and outcome ``status``.

    ``failed``: the provider refused the call for good.  ``canceled``: the
    send-time check blocked or cancelled an attempt that had been tried before
    (its session was written then) and no call was placed.
    """
    if not attempt_ids:
        return
    session.execute(
        update(CallSession)
        .where(CallSession.attempt_id.in_(sorted(attempt_ids)), CallSession.call_sid.is_(None),
               CallSession.status == "queued")
        .values(status=status, outcome=status, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


# --- bot call --------------------------------------------------------------------------------


@dataclass
class PlacedCall:
    """What ``bot call`` did: the attempt, its status and, when placed, the call SID."""

    attempt_id: int
    status: str
    call_sid: str | None = None
    reasons: list[str] = field(default_factory=list)
    next_allowed_at: str | None = None
    error: str | None = None

    @property
    def placed(self) -> bool:
        return self.call_sid is not None


def _policy_script(policy: Any) -> str:
    for arm in getattr(policy, "arms", {}).values():
        for step in getattr(arm, "steps", ()):
            if getattr(step, "channel", None) == "voice" and getattr(step, "template", None):
                return str(step.template)
    return DEFAULT_SCRIPT


def _manual_attempt(session: Session, borrower_id: str, script: str, now: datetime) -> int:
    from bot.db.models import Borrower
    from bot.errors import NotFoundError, UsageError

    borrower = session.get(Borrower, borrower_id)
    if borrower is None:
        raise NotFoundError(f"no borrower with id {borrower_id!r}")
    if not borrower.phone_e164:
        raise UsageError(f"borrower {borrower_id!r} has no phone number")
    oldest = session.execute(
        select(Installment.id, Installment.loan_id).join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.borrower_id == borrower_id, OPEN)
        .order_by(Installment.due_date, Installment.id).limit(1)
    ).first()
    attempt = ContactAttempt(
        dedupe_key=f"manual:call:{borrower_id}:{now.isoformat()}", borrower_id=borrower_id,
        loan_id=oldest[1] if oldest else None, installment_id=oldest[0] if oldest else None,
        channel=Channel.VOICE.value, source=AttemptSource.MANUAL.value, status=AttemptStatus.PLANNED.value,
        step="manual", template=script, address=borrower.phone_e164, next_attempt_at=now, tries=0,
        decision={"manual": {"at": now.isoformat(), "by": "bot call"}}, created_at=now, updated_at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt.id


async def place_call(db: Any, settings: Any, borrower_id: str, *, clock: Any, policy: Any = None,
                     compliance_config: Any = None, channel: Any = None, options: Any = None,
                     script: str | None = None) -> PlacedCall:
    """Place one call to ``borrower_id`` now (``bot call``), through the dispatcher's own steps.

    A manual attempt is written and claimed, then judged at this instant like any
    attempt (the compliance rules, consent, opt-outs, frequency), composed, rate
    limited, marked ``sending`` with its call session, and placed with the voice
    adapter (``channel``; default one built from the settings).  The result says
    whether it was placed (the SID) or why not.
    """
    from bot.dispatch.options import DispatchOptions
    from bot.dispatch.report import DispatchReport
    from bot.dispatch.runner import Dispatcher

    now = clock.now()
    own = channel is None
    if channel is None:
        from bot.channels.voice import VoiceChannel

        channel = VoiceChannel(settings)
    options = options or DispatchOptions.from_settings(settings)
    try:
        dispatcher = Dispatcher(db, settings, channels={"voice": channel}, policy=policy, clock=clock,
                                options=options, compliance_config=compliance_config)
        with db.session() as session:
            attempt_id = _manual_attempt(session, borrower_id, script or _policy_script(policy), now)
            session.execute(
                update(ContactAttempt).where(ContactAttempt.id == attempt_id)
                .values(claimed_by=options.worker_id, claimed_until=now + options.lease)
                .execution_options(synchronize_session=False)
            )
        report = DispatchReport(at=now, worker=options.worker_id, claimed=1, batches=1)
        await dispatcher.send_claimed([attempt_id], now, report)
    finally:
        if own:
            await channel.aclose()
    with db.sessions() as session:
        row = session.get(ContactAttempt, attempt_id)
        assert row is not None
        dispatch = (row.decision or {}).get("dispatch") or {}
        return PlacedCall(
            attempt_id=attempt_id, status=row.status,
            call_sid=row.provider_id if row.status == AttemptStatus.SENT.value else None,
            reasons=list(dispatch.get("reasons") or []),
            next_allowed_at=dispatch.get("next_allowed_at") or dispatch.get("rate_limited_until"),
            error=row.last_error,
        )
