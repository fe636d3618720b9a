"""Champion against challenger: ``bot experiment status`` (docs/metrics.md "Experiments").

The figures are :func:`bot.effectiveness.build_report`'s, grouped by ``arm`` over the
experiment's days so far; this module only adds up each arm's currencies and puts the
statistics of :mod:`bot.effectiveness.stats` around the rates.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.effectiveness.queries import Window
from bot.effectiveness.report import Costs, build_report, csat
from bot.effectiveness.stats import min_detectable_effect, two_proportion_z, wilson
from bot.policy import Experiment

__all__ = ["GUARDRAILS", "RATES", "experiment_status", "experiment_window"]

#: rate → (numerator, denominator) among the report's figures: the outcomes compared.
RATES = {
    "contact_rate": ("reached", "contacts"),
    "promise_rate": ("promises", "contacts"),
    "kept_rate": ("kept", "resolved"),
    "cure_rate": ("cured", "reached_overdue"),
}
#: Rates that must not get worse: a challenger above the champion by more than the margin is flagged.
GUARDRAILS = {
    "opt_out_rate": ("opt_outs", "contacts"),
    "dispute_rate": ("disputes", "contacts"),
    "complaint_rate": ("complaints", "contacts"),
}
_COUNTS = ("contacts", "reached", "promises", "kept", "broken", "reached_overdue", "cured",
           "opt_outs", "disputes", "complaints", "cost_minor")


def experiment_window(experiment: Experiment, today: date, default_timezone: str, *,
                      attribution_days: int = 7, cure_days: int = 30) -> Window:
    """The experiment's days so far: ``[start, min(end, today) + 1 day)``."""
    assert experiment.start is not None and experiment.end is not None
    if today < experiment.start:
        raise ValueError(f"experiment {experiment.name} starts on {experiment.start}, after {today}")
    last = min(experiment.end, today)
    return Window(experiment.start, last + timedelta(days=1), default_timezone,
                  attribution_days=attribution_days, cure_days=cure_days)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _proportion(k: int, n: int) -> dict[str, Any]:
    interval = wilson(k, n) if k <= n else None
    return {"count": k, "of": n, "rate": _round(k / n if n else None),
            "ci95": None if interval is None else [_round(interval[0]), _round(interval[1])]}


def _arms(report: dict[str, Any], arms: tuple[str, str], cost_currency: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for arm in arms:
        totals = dict.fromkeys(_COUNTS, 0)
        recovered: dict[str, int] = defaultdict(int)
        scores = [0] * 5
        cost_per_recovered = None
        for group in report["groups"]:
            if group["key"]["arm"] != arm:
                continue
            m = group["metrics"]
            for name in _COUNTS:
                totals[name] += m[name]
            recovered[m["currency"]] += m["recovered_minor"]
            scores = [n + m["csat"]["distribution"][str(score)] for score, n in enumerate(scores, start=1)]
            if m["currency"] == cost_currency:
                cost_per_recovered = m["cost_per_recovered"]
        totals["resolved"] = totals["kept"] + totals["broken"]
        out[arm] = {"figures": totals, "recovered_minor": dict(sorted(recovered.items())),
                    "cost_per_recovered": cost_per_recovered, "csat": csat(scores)}
    return out


def _compare(champion: dict[str, int], challenger: dict[str, int], num: str, den: str) -> dict[str, Any]:
    k1, n1, k2, n2 = champion[num], champion[den], challenger[num], challenger[den]
    out: dict[str, Any] = {"difference": None, "z": None, "p_value": None, "mde": None}
    if n1 and n2 and k1 <= n1 and k2 <= n2:
        z, p = two_proportion_z(k1, n1, k2, n2)  # type: ignore[misc]
        out.update(difference=_round(k2 / n2 - k1 / n1), z=_round(z), p_value=_round(p),
                   mde=_round(min_detectable_effect(n1, n2, k1 / n1)))
    return out


def experiment_status(session: Session, experiment: Experiment, window: Window, costs: Costs) -> dict[str, Any]:
    """Per arm: contacts, rates with 95% Wilson intervals, recovered, cost per recovered; for
    the challenger, each rate's difference to the champion with its two-sided p-value and
    the minimum detectable effect, and the guardrails flagged beyond ``guardrail_margin``."""
    champion, challenger = experiment.arms
    report = build_report(session, window, ["arm"], costs)
    arms = _arms(report, (champion, challenger), costs.currency)
    out_arms = []
    for arm in (champion, challenger):
        f = arms[arm]["figures"]
        entry: dict[str, Any] = {
            "arm": arm, "role": "champion" if arm == champion else "challenger", "contacts": f["contacts"],
            "rates": {name: _proportion(f[num], f[den]) for name, (num, den) in RATES.items()},
            "recovered_minor": arms[arm]["recovered_minor"], "cost_minor": f["cost_minor"],
            "cost_currency": costs.currency, "cost_per_recovered": arms[arm]["cost_per_recovered"],
            "guardrails": {name: _proportion(f[num], f[den]) for name, (num, den) in GUARDRAILS.items()},
            "csat": arms[arm]["csat"],  # satisfaction answers attributed to the arm
        }
        if arm == challenger:
            base = arms[champion]["figures"]
            for name, (num, den) in RATES.items():
                entry["rates"][name].update(_compare(base, f, num, den))
            for name, (num, den) in GUARDRAILS.items():
                g = entry["guardrails"][name]
                g.update(_compare(base, f, num, den))
                g["flagged"] = g["difference"] is not None and g["difference"] > experiment.guardrail_margin
        out_arms.append(entry)
    return {
        "experiment": experiment.name, "split": experiment.split,
        "start": experiment.start.isoformat() if experiment.start else None,
        "end": experiment.end.isoformat() if experiment.end else None,
        "from": window.start.isoformat(), "to": window.end.isoformat(),
        "champion": champion, "challenger": challenger,
        "alpha": 0.05, "power": 0.8, "guardrail_margin": experiment.guardrail_margin,
        "arms": out_arms,
        "flagged": [name for name in GUARDRAILS if out_arms[1]["guardrails"][name].get("flagged")],
    }
