"""``bot import``: load a portfolio from CSV files (formats in docs/formats.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bot.cli.common import App, err_console, out_console, pass_app, print_json
from bot.importer import FileReport, Kind, import_files
from bot.importer.source import CsvSource

# Files smaller than this import too fast for a progress bar to help.
PROGRESS_MIN_BYTES = 1_000_000


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--kind",
    type=click.Choice([k.value for k in Kind], case_sensitive=False),
    help="Kind of every file given (default: recognised from each file's header).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@pass_app
def import_cmd(app: App, files: tuple[str, ...], kind: str | None, as_json: bool) -> int:
    """Import borrowers, loans, installments, payments and contact history from CSV.

    \b
    Files are imported in dependency order (borrowers, loans, installments,
    payments, contacts) in one transaction; re-importing a file changes
    nothing that has not changed.  Rejected rows are listed on stderr and
    written to FILE.rejects.csv beside each input.

    Exit status: 0 all rows accepted, 1 some rows rejected (the others were
    imported), 2 a file could not be read or recognised, or the import failed
    (then nothing was imported).
    """
    try:
        reports = import_files(
            app.db,
            list(files),
            clock=app.clock,
            kind=Kind(kind.lower()) if kind else None,
            progress=_progress_bar,
        )
    except KeyboardInterrupt:
        err_console.print("interrupted: nothing was imported (the transaction was rolled back)")
        raise
    for report in reports:
        for rejection in report.rejected:
            where = f"{report.path}:{rejection.line}: "
            column = f"{rejection.column}: " if rejection.column else ""
            click.echo(where + column + rejection.reason, err=True)
    if as_json:
        print_json({"files": [r.as_json() for r in reports]})
    else:
        _summary(reports)
    return 1 if any(r.rejected for r in reports) else 0


def _summary(reports: list[FileReport]) -> None:
    table = Table(title="Import", title_justify="left")
    table.add_column("File", overflow="fold", min_width=24)
    table.add_column("Kind", no_wrap=True)
    for name in ("Accepted", "Rejected", "Inserted", "Updated", "Unchanged"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in reports:
        table.add_row(
            r.path,
            r.kind.value,
            str(r.accepted),
            str(len(r.rejected)),
            str(r.inserted),
            str(r.updated),
            str(r.unchanged),
        )
    out_console.print(table)
    for r in reports:
        if r.rejects_file:
            out_console.print(f"rejected rows of {r.path} are in {r.rejects_file}", markup=False)


@contextmanager
def _progress_bar(source: CsvSource) -> Iterator[Callable[[int], None] | None]:
    """A transient bar by bytes read, on a terminal and for files over ~1 MB only."""
    if not err_console.is_terminal or source.size < PROGRESS_MIN_BYTES:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(f"importing {source.label}", total=source.size)
        yield lambda done: bar.update(task, completed=done)


COMMANDS = [import_cmd]
