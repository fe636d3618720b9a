"""``bot report``: collection effectiveness for a window of days (docs/metrics.md)."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import click

from bot.cli.common import App, pass_app
from bot.effectiveness import DIMENSIONS

log = logging.getLogger("bot.cli.report")



@click.command("report")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="First day of the window (borrower-local calendar day).")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Day after the window's last day (the window is [from, to)).")
@click.option("--by", "by", type=click.Choice(DIMENSIONS), multiple=True,
              help="Group by this (repeat for several); groups are always split by currency.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file instead of standard output.")
@pass_app
def report_cmd(app: App, start: object, end: object, by: tuple[str, ...], fmt: str, out: Path | None) -> None:
    """Contact, right-party, promise, kept, cure and recovery rates, cost against what was
    recovered and roll rates, for the days [--from, --to), grouped by --by.

    Payments, promises and replies count for the last contact that reached the borrower
    in the attribution_days before them (docs/metrics.md defines every figure).
    """
    from bot.effectiveness import build_report
    from bot.effectiveness.configured import costs_from, window_from
    from bot.effectiveness.output import to_csv, to_table

    first: date = start.date()  # type: ignore[attr-defined]
    last: date = end.date()  # type: ignore[attr-defined]
    if last <= first:
        raise click.BadParameter(f"{last} is not after --from {first}", param_hint="--to")
    window = window_from(app.settings, first, last)
    with app.db.session() as session:
        report = build_report(session, window, by, costs_from(app.settings))
    log.info("report %s..%s by %s: %d groups", first, last, ",".join(by) or "-", len(report["groups"]))
    if fmt == "json":
        text = json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    elif fmt == "csv":
        text = to_csv(report)
    else:
        text = to_table(report)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


COMMANDS = [report_cmd]
