"""Set-based reads and batched writes for the importer (SQLAlchemy Core).

Every write is one ``executemany`` of a few thousand rows; every read takes
the ids of a whole batch (``WHERE id IN (...)``, see :class:`IdList`), never
one row at a time.

Upserts only rewrite a row whose data changed::

    INSERT ... ON CONFLICT (id) DO UPDATE SET ... , updated_at = excluded.updated_at
    WHERE t.a IS DISTINCT FROM excluded.a OR t.b IS DISTINCT FROM excluded.b ...

so ``updated_at`` moves only when something changed and ``created_at`` is set
on insert only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    Table,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import NullType

from bot.db.models import Borrower, Consent, ContactAttempt, Installment, Loan, Payment

borrowers: Table = Borrower.__table__  # type: ignore[assignment]
loans: Table = Loan.__table__  # type: ignore[assignment]
installments: Table = Installment.__table__  # type: ignore[assignment]
payments: Table = Payment.__table__  # type: ignore[assignment]
consents: Table = Consent.__table__  # type: ignore[assignment]
contact_attempts: Table = ContactAttempt.__table__  # type: ignore[assignment]


@dataclass
class Counts:
    """What a write did: new rows, changed rows, rows already as in the file."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged


class IdList:
    """``column IN (<the ids of a batch>)`` with the ids bound as ONE parameter.

    An expanding ``IN`` binds one parameter per id, and SQLAlchemy's work per
    parameter costs more than the lookup itself.  PostgreSQL takes the list as
    an array (``= ANY(:ids)``), SQLite as a JSON array (``IN (SELECT value FROM
    json_each(:ids))``).
    """

    def __init__(self, conn: Connection) -> None:
        self.sqlite = conn.dialect.name == "sqlite"

    def where(self, column: ColumnElement[str]) -> ColumnElement[bool]:
        if self.sqlite:
            ids = func.json_each(bindparam("ids", type_=String())).table_valued("value")
            return column.in_(select(ids.c.value))
        return column == func.any(bindparam("ids", type_=ARRAY(String())))

    def param(self, ids: list[str]) -> dict[str, Any]:
        return {"ids": json.dumps(ids) if self.sqlite else ids}


def existing_ids(conn: Connection, table: Table, ids: Collection[str]) -> set[str]:
    """Which of these ids are rows of ``table`` (committed or written earlier in this run)."""
    if not ids:
        return set()
    id_list = IdList(conn)
    query = select(table.c.id).where(id_list.where(table.c.id))
    return set(conn.execute(query, id_list.param(list(ids))).scalars())


_LOAN_FACTS: dict[bool, Any] = {}


