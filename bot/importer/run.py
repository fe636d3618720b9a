"""One ``bot import`` run: check every file, then import them all in one transaction.

Order of work:

1. :func:`~bot.importer.source.inspect` every file (exists, UTF-8, header
   recognised); any problem stops the run before anything is imported.
2. Sort the files in dependency order (borrowers, loans, installments,
   payments, contacts), whatever the order given.
3. In ONE database transaction, stream each file in batches of
   :data:`BATCH_SIZE` rows: look up references per batch, validate, write.
   Add an :class:`~bot.db.models.AuditEvent` with the counts.  Commit.
4. Only then move each file's rejects into ``<file>.rejects.csv``.

On any error or Ctrl-C the transaction rolls back, no rejects file changes,
and the error says that nothing was imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from bot.clock import Clock
from bot.db import Database
from bot.db.models import AuditEvent, Loan, PlanBulk, PlanDirty
from bot.errors import BotError, InputFileError, UsageError
from bot.importer.kinds import Kind
from bot.importer.rejects import RejectsFile, rejects_path
from bot.importer.rows import CHECKERS, RowChecker, RowError, RunState, Values, settle_run
from bot.importer.source import CsvSource, inspect
from bot.ledger import LoanSettlement
from bot.privacy import csv_unescape, redact

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
REFERENCED = frozenset({Kind.BORROWERS, Kind.LOANS})
SQLITE_CACHE_KIB = 16 * 1024

# Given a file about to be imported, a context manager yielding a callback
# that takes the number of bytes read so far (for a progress bar), or None.
ProgressFactory = Callable[[CsvSource], AbstractContextManager[Callable[[int], None] | None]]


class ImportFailed(BotError):
    """The import stopped on an unexpected error and was rolled back."""


@dataclass(frozen=True)
class Rejection:
    line: int
    column: str | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


@dataclass
class FileReport:
    """The outcome for one input file."""

    path: str
    kind: Kind
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejects_file: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "accepted": self.accepted,
            "rejected": [r.as_json() for r in self.rejected],
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejects_file": self.rejects_file,
        }

    def audit(self) -> dict[str, Any]:
        """Counts only: the audit log holds no personal data."""
        return {
            "file": Path(self.path).name,
            "kind": self.kind.value,
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


def inspect_all(paths: Sequence[str | Path], kind: Kind | None = None) -> list[CsvSource]:
    """Check every file before importing any; returned in dependency order."""
    if not paths:
        raise UsageError("no files to import")
    sources: list[CsvSource] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        key = path.resolve()
        if key in seen:
            raise UsageError(f"{given}: the same file is given twice")
        seen.add(key)
    # A shell glob such as data/*.csv also matches the rejects files of an earlier
    # run.  Importing X.csv and X.csv.rejects.csv together would write both the
    # fixed and the unfixed rows, or let a rejected duplicate overwrite its original.
    for given in paths:
        original = Path(given).resolve()
        companion = rejects_path(original)
        if companion in seen:
            raise UsageError(
                f"{companion.name} is the rejects file of {given} from an earlier run; "
                "import it on its own after fixing its rows"
            )
    for given in paths:
        sources.append(inspect(Path(given), str(given), kind))
    return sorted(sources, key=lambda s: s.kind.order)  # stable: command-line order within a kind


def import_files(
    db: Database,
    paths: Sequence[str | Path],
    *,
    clock: Clock,
    kind: Kind | None = None,
    progress: ProgressFactory | None = None,
    settled: dict[str, LoanSettlement] | None = None,
) -> list[FileReport]:
    """Import the files; raises :class:`InputFileError`/:class:`ImportFailed` with nothing imported.

    The loans whose installments or payments changed are settled by the ledger's
    rule in the same transaction (:func:`bot.ledger.settle_loans`): from the moment
    the import commits, nothing more is sent for what is paid.  ``settled``, when
    given, receives each settled loan's :class:`~bot.ledger.LoanSettlement`.
    """
    sources = inspect_all(paths, kind)
    at = clock.now()
    rejects = [RejectsFile(s.path, s.header, s.layout.kept) for s in sources]
    reports: list[FileReport] = []
    try:
        with write_transaction(db) as conn:
            state = RunState()
            bulk = _begin_bulk(conn)
            for source, rejects_file in zip(sources, rejects, strict=True):
                reports.append(_import_file(conn, source, rejects_file, state, at, progress))
            result = settle_run(conn, state, at, source="import")
            _end_bulk(conn, bulk, state.loans_changed)
            if settled is not None:
                settled.update(result)
            _audit(conn, at, reports, result)
    except BaseException as exc:
        for rejects_file in rejects:
            rejects_file.discard()
        if isinstance(exc, InputFileError):
            raise InputFileError(f"{exc}; nothing was imported") from None
        if isinstance(exc, SQLAlchemyError):
            raise ImportFailed(f"the import failed ({_describe(exc)}); nothing was imported") from None
        if isinstance(exc, Exception) and not isinstance(exc, BotError):
            log.debug("import failed", exc_info=True)
            raise ImportFailed(
                f"the import failed ({type(exc).__name__}); nothing was imported"
            ) from None
        raise
    for report, rejects_file in zip(reports, rejects, strict=True):
        final = rejects_file.commit()
        report.rejects_file = str(final) if final else None
    return reports


@contextmanager
def write_transaction(db: Database) -> Iterator[Connection]:
    """A connection in a write transaction: committed on success, rolled back on error.

    On SQLite the write lock is taken at once (see
    :func:`_sqlite_write_transaction`): the upserts' plain INSERT of rows the
    look-up found new relies on it.  ``bot import`` and the REST API's writes
    both run in one.
    """
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            _sqlite_write_transaction(conn)
        yield conn


def _begin_bulk(conn: Connection) -> int:
    """Tell the installments and payments triggers to mark nothing row by row for this run
    (bot.db.models.PlanBulk): on PostgreSQL a setting local to the run's transaction, on
    SQLite a ``plan_bulk`` row inside it; no other writer ever sees either."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT set_config('bot.plan_bulk', 'on', true)")
        return 0
    return int(conn.execute(insert(PlanBulk).values().returning(PlanBulk.id)).scalar_one())


