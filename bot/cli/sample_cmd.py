"""``bot sample-data``: write a realistic sample portfolio in the import formats."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from bot.cli.common import App, err_console, pass_app
from bot.errors import UsageError
from bot.sample import KINDS, generate_portfolio, progress_bar

# Below this many borrowers the files are written in well under a second.
_PROGRESS_FROM = 5_000


def _parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-28") from None


@click.command("sample-data")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--borrowers", "-n", type=int, required=True, help="How many borrowers (at least 1).")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option(
    "--as-of",
    "as_of",
    callback=_parse_date,
    metavar="YYYY-MM-DD",
    help="The day the portfolio is a snapshot of (default: today in BOT_DEFAULT_TIMEZONE).",
)
@click.option(
    "--with-errors",
    is_flag=True,
    help="Append one bad row per rejection reason and list them in DIR/EXPECTED_ERRORS.md.",
)
@pass_app
def sample_data_cmd(
    app: App, directory: Path, borrowers: int, seed: int, as_of: date | None, with_errors: bool
) -> None:
    """Write borrowers.csv, loans.csv, installments.csv, payments.csv and contacts.csv to DIRECTORY.

    The same --borrowers, --seed and --as-of always give byte-identical files;
    without --as-of the date is today's, so files made on different days differ.
    The first borrowers are fixed scenarios (due today, overdue, several calls
    this week...) listed in docs/cli.md. No database is needed.
    """
    if borrowers < 1:
        raise UsageError(f"--borrowers must be at least 1 (got {borrowers})")
    if as_of is None:
        as_of = app.clock.now().astimezone(ZoneInfo(app.settings.default_timezone)).date()
    if borrowers >= _PROGRESS_FROM:
        with progress_bar(borrowers) as advance:
            result = generate_portfolio(
                directory, borrowers=borrowers, seed=seed, as_of=as_of,
                with_errors=with_errors, on_progress=advance,
            )  # fmt: skip
    else:
        result = generate_portfolio(
            directory, borrowers=borrowers, seed=seed, as_of=as_of, with_errors=with_errors
        )
    counts = ", ".join(f"{result.rows[kind]:,} {kind}" for kind in KINDS)
    summary = f"wrote {counts} to {directory} (as of {as_of.isoformat()}, seed {seed})"
    err_console.print(summary, markup=False, soft_wrap=True)
    if result.expected_errors is not None:
        err_console.print(f"bad rows are listed in {result.expected_errors}", markup=False, soft_wrap=True)


COMMANDS = [sample_data_cmd]
