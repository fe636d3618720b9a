"""Checking the rows of each kind of file and turning them into table rows.

One :class:`RowChecker` per input file.  The runner hands it batches: first
:meth:`~RowChecker.prepare` looks up, with set-based queries, every borrower or
loan the batch refers to; then :meth:`~RowChecker.check` validates each row
(raising :class:`RowError` naming the column and the reason) and queues the
rows to write; :meth:`~RowChecker.flush` writes the queue in one go.

A referenced borrower or loan is *known* when it is in the database, which
includes the rows this run wrote from earlier files (same transaction), and
was not rejected in this run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, ClassVar

from sqlalchemy import Connection, select

from bot.domain import AttemptSource, AttemptStatus, Channel, ContactOutcome
from bot.events import Event, emit_many, subscribed
from bot.importer import store
from bot.importer.kinds import FORMATS, Kind
from bot.importer.store import ConsentWriter, ContactWriter, Counts, Upserter
from bot.importer.values import (
    BadValue,
    parse_amount_minor,
    parse_bool,
    parse_country,
    parse_currency,
    parse_date,
    parse_email,
    parse_instant,
    parse_locale,
    parse_phone,
    parse_region,
    parse_risk_score,
    parse_segment,
    parse_zone,
    shown,
)
from bot.ledger import LoanSettlement, settle_loans

Values = dict[str, str]

MAX_ID_LENGTH = 64
_CHANNELS = frozenset(c.value for c in Channel)
_OUTCOMES = frozenset(o.value for o in ContactOutcome)


class RowError(Exception):
    """A rejected row: the column at fault (None for the row as a whole) and why."""

    def __init__(self, column: str | None, reason: str, *, duplicate: bool = False) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason
        # A later copy of an id does not make the id itself rejected.
        self.duplicate = duplicate


@dataclass
class RunState:
    """What earlier files of the same run decided, shared by all checkers."""

    # kind -> rejected id -> where its row was, e.g. "borrowers.csv line 9"
    rejected: dict[Kind, dict[str, str]] = field(default_factory=lambda: {k: {} for k in Kind})
    # kind -> id (a contact's dedupe key) -> the place of its first row in this run, in every
    # file of that kind: an int (file number << 32 | line), not a string, to keep a
    # million-row import small; :meth:`where` spells it out.
    seen: dict[Kind, dict[str, int]] = field(default_factory=lambda: {k: {} for k in Kind})
    files: list[str] = field(default_factory=list)  # the labels of the files begun, in order

    def begin_file(self, label: str) -> int:
        """Start the next file; returns what a row's line is added to for its place."""
        self.files.append(label)
        return (len(self.files) - 1) << 32

    def where(self, place: int) -> str:
        """``file:line`` of a place: the file's name, or its path as given when two files of the run
        have that name."""
        label = self.files[place >> 32]
        name = PurePath(label).name
        if sum(PurePath(other).name == name for other in self.files) > 1:
            name = label
        return f"{name}:{place & 0xFFFFFFFF}"
    # loans whose installments or payments this run inserted or changed: settled at the end
    loans_changed: set[str] = field(default_factory=set)

    def note_loans(self, rows: Sequence[dict[str, Any]]) -> None:
        self.loans_changed.update(row["loan_id"] for row in rows)


class RowChecker(ABC):
    kind: ClassVar[Kind]
    id_column: ClassVar[str | None]

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        self.conn = conn
        self.state = state
        self.counts = Counts()
        self._seen = state.seen[self.kind]
        self._base = 0
        self.line = 0  # the line of the row being checked (the runner sets it)

    def begin_file(self, label: str) -> None:
        """The rows checked from now on are from this file (duplicates name it)."""
        self._base = self.state.begin_file(label)

    def prepare(self, batch: Sequence[Values]) -> None:
        """Look up what the rows of this batch refer to (one query per table)."""

    @abstractmethod
    def check(self, values: Values) -> None:
        """Validate one row and queue what it writes, or raise :class:`RowError`."""

    @abstractmethod
    def flush(self) -> None:
        """Write the queued rows, adding to :attr:`counts`."""

    def row_id(self, values: Values) -> str:
        return values[self.id_column] if self.id_column else ""

    # --- helpers shared by the kinds ---------------------------------------------

    def _first(self, key: str) -> str | None:
        """Where the first row with ``key`` is (``file:line``) if an earlier row of this run
        had it, in this file or another of the same kind; else remember this row as the first."""
        here = self._base + self.line
        first = self._seen.setdefault(key, here)  # one look-up: this runs for every row
        return None if first == here else self.state.where(first)

    def _own_id(self, values: Values) -> str:
        """The row's id: present, not too long, and not seen before in this run."""
        assert self.id_column is not None
        row_id = values[self.id_column]
        if not row_id:
            raise RowError(self.id_column, "missing id")
        if len(row_id) > MAX_ID_LENGTH:
            raise RowError(self.id_column, f"id longer than {MAX_ID_LENGTH} characters")
        first = self._first(row_id)
        if first is not None:
            raise RowError(self.id_column, f"duplicate {self.id_column} {row_id}: first at {first}", duplicate=True)
        return row_id

    def _referenced(self, kind: Kind, column: str, ref: str, known: Collection[str]) -> str:
        if not ref:
            raise RowError(column, "missing required value")
        noun = "borrower" if kind is Kind.BORROWERS else "loan"
        where = self.state.rejected[kind].get(ref)
        if where is not None:
            raise RowError(column, f"unknown {noun} {ref} (its row in {where} was rejected)")
        if ref not in known:
            raise RowError(column, f"unknown {noun} {ref}")
        return ref

    def _lookup_ids(self, batch: Sequence[Values], column: str, kind: Kind) -> set[str]:
        rejected = self.state.rejected[kind]
        return {v[column] for v in batch if v[column] and v[column] not in rejected}


