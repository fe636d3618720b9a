"""``bot risk``: the borrowers to watch, ranked by risk score, with the reasons (masked)."""

from __future__ import annotations

from datetime import datetime

import click

from bot.cli.common import INSTANT, App, clock_for, out_console, pass_app, print_json


@click.command("risk")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show this many borrowers (the total is always counted).")
@click.option("--at", type=INSTANT, help="As of this instant (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@pass_app
def risk_cmd(app: App, top: int, at: datetime | None, as_json: bool) -> None:
    """Borrowers with overdue or soon-due installments, riskiest first, with the reasons.

    The score is the lender's risk_score when there is one, else the bot's early-warning
    score (docs/risk.md); names and phone numbers are masked.
    """
    from bot.risk import watch_list

    instant = clock_for(app, at).now()
    with app.db.sessions() as session:
        data = watch_list(session, instant, default_timezone=app.settings.default_timezone, top=top)
    if as_json:
        print_json(data)
        return
    out_console.print(f"{data['borrowers']} borrowers with installments overdue or due within "
                      f"{data['soon_days']} days; the {len(data['items'])} riskiest:", markup=False)
    for item in data["items"]:
        lender = "-" if item["lender_score"] is None else item["lender_score"]
        out_console.print(
            f"{item['score']:>5} ({item['source']})  {item['borrower_id']}  {item['name']}  {item['phone'] or '-'}  "
            f"segment {item['segment'] or '-'}  lender {lender}  early warning {item['early_warning']}  "
            f"{item['days_past_due']} days past due, next due {item['next_due']}", markup=False)
        for reason in item["reasons"]:
            out_console.print(f"        +{reason['points']} {reason['code']}: {reason['text']}", markup=False)


COMMANDS = [risk_cmd]
