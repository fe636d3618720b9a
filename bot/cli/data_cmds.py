"""``bot init``: create or upgrade the database schema."""

from __future__ import annotations

import click

from bot.cli.common import App, err_console, pass_app
from bot.db.migrate import head_revision, upgrade


@click.command("init")
@pass_app
def init_cmd(app: App) -> None:
    """Create the database schema, or upgrade it to this version of the bot.

    Safe to run any number of times; it never deletes data.
    """
    before, after = upgrade(app.db.engine)
    where = app.db.engine.url.render_as_string(hide_password=True)
    if before == after:
        err_console.print(f"database {where} is up to date (revision {after})")
    elif before is None:
        err_console.print(f"created database schema in {where} (revision {after})")
    else:
        err_console.print(f"upgraded {where} from revision {before} to {after}")
    assert after == head_revision()


COMMANDS = [init_cmd]
