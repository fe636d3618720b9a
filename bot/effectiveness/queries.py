"""The metric queries: set-based, one statement per family, grouped in the database.

Every statement groups by the *raw* dimensions (the attempt's channel, step and
source, the borrower's locale, the lender's segment, the event's local day, the currency) and returns a
few hundred rows at most; :mod:`bot.effectiveness.report` folds them into the
groups asked for (``step`` and ``arm`` come from the step label, ``week`` and
``month`` from the day).  docs/metrics.md defines every figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Date,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from bot.db.models import (
    Borrower,
    CallSession,
    Consent,
    ContactAttempt,
    InboundMessage,
    Installment,
    Loan,
    Payment,
    Promise,
    Task,
)
from bot.db.types import UTCDateTime
from bot.domain import AttemptSource, Channel, ContactOutcome, PromiseStatus
from bot.effectiveness.sql import local_day, minutes_started, shift_days

__all__ = ["REACHED", "RawRow", "Window", "contact_rows", "cure_rows", "event_rows", "paid_on_table", "roll_counts"]

#: Outcomes that mean the contact reached someone: a message delivered, a call answered
#: by a person (connected), a conversation (a call where the right party was confirmed).
REACHED = (ContactOutcome.DELIVERED.value, ContactOutcome.CONNECTED.value, ContactOutcome.CONVERSATION.value)
#: Joins a touch's channel, source and step in one text (the ASCII unit separator).
_SEP = "\x1f"
#: The one outcome that means the right party was on the line.
RIGHT_PARTY = ContactOutcome.CONVERSATION.value

_A = ContactAttempt.__table__
_B = Borrower.__table__
_L = Loan.__table__
_I = Installment.__table__
_P = Payment.__table__


@dataclass(frozen=True, slots=True)
class Window:
    """Borrower-local calendar days ``[start, end)`` and the settings the metrics read."""

    start: date
    end: date
    default_timezone: str
    attribution_days: int = 7
    cure_days: int = 30

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"the window's end {self.end} is not after its start {self.start}")

    @property
    def utc_bounds(self) -> tuple[datetime, datetime]:
        """Instants certainly around the window in every zone (no zone is 26 h off UTC)."""
        return (datetime.combine(self.start, time(), UTC) - timedelta(days=1),
                datetime.combine(self.end, time(), UTC) + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class RawRow:
    """One database group: raw dimensions and the figures counted for them."""

    channel: str | None  # None: no attempt (an unattributed event)
    step: str | None
    source: str | None
    locale: str
    segment: str | None  # the lender's: the loan's, else the borrower's
    day: date
    currency: str
    values: dict[str, int]


def _zone(window: Window) -> ColumnElement[Any]:
    return func.coalesce(_B.c.timezone, literal(window.default_timezone))


def _in_window(instant: ColumnElement[Any], window: Window) -> ColumnElement[bool]:
    """``instant`` falls on a borrower-local day of the window (the UTC bounds let an index help)."""
    lo, hi = window.utc_bounds
    day = local_day(instant, _zone(window))
    return and_(instant >= lo, instant < hi, day >= window.start, day < window.end)


def went_out(a: Any = _A) -> ColumnElement[bool]:
    """An attempt that went out: imported history, or one the bot handed to a provider."""
    return or_(a.c.source == AttemptSource.IMPORT.value, a.c.sent_at.is_not(None))


def reached(a: Any = _A) -> ColumnElement[bool]:
    return and_(went_out(a), a.c.outcome.in_(REACHED))


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _segment(loan: Any = _L) -> ColumnElement[Any]:
    """The lender's segment of a row: its loan's, else its borrower's (docs/risk.md)."""
    return func.coalesce(loan.c.segment, _B.c.segment)


def _borrower_currency() -> Any:
    """A borrower's currency for events that name no loan: the first of its loans' currencies."""
    return select(_L.c.borrower_id, func.min(_L.c.currency).label("currency")).group_by(_L.c.borrower_id).subquery()


