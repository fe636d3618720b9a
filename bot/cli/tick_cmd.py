"""``bot tick``: plan, then dispatch once (what ``bot run`` does on a schedule)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from bot.cli.common import INSTANT, App, clock_for, err_console, out_console, pass_app, print_json
from bot.cli.plan_cmd import _POLICY_OPTION, _compliance_config
from bot.cli.run_cmd import checked_policy


@click.command("tick")
@click.option("--at", type=INSTANT, help="Plan and dispatch as of this instant (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-rate-limit", is_flag=True,
              help="Ignore the provider rate limits (benchmarks, a sandbox); default: the rate_limits_enabled setting.")
@click.option("--no-plan", is_flag=True, help="Only dispatch what is already planned.")
@_POLICY_OPTION
@pass_app
def tick_cmd(app: App, at: datetime | None, as_json: bool, no_rate_limit: bool, no_plan: bool,
             policy_file: Path | None) -> None:
    """Plan today's contacts, then send what is due, once.

    Sending re-checks every contact against the rules at that instant, so a
    planned message can still be deferred (quiet hours), blocked (an opt-out, a
    payment) or cancelled (stale).  SMS go through Twilio (or the sandbox at
    twilio_api_base_url), email through the SMTP relay.  The output counts
    messages per channel and outcome; it never shows a number, address or text.
    Cached prompt audio unused for prompt_retention_days and records past
    their retention_*_days are removed too (as bot run does daily), and due
    event webhooks are delivered, so a cron job running tick needs nothing else.
    """
    from bot.dispatch import DispatchOptions, dispatch_retrying
    from bot.scheduler.service import PlannerService

    settings = app.settings
    policy = checked_policy(app, policy_file)  # a template that cannot be sent stops here (exit 2)
    config = _compliance_config(app)
    clock = clock_for(app, at)
    plan_report = None
    if not no_plan:
        service = PlannerService(db=app.db, clock=clock, policy=policy,
                                 default_timezone=settings.default_timezone, compliance_config=config,
                                 dispatchers=[], database_retries=settings.database_retries,
                                 retry_pause=settings.database_retry_pause_seconds)
        plan_report = service.plan_job()
    # At a simulated instant (--at) the rate buckets are the run's own, never the live service's.
    options = DispatchOptions.from_settings(settings, simulated=at is not None,
                                            **({"rate_limits": False} if no_rate_limit else {}))
    report = dispatch_retrying(app.db, settings, clock=clock, policy=policy, compliance_config=config,
                               options=options)
    from bot.voice.media import prune_prompts

    pruned = prune_prompts(settings, clock.now())  # what bot run's daily job does, for cron-driven installs
    from bot.retention import purge

    retention = purge(app.db, settings, clock.now())  # bot run's daily retention job, likewise
    from bot.events.delivery import DeliveryOptions, deliver_due

    webhooks = deliver_due(app.db, clock, DeliveryOptions.from_settings(settings))  # the events of this tick too
    if as_json:
        print_json({
            "plan": plan_report.to_json(with_items=False) if plan_report is not None else None,
            "dispatch": report.to_json(),
            "prompts_pruned": pruned.removed,
            "retention": retention.to_json(),
            "webhooks": webhooks.to_json(),
        })
        return
    _print(plan_report, report)
    if sum(webhooks.counts.values()):
        counts = webhooks.to_json()
        err_console.print(f"webhooks: {counts['delivered']} delivered, {counts['retry']} to retry, "
                          f"{counts['dead']} dead")
    if retention.total:
        err_console.print("retention: " + ", ".join(f"{n} {what}" for what, n in retention.counts.items() if n)
                          + " past their retention removed")
    if pruned.removed:
        err_console.print(f"prompt cache: {pruned.removed} prompts unused for {settings.prompt_retention_days} days "
                          "removed")


def _print(plan_report: Any, report: Any) -> None:
    err_console.print(f"tick at {report.at.isoformat()}" + ("" if report.counts else ": nothing was due"))
    if plan_report is not None:
        out_console.print(f"planned: {dict(sorted(plan_report.by_status.items())) or 'nothing'}", markup=False)
    from bot.dispatch import OUTCOMES

    by_channel = report.by_channel()
    if not by_channel:
        out_console.print("dispatched: nothing")
        return
    shown = [o for o in OUTCOMES if report.total(o)]
    table = Table("channel", *shown, title="dispatched")
    for channel, counts in by_channel.items():
        table.add_row(channel, *(str(counts.get(o, 0)) for o in shown))
    out_console.print(table)


COMMANDS = [tick_cmd]
