"""Shared fixtures.

Database tests take the ``db`` fixture and run once on SQLite and once on
PostgreSQL (127.0.0.1:5432, database ``test``, trust auth by default; set
``BOT_TEST_PG_URL`` to point elsewhere and ``BOT_TEST_DATABASES=sqlite`` to run
only SQLite locally).  Each PostgreSQL test session works in a schema of its
own, so parallel runs and a developer's data never collide.

Borrowers, consents, loans and installments are written by tests/builders.py
(the ``build`` fixture, or its functions inside a test's own session).

With ``CI=true`` a skipped test fails the run: CI must have every dependency.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from builders import Build

from bot.clock import FixedClock
from bot.db import Database
from bot.db.migrate import upgrade
from bot.db.models import Base

PG_URL = os.environ.get("BOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("BOT_TEST_DATABASES", "sqlite,postgresql").split(",") if b.strip()]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        sys.stderr.write(f"\nCI=true: {skipped} test(s) were skipped; every dependency must be present in CI\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- databases -------------------------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_schema() -> Iterator[str]:
    import psycopg

    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = f"bot_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        conn = psycopg.connect(plain, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {plain}: {exc}")
    conn.execute(f'CREATE SCHEMA "{schema}"')
    url = _pg_url_for(schema)
    db = Database(url)
    upgrade(db.engine)
    db.dispose()
    try:
        yield schema
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


def _pg_url_for(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database at the current schema, on each backend."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "bot.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
    elif request.param == "postgresql":
        yield _empty_pg(request)
    else:  # pragma: no cover - configuration error
        raise ValueError(f"unknown backend {request.param!r} in BOT_TEST_DATABASES")


def _empty_pg(request: pytest.FixtureRequest) -> str:
    """The URL of this session's PostgreSQL schema, emptied."""
    url = _pg_url_for(request.getfixturevalue("_pg_schema"))
    db = Database(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()
    return url


@pytest.fixture
def pg_db_url(request: pytest.FixtureRequest) -> str:
    """An empty PostgreSQL database only, for what only PostgreSQL has (row locks, killed
    connections).  Not parametrized, so nothing is skipped on SQLite; skipped only when
    BOT_TEST_DATABASES leaves PostgreSQL out (never in CI)."""
    if "postgresql" not in BACKENDS:
        pytest.skip("BOT_TEST_DATABASES leaves PostgreSQL out")
    return _empty_pg(request)


@pytest.fixture
def pg_db(pg_db_url: str) -> Iterator[Database]:
    database = Database(pg_db_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def build(db: Database) -> Build:
    """The test data builder (tests/builders.py) on ``db``: ``build.account("B1", due=...)``."""
    return Build(db)


# --- clock and CLI -----------------------------------------------------------


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 28, 15, 0, tzinfo=UTC))


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_bot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run the real ``bot`` entry point in-process; returns exit code and output."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("BOT_") and not key.startswith("BOT_TEST_"):
            monkeypatch.delenv(key)

    def run(*args: str, db_url: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        from bot.cli import main

        argv = list(args)
        if db_url is not None:
            argv = ["--database-url", db_url, *argv]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.ExitStack() as stack:
            for key, value in (env or {}).items():
                stack.enter_context(_setenv(key, value))
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@contextlib.contextmanager
def _setenv(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
