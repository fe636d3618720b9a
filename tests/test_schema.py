"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.db import Database
from bot.db.migrate import current_revision, head_revision, upgrade
from bot.db.models import Base


def test_migrations_match_models(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db: Database) -> None:
    assert current_revision(db.engine) == head_revision()
    before, after = upgrade(db.engine)
    assert before == after == head_revision()


def test_init_command_creates_schema(run_bot, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = run_bot("init", db_url=url)
    assert first.exit_code == 0, first.output
    assert "created database schema" in first.stderr
    second = run_bot("init", db_url=url)
    assert second.exit_code == 0
    assert "up to date" in second.stderr


def test_unsupported_database_is_a_clear_error(run_bot) -> None:
    result = run_bot("init", db_url="mysql://root@localhost/x")
    assert result.exit_code == 2
    assert "BOT_DATABASE_URL" in result.stderr and "mysql" in result.stderr