def _required(column: str, text: str) -> str:
    if not text:
        raise RowError(column, "missing required value")
    return text


# Each ``check`` names the column it is parsing in a local variable ``column``
# before each step, so one ``except BadValue`` at the end can say which column
# failed without a wrapper call per cell (this is the hot loop).


class BorrowerChecker(RowChecker):
    kind = Kind.BORROWERS
    id_column = "borrower_id"
    COLUMNS = ("full_name", "phone_e164", "email", "locale", "timezone", "region", "country", "risk_score",
               "segment")

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        super().__init__(conn, state, at)
        self._borrowers = Upserter(conn, store.borrowers, self.COLUMNS, at)
        self._consents = ConsentWriter(conn, at)
        self._rows: list[dict[str, Any]] = []
        self._consent_rows: list[dict[str, Any]] = []

    def check(self, values: Values) -> None:
        borrower_id = self._own_id(values)
        full_name = _required("full_name", values["full_name"])
        column = "country"
        try:
            country = parse_country(_required(column, values[column]))
            column = "phone"
            phone = parse_phone(values[column], country)
            column = "email"
            email = parse_email(values[column])
            column = "locale"
            locale = parse_locale(values[column])
            column = "timezone"
            zone = parse_zone(values[column])
            column = "region"
            region = parse_region(values[column], country)
            column = "consent_sms"
            sms = parse_bool(values[column])
            column = "consent_voice"
            voice = parse_bool(values[column])
            column = "consent_email"
            mail = parse_bool(values[column])
            column = "risk_score"
            risk_score = parse_risk_score(values[column])
            column = "segment"
            segment = parse_segment(values[column])
        except BadValue as exc:
            raise RowError(column, str(exc)) from None
        self._rows.append(
            {
                "id": borrower_id,
                "full_name": full_name,
                "phone_e164": phone,
                "email": email,
                "locale": locale,
                "timezone": zone,
                "region": region,
                "country": country,
                "risk_score": risk_score,
                "segment": segment,
            }
        )
        if phone:
            self._consent(borrower_id, Channel.SMS, phone, sms)
            self._consent(borrower_id, Channel.VOICE, phone, voice)
        if email:
            self._consent(borrower_id, Channel.EMAIL, email, mail)

    def _consent(self, borrower_id: str, channel: Channel, address: str, granted: bool) -> None:
        self._consent_rows.append(
            {"borrower_id": borrower_id, "channel": channel.value, "address": address, "granted": granted}
        )

    def flush(self) -> None:
        self.counts.add(self._borrowers.write(self._rows))
        self._consents.write(self._consent_rows)
        self._rows.clear()
        self._consent_rows.clear()


class LoanChecker(RowChecker):
    kind = Kind.LOANS
    id_column = "loan_id"
    COLUMNS = ("borrower_id", "product", "principal_minor", "currency", "opened_on", "risk_score", "segment")

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        super().__init__(conn, state, at)
        self._loans = Upserter(conn, store.loans, self.COLUMNS, at)
        self._rows: list[dict[str, Any]] = []
        self._borrowers: set[str] = set()

    def prepare(self, batch: Sequence[Values]) -> None:
        wanted = self._lookup_ids(batch, "borrower_id", Kind.BORROWERS)
        self._borrowers = store.existing_ids(self.conn, store.borrowers, wanted)

    def check(self, values: Values) -> None:
        loan_id = self._own_id(values)
        borrower_id = self._referenced(Kind.BORROWERS, "borrower_id", values["borrower_id"], self._borrowers)
        column = "currency"
        try:
            currency, decimals = parse_currency(values[column])
            column = "principal"
            principal = parse_amount_minor(values[column], currency, decimals)
            column = "opened_on"
            opened_on = parse_date(values[column])
            column = "risk_score"
            risk_score = parse_risk_score(values[column])
            column = "segment"
            segment = parse_segment(values[column])
        except BadValue as exc:
            raise RowError(column, str(exc)) from None
        self._rows.append(
            {
                "id": loan_id,
                "borrower_id": borrower_id,
                "product": values["product"],
                "principal_minor": principal,
                "currency": currency,
                "opened_on": opened_on,
                "risk_score": risk_score,
                "segment": segment,
            }
        )

    def flush(self) -> None:
        self.counts.add(self._loans.write(self._rows))
        self._rows.clear()


