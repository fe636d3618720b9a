"""Delivery updates (a message's status callback as a neutral
:class:`~bot.channels.events.DeliveryUpdate`): the provider's delivery status, only ever
moved forward.  The one core both the status callback route (bot.web.twilio) and the
dispatcher's recovery of lost callbacks (bot.dispatch.statuses) apply a status with.

Twilio may send a message's callbacks more than once and in any order
(``delivered`` before ``sent``).  Statuses are ranked (bot.providers.twilio.statuses)::

    accepted, scheduled, queued  <  sending  <  sent  <  delivered | undelivered | failed | canceled  <  read

and a callback is applied only when the stored status ranks strictly lower
(``read`` only after a non-failure).  So a duplicate is a no-op, a late
``sent`` after ``delivered`` is ignored, and the final statuses are final.

The check is ONE ``UPDATE … WHERE provider_status IS NULL OR provider_status
IN (<lower statuses>)``: two callbacks for the same message handled at the
same moment cannot both win, because the second UPDATE waits for the first
(PostgreSQL row lock; SQLite has one writer) and then re-evaluates its WHERE
against the committed row.  A read-then-write would let a late ``sent``
overwrite ``delivered``.

An applied ``delivered`` (or ``partially_delivered``) emits ``attempt.delivered``,
an applied failure status ``attempt.failed`` (docs/events.md), in the same
transaction.

An error whose effect is ``opt_out`` (Twilio's 21610, "the recipient replied STOP",
read by the provider's error table) records the opt-out of the attempt's number (:func:`bot.replies.record_opt_out`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.db.models import ContactAttempt
from bot.domain import Channel, ContactOutcome
from bot.events import emit
from bot.providers.twilio.errors import code_effect
from bot.providers.twilio.statuses import FAILURE_STATUSES, MESSAGE_OUTCOME, STATUS_RANK, lower_statuses
from bot.replies import record_opt_out

__all__ = [
    "FAILURE_STATUSES",
    "STATUS_RANK",
    "AttemptMismatch",
    "StatusUpdate",
    "UnknownMessage",
    "apply_status",
    "lower_statuses",
]

log = logging.getLogger(__name__)

_OUTCOME = MESSAGE_OUTCOME


class UnknownMessage(Exception):
    """No attempt has this provider message id (or the attempt id of the callback URL does not exist)."""


class AttemptMismatch(Exception):
    """The callback's attempt already belongs to another message."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    attempt_id: int | None
    status: str
    applied: bool  # False: a duplicate, an out-of-order or an unknown status, ignored
    opted_out: bool = False


def apply_status(
    session: Session,
    *,
    message_sid: str,
    status: str,
    error_code: str | None,
    attempt_id: int | None,
    at: datetime,
) -> StatusUpdate:
    """Apply one status callback (see the module docstring); the caller commits.

    With ``attempt_id`` (the ``?attempt=`` of the callback URL) the attempt is
    found by id and gets ``provider_id`` = the message id if it has none yet (the
    callback can overtake the dispatcher's own write); without it, by
    ``provider_id``.  Raises :class:`UnknownMessage` or :class:`AttemptMismatch`.
    """
    if attempt_id is not None:
        target = (ContactAttempt.id == attempt_id,
                  or_(ContactAttempt.provider_id.is_(None), ContactAttempt.provider_id == message_sid))
    else:
        target = (ContactAttempt.provider_id == message_sid,)
    known = status in STATUS_RANK
    row = None
    if known:
        values: dict[str, object] = {"provider_status": status, "updated_at": at}
        if attempt_id is not None:
            values["provider_id"] = message_sid
        if status in _OUTCOME:
            values["outcome"] = _OUTCOME[status]
        if error_code:
            values["last_error"] = error_code
        row = session.execute(
            update(ContactAttempt)
            .where(*target, or_(ContactAttempt.provider_status.is_(None),
                                ContactAttempt.provider_status.in_(sorted(lower_statuses(status)))))
            .values(**values)
            .returning(ContactAttempt.id, ContactAttempt.borrower_id, ContactAttempt.address,
                       ContactAttempt.channel)
            .execution_options(synchronize_session=False)
        ).first()
    if row is None:
        row = session.execute(
            select(ContactAttempt.id, ContactAttempt.borrower_id, ContactAttempt.address, ContactAttempt.channel)
            .where(*target)
        ).first()
        if row is None:
            if attempt_id is not None and session.scalar(select(ContactAttempt.id).where(ContactAttempt.id == attempt_id)):
                raise AttemptMismatch(f"attempt {attempt_id} belongs to another message")
            raise UnknownMessage("no attempt for this MessageSid" if attempt_id is None
                                 else f"no attempt {attempt_id}")
        applied = False
        if not known:
            log.warning("status callback for attempt %s: unknown MessageStatus %r ignored", row[0], status[:32])
    else:
        applied = True
        event = ("attempt.delivered" if _OUTCOME.get(status) == ContactOutcome.DELIVERED.value and status != "read"
                 else "attempt.failed" if status in FAILURE_STATUSES else None)
        if event is not None:
            emit(session, event, borrower_id=row[1], at=at, data={
                "attempt_id": row[0], "channel": row[3], "address": row[2], "provider_id": message_sid,
                "provider_status": status, **({"error": error_code or None} if event == "attempt.failed" else {}),
            })
    opted_out = False
    if code_effect(error_code) == "opt_out" and row[2]:
        record_opt_out(session, row[1], row[3] or Channel.SMS.value, row[2], "carrier_21610", at)
        opted_out = True
    return StatusUpdate(attempt_id=row[0], status=status, applied=applied, opted_out=opted_out)
