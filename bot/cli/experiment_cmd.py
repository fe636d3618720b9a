"""``bot experiment status``: champion against challenger with confidence (docs/metrics.md)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from bot.cli.common import INSTANT, App, clock_for, pass_app, print_json
from bot.errors import UsageError

log = logging.getLogger("bot.cli.experiment")


@click.group("experiment")
def experiment_group() -> None:
    """A/B experiments of the treatment policy (docs/policy.md, docs/metrics.md)."""


@experiment_group.command("status")
@click.argument("name")
@click.option("--at", type=INSTANT, help="As of this instant (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Treatment policy file (default: the policy_file setting, else the shipped policy).")
@pass_app
def status_cmd(app: App, name: str, at: datetime | None, as_json: bool, policy_file: Path | None) -> None:
    """Per arm: contact, promise, kept and cure rates with 95% Wilson intervals, recovered and
    cost per recovered; the challenger's differences to the champion with two-sided
    p-values and the minimum detectable effect; guardrails (opt-out, dispute, complaint)."""
    from bot.effectiveness.configured import costs_from
    from bot.effectiveness.experiment import experiment_status, experiment_window
    from bot.policy import load_policy

    s = app.settings
    policy = load_policy(policy_file or s.policy_file, templates_dir=getattr(s, "templates_dir", None))
    experiment = policy.experiment
    if experiment is None or experiment.name != name:
        running = f"it runs {experiment.name}" if experiment else "it has no experiment"
        raise UsageError(f"no experiment {name} in the policy {policy.source} ({running})")
    today = clock_for(app, at).now().date()
    try:
        window = experiment_window(experiment, today, s.default_timezone,
                                   attribution_days=s.attribution_days, cure_days=s.cure_days)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with app.db.session() as session:
        status = experiment_status(session, experiment, window, costs_from(s))
    log.info("experiment %s status %s..%s: %d guardrails flagged", experiment.name, status["from"], status["to"],
             len(status["flagged"]))
    if as_json:
        print_json(status)
    else:
        click.echo(to_text(status), nl=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _line(label: str, r: dict[str, Any]) -> str:
    ci = "" if r["ci95"] is None else f" [{_pct(r['ci95'][0])}, {_pct(r['ci95'][1])}]"
    text = f"  {label:<15}{r['count']:>7} of {r['of']:<7}{_pct(r['rate']):>7}{ci}"
    if r.get("difference") is not None:
        text += f"  {r['difference'] * 100:+.1f} pt p={r['p_value']:.3f} mde {r['mde'] * 100:.1f} pt"
    if r.get("flagged"):
        text += "  WORSE"
    return text


def to_text(status: dict[str, Any]) -> str:
    from bot.effectiveness.output import cost_share, csat_text, money

    title = (f"Experiment {status['experiment']} ({status['start']} to {status['end']}), "
             f"days {status['from']} to {status['to']} (exclusive)")
    legend = (f"champion {status['champion']}, challenger {status['challenger']}: differences are challenger - "
              f"champion, two-sided p, MDE at alpha {status['alpha']} power {status['power']}")
    lines = [title, legend, ""]
    for arm in status["arms"]:
        lines.append(f"arm {arm['arm']} ({arm['role']}): {arm['contacts']} contacts")
        for name, r in arm["rates"].items():
            lines.append(_line(name.replace("_", " "), r))
        recovered = ", ".join(money(v, c) for c, v in arm["recovered_minor"].items()) or "-"
        cpr = cost_share(arm["cost_per_recovered"])
        lines.append(f"  recovered {recovered}; cost {money(arm['cost_minor'], arm['cost_currency'])}, "
                     f"cost/recovered {cpr}")
        for name, r in arm["guardrails"].items():
            lines.append(_line(name.replace("_", " "), r))
        lines.append(f"  csat           {csat_text(arm['csat'])}")
        lines.append("")
    flagged = ", ".join(status["flagged"]) or "none"
    lines.append(f"guardrails worse by more than {status['guardrail_margin'] * 100:.1f} pt: {flagged}")
    return "\n".join(lines) + "\n"


COMMANDS = [experiment_group]