class _LoanRowChecker(RowChecker):
    """Rows that belong to a loan and carry amounts in its currency."""

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        super().__init__(conn, state, at)
        # loan id -> (borrower id, currency, decimals), for this batch's loans
        self._loans: dict[str, tuple[str, str, int]] = {}

    def prepare(self, batch: Sequence[Values]) -> None:
        wanted = self._lookup_ids(batch, "loan_id", Kind.LOANS)
        self._loans = {
            loan_id: (borrower_id, *parse_currency(currency))
            for loan_id, (borrower_id, currency) in store.loan_facts(self.conn, wanted).items()
        }

    def _loan(self, values: Values) -> tuple[str, str, int]:
        """``(loan id, currency, decimals)`` of a known loan."""
        loan_id = values["loan_id"]
        facts = self._loans.get(loan_id)
        if facts is None:  # prepare() left out loans rejected in this run
            self._referenced(Kind.LOANS, "loan_id", loan_id, self._loans)  # raises the reason
        assert facts is not None
        return loan_id, facts[1], facts[2]


class InstallmentChecker(_LoanRowChecker):
    kind = Kind.INSTALLMENTS
    id_column = "installment_id"
    COLUMNS = ("loan_id", "due_date", "amount_due_minor", "amount_paid_minor")

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        super().__init__(conn, state, at)
        self._installments = Upserter(conn, store.installments, self.COLUMNS, at, on_write=state.note_loans)
        self._rows: list[dict[str, Any]] = []

    def check(self, values: Values) -> None:
        installment_id = self._own_id(values)
        loan_id, currency, decimals = self._loan(values)
        column = "due_date"
        try:
            due_date = parse_date(values[column])
            column = "amount_due"
            due = parse_amount_minor(values[column], currency, decimals)
            column = "amount_paid"
            paid_text = values[column]
            paid = parse_amount_minor(paid_text, currency, decimals) if paid_text else 0
        except BadValue as exc:
            raise RowError(column, str(exc)) from None
        self._rows.append(
            {
                "id": installment_id,
                "loan_id": loan_id,
                "due_date": due_date,
                "amount_due_minor": due,
                "amount_paid_minor": paid,
            }
        )

    def flush(self) -> None:
        self.counts.add(self._installments.write(self._rows))
        self._rows.clear()


class PaymentChecker(_LoanRowChecker):
    kind = Kind.PAYMENTS
    id_column = "payment_id"
    COLUMNS = ("loan_id", "paid_at", "amount_minor")

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        super().__init__(conn, state, at)
        self._payments = Upserter(conn, store.payments, self.COLUMNS, at, on_write=state.note_loans)
        self._rows: list[dict[str, Any]] = []

    def check(self, values: Values) -> None:
        payment_id = self._own_id(values)
        loan_id, currency, decimals = self._loan(values)
        column = "paid_at"
        try:
            paid_at = parse_instant(values[column])
            column = "amount"
            amount = parse_amount_minor(values[column], currency, decimals, positive=True)
        except BadValue as exc:
            raise RowError(column, str(exc)) from None
        self._rows.append({"id": payment_id, "loan_id": loan_id, "paid_at": paid_at, "amount_minor": amount})

    def flush(self) -> None:
        self.counts.add(self._payments.write(self._rows))
        self._rows.clear()


