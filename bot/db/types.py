"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: The largest row id both databases store: the integer primary keys are ``INTEGER``,
#: 32-bit signed on PostgreSQL (SQLite's are 64-bit).  A larger number cannot name a
#: row, and the drivers fail on it (PostgreSQL: "integer out of range"; SQLite, at 2^63
#: and above: ``OverflowError``), so the web layer answers it itself (404 on a console
#: page, 400 on a webhook) and never asks the database.
MAX_ROW_ID = 2**31 - 1


def is_row_id(value: int) -> bool:
    """``value`` can be the id of a row: 1 to :data:`MAX_ROW_ID`."""
    return 0 < value <= MAX_ROW_ID


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, always stored in UTC and always returned timezone-aware.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text.  Naive
    datetimes are refused: an instant without a zone is a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
