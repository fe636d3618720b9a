"""The call session of a voice attempt: written with ``sending``, linked to its CallSid, ended unplaced.

The writes to ``call_sessions`` made on the way out (docs/dispatch.md, "Crashes"): the
session is inserted in the transaction that marks the attempt ``sending``
(:func:`ensure_call_sessions`), learns its CallSid when the send is recorded
(:func:`link_call_sids`), and is ended when the attempt will never become a call
(:func:`mark_unplaced`).  The dispatcher and its attempt store use it; it imports
neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.db.models import CallSession

__all__ = ["DEFAULT_SCRIPT", "FALLBACK_LOCALE", "SessionSeed", "ensure_call_sessions", "link_call_sids",
           "mark_unplaced"]

DEFAULT_SCRIPT = "first_stage"
FALLBACK_LOCALE = "en-US"


@dataclass(frozen=True, slots=True)
class SessionSeed:
    attempt_id: int
    borrower_id: str
    script: str | None
    locale: str | None
    loan_id: str | None = None


def ensure_call_sessions(session: Session, seeds: Iterable[SessionSeed], now: datetime) -> None:
    """One ``call_sessions`` row per attempt (insert-or-ignore on the unique ``attempt_id``).

    Runs in the transaction that marks the attempts ``sending``, so a session
    exists exactly for the attempts that may have become calls.
    """
    from bot.replies.records import insert_ignore

    for seed in seeds:
        insert_ignore(session, CallSession, {
            "attempt_id": seed.attempt_id, "call_sid": None, "borrower_id": seed.borrower_id,
            "loan_id": seed.loan_id, "locale": seed.locale or FALLBACK_LOCALE,
            "script": seed.script or DEFAULT_SCRIPT, "state": None, "status": "queued",
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
