"""Build the compliance engine's inputs from the database.

The engine is pure; this module is the one place that turns rows into a
:class:`Subject`, a history of :class:`HistoryEntry` and a :class:`StopState`.

* :func:`load_contexts` is set-based for the planner: six queries per chunk of
  1,000 borrowers (borrowers, consents, attempts, pending promises, open
  disputes, active holds), never one query per borrower.  ``paid`` is left False: whether an
  installment is paid is the planner's, per installment.
* :func:`load_context` is for one borrower (``bot check``, ``bot why``, the
  dispatcher's re-check): the same queries plus one that finds the borrower's
  oldest outstanding installment, which gives both the default loan for per-debt
  rules and the borrower-level ``paid`` (no outstanding installment at all).

What counts as history: every contact attempt that really happened, i.e. has
``occurred_at`` and a status of sending, sent, done or failed (a failed call is
still an attempt).  Planned, deferred, blocked and cancelled rows never count, and
neither do automatic answers to the borrower's own messages (source ``reply``):
frequency rules limit communications the lender *initiates*.

Stop facts come from the borrower's *current* addresses only: a consent row for
an old phone number or email is ignored, so an opt-out stays with the address it
was given for (docs/architecture.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.compliance.config import (
    ComplianceConfig,
    PostConversationParams,
    RollingCapParams,
    default_config,
)
from bot.compliance.types import HistoryEntry, StopState, Subject
from bot.db.models import Borrower, Consent, ContactAttempt, Hold, Installment, Loan, Promise, Task
from bot.domain import (
    PHONE_CHANNELS,
    AttemptSource,
    AttemptStatus,
    Channel,
    ContactOutcome,
    PromiseStatus,
    TaskKind,
    TaskStatus,
)
from bot.errors import NotFoundError
from bot.ledger import OPEN

__all__ = [
    "BorrowerContext",
    "CHUNK",
    "REAL_ATTEMPT_STATUSES",
    "history_since",
    "load_context",
    "load_contexts",
    "oldest_outstanding_loan",
]

CHUNK = 1000

#: Statuses of attempts that happened (with ``occurred_at`` set) and so count as history.
REAL_ATTEMPT_STATUSES: tuple[str, ...] = (
    AttemptStatus.SENDING.value,
    AttemptStatus.SENT.value,
    AttemptStatus.DONE.value,
    AttemptStatus.FAILED.value,
    AttemptStatus.UNKNOWN.value,  # may have reached the borrower: counted, to be safe
)

_CHANNELS = {c.value: c for c in Channel}
_OUTCOMES = {o.value for o in ContactOutcome}


@dataclass(frozen=True, slots=True)
class BorrowerContext:
    """Everything ``check()`` needs about one borrower."""

    subject: Subject
    history: list[HistoryEntry]
    state: StopState
    loan_id: str | None  # the loan per-debt rules are judged for (None: no outstanding loan)


def history_since(at: datetime, config: ComplianceConfig | None = None) -> datetime:
    """The oldest instant any enabled rule looks back to from ``at`` (plus a day's margin)."""
    config = config or default_config()
    days = 1
    for params in config.rules.values():
        if not params.enabled:
            continue
        if isinstance(params, RollingCapParams):
            days = max(days, params.window_days)
        elif isinstance(params, PostConversationParams):
            days = max(days, params.days)
    return at - timedelta(days=days + 1)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    size = CHUNK  # read at call time, so a test can make chunks small
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def _unusable(channel: Channel, flag: str) -> tuple[bool, frozenset[Channel]]:
    """(wrong number?, channels that cannot use the address) for an address flag."""
    if channel in PHONE_CHANNELS:
        if flag == "wrong_number":
            return True, frozenset()
        if flag == "landline":
            return False, frozenset({Channel.SMS})
        return False, PHONE_CHANNELS  # invalid, disconnected, ...: the number is unusable
    return False, frozenset({channel})


def _stop_state(
    borrower: Borrower | _BorrowerRow,
    consents: Iterable[_ConsentRow],
    promise_until: date | None,
    dispute_open: bool,
    paid: bool = False,
    holds: tuple[str, ...] = (),
) -> StopState:
    phone = borrower.phone_e164
    email = (borrower.email or "").lower()
    consent: set[Channel] = set()
    opted_out: set[Channel] = set()
    no_address: set[Channel] = set()
    wrong_number = False
    for row in consents:
        channel = _CHANNELS.get(row.channel)
        if channel is None:
            continue
        current = (row.address == phone) if channel in PHONE_CHANNELS else (row.address.lower() == email)
        if not current or not (phone if channel in PHONE_CHANNELS else email):
            continue
        if row.granted:
            consent.add(channel)
        if row.opted_out_at is not None:
            opted_out.add(channel)
        if row.address_flag:
            wrong, unusable = _unusable(channel, row.address_flag)
            wrong_number = wrong_number or wrong
            no_address.update(unusable)
    return StopState(
        consent=frozenset(consent),
        opted_out=frozenset(opted_out),
        paid=paid,
        promise_until=promise_until,
        dispute_open=dispute_open,
        cease_communication=borrower.cease_communication_at is not None,
        wrong_number=wrong_number,
        no_address=frozenset(no_address),
        holds=holds,
    )


# Light row types (what the set-based queries return): named tuples, made straight
# from the rows (the planner loads tens of thousands per batch).
class _BorrowerRow(NamedTuple):
    id: str
    country: str
    region: str | None
    timezone: str | None
    phone_e164: str | None
    email: str | None
    locale: str
    cease_communication_at: datetime | None


class _ConsentRow(NamedTuple):
    borrower_id: str
    channel: str
    address: str
    granted: bool
    opted_out_at: datetime | None
    address_flag: str | None


def _subject(row: _BorrowerRow) -> Subject:
    return Subject(
        borrower_id=row.id,
        country=row.country,
        region=row.region,
        timezone=row.timezone,
        phone_e164=row.phone_e164,
        email=row.email,
        locale=row.locale,
    )


def load_contexts(
    session: Session, borrower_ids: Iterable[str], since: datetime
) -> dict[str, tuple[Subject, list[HistoryEntry], StopState]]:
    """Subject, history (oldest first, since ``since``) and stop state per borrower.

    Unknown ids are simply absent from the result.  ``StopState.paid`` is False:
    the caller knows which installment a contact is about.
    """
    ids = sorted(set(borrower_ids))
    out: dict[str, tuple[Subject, list[HistoryEntry], StopState]] = {}
    new = tuple.__new__
    for chunk in _chunks(ids):
        borrowers = [
            new(_BorrowerRow, row)
            for row in session.execute(
                select(Borrower.id, Borrower.country, Borrower.region, Borrower.timezone,
                       Borrower.phone_e164, Borrower.email, Borrower.locale,
                       Borrower.cease_communication_at).where(Borrower.id.in_(chunk))
            )
        ]
        if not borrowers:
            continue
        consents: dict[str, list[_ConsentRow]] = defaultdict(list)
        for row in session.execute(
            select(Consent.borrower_id, Consent.channel, Consent.address, Consent.granted,
                   Consent.opted_out_at, Consent.address_flag).where(Consent.borrower_id.in_(chunk))
        ):
            consents[row[0]].append(new(_ConsentRow, row))
        history: dict[str, list[HistoryEntry]] = defaultdict(list)
        for borrower_id, channel, occurred_at, outcome, loan_id in session.execute(
            select(ContactAttempt.borrower_id, ContactAttempt.channel, ContactAttempt.occurred_at,
                   ContactAttempt.outcome, ContactAttempt.loan_id)
            .where(
                ContactAttempt.borrower_id.in_(chunk),
                ContactAttempt.occurred_at.is_not(None),
                ContactAttempt.occurred_at >= since,
                ContactAttempt.status.in_(REAL_ATTEMPT_STATUSES),
                # answers to the borrower are not initiated communications; the survey question is
                or_(ContactAttempt.source != AttemptSource.REPLY.value, ContactAttempt.template == "reply_survey"),
            )
            .order_by(ContactAttempt.borrower_id, ContactAttempt.occurred_at, ContactAttempt.id)
        ):
            ch = _CHANNELS.get(channel)
            if ch is None:  # a channel this version does not know: not an attempt it can judge
                continue
            history[borrower_id].append(HistoryEntry(
                channel=ch,
                occurred_at=occurred_at,
                outcome=outcome if outcome in _OUTCOMES else ContactOutcome.ATTEMPTED.value,
                loan_id=loan_id,
            ))
        promises: dict[str, date] = {
            borrower_id: promised
            for borrower_id, promised in session.execute(
                select(Promise.borrower_id, func.max(Promise.promised_date))
                .where(Promise.borrower_id.in_(chunk), Promise.status == PromiseStatus.PENDING.value)
                .group_by(Promise.borrower_id)
            )
        }
        disputes = set(session.scalars(
            select(Task.borrower_id).distinct().where(
                Task.borrower_id.in_(chunk),
                Task.kind == TaskKind.DISPUTE.value,
                Task.status == TaskStatus.OPEN.value,
            )
        ))
        holds: dict[str, list[str]] = defaultdict(list)
        for borrower_id, kind in session.execute(
            select(Hold.borrower_id, Hold.kind)
            .where(Hold.borrower_id.in_(chunk), Hold.lifted_at.is_(None))
            .order_by(Hold.borrower_id, Hold.id)
        ):
            holds[borrower_id].append(kind)
        for b in borrowers:
            state = _stop_state(b, consents.get(b.id, ()), promises.get(b.id), b.id in disputes,
                                holds=tuple(holds.get(b.id, ())))
            out[b.id] = (_subject(b), history.get(b.id, []), state)
    return out


def oldest_outstanding_loan(session: Session, borrower_id: str) -> str | None:
    """The loan of the borrower's oldest outstanding installment (None: nothing is owed)."""
    return session.scalars(
        select(Installment.loan_id)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.borrower_id == borrower_id, OPEN)
        .order_by(Installment.due_date, Installment.id)
        .limit(1)
    ).first()


def load_context(
    session: Session,
    borrower_id: str,
    *,
    at: datetime,
    loan_id: str | None = None,
    config: ComplianceConfig | None = None,
) -> BorrowerContext:
    """One borrower's inputs for a borrower-level check (``bot check``).

    ``paid`` is borrower-level: True when no installment of any loan is
    outstanding.  Per-debt rules are judged for ``loan_id`` when given (it must
    be the borrower's: :class:`NotFoundError` otherwise), else for the loan of
    the oldest outstanding installment.
    """
    found = load_contexts(session, [borrower_id], history_since(at, config))
    if borrower_id not in found:
        raise NotFoundError(f"no borrower with id {borrower_id!r}")
    subject, history, state = found[borrower_id]
    oldest = oldest_outstanding_loan(session, borrower_id)
    if loan_id is not None:
        owner = session.scalar(select(Loan.borrower_id).where(Loan.id == loan_id))
        if owner != borrower_id:
            raise NotFoundError(f"borrower {borrower_id!r} has no loan with id {loan_id!r}")
    else:
        loan_id = oldest
    return BorrowerContext(subject=subject, history=history, state=replace(state, paid=oldest is None),
                           loan_id=loan_id)