def _own(m: Any) -> tuple[str | None, str | None, str | None]:
    return m["channel"], m["step"], m["source"]


def _rows(session: Session, stmt: Select[Any], names: Sequence[str],
          attempt: Callable[[Any], tuple[str | None, str | None, str | None]] = _own) -> Iterator[RawRow]:
    """The statement's rows; ``attempt`` reads (channel, step, source) from a row."""
    for row in session.execute(stmt):
        m = row._mapping
        yield RawRow(*attempt(m), m["locale"], m["segment"], m["day"], m["currency"],
                     {name: int(m[name] or 0) for name in names})


# --- contacts -----------------------------------------------------------------------

CONTACT_FIGURES = ("contacts", "reached", "rpc_calls", "sms_sent", "emails_sent", "call_minutes")


def contact_rows(session: Session, window: Window) -> Iterator[RawRow]:
    """Attempts that went out in the window, by the attempt's own channel, step and source."""
    bcur = _borrower_currency()
    cs = CallSession.__table__
    own = _A.c.source != AttemptSource.IMPORT.value
    day = local_day(_A.c.occurred_at, _zone(window)).label("day")
    currency = func.coalesce(_L.c.currency, bcur.c.currency).label("currency")
    segment = _segment().label("segment")
    stmt = (
        select(
            _A.c.channel.label("channel"), _A.c.step.label("step"), _A.c.source.label("source"),
            _B.c.locale.label("locale"), segment, day, currency,
            func.count().label("contacts"),
            _flag(_A.c.outcome.in_(REACHED)).label("reached"),
            _flag(_A.c.outcome == RIGHT_PARTY).label("rpc_calls"),
            _flag(and_(own, _A.c.channel == Channel.SMS.value)).label("sms_sent"),
            _flag(and_(own, _A.c.channel == Channel.EMAIL.value)).label("emails_sent"),
            func.sum(case((and_(own, _A.c.channel == Channel.VOICE.value), minutes_started(cs.c.duration_s)),
                          else_=0)).label("call_minutes"),
        )
        .select_from(_A)
        .join(_B, _B.c.id == _A.c.borrower_id)
        .outerjoin(_L, _L.c.id == _A.c.loan_id)
        .outerjoin(bcur, bcur.c.borrower_id == _A.c.borrower_id)
        .outerjoin(cs, cs.c.attempt_id == _A.c.id)
        .where(went_out(), _in_window(_A.c.occurred_at, window))
        .group_by(_A.c.channel, _A.c.step, _A.c.source, _B.c.locale, segment, day, currency)
    )
    return _rows(session, stmt, CONTACT_FIGURES)


# --- events attributed to the last reached contact -----------------------------------

EVENT_KINDS = ("payments", "promises", "kept", "broken", "rpc_replies", "opt_outs", "disputes", "complaints")
EVENT_AMOUNTS = {"payments": "recovered_minor", "promises": "promised_minor"}