class ContactChecker(_LoanRowChecker):
    """Prior contact history, so frequency limits hold from the first day."""

    kind = Kind.CONTACTS
    id_column = None

    def __init__(self, conn: Connection, state: RunState, at: datetime) -> None:
        super().__init__(conn, state, at)
        self._contacts = ContactWriter(conn, at)
        self._rows: list[dict[str, Any]] = []
        self._borrowers: set[str] = set()

    def prepare(self, batch: Sequence[Values]) -> None:
        super().prepare(batch)
        wanted = self._lookup_ids(batch, "borrower_id", Kind.BORROWERS)
        self._borrowers = store.existing_ids(self.conn, store.borrowers, wanted)

    def check(self, values: Values) -> None:
        borrower_id = self._referenced(Kind.BORROWERS, "borrower_id", values["borrower_id"], self._borrowers)
        loan_id: str | None = None
        if values["loan_id"]:
            loan_id = self._referenced(Kind.LOANS, "loan_id", values["loan_id"], self._loans)
            if self._loans[loan_id][0] != borrower_id:
                raise RowError("loan_id", f"loan {loan_id} belongs to another borrower, not {borrower_id}")
        channel = values["channel"].lower()
        if channel not in _CHANNELS:
            raise RowError("channel", "unknown channel" + _choices(channel, _CHANNELS))
        outcome = values["outcome"].lower()
        if outcome not in _OUTCOMES:
            raise RowError("outcome", "unknown outcome" + _choices(outcome, _OUTCOMES))
        try:
            occurred_at = parse_instant(values["occurred_at"])
        except BadValue as exc:
            raise RowError("occurred_at", str(exc)) from None
        key = f"import:{borrower_id}:{loan_id or ''}:{channel}:{occurred_at.astimezone(UTC).isoformat()}"
        first = self._first(key)
        if first is not None:
            raise RowError("occurred_at", f"duplicate contact: the same borrower, loan, channel and time as {first}",
                           duplicate=True)
        self._rows.append(
            {
                "dedupe_key": key,
                "borrower_id": borrower_id,
                "loan_id": loan_id,
                "channel": channel,
                "source": AttemptSource.IMPORT.value,
                "status": AttemptStatus.DONE.value,
                "outcome": outcome,
                "occurred_at": occurred_at,
            }
        )

    def flush(self) -> None:
        self.counts.add(self._contacts.write(self._rows))
        self._rows.clear()


def _choices(given: str, allowed: Collection[str]) -> str:
    what = shown(given) if given else " (empty)"
    return f"{what} (expected one of {', '.join(sorted(allowed))})"


CHECKERS: dict[Kind, type[RowChecker]] = {
    c.kind: c
    for c in (BorrowerChecker, LoanChecker, InstallmentChecker, PaymentChecker, ContactChecker)
}


@dataclass(frozen=True)
class RowWrite:
    """What :func:`write_row` did: the row's counts and the loans it settled."""

    counts: Counts
    settled: dict[str, LoanSettlement]


def write_row(conn: Connection, kind: Kind, values: Values, at: datetime) -> RowWrite:
    """Check and write ONE row of ``kind`` exactly as ``bot import`` would (the REST API's path).

    ``values`` are the file's columns (trimmed text; a column left out counts
    as empty, as an optional column missing from a header does).  The same
    checker runs its look-up, check and write for a batch of one, so a row is
    accepted, rejected (:class:`RowError`, same column and reason as in a
    rejects file) and stored the same way whichever way it comes in; a changed
    installment or payment settles its loan (:func:`bot.ledger.settle_loans`)
    as an import run does.  Runs in the caller's transaction (see
    :func:`bot.importer.run.write_transaction`).
    """
    row: Values = dict.fromkeys(FORMATS[kind].columns, "")
    row.update(values)
    state = RunState()
    checker = CHECKERS[kind](conn, state, at)
    checker.prepare([row])
    checker.check(row)
    checker.flush()
    return RowWrite(checker.counts, settle_run(conn, state, at, source="api"))


def settle_run(conn: Connection, state: RunState, at: datetime, *, source: str) -> dict[str, LoanSettlement]:
    """Settle the loans this run changed (:func:`bot.ledger.settle_loans`) and report each
    payment it wrote as a ``payment.applied`` event (bot.events), in the run's transaction.

    The payments are found by the run's instant (``updated_at``: new and changed rows
    only), and only when a webhook subscription wants the event."""
    settled = settle_loans(conn, state.loans_changed, at=at)
    if not settled or not subscribed(conn, "payment.applied"):  # type: ignore[arg-type]
        return settled
    table = store.payments
    events: list[Event] = []
    loan_ids = sorted(settled)
    for start in range(0, len(loan_ids), 500):
        for payment_id, loan_id, paid_at, amount in conn.execute(
            select(table.c.id, table.c.loan_id, table.c.paid_at, table.c.amount_minor)
            .where(table.c.loan_id.in_(loan_ids[start:start + 500]), table.c.updated_at == at)
            .order_by(table.c.paid_at, table.c.id)
        ):
            s = settled[loan_id]
            events.append(Event("payment.applied", s.borrower_id, {
                "payment_id": payment_id, "loan_id": loan_id, "amount_minor": amount, "currency": s.currency,
                "paid_at": paid_at.isoformat().replace("+00:00", "Z"), "source": source,
                "newly_paid": list(s.newly_paid), "cancelled_attempts": len(s.cancelled_attempts),
                "credit_minor": s.credit_minor,
            }, at))
    emit_many(conn, events)  # type: ignore[arg-type]
    return settled
