"""What a borrower says, from any channel, and what it does (docs/nlu.md, "What a reply does").

A :class:`Statement` is one thing a borrower said, whatever carried it: an SMS
reply, an email, a turn of a call, a console correction of what a call turn
meant.  :func:`apply_statement` is the only place its effects are written
(docs/webhooks.md has the table); :func:`bot.replies.answer.queue_answer` is
the only place the bot's answer to it is queued.

:func:`apply_statement` changes the database and returns the kind of automatic
answer the statement calls for (``opt_out``, ``help``, ``promise`` ... or
None).  It runs inside the caller's transaction, and the caller queues the
answer only after it returns, so an opt-out is always recorded before any
reply exists.

A number can belong to several borrowers (a couple sharing a phone).  Facts
about the *number* (opt-out, opt-in, wrong number, "leave me alone") apply to
every borrower with that number: honouring a stop request too widely is never
a breach, missing one is.  Facts about a *debt* (payment claims, promises,
disputes, hardship, call-back requests) go to the statement's borrower only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.models import Borrower
from bot.domain import Channel, Intent, TaskKind
from bot.replies.consent import flag_address, record_opt_in, record_opt_out
from bot.replies.ledger import owed_by_loan, paid_on_loan
from bot.replies.promises import create_promise
from bot.replies.records import audit
from bot.replies.tasks import open_task

__all__ = ["CHANNELS", "PAID_LOOKBACK_DAYS", "Applied", "Statement", "apply_statement", "flag_number",
           "paid_claim_consistent", "statement_task"]

#: Where a statement can come from.
CHANNELS = ("sms", "email", "voice", "console", "api")

#: A payment claim is consistent with the records when the payments of the last
#: this many days cover what is owed (a monthly installment paid a little early
#: still counts).
PAID_LOOKBACK_DAYS = 45

#: The note of the task a statement opens, by channel (a task is found again by kind and note).
_NOTES: dict[str, dict[str, str]] = {
    "sms": {"dispute": "sms reply: dispute", "hardship": "sms reply: hardship",
            "callback": "sms reply: call-back request", "wrong_number": "sms reply: wrong number",
            "paid": "paid claim", "undated": "promise without a date", "review": "sms reply to review"},
    "voice": {"dispute": "voice call: dispute", "hardship": "voice call: hardship",
              "callback": "voice call: call-back request", "wrong_number": "voice call: wrong number",
              "paid": "voice call to review", "undated": "voice call to review", "review": "voice call to review",
              "handoff": "voice call: hand-off"},
    "console": {"dispute": "call review: dispute", "hardship": "call review: hardship",
                "callback": "call review: callback", "wrong_number": "call review: wrong number",
                "paid": "call review: paid claim", "undated": "call review: promise without a date",
                "review": "call review: review", "handoff": "call review: handoff"},
}


@dataclass(frozen=True, slots=True)
class Statement:
    """One thing a borrower said, from any channel.

    ``address`` is where it came from (the number texted or called from, the
    email address); ``ref`` names its source (``reply:<MessageSid>``,
    ``call:<session id>``, ``console:call:<session id>``) and keys the tasks it
    opens; ``detail`` is what the audit records name it by (``{"inbound_id": 7}``,
    ``{"call_session_id": 3}``).  ``today`` is the borrower's local date at
    ``at``.  ``scope`` is the channel an opt-out is about (default: SMS for a
    text, calls otherwise) and ``all_channels`` an opt-out of everything.
    ``actor`` is the person who stated it for the borrower (a console
    correction); the channel otherwise.
    """

    borrower_id: str
    address: str | None
    channel: str
    intent: Intent
    at: datetime
    today: date
    ref: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    promise_date: date | None = None
    amount: Decimal | None = None
    confidence: float | None = None
    accepted: bool = True
    scope: Channel | None = None
    all_channels: bool = False
    actor: str | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"Statement.channel: {self.channel!r} is not one of {', '.join(CHANNELS)}")

    @property
    def source(self) -> str:
        """What consent, promise and task rows record as their source: the channel."""
        return self.channel

    @property
    def who(self) -> str:
        """The audit's actor: the person who stated it, else the channel."""
        return self.actor or self.channel


@dataclass
class Applied:
    """What :func:`apply_statement` did: the answer it calls for (a ``reply_<kind>`` template), the
    effects (``opt_out:sms``, ``promise``, ``task:dispute`` ...) and the rows it opened."""

    reply: str | None = None
    done: list[str] = field(default_factory=list)
    promise_id: int | None = None
    task_ids: list[int] = field(default_factory=list)


