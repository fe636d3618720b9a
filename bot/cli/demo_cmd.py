"""``bot demo``: the whole bot on a local SQLite database, start to finish.

Later parts of the bot extend it (a simulated week of sending and replies,
calls, the console); each step prints what it did.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from bot.cli.common import INSTANT, App, clock_for, err_console, out_console, pass_app


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the demo database and sample files (recreated).")
@click.option("--borrowers", type=click.IntRange(min=1, max=200_000), default=500, show_default=True,
              help="How many sample borrowers.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sample portfolio.")
@click.option("--at", type=INSTANT, help="Run the demo as of this instant (default: now).")
@pass_app
def demo_cmd(app: App, directory: Path, borrowers: int, seed: int, at: datetime | None) -> None:
    """Create a database, generate and import a sample portfolio, summarise and plan it.

    Uses DIR/bot.db (SQLite), whatever BOT_DATABASE_URL says, so it never touches
    a real database.  Nothing leaves the machine.
    """
    from bot.cli.plan_cmd import _print_report, _policy
    from bot.cli.show_cmd import _print_summary
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.importer import import_files
    from bot.portfolio import portfolio_summary
    from bot.sample import write_portfolio
    from bot.scheduler.planner import plan

    clock = clock_for(app, at)
    now = clock.now()
    zone = ZoneInfo(app.settings.default_timezone)
    directory.mkdir(parents=True, exist_ok=True)
    db_path = directory / "bot.db"
    for stale in (db_path, db_path.with_name("bot.db-wal"), db_path.with_name("bot.db-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    db = Database(url)
    try:
        _step(1, f"create the database {db_path}")
        upgrade(db.engine)

        _step(2, f"write a sample portfolio of {borrowers} borrowers (seed {seed}) to {directory}/")
        files = write_portfolio(directory, borrowers=borrowers, seed=seed, as_of=now.astimezone(zone).date(),
                                progress=borrowers >= 5_000)

        _step(3, "import it")
        reports = import_files(db, [files[k] for k in ("borrowers", "loans", "installments", "payments",
                                                         "contacts")], clock=clock)
        for r in reports:
            out_console.print(f"  {r.kind.value:<13} {r.accepted:>8,} rows accepted, {len(r.rejected)} rejected",
                              markup=False)

        _step(4, "portfolio summary")
        with db.session() as session:
            _print_summary(portfolio_summary(session, now.astimezone(zone).date()))

        _step(5, f"plan today's contacts at {now.isoformat(timespec='seconds')}")
        policy = _policy(app, None)
        with db.sessions() as session:
            report = plan(session, now, policy=policy, default_timezone=app.settings.default_timezone, limit=10)
        _print_report(report)
    finally:
        db.dispose()

    out_console.print()
    out_console.print("Explore it (personal data is masked unless you add --reveal, which is audited):",
                      markup=False)
    for example in ("summary", "show B0000001", "why B0000002", "check B0000003 --channel voice",
                    "plan --dry-run"):
        out_console.print(f"  .venv/bin/bot --database-url {url} {example}", markup=False)


def _step(n: int, text: str) -> None:
    err_console.print(f"[bold]demo {n}:[/bold] ", end="")
    err_console.print(text, markup=False)


COMMANDS = [demo_cmd]
