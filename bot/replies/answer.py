"""The bot's answer to what a borrower said, queued the same way from every channel.

:func:`queue_answer` is the only place an automatic answer (an SMS of a
``reply_<kind>`` template: the confirmation of an opt-out or a promise, the
acknowledgement of a dispute ...) is queued, whether the statement came by SMS,
by email or during a call.  The answer is a planned ``ContactAttempt`` (source
``reply``) that the dispatcher sends under the rules (quiet hours, holds,
consent at the instant of sending).  The checks made here, the same for every
channel:

* a carrier keyword the provider answers itself (``sms_keyword_replies =
  "provider"``) gets no second answer from the bot;
* a number opted out of SMS gets nothing but the opt-out confirmation, the
  opt-in answer and HELP (:data:`ANSWERED_WHEN_OPTED_OUT`);
* a borrower gets at most :data:`MAX_AUTO_REPLIES_PER_DAY` answers in 24 hours,
  the mandatory ones (:data:`MANDATORY_REPLIES`) aside: a phone's auto-responder
  must not talk to the bot forever, and a call's confirmation text counts toward
  (and respects) the same cap as an answer to a text.

What the answer confirms is given to the composer explicitly: the promise date
rides on the queued attempt (``decision.answer.promise_date``), read by
:func:`bot.messages.compose.load_message_data_many`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import Consent, ContactAttempt
from bot.domain import AttemptSource, AttemptStatus, Channel
from bot.replies.records import audit, insert_ignore

__all__ = ["ANSWERED_WHEN_OPTED_OUT", "MANDATORY_REPLIES", "MAX_AUTO_REPLIES_PER_DAY", "REPLY_KINDS", "Answer",
           "reply_cap_reached",
           "Queued", "queue_answer"]

#: The ``reply_<kind>`` templates an answer can use (docs/webhooks.md).
REPLY_KINDS = ("opt_out", "opt_in", "help", "paid", "promise", "dispute", "wrong_number", "hardship",
               "callback", "other", "identity", "balance", "survey", "survey_thanks", "payment_link")
#: Answers that are always queued (carrier rules), whatever the daily cap says.
MANDATORY_REPLIES = frozenset({"opt_out", "opt_in", "help"})
#: Answers queued even to a number opted out of SMS (the dispatcher sends them too).
ANSWERED_WHEN_OPTED_OUT = frozenset({"opt_out", "opt_in", "help"})
#: Automatic answers a borrower gets in 24 hours, from every channel together.
MAX_AUTO_REPLIES_PER_DAY = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer to queue: ``kind`` (a ``reply_<kind>`` template) to ``address`` for ``borrower_id``.

    ``dedupe_key`` makes it idempotent (``reply:<MessageSid>``, ``reply:call:<id>:<kind>``);
    ``detail`` names its statement in the audit; ``actor`` is the channel it answers.
    """

    borrower_id: str
    address: str
    kind: str
    at: datetime
    dedupe_key: str
    actor: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    promise_date: date | None = None
    provider_answers: bool = False
    #: the installment (and its loan) the answer is about: ``payment_link`` links to it
    installment_id: str | None = None
    loan_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in REPLY_KINDS:
            raise ValueError(f"Answer.kind: {self.kind!r} is not a reply template ({', '.join(REPLY_KINDS)})")
        if self.kind == "payment_link" and (self.installment_id is None or self.loan_id is None):
            raise ValueError("Answer: a payment_link answer needs installment_id and loan_id (the link names them)")

    @property
    def template(self) -> str:
        return f"reply_{self.kind}"


@dataclass(frozen=True, slots=True)
class Queued:
    """The queued attempt's id, or why nothing was queued."""

    template: str
    attempt_id: int | None = None
    suppressed: str | None = None


def _sms_opted_out(session: Session, borrower_id: str, number: str) -> bool:
    return session.scalar(
        select(Consent.id).where(Consent.borrower_id == borrower_id, Consent.channel == Channel.SMS.value,
                                 Consent.address == number, Consent.opted_out_at.is_not(None))
    ) is not None


def _answers_since(session: Session, borrower_id: str, since: datetime) -> int:
    return int(session.scalar(
        select(func.count()).select_from(ContactAttempt)
        .where(ContactAttempt.borrower_id == borrower_id, ContactAttempt.source == AttemptSource.REPLY.value,
               ContactAttempt.created_at >= since)
    ) or 0)


def reply_cap_reached(session: Session, borrower_id: str, at: datetime) -> bool:
    """Whether ``borrower_id`` has had :data:`MAX_AUTO_REPLIES_PER_DAY` automatic answers in the 24 hours
    before ``at``: another one (other than a mandatory reply) would be suppressed."""
    return _answers_since(session, borrower_id, at - timedelta(days=1)) >= MAX_AUTO_REPLIES_PER_DAY


def _why_not(session: Session, answer: Answer) -> str | None:
    if answer.kind in MANDATORY_REPLIES and answer.provider_answers:
        return "provider_answers"
    # An opted-out number still gets the opt-out confirmation, the opt-in answer and
    # HELP (carriers require HELP to be answered whatever the opt-out state); nothing else.
    if answer.kind not in ANSWERED_WHEN_OPTED_OUT and _sms_opted_out(session, answer.borrower_id, answer.address):
        return "opted_out"
    if answer.kind not in MANDATORY_REPLIES and reply_cap_reached(session, answer.borrower_id, answer.at):
        return "daily_reply_cap"
    return None


def queue_answer(session: Session, answer: Answer) -> Queued:
    """Queue ``answer`` as a planned SMS attempt unless a check says no (module docstring).

    Runs inside the caller's transaction, after the statement's effects (an
    opt-out is recorded before any answer exists).  Queuing the same
    ``dedupe_key`` twice queues one attempt.  Every decision is audited
    (``reply.queued`` or ``reply.suppressed`` with the reason).
    """
    reason = _why_not(session, answer)
    if reason is not None:
        audit(session, answer.at, actor=answer.actor, action="reply.suppressed", borrower_id=answer.borrower_id,
              detail={**answer.detail, "template": answer.template, "reason": reason})
        return Queued(answer.template, suppressed=reason)
    decision = {"answer": {"promise_date": answer.promise_date.isoformat()}} if answer.promise_date else None
    insert_ignore(session, ContactAttempt, {
        "dedupe_key": answer.dedupe_key, "borrower_id": answer.borrower_id, "loan_id": answer.loan_id,
        "installment_id": answer.installment_id,
        "channel": Channel.SMS.value, "source": AttemptSource.REPLY.value, "status": AttemptStatus.PLANNED.value,
        "outcome": None, "step": "reply", "template": answer.template, "address": answer.address,
        "occurred_at": None, "next_attempt_at": answer.at, "provider_id": None, "decision": decision, "tries": 0,
        "created_at": answer.at, "updated_at": answer.at,
    }, ["dedupe_key"])
    attempt_id = session.scalar(select(ContactAttempt.id).where(ContactAttempt.dedupe_key == answer.dedupe_key))
    audit(session, answer.at, actor=answer.actor, action="reply.queued", borrower_id=answer.borrower_id,
          detail={**answer.detail, "attempt_id": attempt_id, "template": answer.template})
    return Queued(answer.template, attempt_id=attempt_id)