def paid_claim_consistent(session: Session, borrower_id: str, today: date, at: datetime) -> bool:
    """Do the records bear out "I already paid"?

    Yes when nothing is owed through ``today`` (nor on an upcoming installment),
    or when, loan by loan, the payments recorded in the last
    :data:`PAID_LOOKBACK_DAYS` days cover what the loan owes.
    """
    since = at - timedelta(days=PAID_LOOKBACK_DAYS)
    return all(paid_on_loan(session, [loan_id], since, at) >= owed
               for loan_id, owed in owed_by_loan(session, borrower_id, today).items())


def _sharing(session: Session, st: Statement) -> list[tuple[str, str | None]]:
    """(borrower id, email) of every borrower with the statement's number, its borrower first."""
    rows: list[tuple[str, str | None]] = []
    if st.address and st.channel != Channel.EMAIL.value:
        rows = [(r[0], r[1]) for r in session.execute(
            select(Borrower.id, Borrower.email).where(Borrower.phone_e164 == st.address).order_by(Borrower.id))]
    own = next((r for r in rows if r[0] == st.borrower_id), None)
    if own is None:
        own = (st.borrower_id, session.scalar(select(Borrower.email).where(Borrower.id == st.borrower_id)))
    return [own, *(r for r in rows if r[0] != st.borrower_id)]


def statement_task(session: Session, st: Statement, kind: TaskKind, purpose: str | None = None,
                   borrower_id: str | None = None) -> int:
    """Open (or find) the task ``kind`` the statement calls for; ``purpose`` picks its note."""
    borrower = borrower_id or st.borrower_id
    notes = _NOTES.get(st.channel, _NOTES["console"])
    note = notes.get(purpose or kind.value, f"{st.channel}: {kind.value}")
    inbound_id = st.detail.get("inbound_id")
    return open_task(session, borrower, kind, note, dedupe_key=f"{st.ref}:{kind.value}:{borrower}",
                     source=st.source, at=st.at, inbound_id=inbound_id if isinstance(inbound_id, int) else None,
                     actor=st.actor)


def flag_number(session: Session, st: Statement, flag: str, applied: Applied) -> None:
    """Flag the statement's number for calls and SMS for every borrower with it; a wrong number
    also opens a wrong-number task for each (for the statement's borrower when there is no number)."""
    for borrower_id, _ in _sharing(session, st):
        if st.address:
            for channel in (Channel.SMS, Channel.VOICE):
                flag_address(session, borrower_id, channel.value, st.address, flag, st.source, st.at,
                             actor=st.actor)
        if flag == "wrong_number":
            applied.task_ids.append(statement_task(session, st, TaskKind.WRONG_NUMBER, borrower_id=borrower_id))
    if st.address:
        applied.done.append(f"flag:{flag}")


def _opt_out(session: Session, st: Statement, applied: Applied) -> None:
    if not st.address:
        applied.done.append("opt_out:no_address")
        return
    sharing = _sharing(session, st)
    if st.all_channels:
        sms_changed = False
        for borrower_id, email in sharing:
            sms_changed |= record_opt_out(session, borrower_id, Channel.SMS.value, st.address, st.source, st.at,
                                          actor=st.actor)
            record_opt_out(session, borrower_id, Channel.VOICE.value, st.address, st.source, st.at, actor=st.actor)
            if email:
                record_opt_out(session, borrower_id, Channel.EMAIL.value, email, st.source, st.at, actor=st.actor)
        ceased = session.execute(
            update(Borrower)
            .where(Borrower.id.in_([b for b, _ in sharing]), Borrower.cease_communication_at.is_(None))
            .values(cease_communication_at=st.at, updated_at=st.at)
            .returning(Borrower.id)
            .execution_options(synchronize_session=False)
        ).scalars().all()
        for borrower_id in ceased:
            audit(session, st.at, actor=st.who, action="borrower.cease_communication", borrower_id=borrower_id,
                  detail=dict(st.detail))
        applied.done.append("opt_out:all")
        applied.reply = "opt_out" if sms_changed else None
        return
    default = Channel.SMS if st.channel == Channel.SMS.value else Channel.VOICE
    scope = st.scope or default
    if scope is Channel.EMAIL:
        email = sharing[0][1]
        if email:
            record_opt_out(session, st.borrower_id, Channel.EMAIL.value, email, st.source, st.at, actor=st.actor)
        applied.done.append("opt_out:email")
        return  # the SMS channel stays open; no confirmation is needed on it
    changed = False
    for borrower_id, _ in sharing:
        changed |= record_opt_out(session, borrower_id, scope.value, st.address, st.source, st.at, actor=st.actor)
    applied.done.append(f"opt_out:{scope.value}")
    # One confirmation, only when texts were actually stopped by this statement.
    applied.reply = "opt_out" if scope is Channel.SMS and changed else None


