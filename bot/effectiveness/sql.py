"""SQL expressions the metrics need that the databases spell differently.

* :class:`local_day` — the calendar day of an instant in a borrower's IANA zone.
  PostgreSQL: ``timezone(zone, ts)::date``.  SQLite has no time zones: a
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
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from bot.db.types import UTCDateTime

__all__ = ["local_day", "minutes_started", "prepare", "shift_days"]


class _Portable(FunctionElement[Any]):
    """A function each dialect spells its own way: ``templates`` maps a dialect name to a
    :meth:`str.format` pattern over the compiled arguments (and :meth:`params`)."""

    templates: ClassVar[dict[str, str]] = {}
    inherit_cache = True

    def params(self) -> dict[str, Any]:
        return {}


@compiles(_Portable)
def _compile(element: _Portable, compiler: SQLCompiler, **kw: Any) -> str:
    args = [compiler.process(clause, **kw) for clause in element.clauses]
    return element.templates[compiler.dialect.name].format(*args, **element.params())


class local_day(_Portable):
    """``local_day(instant, zone)``: the date of ``instant`` in ``zone``."""

    type = Date()
    inherit_cache = True
    name = "bot_local_day"
    templates: ClassVar[dict[str, str]] = {
        "postgresql": "CAST(timezone({1}, {0}) AS DATE)",
        "sqlite": "bot_local_day({0}, {1})",
    }


class shift_days(_Portable):
    """``shift_days(instant, n)``: the instant ``n`` (a literal integer, may be negative) days later."""

    type = UTCDateTime()
    inherit_cache = False  # ``days`` is in the SQL text, not in a cache key: never reuse compiled SQL
    name = "bot_shift_days"
    templates: ClassVar[dict[str, str]] = {
        "postgresql": "({0} + INTERVAL '{days} days')",
        # stored as text: written back in the stored form (to the millisecond) to compare as text
        "sqlite": "strftime('%Y-%m-%d %H:%M:%f000', {0}, '{days:+d} days')",
    }

    def __init__(self, instant: ColumnElement[Any], days: int) -> None:
        self.days = int(days)
        super().__init__(instant)

    def params(self) -> dict[str, Any]:
        return {"days": self.days}


class minutes_started(_Portable):
    """``minutes_started(seconds)``: whole minutes begun (61 s -> 2); 0 for NULL or 0.
    The argument must be a column (SQLite's spelling repeats it)."""

    type = Integer()
    inherit_cache = True
    name = "bot_minutes_started"
    templates: ClassVar[dict[str, str]] = {
        "postgresql": "CAST(CEIL(COALESCE({0}, 0) / 60.0) AS INTEGER)",
        "sqlite": "(CAST(COALESCE({0}, 0) / 60.0 AS INTEGER) + (COALESCE({0}, 0) / 60.0 > CAST(COALESCE({0}, 0) / 60.0 AS INTEGER)))",
    }


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
    """Make :class:`local_day` work on this session's connection (SQLite); give the
    transaction's sorts more memory (PostgreSQL, ``SET LOCAL``: this transaction only)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":  # the report's sorts and hashes stay in memory
        connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    if connection.dialect.name == "sqlite":
        raw = connection.connection.driver_connection
        raw.create_function("bot_local_day", 2, _sqlite_local_day, deterministic=True)  # type: ignore[union-attr]

