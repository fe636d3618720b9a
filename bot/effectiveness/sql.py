"""Two SQL expressions the metrics need that the databases spell differently.

* :class:`local_day` — the calendar day of an instant in a borrower's IANA zone.
  PostgreSQL: ``(ts AT TIME ZONE zone)::date``.  SQLite has no time zones: a
  deterministic function ``bot_local_day(ts, zone)`` is registered on the
  connection (:func:`prepare`) and computes it with :mod:`zoneinfo`.
* :class:`shift_days` — an instant ``n`` days later or earlier (PostgreSQL interval
  arithmetic; SQLite ``strftime`` on its naive UTC text, written back in the stored
  ``YYYY-MM-DD HH:MM:SS.ffffff`` form so that the two compare as text).
* :class:`minutes_started` — call minutes begun (``CEIL`` is not in every SQLite).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from bot.db.types import UTCDateTime

__all__ = ["local_day", "minutes_started", "prepare", "shift_days"]


class local_day(FunctionElement[Any]):
    """``local_day(instant, zone)``: the date of ``instant`` in ``zone``."""

    type = Date()
    inherit_cache = True
    name = "bot_local_day"


@compiles(local_day, "postgresql")
def _local_day_pg(element: local_day, compiler: SQLCompiler, **kw: Any) -> str:
    instant, zone = list(element.clauses)
    return f"CAST(timezone({compiler.process(zone, **kw)}, {compiler.process(instant, **kw)}) AS DATE)"


@compiles(local_day, "sqlite")
def _local_day_sqlite(element: local_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"bot_local_day({compiler.process(element.clauses, **kw)})"


class shift_days(FunctionElement[Any]):
    """``shift_days(instant, n)``: the instant ``n`` (a literal integer, may be negative) days later."""

    type = UTCDateTime()
    inherit_cache = True
    name = "bot_shift_days"

    def __init__(self, instant: ColumnElement[Any], days: int) -> None:
        self.days = int(days)
        super().__init__(instant)


@compiles(shift_days, "postgresql")
def _shift_days_pg(element: shift_days, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} + INTERVAL '{element.days} days')"


@compiles(shift_days, "sqlite")
def _shift_days_sqlite(element: shift_days, compiler: SQLCompiler, **kw: Any) -> str:
    # strftime keeps the microseconds, so the result compares with stored instants as text
    return f"strftime('%Y-%m-%d %H:%M:%f000', {compiler.process(element.clauses, **kw)}, '{element.days:+d} days')"


class minutes_started(FunctionElement[Any]):
    """``minutes_started(seconds)``: whole minutes begun (61 s -> 2); 0 for NULL or 0."""

    type = Integer()
    inherit_cache = True
    name = "bot_minutes_started"


@compiles(minutes_started, "postgresql")
def _minutes_pg(element: minutes_started, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(CEIL(COALESCE({compiler.process(element.clauses, **kw)}, 0) / 60.0) AS INTEGER)"


@compiles(minutes_started, "sqlite")
def _minutes_sqlite(element: minutes_started, compiler: SQLCompiler, **kw: Any) -> str:
    m = f"(COALESCE({compiler.process(element.clauses, **kw)}, 0) / 60.0)"
    return f"(CAST({m} AS INTEGER) + ({m} > CAST({m} AS INTEGER)))"


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _sqlite_local_day(text: str | None, zone: str | None) -> str | None:
    """SQLite stores instants as naive UTC text ``YYYY-MM-DD HH:MM:SS[.ffffff]``."""
    if text is None or zone is None:
        return None
    try:
        instant = datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None
    return instant.astimezone(_zone(zone)).date().isoformat()


def prepare(session: Session) -> None:
    """Make :class:`local_day` work on this session's connection (SQLite only)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        raw.create_function("bot_local_day", 2, _sqlite_local_day, deterministic=True)  # type: ignore[union-attr]