def loan_facts(conn: Connection, ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """``loan id -> (borrower id, currency)`` for the loans among these ids."""
    if not ids:
        return {}
    id_list = IdList(conn)
    query = _LOAN_FACTS.get(id_list.sqlite)
    if query is None:  # built once per dialect: the REST API runs it for every payment
        query = _LOAN_FACTS[id_list.sqlite] = select(loans.c.id, loans.c.borrower_id, loans.c.currency).where(
            id_list.where(loans.c.id))
    rows = conn.execute(query, id_list.param(list(ids)))
    return {loan_id: (borrower_id, currency) for loan_id, borrower_id, currency in rows}


def _insert(conn: Connection, table: Table) -> Any:
    """The dialect's own ``insert`` (the generic one has no ON CONFLICT)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


_NEW_ROW: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def insert_new(conn: Connection, table: Table, columns: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` of one row (``id``, ``columns``, and
    ``at`` for both instants): a row back means it was new.  Built once per dialect and table."""
    key = (conn.dialect.name, table.name, tuple(columns))
    statement = _NEW_ROW.get(key)
    if statement is None:
        at = bindparam("at", type_=table.c.updated_at.type)
        statement = _NEW_ROW[key] = (
            _insert(conn, table)
            .values(id=bindparam("id"), **{c: bindparam(c, type_=table.c[c].type) for c in columns},
                    created_at=at, updated_at=at)
            .on_conflict_do_nothing(index_elements=[table.c.id])
            .returning(table.c.id)
        )
    return statement


def _instant(conn: Connection, table: Table, at: datetime) -> ColumnElement[Any]:
    """The run's instant as an SQL literal, stored exactly as a bound value would be.

    Every row of a run shares it, so it goes into the statement once instead
    of being converted for each of a million rows.
    """
    column_type = table.c.updated_at.type
    sql = literal(at, column_type).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return literal_column(str(sql), column_type)


def _to_db(conn: Connection, table: Table, name: str) -> Callable[[Any], Any] | None:
    """The conversion SQLAlchemy applies to a value of this column before the driver sees it."""
    impl = table.c[name].type.dialect_impl(conn.dialect)
    return impl.bind_processor(conn.dialect)  # type: ignore[no-any-return]


class ExecuteMany:
    """A Core statement compiled once and run with the driver's ``executemany``.

    ``Connection.execute(statement, rows)`` re-processes every parameter of
    every row in Python: about 7 µs a row, half as much again as SQLite's own
    work for the insert.  Here SQLAlchemy compiles the statement once (for
    SQLite with named parameters, so rows stay dicts) and the rows go to
    :meth:`~sqlalchemy.engine.Connection.exec_driver_sql`, converted only for
    the columns whose type has a bind conversion (dates on SQLite, UTC
    instants, booleans) — the same conversion SQLAlchemy would apply.
    """

    def __init__(self, conn: Connection, statement: Any, table: Table, keys: Sequence[str]) -> None:
        dialect = conn.dialect
        target = sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect
        self.sql = str(statement.compile(dialect=target, column_keys=list(keys)))
        self.convert = [(k, p) for k in keys if (p := _to_db(conn, table, k)) is not None]

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Execute for these rows (converted in place: the caller is done with them)."""
        for row in rows:
            for key, convert in self.convert:
                row[key] = convert(row[key])
        conn.exec_driver_sql(self.sql, rows)  # type: ignore[arg-type]


class Upserter:
    """Writes batches of one table, counting new, changed and unchanged rows.

    Before each write the batch's existing rows are read with one set-based
    query and compared with the file, which gives exact counts on every
    backend (``rowcount`` of an ``executemany`` is not reliable on all
    drivers) and keeps unchanged rows out of the write altogether.  The write
    itself is still the guarded upsert described in the module docstring.

    The comparison is made in the database's own representation: stored
    values are read raw (no result conversion, which for SQLite dates is a
    slow string parse) and the file's values go through the columns' bind
    conversion, exactly as they would be written.
    """

    def __init__(self, conn: Connection, table: Table, data_columns: Sequence[str], at: datetime,
                 *, on_write: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.conn = conn
        self.table = table
        self.on_write = on_write  # told the rows about to be inserted or changed
        self.columns = tuple(data_columns)
        now = _instant(conn, table, at)
        stmt = _insert(conn, table).values(created_at=now, updated_at=now)
        excluded = stmt.excluded
        changed = or_(*(table.c[name].is_distinct_from(excluded[name]) for name in self.columns))
        values: dict[str, Any] = {name: excluded[name] for name in self.columns}
        values["updated_at"] = excluded["updated_at"]
        self.statement = stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_=values, where=changed
        )
        self._ids = IdList(conn)
        self._query = select(
            table.c.id, *(type_coerce(table.c[name], NullType()) for name in self.columns)
        ).where(self._ids.where(table.c.id))
        self._to_db = tuple((name, _to_db(conn, table, name)) for name in self.columns)
        keys = ("id", *self.columns)
        self._upsert = ExecuteMany(conn, self.statement, table, keys)
        # SQLite: rows the look-up found new take a plain INSERT, which costs
        # SQLite a third less than the upsert.  Safe because the run holds
        # SQLite's write lock from its first statement (see run.py), so no
        # one else can add the same id in between.  PostgreSQL has no such
        # lock: every row goes through the upsert there.
        self._insert = (
            ExecuteMany(conn, _insert(conn, table).values(created_at=now, updated_at=now), table, keys)
            if conn.dialect.name == "sqlite"
            else self._upsert
        )

    def _existing(self, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        rows = self.conn.execute(self._query, self._ids.param(ids))
        return {row[0]: tuple(row[1:]) for row in rows}

    def write(self, rows: Sequence[dict[str, Any]]) -> Counts:
        """Upsert rows keyed by ``id`` with the data columns (no timestamps)."""
        if not rows:
            return Counts()
        existing = self._existing([row["id"] for row in rows])
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for row in rows:
            before = existing.get(row["id"])
            if before is None:
                new.append(row)
            elif before != tuple(row[n] if bind is None else bind(row[n]) for n, bind in self._to_db):
                changed.append(row)
        if self.on_write is not None and (new or changed):
            self.on_write(new + changed)
        if new:
            self._insert.run(self.conn, new)
        if changed:
            self._upsert.run(self.conn, changed)
        return Counts(
            inserted=len(new), updated=len(changed), unchanged=len(rows) - len(new) - len(changed)
        )


class ConsentWriter:
    """Upserts ``granted`` only: opt-outs and address flags are never touched."""

    def __init__(self, conn: Connection, at: datetime) -> None:
        self.conn = conn
        stmt = _insert(conn, consents).values(updated_at=_instant(conn, consents, at))
        self.statement = stmt.on_conflict_do_update(
            index_elements=[consents.c.borrower_id, consents.c.channel, consents.c.address],
            set_={"granted": stmt.excluded.granted, "updated_at": stmt.excluded.updated_at},
            where=consents.c.granted.is_distinct_from(stmt.excluded.granted),
        )
        self._many = ExecuteMany(conn, self.statement, consents, self.KEYS)

    KEYS = ("borrower_id", "channel", "address", "granted")

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Rows of :attr:`KEYS`."""
        if rows:
            self._many.run(self.conn, rows)


class ContactWriter:
    """Imported history is append-only: a contact imported before is left alone."""

    def __init__(self, conn: Connection, at: datetime) -> None:
        self.conn = conn
        now = _instant(conn, contact_attempts, at)
        stmt = _insert(conn, contact_attempts).values(created_at=now, updated_at=now)
        self.statement = stmt.on_conflict_do_nothing(index_elements=[contact_attempts.c.dedupe_key])
        self._many = ExecuteMany(conn, self.statement, contact_attempts, self.KEYS)

    KEYS = (
        "dedupe_key",
        "borrower_id",
        "loan_id",
        "channel",
        "source",
        "status",
        "outcome",
        "occurred_at",
    )

    def write(self, rows: Sequence[dict[str, Any]]) -> Counts:
        if not rows:
            return Counts()
        column = contact_attempts.c.dedupe_key
        id_list = IdList(self.conn)
        query = select(column).where(id_list.where(column))
        known = set(self.conn.execute(query, id_list.param([row["dedupe_key"] for row in rows])).scalars())
        todo = [row for row in rows if row["dedupe_key"] not in known]
        if todo:
            self._many.run(self.conn, todo)
        return Counts(inserted=len(todo), unchanged=len(rows) - len(todo))