def _opt_in(session: Session, st: Statement, applied: Applied) -> None:
    if st.channel != Channel.SMS.value:  # only a text from the number itself re-opens texts (carrier START)
        applied.done.append("opt_in:ignored")
        return
    changed = False
    if st.address:
        for borrower_id, _ in _sharing(session, st):
            changed |= record_opt_in(session, borrower_id, Channel.SMS.value, st.address, st.source, st.at,
                                     actor=st.actor)
    applied.done.append("opt_in" if changed else "opt_in:noop")
    applied.reply = "opt_in" if changed else None


_TASK_INTENTS: dict[Intent, tuple[TaskKind, str]] = {
    Intent.DISPUTE: (TaskKind.DISPUTE, "dispute"),
    Intent.HARDSHIP: (TaskKind.HARDSHIP, "hardship"),
    Intent.CALLBACK_REQUEST: (TaskKind.CALLBACK, "callback"),
}

#: Questions answered by a reply template and nothing else.
_QUESTIONS: dict[Intent, str] = {Intent.IDENTITY_QUESTION: "identity", Intent.BALANCE_INQUIRY: "balance"}


def apply_statement(session: Session, st: Statement) -> Applied:
    """Record what ``st`` means and apply its effects; see the module docstring.

    A statement that was not accepted (``accepted=False``: too unsure to act
    on) changes nothing and opens a review task instead.
    """
    applied = Applied()
    intent = st.intent
    if not st.accepted:
        applied.task_ids.append(statement_task(session, st, TaskKind.REVIEW, "review"))
        applied.done.append("task:review")
        applied.reply = "other"
    elif intent is Intent.OPT_OUT:
        _opt_out(session, st, applied)
    elif intent is Intent.OPT_IN:
        _opt_in(session, st, applied)
    elif intent is Intent.HELP:
        applied.reply = "help"
    elif intent in _QUESTIONS:
        # answered, nothing recorded: what the answer may say depends on the number (bot.messages.compose)
        applied.done.append(f"answer:{_QUESTIONS[intent]}")
        applied.reply = _QUESTIONS[intent]
    elif intent is Intent.WRONG_NUMBER:
        flag_number(session, st, "wrong_number", applied)
        applied.reply = "wrong_number"
    elif intent is Intent.PAID:
        consistent = paid_claim_consistent(session, st.borrower_id, st.today, st.at)
        audit(session, st.at, actor=st.who, action="reply.paid_claim", borrower_id=st.borrower_id,
              detail={**st.detail, "consistent_with_payments": consistent})
        if not consistent:
            applied.task_ids.append(statement_task(session, st, TaskKind.REVIEW, "paid"))
        applied.done.append("paid:" + ("consistent" if consistent else "review"))
        applied.reply = "paid"
    elif intent is Intent.PROMISE_TO_PAY and st.promise_date is not None:
        promise = create_promise(session, st.borrower_id, st.promise_date, source=st.source, at=st.at,
                                 amount=st.amount, actor=st.actor)
        applied.promise_id = promise.id
        applied.done.append("promise")
        applied.reply = "promise"
    elif intent is Intent.PROMISE_TO_PAY:
        applied.task_ids.append(statement_task(session, st, TaskKind.REVIEW, "undated"))
        applied.done.append("task:review")
        applied.reply = "other"
    elif intent in _TASK_INTENTS:
        kind, purpose = _TASK_INTENTS[intent]
        applied.task_ids.append(statement_task(session, st, kind, purpose))
        applied.done.append(f"task:{kind.value}")
        applied.reply = purpose
    elif st.channel in (Channel.SMS.value, Channel.EMAIL.value):
        # other (affirm/deny never come from a message): a person reads it
        applied.task_ids.append(statement_task(session, st, TaskKind.REVIEW, "review"))
        applied.done.append("task:review")
        applied.reply = "other"
    else:  # a call's affirm, deny or other: the script's own answer was the answer
        applied.done.append("recorded")
    return applied