def _events(window: Window) -> Any:
    """Every outcome event in the window: (kind, borrower, instant attributed at, locale, day, currency, amount)."""
    bcur = _borrower_currency()
    zone = _zone(window)

    def one(kind: str, instant: Any, touch_at: Any, table: Any, *, loan_id: Any = None,
            amount: Any = None, where: Sequence[ColumnElement[bool]] = ()) -> Select[Any]:
        currency = bcur.c.currency if loan_id is None else func.coalesce(_L.c.currency, bcur.c.currency)
        segment = _B.c.segment if loan_id is None else _segment()
        stmt = select(
            literal(kind).label("kind"), table.c.borrower_id.label("borrower_id"),
            touch_at.label("touch_at"), _B.c.locale.label("locale"), segment.label("segment"),
            local_day(instant, zone).label("day"), currency.label("currency"),
            (amount if amount is not None else literal(0)).label("amount"),
        ).select_from(table).join(_B, _B.c.id == table.c.borrower_id)
        if loan_id is not None:
            stmt = stmt.outerjoin(_L, _L.c.id == loan_id)
        return stmt.outerjoin(bcur, bcur.c.borrower_id == table.c.borrower_id).where(
            _in_window(instant, window), *where)

    pay = select(_P.c.id, _P.c.paid_at, _P.c.amount_minor, _P.c.loan_id, _L.c.borrower_id).join(
        _L, _L.c.id == _P.c.loan_id).subquery("pay")
    pr = Promise.__table__
    im = InboundMessage.__table__
    co = Consent.__table__
    tk = Task.__table__
    resolved = (PromiseStatus.KEPT.value, PromiseStatus.BROKEN.value)
    parts = [
        one("payments", pay.c.paid_at, pay.c.paid_at, pay, loan_id=pay.c.loan_id, amount=pay.c.amount_minor),
        one("promises", pr.c.created_at, pr.c.created_at, pr, loan_id=pr.c.loan_id,
            amount=func.coalesce(pr.c.amount_minor, 0)),
        *(one(status, pr.c.resolved_at, pr.c.created_at, pr, loan_id=pr.c.loan_id, where=[pr.c.status == status])
          for status in resolved),
        one("rpc_replies", im.c.received_at, im.c.received_at, im,
            where=[im.c.channel == Channel.SMS.value, im.c.from_address == _B.c.phone_e164]),
        one("opt_outs", co.c.opted_out_at, co.c.opted_out_at, co),
        *(one(kind, tk.c.created_at, tk.c.created_at, tk, loan_id=tk.c.loan_id, where=[tk.c.kind == task_kind])
          for kind, task_kind in (("disputes", "dispute"), ("complaints", "complaint"))),
    ]
    return union_all(*parts).subquery("events")


def event_rows(session: Session, window: Window) -> Iterator[RawRow]:
    """Outcome events, each in the group of the borrower's most recent reached contact in the
    ``attribution_days`` before it (last touch); without one, unattributed (channel None)."""
    ev = _events(window)
    t = _A.alias("touch")
    # channel, source and step of the touch in one text (a join back to contact_attempts
    # would make PostgreSQL hash the whole table): "sms<US>planner<US>=A:D+1:sms"
    touch = (
        select(t.c.channel + _SEP + t.c.source + _SEP + func.coalesce(literal("=") + t.c.step, ""))
        .where(t.c.borrower_id == ev.c.borrower_id, reached(t), t.c.occurred_at < ev.c.touch_at,
               t.c.occurred_at >= shift_days(ev.c.touch_at, -window.attribution_days))
        .order_by(t.c.occurred_at.desc(), t.c.id.desc())
        .limit(1)
        .correlate(ev)
        .scalar_subquery()
    )
    touched = select(ev, touch.label("touch")).subquery("touched")
    columns = [touched.c.touch, touched.c.locale, touched.c.segment, touched.c.day, touched.c.currency]
    figures = [_flag(touched.c.kind == kind).label(kind) for kind in EVENT_KINDS]
    figures += [func.sum(case((touched.c.kind == kind, touched.c.amount), else_=0)).label(name)
                for kind, name in EVENT_AMOUNTS.items()]
    stmt = select(*columns, *figures).group_by(*columns)
    return _rows(session, stmt, (*EVENT_KINDS, *EVENT_AMOUNTS.values()), _touch)


def _touch(m: Any) -> tuple[str | None, str | None, str | None]:
    """(channel, step, source) of an event's touch text; all None when unattributed."""
    if m["touch"] is None:
        return None, None, None
    channel, source, rest = m["touch"].split(_SEP, 2)
    return channel, (rest[1:] if rest else None), source


# --- cures ----------------------------------------------------------------------------


