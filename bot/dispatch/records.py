"""What a send came to (:data:`Outcome`), and what follows from it beside the attempt's row.

The outcomes are written by the attempt store (bot.dispatch.attempts); here are the
``attempt.sent``/``attempt.failed`` events (:func:`emit_attempts`) and what a
provider's permanent refusal says about the address (:func:`apply_failure_effects`).

Nothing here holds personal data beyond what the row already has:
``last_error`` is a provider code and an error class, never a number, an address
or the text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import ContactAttempt
from bot.events import Event, emit_many, subscribed
from bot.privacy import redact

log = logging.getLogger(__name__)

_A = ContactAttempt.__table__
_MAX_ERROR = 255


def error_text(prefix: str, exc: BaseException | None = None, code: Any = None) -> str:
    """``"<prefix>: <code> <ErrorClass>"``: what ``last_error`` says (redacted, bounded)."""
    parts = [prefix + ":"]
    if code is not None:
        parts.append(str(code))
    if exc is not None:
        parts.append(type(exc).__name__)
    return redact(" ".join(parts))[:_MAX_ERROR]


@dataclass(frozen=True, slots=True)
class Sent:
    attempt_id: int
    channel: str
    provider_id: str
    provider_status: str | None


@dataclass(frozen=True, slots=True)
class Retry:
    attempt_id: int
    channel: str
    next_attempt_at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class Late:
    """Not sent: its lane reached it later than the rate-limit tolerance after its grant.
    Planned again at ``next_attempt_at`` (now); it takes a token again when claimed."""

    attempt_id: int
    channel: str
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    attempt_id: int
    channel: str
    error: str
    effect: str | None = None  # what the error says about the address: opt_out, invalid, landline
    code: str | None = None  # the provider's code (Twilio's 21610, SMTP's 550)
    borrower_id: str | None = None
    address: str | None = None


Outcome = Sent | Retry | Late | Failed


_EVENT_COLUMNS = (_A.c.id, _A.c.borrower_id, _A.c.channel, _A.c.address, _A.c.loan_id, _A.c.installment_id,
                  _A.c.step, _A.c.template, _A.c.provider_id, _A.c.last_error)


def emit_attempts(session: Session, event_type: str, ids: Sequence[int], status: str, now: datetime) -> None:
    """``attempt.sent`` / ``attempt.failed`` for the attempts of ``ids`` this write changed
    (now in ``status``, ``updated_at`` = ``now``), in the write's transaction (bot.events)."""
    if not ids or not subscribed(session, event_type):
        return
    rows = session.execute(select(*_EVENT_COLUMNS).where(
        _A.c.id.in_(sorted(ids)), _A.c.status == status, _A.c.updated_at == now).order_by(_A.c.id)).all()
    emit_many(session, [
        Event(event_type, r.borrower_id, {
            "attempt_id": r.id, "channel": r.channel, "address": r.address, "loan_id": r.loan_id,
            "installment_id": r.installment_id, "step": r.step, "template": r.template,
            "provider_id": r.provider_id, **({"error": r.last_error} if event_type == "attempt.failed" else {}),
        }, now)
        for r in rows
    ])


def apply_failure_effects(session: Session, failure: Failed, now: datetime) -> None:
    """Record what a permanent provider error says: an opt-out, or an address that cannot be used.

    The consent row of (borrower, channel, address) carries it, so the compliance
    rules stop every later contact to that address (an ``invalid`` phone number
    stops SMS and calls, a ``landline`` SMS only, an ``invalid`` email address email).
    """
    if failure.effect is None or not failure.borrower_id or not failure.address:
        return
    from bot.replies import flag_address, record_opt_out

    source = f"carrier_{failure.code}" if failure.code else f"provider_{failure.channel}"
    if failure.effect == "opt_out":
        record_opt_out(session, failure.borrower_id, failure.channel, failure.address, source, now)
    elif failure.effect in ("invalid", "landline", "wrong_number"):
        flag_address(session, failure.borrower_id, failure.channel, failure.address, failure.effect, source, now)
    else:
        return
    log.info("attempt %d: the provider's refusal recorded as %s", failure.attempt_id, failure.effect)
