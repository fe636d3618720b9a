"""Engine and session factory.

SQLite is the embedded default (WAL, foreign keys on); PostgreSQL is the
production engine.  ``Database`` bundles an engine and a session factory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import ConfigError


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"BOT_DATABASE_URL: not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend in {"postgres", "postgresql"} and parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in {"sqlite", "postgresql"}:
        raise ConfigError(
            f"BOT_DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)"
        )
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """The engine for ``url``.  On PostgreSQL a pooled connection is checked before use
    (``pool_pre_ping``): after a server restart or a killed backend the pool hands out a
    fresh connection instead of a dead one (bot.db.retry)."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    def __init__(self, url: str, *, pool_size: int | None = None, **engine_kwargs: Any) -> None:
        """``pool_size``: connections kept open (PostgreSQL; SQLite's pool is left as it is)."""
        self.url = normalise_url(url)
        if pool_size is not None and not self.url.startswith("sqlite"):
            engine_kwargs.setdefault("pool_size", pool_size)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
