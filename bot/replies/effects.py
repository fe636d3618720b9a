"""What each intent does, for a message from a known borrower (docs/webhooks.md has the table).

:func:`apply_effects` changes the database and returns the kind of automatic
answer to queue (``opt_out``, ``help``, ``promise`` ... or None).  It runs
inside the caller's transaction, and the caller queues the answer only after
it returns, so an opt-out is always recorded before any reply exists.

A number can belong to several borrowers (a couple sharing a phone).  Facts
about the *number* (opt-out, opt-in, wrong number, "leave me alone") apply to
every borrower with that number: honouring a stop request too widely is never
a breach, missing one is.  Facts about a *debt* (payment claims, promises,
disputes, hardship, call-back requests) go to the chosen borrower only
(:func:`bot.replies.inbound.find_senders` says how it is chosen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.db.models import Borrower
from bot.domain import Channel, Intent, TaskKind
from bot.nlu import Interpretation
from bot.replies.consent import flag_address, record_opt_in, record_opt_out
from bot.replies.ledger import owed_by_loan, paid_on_loan
from bot.replies.promises import create_promise
from bot.replies.records import audit
from bot.replies.tasks import open_task

__all__ = ["PAID_LOOKBACK_DAYS", "Effects", "Sender", "apply_effects", "paid_claim_consistent"]

#: A payment claim is consistent with the records when the payments of the last
#: this many days cover what is owed (a monthly installment paid a little early
#: still counts).
PAID_LOOKBACK_DAYS = 45

SOURCE = "sms"


@dataclass(frozen=True, slots=True)
class Sender:
    """A borrower whose phone number sent the message."""

    id: str
    locale: str
    country: str
    region: str | None
    timezone: str | None
    phone: str
    email: str | None


@dataclass
class Effects:
    """The answer to queue (a ``reply_<kind>`` template) and what was done, for the audit and tests."""

    reply: str | None = None
    done: list[str] = field(default_factory=list)


def paid_claim_consistent(session: Session, borrower_id: str, today: date, at: datetime) -> bool:
    """Do the records bear out "I already paid"?

    Yes when nothing is owed through ``today`` (nor on an upcoming installment),
    or when, loan by loan, the payments recorded in the last
    :data:`PAID_LOOKBACK_DAYS` days cover what the loan owes.
    """
    since = at - timedelta(days=PAID_LOOKBACK_DAYS)
    return all(paid_on_loan(session, [loan_id], since, at) >= owed
               for loan_id, owed in owed_by_loan(session, borrower_id, today).items())


@dataclass(frozen=True, slots=True)
class _Message:
    session: Session
    at: datetime
    today: date
    inbound_id: int
    provider_id: str
    number: str
    chosen: Sender
    senders: tuple[Sender, ...]

    def task(self, borrower_id: str, kind: TaskKind, note: str) -> int:
        return open_task(self.session, borrower_id, kind, note,
                         dedupe_key=f"reply:{self.provider_id}:{kind.value}:{borrower_id}",
                         source=SOURCE, at=self.at, inbound_id=self.inbound_id)


def _opt_out(m: _Message, interp: Interpretation, effects: Effects) -> None:
    if interp.all_channels:
        sms_changed = False
        for sender in m.senders:
            sms_changed |= record_opt_out(m.session, sender.id, Channel.SMS.value, m.number, SOURCE, m.at)
            record_opt_out(m.session, sender.id, Channel.VOICE.value, m.number, SOURCE, m.at)
            if sender.email:
                record_opt_out(m.session, sender.id, Channel.EMAIL.value, sender.email, SOURCE, m.at)
        ceased = m.session.execute(
            update(Borrower)
            .where(Borrower.id.in_([s.id for s in m.senders]), Borrower.cease_communication_at.is_(None))
            .values(cease_communication_at=m.at, updated_at=m.at)
            .returning(Borrower.id)
            .execution_options(synchronize_session=False)
        ).scalars().all()
        for borrower_id in ceased:
            audit(m.session, m.at, actor=SOURCE, action="borrower.cease_communication", borrower_id=borrower_id,
                  detail={"inbound_id": m.inbound_id})
        effects.done.append("opt_out:all")
        effects.reply = "opt_out" if sms_changed else None
        return
    scope = interp.scope or Channel.SMS
    if scope is Channel.EMAIL:
        if m.chosen.email:
            record_opt_out(m.session, m.chosen.id, Channel.EMAIL.value, m.chosen.email, SOURCE, m.at)
        effects.done.append("opt_out:email")
        return  # the SMS channel stays open; no confirmation is needed on it
    changed = False
    for sender in m.senders:
        changed |= record_opt_out(m.session, sender.id, scope.value, m.number, SOURCE, m.at)
    effects.done.append(f"opt_out:{scope.value}")
    # One confirmation, only when texts were actually stopped by this message.
    effects.reply = "opt_out" if scope is Channel.SMS and changed else None


def _opt_in(m: _Message, effects: Effects) -> None:
    changed = False
    for sender in m.senders:
        changed |= record_opt_in(m.session, sender.id, Channel.SMS.value, m.number, SOURCE, m.at)
    effects.done.append("opt_in" if changed else "opt_in:noop")
    effects.reply = "opt_in" if changed else None


def _wrong_number(m: _Message, effects: Effects) -> None:
    for sender in m.senders:
        for channel in (Channel.SMS, Channel.VOICE):
            flag_address(m.session, sender.id, channel.value, m.number, "wrong_number", SOURCE, m.at)
        m.task(sender.id, TaskKind.WRONG_NUMBER, "sms reply: wrong number")
    effects.done.append("flag:wrong_number")
    effects.reply = "wrong_number"


_TASK_INTENTS: dict[Intent, tuple[TaskKind, str, str]] = {
    Intent.DISPUTE: (TaskKind.DISPUTE, "sms reply: dispute", "dispute"),
    Intent.HARDSHIP: (TaskKind.HARDSHIP, "sms reply: hardship", "hardship"),
    Intent.CALLBACK_REQUEST: (TaskKind.CALLBACK, "sms reply: call-back request", "callback"),
}


#: Questions answered by a reply template and nothing else.
_QUESTIONS: dict[Intent, str] = {Intent.IDENTITY_QUESTION: "identity", Intent.BALANCE_INQUIRY: "balance"}


def apply_effects(
    session: Session,
    interp: Interpretation,
    *,
    at: datetime,
    today: date,
    inbound_id: int,
    provider_id: str,
    number: str,
    senders: tuple[Sender, ...],
) -> Effects:
    """Apply what ``interp`` means (senders[0] is the chosen borrower); see the module docstring."""
    m = _Message(session, at, today, inbound_id, provider_id, number, senders[0], senders)
    effects = Effects()
    intent = interp.intent
    if intent is Intent.OPT_OUT:
        _opt_out(m, interp, effects)
    elif intent is Intent.OPT_IN:
        _opt_in(m, effects)
    elif intent is Intent.HELP:
        effects.reply = "help"
    elif intent in _QUESTIONS:
        # answered, nothing recorded: what the answer may say depends on the number (bot.messages.compose)
        effects.done.append(f"answer:{_QUESTIONS[intent]}")
        effects.reply = _QUESTIONS[intent]
    elif intent is Intent.WRONG_NUMBER:
        _wrong_number(m, effects)
    elif intent is Intent.PAID:
        consistent = paid_claim_consistent(session, m.chosen.id, today, at)
        audit(session, at, actor=SOURCE, action="reply.paid_claim", borrower_id=m.chosen.id,
              detail={"inbound_id": inbound_id, "consistent_with_payments": consistent})
        if not consistent:
            m.task(m.chosen.id, TaskKind.REVIEW, "paid claim")
        effects.done.append("paid:" + ("consistent" if consistent else "review"))
        effects.reply = "paid"
    elif intent is Intent.PROMISE_TO_PAY and interp.promise_date is not None:
        create_promise(session, m.chosen.id, interp.promise_date, source=SOURCE, at=at, amount=interp.amount)
        effects.done.append("promise")
        effects.reply = "promise"
    elif intent is Intent.PROMISE_TO_PAY:
        m.task(m.chosen.id, TaskKind.REVIEW, "promise without a date")
        effects.done.append("task:review")
        effects.reply = "other"
    elif intent in _TASK_INTENTS:
        kind, note, reply = _TASK_INTENTS[intent]
        m.task(m.chosen.id, kind, note)
        effects.done.append(f"task:{kind.value}")
        effects.reply = reply
    else:  # other (affirm/deny never come from the sms context)
        m.task(m.chosen.id, TaskKind.REVIEW, "sms reply to review")
        effects.done.append("task:review")
        effects.reply = "other"
    return effects
