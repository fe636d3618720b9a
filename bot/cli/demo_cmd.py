"""``bot demo``: a simulated week of the whole bot on a local SQLite database.

The simulation lives in :mod:`bot.demo` (docs/demo.md); this command only reads
the options and prints the portfolio summary between the import and the week.
"""

from __future__ import annotations

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
@pass_app
def demo_cmd(app: App, directory: Path, borrowers: int, days: int, seed: int, at: datetime | None,
             policy_file: Path | None) -> None:
    """Simulate a week: sample portfolio, sending, replies, payments, opt-outs, tasks.

    Creates DIR/bot.db (SQLite) whatever BOT_DATABASE_URL says, runs the bot's
    webhooks, a local Twilio sandbox and a mail server on 127.0.0.1, and for each
    day plans and sends with the real planner and dispatcher while simulated
    borrowers reply, pay, promise, dispute or opt out.  Prints per day what
    happened (counts only, nothing personal).  Nothing leaves the machine.
    """
    from bot.cli.show_cmd import _print_summary
    from bot.demo import Demo, DemoOptions
    from bot.portfolio import portfolio_summary

    start: date | None = at.astimezone(UTC).date() if at is not None else None
    options = DemoOptions(directory=directory, borrowers=borrowers, days=days, seed=seed, start=start,
                          config_file=app.config_file, policy_file=policy_file)
    demo = Demo(options, out=out_console, err=err_console)
    result = demo.run(show_portfolio=lambda session, today: _print_summary(portfolio_summary(session, today)))
    for line in result.closing:
        out_console.print(line, markup=False)
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(result.timings.items()))
    err_console.print(f"demo finished in {result.seconds:.1f} s (the week: {phases})", markup=False)


COMMANDS = [demo_cmd]