def paid_on(window: Window) -> Any:
    """When the fully covered installments that were not paid before the window became
    paid (docs/metrics.md "Paid in full"): the first of the loan's payments at which its
    payments add up to the amounts due of its installments up to this one (oldest due
    date first, bot.ledger's order); when they never do (a statement covered it), the
    loan's ``paid_stated_at``.

    Only payments from a day before the window are read one by one: what the loan was
    paid before that is one sum, and an installment it covers (running amount due not
    above it) was paid before the window and gets no row.  So a covered installment
    *without* a row was paid before every day of the window.  No inequality join: the
    running totals of amounts due and of payments are merged into one sequence per
    loan, and each installment takes the earliest payment at or after its place in it
    (a window over the following rows)."""
    since = window.utc_bounds[0]
    running = {"rows": (None, 0)}
    before = (select(_P.c.loan_id, func.sum(_P.c.amount_minor).label("amount"))
              .where(_P.c.paid_at < since).group_by(_P.c.loan_id).subquery("before"))
    earlier = func.coalesce(before.c.amount, 0)
    recent = (
        select(
            _P.c.loan_id, (earlier + func.sum(_P.c.amount_minor).over(
                partition_by=_P.c.loan_id, order_by=(_P.c.paid_at, _P.c.id), **running)).label("total"),
            literal(1).label("kind"), _P.c.paid_at, null().label("installment_id"),
        )
        .outerjoin(before, before.c.loan_id == _P.c.loan_id)
        .where(_P.c.paid_at >= since)
    )
    running_due = select(
        _I.c.loan_id, _I.c.id, (_I.c.covered_minor >= _I.c.amount_due_minor).label("covered"),
        func.sum(_I.c.amount_due_minor).over(
            partition_by=_I.c.loan_id, order_by=(_I.c.due_date, _I.c.id), **running).label("total"),
    ).subquery("running_due")
    due = (
        select(running_due.c.loan_id, running_due.c.total, literal(0).label("kind"), null().label("paid_at"),
               running_due.c.id.label("installment_id"))
        .outerjoin(before, before.c.loan_id == running_due.c.loan_id)
        .where(running_due.c.covered == literal(True), running_due.c.total > earlier)
    )
    merged = union_all(recent, due).subquery("merged")
    first_payment = func.min(merged.c.paid_at).over(
        partition_by=merged.c.loan_id, order_by=(merged.c.total, merged.c.kind), rows=(0, None))
    placed = select(merged.c.loan_id, merged.c.installment_id, merged.c.kind,
                    first_payment.label("first_payment")).subquery("placed")
    instant = func.coalesce(placed.c.first_payment, _L.c.paid_stated_at, type_=UTCDateTime())
    return (
        select(placed.c.installment_id, instant.label("paid_on"), local_day(instant, _zone(window)).label("paid_day"))
        .join(_L, _L.c.id == placed.c.loan_id)
        .join(_B, _B.c.id == _L.c.borrower_id)
        .where(placed.c.kind == 0, instant.is_not(None))  # undated (payments never reach it): as if paid before
        .subquery("paid_on")
    )


#: ``paid_on()`` materialised for one report: SQLite would evaluate the windowed query once
#: per joined row; a temporary table with a primary key is read by both cure and roll rates.
PAID_ON = Table("bot_report_paid_on", MetaData(), Column("installment_id", String(64), primary_key=True),
                Column("paid_on", UTCDateTime()), Column("paid_day", Date()), prefixes=["TEMPORARY"])


@contextmanager
def paid_on_table(session: Session, window: Window) -> Iterator[Table]:
    """:data:`PAID_ON` filled for this session's connection, dropped afterwards.  A fully
    covered installment without a row was paid before the window (:func:`paid_on`)."""
    connection = session.connection()
    PAID_ON.drop(connection, checkfirst=True)
    PAID_ON.create(connection)
    try:
        session.execute(PAID_ON.insert().from_select(["installment_id", "paid_on", "paid_day"], select(paid_on(window))))
        if connection.dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {PAID_ON.name}"))
        yield PAID_ON
    finally:
        PAID_ON.drop(connection, checkfirst=True)


CURE_FIGURES = ("reached_overdue", "cured")


