"""``bot plan`` and ``bot why``: the planner (``bot run`` is in bot.cli.run_cmd)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from bot.cli.common import INSTANT, App, clock_for, err_console, out_console, pass_app, print_json
from bot.policy import Policy, load_policy

log = logging.getLogger("bot.cli.plan")

_POLICY_OPTION = click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Treatment policy file (default: the policy_file setting, else the shipped policy).",
)


def _policy(app: App, policy_file: Path | None) -> Policy:
    file = policy_file or app.settings.policy_file
    return load_policy(file, templates_dir=getattr(app.settings, "templates_dir", None),
                       scripts_dir=getattr(app.settings, "voice_scripts_dir", None))


def _compliance_config(app: App) -> Any:
    """The lender's compliance configuration when the settings name one."""
    path = getattr(app.settings, "compliance_file", None)
    if not path:
        return None
    from bot.compliance import load_compliance_config

    return load_compliance_config(path)


@click.command("plan")
@click.option("--at", type=INSTANT, help="Plan as of this instant (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--dry-run", is_flag=True, help="Show the plan without recording it.")
@click.option("--full", is_flag=True,
              help="Plan every installment in the window, not only the borrowers whose inputs changed.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="At most this many planned items in the output (counts are always complete).")
@_POLICY_OPTION
@pass_app
def plan_cmd(app: App, at: datetime | None, as_json: bool, dry_run: bool, full: bool, limit: int,
             policy_file: Path | None) -> None:
    """Plan today's reminders: one current step per due or overdue installment.

    Plans only the borrowers whose inputs changed since the last pass (or whose
    local day turned), unless --full, or a full pass is due (first pass, another
    policy, the last full pass a day ago).

    Records planned / deferred / blocked contact attempts (idempotently: running it
    again the same day updates them, never duplicates them, and never touches
    attempts already being sent or sent) and opens hand-off tasks.
    """
    from bot.scheduler.planner import plan

    policy = _policy(app, policy_file)
    instant = clock_for(app, at).now()
    with app.db.sessions() as session:
        report = plan(session, instant, policy=policy, commit=not dry_run, limit=limit, incremental_pass=not full,
                      default_timezone=app.settings.default_timezone,
                      compliance_config=_compliance_config(app))
        if dry_run:
            session.rollback()
    if as_json:
        print_json(report.to_json())
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    title = "plan (dry run: nothing recorded)" if report.dry_run else "plan"
    scope = f"full ({report.full_reason})" if report.full else "incremental"
    err_console.print(f"{title} at {report.at.isoformat()} with {report.policy}, {scope}")
    out_console.print(f"{report.selected} installments selected, {report.contacts} contacts, "
                      f"{report.by_status.get('handoff', 0)} hand-offs "
                      f"({report.tasks_created} new), {report.attached} attached, "
                      f"{report.superseded} superseded")
    if report.by_channel:
        table = Table("channel", "status", "count", title="by channel")
        for key, count in sorted(report.by_channel.items()):
            channel, status = key.split(":", 1)
            table.add_row(channel, status, str(count))
        out_console.print(table)
    if report.by_reason:
        table = Table("reason", "count", title="reasons (not planned now)")
        for reason, count in sorted(report.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(reason, str(count))
        out_console.print(table)
    if report.items:
        out_console.print(f"first {len(report.items)} items (borrower, installment, step, status, reasons, "
                          "next allowed UTC):", markup=False)
        for item in report.items:
            fields = [item.borrower_id, item.installment_id, item.step, item.status, ",".join(item.reasons) or "-",
                      item.next_allowed_at.isoformat() if item.next_allowed_at else "-"]
            out_console.print("  " + "  ".join(fields), markup=False)


@click.command("why")
@click.argument("borrower_id")
@click.option("--at", type=INSTANT, help="Explain as of this instant (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@_POLICY_OPTION
@pass_app
def why_cmd(app: App, borrower_id: str, at: datetime | None, as_json: bool, policy_file: Path | None) -> None:
    """Explain what the planner does for one borrower, and why (masked)."""
    from bot.scheduler.explain import explain

    policy = _policy(app, policy_file)
    instant = clock_for(app, at).now()
    with app.db.sessions() as session:
        options = {}
        config = _compliance_config(app)
        if config is not None:
            options["config"] = config
        data = explain(session, borrower_id, instant, policy=policy,
                       default_timezone=app.settings.default_timezone, check_options=options)
    if as_json:
        print_json(data)
        return
    _print_explanation(data)


def _print_explanation(data: dict[str, Any]) -> None:
    b = data["borrower"]
    arm = data["arm"] + (f" of experiment {data['experiment']}" if data["experiment"] else "")
    out_console.print(f"borrower {b['id']} ({b['name']}, {b['phone'] or 'no phone'}, {b['email'] or 'no email'}), "
                      f"locale {b['locale']} -> messages in {b['message_locale']}", markup=False)
    out_console.print(f"at {data['at']}, policy {data['policy']}, arm {arm}: {' '.join(data['steps'])}",
                      markup=False)
    risk = data.get("risk") or {}
    if risk:
        warning = risk["early_warning"]
        lender = "none" if risk["lender_score"] is None else risk["lender_score"]
        out_console.print(f"risk: lender's score {lender}, segment {risk['segment'] or 'none'}, "
                          f"early warning {warning['score']}"
                          + "".join(f"; +{r['points']} {r['code']}" for r in warning["reasons"]), markup=False)
    for paid in data.get("paid_installments", []):
        out_console.print(f"installment {paid['installment_id']} (loan {paid['loan_id']}), due {paid['due_date']}: "
                          f"paid, not contacted about ({paid['reason']})", markup=False)
    if not data["installments"]:
        reason = " (paid)" if data.get("paid_installments") else ""
        out_console.print(f"no outstanding installments{reason}: nothing to plan", markup=False)
    for item in data["installments"]:
        out_console.print("")
        out_console.print(
            f"installment {item['installment_id']} (loan {item['loan_id']}), due {item['due_date']}, "
            f"outstanding {item['outstanding_minor']} minor units", markup=False)
        out_console.print(f"  local date {item['local_date']} in {item['zone']}: day {item['day']}", markup=False)
        out_console.print(f"  current step: {item['step'] or 'none'}"
                          + (f" (template {item['template']})" if item.get("template") else ""), markup=False)
        for condition in item["conditions"]:
            out_console.print(f"  condition: {condition}", markup=False)
        if item.get("risk"):
            held = item["risk"]
            seen = ", ".join(f"{k} {v}" for k, v in held.items() if k != "when")
            out_console.print(f"  risk conditions: {seen}: "
                              + ("held (" + "; ".join(held["when"]) + ")" if "when" in held else "did not hold"),
                              markup=False)
        compliance = item.get("compliance")
        if compliance:
            out_console.print(f"  compliance ({compliance['rule_set']}, zones {', '.join(compliance['zones'])}):",
                              markup=False)
            for rule in compliance["rules"]:
                verdict = "allows" if rule["allowed"] else f"blocks: {rule['reason']}"
                extra = f", allows again {rule['next_allowed_at_local']}" if rule["next_allowed_at_local"] and \
                    not rule["allowed"] else ""
                detail = f" ({rule['detail']})" if rule["detail"] else ""
                out_console.print(f"    {rule['rule']}: {verdict}{extra}{detail}", markup=False)
            if compliance["next_allowed_at_local"] and not compliance["allowed"]:
                out_console.print(f"  next allowed: {compliance['next_allowed_at_local']} (local)", markup=False)
        if item.get("covers"):
            out_console.print(f"  also covers: {', '.join(item['covers'])}", markup=False)
        out_console.print(f"  planner: {item['action']}", markup=False)


COMMANDS = [plan_cmd, why_cmd]
