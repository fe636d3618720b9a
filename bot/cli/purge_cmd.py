"""``bot purge``: delete what is past its retention period (docs/operations.md, "Retention")."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import click

from bot.cli.common import (
    App,
    err_console,
    out_console,
    parse_instant,
    pass_app,
    print_json,
)


class DateOrInstant(click.ParamType):
    """A calendar date (midnight UTC) or an ISO 8601 instant with an offset."""

    name = "DATE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            return parse_instant(text, param="--before")


@click.command("purge")
@click.option("--before", type=DateOrInstant(), default=None,
              help="Delete everything older than this date (YYYY-MM-DD, midnight UTC) or instant in every "
                   "category; default: each category's retention_*_days setting.")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--batch-size", type=click.IntRange(min=1, max=100_000), default=1000, show_default=True,
              help="Rows per transaction.")
@pass_app
def purge_cmd(app: App, before: datetime | None, dry_run: bool, as_json: bool, batch_size: int) -> None:
    """Delete recordings, transcripts, contact attempts, audit events, webhook
    deliveries, notes, closed tasks, resolved promises and answered or expired surveys
    past their retention (retention_*_days; 0 keeps a category forever).

    Everything about a borrower on an active legal hold is kept.  Deletes in batches
    of --batch-size rows, one transaction each, printing progress; --dry-run counts only.
    """
    from bot.retention import purge

    now = app.clock.now()
    if before is not None and before > now:
        raise click.BadParameter("is in the future", param_hint="--before")

    def progress(what: str, done: int) -> None:
        if not as_json:
            err_console.print(f"  {what}: {done} so far", markup=False)

    report = purge(app.db, app.settings, now, before=before, dry_run=dry_run, batch_size=batch_size,
                   progress=progress)
    if as_json:
        print_json(report.to_json())
        return
    verb = "would go" if dry_run else "removed"
    for name, cutoff in report.cutoffs.items():
        out_console.print(f"{name}: " + ("kept forever" if cutoff is None else f"before {cutoff.isoformat()}"),
                          markup=False)
    for what, count in report.counts.items():
        out_console.print(f"{what}: {count} {verb}", markup=False)
    if report.files_removed:
        out_console.print(f"recording files removed: {report.files_removed}", markup=False)
    err_console.print(f"{report.total} rows {verb}" + (" (dry run)" if dry_run else "")
                      + f"; borrowers on legal hold kept whole: {report.held_borrowers}", markup=False)


COMMANDS = [purge_cmd]
