"""What the console's Effectiveness page and the dashboard's promise card show (docs/console.md).

Every figure is :func:`bot.effectiveness.build_report`'s (docs/metrics.md): this module
only asks for the report (the page's window and grouping, and the same window by week for
the trend), lays out the funnel from the report's totals and adds the policy's experiment
(:func:`bot.effectiveness.experiment.experiment_status`).  Nothing here counts a second
way; a metric the report gains shows in the CSV export and the JSON without a change here.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bot.console.filters import EffectivenessFilters, default_report_window
from bot.effectiveness import build_report
from bot.effectiveness.configured import costs_from, window_from

__all__ = ["FUNNEL", "TREND", "experiment_block", "page", "promise_card", "report_for"]

#: The funnel's stages: (label, the report's metric).  Each is counted in the window on its own
#: (not as a cohort): a promise made last week and kept this week is in this week's "kept".
FUNNEL = (
    ("contacts", "contacts"),
    ("reached", "reached"),
    ("right party", "right_party_contacts"),
    ("promises", "promises"),
    ("kept", "kept"),
    ("paid", "payments"),
)
#: The weekly trend's series (the report's counts, added over currencies).
TREND = ("contacts", "reached", "promises", "kept")


def report_for(session: Session, settings: Any, filters: EffectivenessFilters) -> dict[str, Any]:
    """``bot report --from --to --by`` for the page's filters (the same document)."""
    return build_report(session, window_from(settings, filters.date_from, filters.date_to), filters.dimensions,
                        costs_from(settings))


def _funnel(totals: dict[str, Any]) -> list[dict[str, Any]]:
    contacts = totals["contacts"]
    stages, previous = [], None
    for label, metric in FUNNEL:
        count = totals[metric]
        stages.append({"label": label, "metric": metric, "count": count,
                       "of_contacts": count / contacts if contacts else None,
                       "of_previous": count / previous if previous else None})
        previous = count
    return stages


def _weeks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per ISO week: the trend's counts over every currency, the amounts per currency."""
    weeks: dict[str, dict[str, Any]] = {}
    for group in report["groups"]:
        m = group["metrics"]
        week = weeks.setdefault(group["key"]["week"], {"week": group["key"]["week"], **dict.fromkeys(TREND, 0),
                                                        "recovered": defaultdict(int)})
        for name in TREND:
            week[name] += m[name]
        week["recovered"][m["currency"]] += m["recovered_minor"]
    return [{**w, "recovered": dict(sorted(w["recovered"].items()))} for _, w in sorted(weeks.items())]


def experiment_block(session: Session, settings: Any, policy: Any, today: date) -> dict[str, Any] | None:
    """The policy's experiment over its days so far (``bot experiment status``), or None without one."""
    from bot.effectiveness.experiment import experiment_status, experiment_window

    experiment = getattr(policy, "experiment", None)
    if experiment is None:
        return None
    try:
        window = experiment_window(experiment, today, settings.default_timezone,
                                   attribution_days=settings.attribution_days, cure_days=settings.cure_days)
    except ValueError as exc:  # it has not started yet
        return {"experiment": experiment.name, "not_started": str(exc)}
    return experiment_status(session, experiment, window, costs_from(settings))


def page(session: Session, settings: Any, filters: EffectivenessFilters, *, policy: Any,
         today: date) -> dict[str, Any]:
    """Everything the page shows: the report, the funnel, the weekly trend and the experiment."""
    report = report_for(session, settings, filters)
    by_week = report if filters.dimensions == ["week"] else build_report(
        session, window_from(settings, filters.date_from, filters.date_to), ["week"], costs_from(settings))
    funnel, weeks = _funnel(report["totals"]), _weeks(by_week)
    return {"report": report, "key_columns": [*report["by"], "currency"],
            "funnel": funnel, "funnel_pairs": [(s["label"], s["count"]) for s in funnel],
            "weeks": weeks, "trend_series": [(name, [w[name] for w in weeks]) for name in TREND],
            "experiment": experiment_block(session, settings, policy, today)}


def promise_card(session: Session, settings: Any, today: date) -> dict[str, Any]:
    """The dashboard's promises over the last seven borrower-local days (the Effectiveness
    page's default window): made, kept, broken, kept rate, promised and recovered per currency."""
    start, end = default_report_window(today)
    totals = build_report(session, window_from(settings, start, end), (), costs_from(settings))["totals"]
    return {"from": start.isoformat(), "to": end.isoformat(),
            **{name: totals[name] for name in ("promises", "kept", "broken", "kept_rate", "payments")},
            "currencies": [{k: c[k] for k in ("currency", "promised_minor", "recovered_minor")}
                           for c in totals["currencies"]]}
