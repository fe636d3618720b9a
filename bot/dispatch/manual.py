"""``bot call``: one manual call attempt, through the dispatcher's own steps.

:func:`place_call` writes a manual attempt and hands it to
:meth:`Dispatcher.send_now <bot.dispatch.runner.Dispatcher.send_now>`, which claims it
through the attempt store and sends it like any attempt: the same send-time check,
the same adapter, at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import ContactAttempt, Installment, Loan
from bot.dispatch.options import DispatchOptions
from bot.dispatch.runner import Dispatcher
from bot.domain import AttemptSource, AttemptStatus, Channel
from bot.ledger import OPEN
from bot.voice.sessions import DEFAULT_SCRIPT

__all__ = ["PlacedCall", "place_call"]


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
        await dispatcher.send_now([attempt_id])
    finally:
        if own:
            await channel.aclose()
    with db.sessions() as session:
        row = session.get(ContactAttempt, attempt_id)
        assert row is not None
        decision = row.decision or {}
        limited = row.rate_limited_until.isoformat() if row.rate_limited_until is not None else None
        return PlacedCall(
            attempt_id=attempt_id, status=row.status,
            call_sid=row.provider_id if row.status == AttemptStatus.SENT.value else None,
            reasons=list(decision.get("reasons") or []),
            next_allowed_at=decision.get("next_allowed_at") or limited,
            error=row.last_error,
        )