def cure_rows(session: Session, window: Window, po: Table) -> Iterator[RawRow]:
    """Installments overdue at their first reached contact in the window (a contact naming
    their loan), in that contact's group; ``cured`` if paid within ``cure_days`` of it.
    ``po`` is :func:`paid_on_table`'s table."""
    zone = _zone(window)
    contact_day = local_day(_A.c.occurred_at, zone)
    # Candidates first: installments still owed, or paid during or after the window (a
    # row in ``po``); most of a loan's installments were paid before it and drop out here.
    owed = _I.c.covered_minor < _I.c.amount_due_minor
    candidate = (
        select(_I.c.id, _I.c.loan_id, _I.c.due_date, owed.label("owed"), po.c.paid_on)
        .outerjoin(po, po.c.installment_id == _I.c.id)
        .where(or_(owed, po.c.installment_id.is_not(None)))
        .cte("candidate")
        .prefix_with("MATERIALIZED", dialect="postgresql")  # filtered before the join, not after
    )
    ranked = (
        select(
            candidate.c.id.label("installment_id"), _A.c.channel, _A.c.step, _A.c.source, _A.c.occurred_at,
            candidate.c.paid_on, contact_day.label("day"), _B.c.locale, _segment().label("segment"), _L.c.currency,
            func.row_number().over(partition_by=candidate.c.id, order_by=(_A.c.occurred_at, _A.c.id)).label("rn"),
        )
        .select_from(_A)
        .join(_B, _B.c.id == _A.c.borrower_id)
        .join(candidate, candidate.c.loan_id == _A.c.loan_id)
        .join(_L, _L.c.id == candidate.c.loan_id)
        .where(reached(), _in_window(_A.c.occurred_at, window), candidate.c.due_date < contact_day,
               or_(candidate.c.owed == literal(True), candidate.c.paid_on > _A.c.occurred_at))
        .subquery("ranked")
    )
    columns = [ranked.c.channel, ranked.c.step, ranked.c.source, ranked.c.locale, ranked.c.segment, ranked.c.day,
               ranked.c.currency]
    cured = and_(ranked.c.paid_on.is_not(None), ranked.c.paid_on <= shift_days(ranked.c.occurred_at, window.cure_days))
    stmt = (
        select(*columns, func.count().label("reached_overdue"), _flag(cured).label("cured"))
        .select_from(ranked)
        .where(ranked.c.rn == 1)
        .group_by(*columns)
    )
    return _rows(session, stmt, CURE_FIGURES)


# --- roll rates -------------------------------------------------------------------------

#: Days-past-due buckets at a month end: (name, least days past due); "current" is an
#: installment falling due in the next month, the ones that can roll into 1-30.
BUCKETS = (("1-30", 1), ("31-60", 31), ("61-90", 61), ("91+", 91))


def _bucket(end: date, paid_day: ColumnElement[Any]) -> ColumnElement[str]:
    covered = _I.c.covered_minor >= _I.c.amount_due_minor  # without a paid_day: paid before the window
    whens: list[tuple[ColumnElement[bool], str]] = [
        (and_(covered, or_(paid_day.is_(None), paid_day <= end)), "paid"),
        (_I.c.due_date >= end, "current"),
    ]
    for name, least in reversed(BUCKETS[1:]):
        whens.append((_I.c.due_date <= end - timedelta(days=least), name))
    return case(*whens, else_=BUCKETS[0][0])


def roll_counts(session: Session, po: Table, first: date, second: date) -> dict[tuple[str, str], int]:
    """Installments by (bucket at month end ``first``, bucket at month end ``second``); an
    installment is paid at a month end if its ``paid_day`` (:func:`paid_on_table`) is not after it."""
    paid_day = po.c.paid_day
    b0, b1 = _bucket(first, paid_day).label("b0"), _bucket(second, paid_day).label("b1")
    stmt = (
        select(b0, b1, func.count().label("n"))
        .select_from(_I)
        .outerjoin(po, po.c.installment_id == _I.c.id)
        .where(_I.c.due_date < second)
        .group_by(b0, b1)
    )
    return {(row.b0, row.b1): int(row.n) for row in session.execute(stmt)}
