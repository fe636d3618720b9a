"""Console users: ``bot user`` add/list/disable/enable/unlock, ensure_user, password hashing."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from bot.clock import FixedClock
from bot.console.users import (
    UserError,
    add_user,
    authenticate,
    ensure_user,
    has_role,
    hash_password,
    validate_name,
)
from bot.db import Database
from bot.db.models import AuditEvent, ConsoleSession, User
from test_console_support import FAST_HASHER, PASSWORD, count, fast_hashing  # noqa: F401 - fixture

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def test_passwords_are_argon2id_at_the_recommended_parameters() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    for bad in ("short", "x" * 1025):
        with pytest.raises(UserError, match="password: at"):
            hash_password(bad)


def test_names_and_roles() -> None:
    for good in ("ada", "a.b-c_d@x", "X1"):
        assert validate_name(good) == good
    for bad in ("", " ada", "-ada", "a b", "a" * 65, "<script>", "ada;drop"):
        with pytest.raises(UserError, match="user name"):
            validate_name(bad)
    assert has_role("admin", "supervisor") and has_role("supervisor", "viewer") and has_role("viewer", "viewer")
    assert not has_role("viewer", "supervisor") and not has_role("supervisor", "admin")
    assert not has_role("root", "viewer")


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_bot_user_add_list_disable_enable_unlock(db: Database, run_bot, monkeypatch: pytest.MonkeyPatch,
                                                 fast_hashing: None) -> None:
    url = db.url
    _stdin(monkeypatch, PASSWORD + "\n")
    result = run_bot("user", "add", "ada", "--role", "admin", "--password-stdin", db_url=url)
    assert result.exit_code == 0, result.output
    assert "added user ada (admin)" in result.stderr and PASSWORD not in result.output
    _stdin(monkeypatch, "another long password\r\n")
    assert run_bot("user", "add", "vic", "--role", "viewer", "--password-stdin", "--timezone", "Asia/Seoul",
                   db_url=url).exit_code == 0
    with db.session() as session:
        users = {u.name: u for u in session.scalars(select(User))}
    assert users["ada"].role == "admin" and users["ada"].password_hash.startswith("$argon2id$")
    assert (users["ada"].timezone, users["vic"].timezone) == (None, "Asia/Seoul")
    zone = run_bot("user", "add", "zed", "--role", "viewer", "--password-stdin", "--timezone", "Mars/Base",
                   db_url=url)
    assert zone.exit_code == 2 and "timezone: not a known IANA time zone" in zone.stderr
    assert FAST_HASHER.verify(users["vic"].password_hash, "another long password")  # \r\n stripped

    # Usage errors exit 2 and name the problem.
    _stdin(monkeypatch, PASSWORD + "\n")
    dup = run_bot("user", "add", "ada", "--role", "viewer", "--password-stdin", db_url=url)
    assert dup.exit_code == 2 and "exists already" in dup.stderr
    _stdin(monkeypatch, "short\n")
    short = run_bot("user", "add", "bob", "--role", "viewer", "--password-stdin", db_url=url)
    assert short.exit_code == 2 and "password: at least 12 characters" in short.stderr
    _stdin(monkeypatch, "\n")
    assert run_bot("user", "add", "bob", "--role", "viewer", "--password-stdin", db_url=url).exit_code == 2
    assert run_bot("user", "add", "bob", "--role", "root", "--password-stdin", db_url=url).exit_code == 2
    _stdin(monkeypatch, PASSWORD + "\n")
    bad_name = run_bot("user", "add", "bob smith", "--role", "viewer", "--password-stdin", db_url=url)
    assert bad_name.exit_code == 2 and "user name:" in bad_name.stderr
    assert run_bot("user", "disable", "nobody", db_url=url).exit_code == 2

    listed = run_bot("user", "list", "--json", db_url=url)
    assert [(u["name"], u["role"], u["state"]) for u in json.loads(listed.stdout)] == [
        ("ada", "admin", "active"), ("vic", "viewer", "active")]
    assert "$argon2" not in listed.output

    with db.session() as session:
        vic = session.scalar(select(User).where(User.name == "vic"))
        assert vic is not None
        session.add(ConsoleSession(id="f" * 64, user_id=vic.id, csrf_token="c" * 43, created_at=AT,
                                   expires_at=AT + timedelta(hours=8), last_seen_at=AT))
    assert run_bot("user", "disable", "vic", db_url=url).exit_code == 0
    assert count(db, ConsoleSession) == 0  # disabling ends the sessions
    assert json.loads(run_bot("user", "list", "--json", db_url=url).stdout)[1]["state"] == "disabled"
    assert run_bot("user", "enable", "vic", db_url=url).exit_code == 0
    with db.session() as session:
        session.execute(User.__table__.update().where(User.name == "vic").values(
            failed_logins=5, locked_until=datetime(2099, 1, 1, tzinfo=UTC)))
    assert json.loads(run_bot("user", "list", "--json", db_url=url).stdout)[1]["state"] == "locked"
    assert run_bot("user", "unlock", "vic", db_url=url).exit_code == 0
    assert json.loads(run_bot("user", "list", "--json", db_url=url).stdout)[1]["state"] == "active"
    table = run_bot("user", "list", db_url=url)
    assert table.exit_code == 0 and "ada" in table.stdout and "viewer" in table.stdout
    with db.session() as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["user.added", "user.added", "user.disabled", "user.enabled", "user.unlocked"]


def test_ensure_user_creates_then_resets(db: Database, fast_hashing: None) -> None:
    clock = FixedClock(AT)
    first = ensure_user(db, "demo", "supervisor", "demo password 2026", clock=clock)
    with db.session() as session:
        session.execute(User.__table__.update().values(failed_logins=9, locked_until=AT + timedelta(hours=1),
                                                       disabled=True))
    again = ensure_user(db, "demo", "admin", "a new demo password", clock=clock)
    assert first.id == again.id and count(db, User) == 1
    with db.session() as session:
        user = session.scalar(select(User))
        assert user is not None and (user.role, user.disabled, user.failed_logins, user.locked_until) == (
            "admin", False, 0, None)
        ok = authenticate(session, "demo", "a new demo password", at=AT, max_failed=5, lockout=timedelta(minutes=1))
        assert ok.ok and ok.role == "admin"
        assert not authenticate(session, "demo", "demo password 2026", at=AT, max_failed=5,
                                lockout=timedelta(minutes=1)).ok
    with pytest.raises(UserError):
        ensure_user(db, "demo", "owner", "a new demo password", clock=clock)


def test_a_weak_stored_hash_is_upgraded_at_sign_in(db: Database) -> None:
    with db.session() as session:
        session.add(User(name="old", password_hash=FAST_HASHER.hash(PASSWORD), role="viewer", failed_logins=0,
                         disabled=False, created_at=AT))
    with db.session() as session:
        assert authenticate(session, "old", PASSWORD, at=AT, max_failed=5, lockout=timedelta(minutes=1)).ok
    with db.session() as session:
        stored = session.scalar(select(User.password_hash))
    assert stored is not None and stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    with db.session() as session:
        assert add_user(session, "new", "viewer", PASSWORD, at=AT).password_hash != stored
