"""``bot demo``: a simulated week of the whole bot on a local SQLite database.

The simulation lives in :mod:`bot.demo` (docs/demo.md); this command only reads
the options and prints the portfolio summary between the import and the week.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click

from bot.cli.common import INSTANT, App, err_console, out_console, pass_app


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the demo database and sample files (recreated).")
@click.option("--borrowers", type=click.IntRange(min=1, max=20_000), default=300, show_default=True,
              help="How many sample borrowers.")
@click.option("--days", type=click.IntRange(min=1, max=31), default=7, show_default=True,
              help="How many days to simulate.")
@click.option("--seed", type=int, default=7, show_default=True,
              help="Seed of the sample portfolio and of the borrowers' behaviour.")
@click.option("--at", type=INSTANT, help="Start the week on this instant's UTC date (default: today).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Treatment policy file (default: the policy_file setting, else the built-in policy).")
@click.option("--serve/--no-serve", default=None,
              help="Keep serving the web app (the supervisor console) after the week until Ctrl-C "
                   "(default: --serve when the output is a terminal, --no-serve when it is piped or captured).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None,
              help="Port of the web app on 127.0.0.1 (default: 8000 when serving, else a free one; 0: a free one).")
@click.option("--sandbox-port", type=click.IntRange(min=0, max=65535), default=0, show_default=True,
              help="Port of the Twilio sandbox on 127.0.0.1 (0: a free one).")
@click.option("--smtp-port", type=click.IntRange(min=0, max=65535), default=0, show_default=True,
              help="Port of the demo's mail server on 127.0.0.1 (0: a free one).")
@pass_app
def demo_cmd(app: App, directory: Path, borrowers: int, days: int, seed: int, at: datetime | None,
             policy_file: Path | None, serve: bool | None, port: int | None, sandbox_port: int,
             smtp_port: int) -> None:
    """Simulate a week: sample portfolio, texts, emails and calls, replies, payments, opt-outs, tasks.

    Creates DIR/bot.db (SQLite) whatever BOT_DATABASE_URL says, runs the bot's
    web app (webhooks and supervisor console), a local Twilio sandbox and a mail
    server on 127.0.0.1, and for each day plans, sends and calls with the real
    planner and dispatcher while simulated borrowers reply, pay, promise,
    dispute or opt out, and answer calls with the keypad or in spoken Korean.
    Prints per day what happened (counts only, nothing personal), then the
    console's address and a demo login, and keeps serving it until Ctrl-C.
    Nothing leaves the machine.
    """
    from bot.cli.show_cmd import _print_summary
    from bot.demo import Demo, DemoOptions
    from bot.portfolio import portfolio_summary

    if serve is None:
        serve = sys.stdout.isatty()
    start: date | None = at.astimezone(UTC).date() if at is not None else None
    options = DemoOptions(directory=directory, borrowers=borrowers, days=days, seed=seed, start=start,
                          config_file=app.config_file, policy_file=policy_file, serve=serve, port=port,
                          sandbox_port=sandbox_port, smtp_port=smtp_port)
    demo = Demo(options, out=out_console, err=err_console)
    demo.run(show_portfolio=lambda session, today: _print_summary(portfolio_summary(session, today)))


COMMANDS = [demo_cmd]
