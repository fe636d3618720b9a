"""``bot user``: console users (add, set, list, disable, enable, unlock); docs/cli.md, docs/console.md."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from bot.cli.common import App, err_console, out_console, pass_app, print_json
from bot.console.users import (
    ROLES,
    UserError,
    add_user,
    list_users,
    set_disabled,
    set_locale,
    set_timezone,
    unlock_user,
    validate_locale,
    validate_password,
    validate_timezone,
)
from bot.console.i18n import LOCALES

_LOCALE_HELP = f"The console's language for this user: {', '.join(LOCALES)} (default: console_default_locale)."


@click.group("user")
def user_group() -> None:
    """Console users and their roles (viewer, supervisor, admin)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise UserError("password: nothing was read from standard input")
        return validate_password(password)
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return validate_password(password)


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do (docs/console.md).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of prompting.")
@click.option("--timezone", default=None, metavar="ZONE",
              help="The IANA zone the console shows this user times in (default UTC), e.g. Europe/Paris.")
@click.option("--locale", default=None, metavar="LOCALE", help=_LOCALE_HELP)
@pass_app
def add_cmd(app: App, name: str, role: str, password_stdin: bool, timezone: str | None, locale: str | None) -> None:
    """Add a console user.  The password (12 characters or more) is prompted for, or read with
    --password-stdin; it is stored as an argon2id hash only."""
    validate_timezone(timezone)
    validate_locale(locale)
    password = _read_password(password_stdin)
    with app.db.session() as session:
        add_user(session, name, role, password, at=app.clock.now(), actor="cli", timezone=timezone, locale=locale)
    err_console.print(f"added user {name} ({role})", markup=False)


@user_group.command("set")
@click.argument("name")
@click.option("--timezone", default=None, metavar="ZONE",
              help='The IANA zone the console shows this user times in; "" for UTC.')
@click.option("--locale", default=None, metavar="LOCALE", help=_LOCALE_HELP + ' "" for the default.')
@pass_app
def set_cmd(app: App, name: str, timezone: str | None, locale: str | None) -> None:
    """Change a user's time zone or language (what is not given stays as it is)."""
    if timezone is None and locale is None:
        raise UserError("give --timezone or --locale (or both)")
    validate_timezone(timezone)
    validate_locale(locale)
    with app.db.session() as session:
        if timezone is not None:
            set_timezone(session, name, timezone, at=app.clock.now())
        if locale is not None:
            set_locale(session, name, locale, at=app.clock.now())
    err_console.print(f"updated user {name}", markup=False)


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_cmd(app: App, as_json: bool) -> None:
    """List console users with their role and state."""
    now = app.clock.now()
    with app.db.session() as session:
        users = list_users(session)
    rows = [{
        "name": u.name, "role": u.role,
        "state": "disabled" if u.disabled else ("locked" if u.locked_until and u.locked_until > now else "active"),
        "failed_logins": u.failed_logins,
        "locked_until": u.locked_until.isoformat() if u.locked_until and u.locked_until > now else None,
        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
        "created_at": u.created_at.isoformat(),
        "timezone": u.timezone, "locale": u.locale,
    } for u in users]
    if as_json:
        print_json(rows)
        return
    if not rows:
        err_console.print("no console users; add one with: bot user add NAME --role admin")
        return
    table = Table("name", "role", "state", "failed logins", "last sign-in", "zone", "language")
    for row in rows:
        table.add_row(row["name"], row["role"], row["state"], str(row["failed_logins"]), row["last_login_at"] or "",
                      row["timezone"] or "", row["locale"] or "")
    out_console.print(table)


@user_group.command("disable")
@click.argument("name")
@pass_app
def disable_cmd(app: App, name: str) -> None:
    """Disable a user and end their sessions (the account is kept for the audit log)."""
    with app.db.session() as session:
        set_disabled(session, name, True, at=app.clock.now())
    err_console.print(f"disabled user {name}; their sessions are ended", markup=False)


@user_group.command("enable")
@click.argument("name")
@pass_app
def enable_cmd(app: App, name: str) -> None:
    """Enable a disabled user again."""
    with app.db.session() as session:
        set_disabled(session, name, False, at=app.clock.now())
    err_console.print(f"enabled user {name}", markup=False)


@user_group.command("unlock")
@click.argument("name")
@pass_app
def unlock_cmd(app: App, name: str) -> None:
    """Lift a lock-out after too many wrong passwords."""
    with app.db.session() as session:
        unlock_user(session, name, at=app.clock.now())
    err_console.print(f"unlocked user {name}", markup=False)


COMMANDS = [user_group]
