"""Transactions that survive lock conflicts and a lost database connection.

PostgreSQL aborts one of two transactions that wait for each other's row locks
(``40P01`` deadlock detected) and, at the serializable level, a transaction
that conflicts with a concurrent one (``40001``).  Nothing was committed, so
running the whole transaction again is correct: :func:`transaction` does that
a few times, with a short jittered pause.

The bot's writers also take their row locks in one order, so deadlocks should
not happen at all (docs/dispatch.md, "Lock order"): ``contact_attempts``
before ``call_sessions`` and consent rows, and several rows of one table in id
order (:func:`lock_ids`; rate buckets in key order).  The retry is the safety
net for what the order does not cover.

A lost connection (the server restarted, a failover, a connection killed by an
administrator) is an :class:`~sqlalchemy.exc.OperationalError`.  The engine
checks a pooled connection before use (``pool_pre_ping``), so once the server
is back the next transaction works; :func:`transaction` retries it only when
asked (``outage_tries``), the passes of ``bot tick`` and ``bot run`` retry
whole passes (:func:`retry_pass`), and when they give up they raise
:class:`~bot.errors.DatabaseUnavailable`, a one-line message without SQL or
parameters.

:data:`RETRIES` counts the retries per kind (``deadlock``, ``serialization``,
``disconnect``) in this process, for tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from bot.errors import DatabaseUnavailable

__all__ = [
    "RETRIES",
    "conflict_kind",
    "describe",
    "is_outage",
    "lock_ids",
    "outage_in",
    "retried",
    "retry_pass",
    "transaction",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: SQLSTATEs after which the whole transaction is simply run again.
CONFLICTS = {"40P01": "deadlock", "40001": "serialization"}
CONFLICT_TRIES = 6
OUTAGE_PAUSE = 0.5  # seconds before the first retry after a lost connection, doubled each time

RETRIES: Counter[str] = Counter()
_lock = threading.Lock()


def _count(kind: str) -> None:
    with _lock:
        RETRIES[kind] += 1


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, exc):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def conflict_kind(exc: BaseException) -> str | None:
    """``deadlock`` or ``serialization`` when ``exc`` aborted a transaction that may simply run again."""
    if not isinstance(exc, DBAPIError):
        return None
    return CONFLICTS.get(_sqlstate(exc) or "")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or the connection was lost."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if not isinstance(exc, DBAPIError) or conflict_kind(exc) is not None:
        return False
    if exc.connection_invalidated:
        return True
    # SQLite's OperationalError is mostly "database is locked" (a busy writer), not an outage.
    return isinstance(exc, OperationalError) and type(exc.orig).__module__.split(".")[0] != "sqlite3"


def describe(exc: BaseException) -> str:
    """What went wrong, in words that carry no SQL and no parameters."""
    if isinstance(exc, DatabaseUnavailable):
        return str(exc)
    kind = conflict_kind(exc)
    if kind:
        return f"{kind} ({_sqlstate(exc)})"
    orig = getattr(exc, "orig", None)
    state = _sqlstate(exc)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    return f"{name}" + (f" (SQLSTATE {state})" if state else "")


def lock_ids(session: Session, model: Any, ids: Sequence[int]) -> None:
    """Lock rows of ``model`` by id in ascending order (PostgreSQL; SQLite has one writer anyway).

    Every transaction that updates several rows of a table locks them first in
    the same order, so two such transactions never wait for each other in a cycle.
    """
    if not ids or session.get_bind().dialect.name != "postgresql":
        return
    table = model.__table__
    unique = sorted(set(ids))
    for start in range(0, len(unique), 5000):
        session.execute(select(table.c.id).where(table.c.id.in_(unique[start:start + 5000]))
                        .order_by(table.c.id).with_for_update()).all()


def retried(run: Callable[[], T], *, what: str, tries: int = CONFLICT_TRIES, outage_tries: int = 0,
            sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> T:
    """Call ``run`` (which opens, commits and closes a transaction of its own) and call it again
    after a deadlock or a serialization failure (up to ``tries`` calls in all), and after a lost
    connection ``outage_tries`` times more, pausing :data:`OUTAGE_PAUSE` seconds, doubled each time.
    ``run`` must have no effect outside its transaction (it may run more than once).

    Raises the last conflict error, or :class:`DatabaseUnavailable` once the outage retries are spent.
    """
    rng = rng or random.Random()
    conflicts = outages = 0
    while True:
        try:
            return run()
        except DBAPIError as exc:
            kind = conflict_kind(exc)
            if kind is not None:
                conflicts += 1
                if conflicts >= tries:
                    raise
                _count(kind)
                log.warning("%s: %s, running the transaction again (%d of %d)", what, kind, conflicts + 1, tries)
                sleep(rng.uniform(0.005, 0.02) * 2 ** min(conflicts - 1, 4))
                continue
            if not is_outage(exc):
                raise
            outages += 1
            if outages > outage_tries:
                raise DatabaseUnavailable(f"{what}: the database is unavailable ({describe(exc)})") from None
            _count("disconnect")
            log.warning("%s: database connection lost (%s); trying again (%d of %d)", what, describe(exc),
                        outages, outage_tries)
            sleep(OUTAGE_PAUSE * 2 ** (outages - 1))


def transaction(db: Any, work: Callable[[Session], T], *, what: str, lock: Any = None, **retry: Any) -> T:
    """Run ``work(session)`` in a transaction of ``db``, commit, and run it again as :func:`retried`
    says (``retry``: its ``tries``, ``outage_tries``, ``sleep``).  ``lock`` (a context manager) is
    held around each try (the dispatcher's SQLite lock)."""

    def once() -> T:
        with lock if lock is not None else contextlib.nullcontext(), db.sessions() as session, session.begin():
            return work(session)

    return retried(once, what=what, **retry)


def retry_pass(run: Callable[[], T], *, what: str, tries: int, pause: float = 2.0,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a whole pass (planning, dispatch) again when the database went away during it, up to
    ``tries`` times with a growing pause; then :class:`DatabaseUnavailable` (one line, no SQL).

    A dispatch pass may run again safely: what was sent is recorded or left ``sending``
    for reconciliation, and claims of the failed pass are this worker's own (same worker id).
    """
    for attempt in range(1, tries + 1):
        try:
            return run()
        except BaseException as exc:
            cause = outage_in(exc)
            if cause is None:
                raise
            if attempt >= tries:
                raise DatabaseUnavailable(f"{what}: the database is unavailable after {tries} tries "
                                          f"({describe(cause)})") from None
            _count("disconnect")
            log.warning("%s: the database is unavailable (%s); the pass runs again in %.1f s (%d of %d)",
                        what, describe(cause), pause * attempt, attempt + 1, tries)
            sleep(pause * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def outage_in(exc: BaseException) -> BaseException | None:
    """The database outage behind ``exc`` (itself, inside an exception group, or its cause), if any."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if is_outage(current):
            return current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for nested in (current.__cause__, current.__context__):
            if nested is not None:
                todo.append(nested)
    return None