def _end_bulk(conn: Connection, bulk: int, loans: set[str]) -> None:
    """Mark the borrowers of the loans whose installments or payments the run changed (what
    the triggers would have marked one row at a time), then give the ``plan_bulk`` row back."""
    ids = sorted(loans)
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        conn.execute(insert(PlanDirty).from_select(
            ["borrower_id"], select(Loan.borrower_id).distinct().where(Loan.id.in_(chunk))))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT set_config('bot.plan_bulk', 'off', true)")
    else:
        conn.execute(delete(PlanBulk).where(PlanBulk.id == bulk))


def _sqlite_write_transaction(conn: Connection) -> None:
    """Take SQLite's write lock now and give the connection a bigger page cache.

    The Python driver would only begin the transaction at the first INSERT,
    so the look-ups before it would run outside the transaction and another
    writer could slip in between; ``BEGIN IMMEDIATE`` makes the whole run one
    locked write transaction (readers still read, WAL).  With the default
    2 MB page cache a million-row import spends a third more CPU on page
    reads; beyond 16 MB it gains nothing measurable.
    """
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _describe(exc: SQLAlchemyError) -> str:
    """A database error without the statement's parameters (they hold personal data)."""
    origin = getattr(exc, "orig", None)
    if origin is None:
        return type(exc).__name__
    first_line = str(origin).strip().splitlines()[0] if str(origin).strip() else ""
    return f"{type(origin).__name__}: {redact(first_line)}" if first_line else type(origin).__name__


def _import_file(
    conn: Connection,
    source: CsvSource,
    rejects: RejectsFile,
    state: RunState,
    at: datetime,
    progress: ProgressFactory | None,
) -> FileReport:
    report = FileReport(path=source.label, kind=source.kind)
    checker = CHECKERS[source.kind](conn, state, at)
    checker.begin_file(source.label)
    with progress(source) if progress else nullcontext() as on_bytes:
        for batch in _batches(source, on_bytes):
            _check_batch(checker, batch, report, rejects, state, source)
            checker.flush()
    report.inserted = checker.counts.inserted
    report.updated = checker.counts.updated
    report.unchanged = checker.counts.unchanged
    return report


# A row read from the file: its line, its raw cells, and the cleaned values
# of the contract columns (None when it has the wrong number of fields).
_Row = tuple[int, list[str], Values | None]


def _batches(source: CsvSource, on_bytes: Callable[[int], None] | None) -> Iterator[list[_Row]]:
    layout = source.layout
    width = layout.width
    present = [(name, i) for name, i in layout.index.items() if i is not None]
    names = [name for name, _ in present]
    pick = itemgetter(*(i for _, i in present))
    absent = {name: "" for name, i in layout.index.items() if i is None}
    batch: list[_Row] = []
    for line, cells in source.records(on_bytes):
        values: Values | None = None
        if len(cells) == width:
            # The hot loop: C-level strip; the csv_safe quote is undone only
            # in the rare row that has a quote at all.
            picked = pick(cells)
            if "'" in "".join(picked):
                values = dict(zip(names, [csv_unescape(cell.strip()) for cell in picked]))
            else:
                values = dict(zip(names, map(str.strip, picked)))
            if absent:
                values.update(absent)
        batch.append((line, cells, values))
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_batch(
    checker: RowChecker,
    batch: list[_Row],
    report: FileReport,
    rejects: RejectsFile,
    state: RunState,
    source: CsvSource,
) -> None:
    where = f"{Path(source.label).name} line"
    checker.prepare([values for _, _, values in batch if values is not None])
    for line, cells, values in batch:
        checker.line = line
        try:
            if values is None:
                width = source.layout.width
                raise RowError(None, f"wrong number of fields: {len(cells)} where the header has {width}")
            checker.check(values)
        except RowError as err:
            report.rejected.append(Rejection(line, err.column, err.reason))
            rejects.add(line, err.column, err.reason, cells)
            # Remember rejected borrowers and loans: later files refer to them.
            if checker.kind in REFERENCED and values is not None and not err.duplicate:
                row_id = checker.row_id(values)
                if row_id:
                    state.rejected[checker.kind].setdefault(row_id, f"{where} {line}")
        else:
            report.accepted += 1


def _audit(conn: Connection, at: datetime, reports: list[FileReport],
           settled: dict[str, LoanSettlement]) -> None:
    conn.execute(
        insert(AuditEvent),
        {
            "at": at,
            "actor": "cli",
            "action": "import",
            "subject_type": None,
            "subject_id": None,
            "detail": {
                "files": [r.audit() for r in reports],
                "settled_loans": len(settled),
                "newly_paid_installments": sum(len(s.newly_paid) for s in settled.values()),
                "cancelled_attempts": sum(len(s.cancelled_attempts) for s in settled.values()),
            },
        },
    )
