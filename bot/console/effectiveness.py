"""What the console's Effectiveness page and the dashboard's promise card show (docs/console.md).

Every figure is the report's (docs/metrics.md): the page's groups, totals and funnel are
:func:`bot.effectiveness.build_report` for the page's window and grouping, the experiment
:func:`bot.effectiveness.experiment.experiment_status`.  The weekly trend and the
dashboard's card need only counts and amounts of contacts and outcome events, so they add
up the report's own statements for those (:func:`~bot.effectiveness.queries.contact_rows`,
:func:`~bot.effectiveness.queries.event_rows`) per ISO week or per currency, as the report
does, without its cures and roll rates (most of its time: 0.4 s of events against 5 s for
the whole report on 100,000 installments).  Nothing here counts a second way; a metric the
report gains shows in the CSV export and the JSON without a change here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bot.console.filters import EffectivenessFilters, default_report_window
from bot.console.i18n import N_
from bot.effectiveness import Window, build_report
from bot.effectiveness.configured import costs_from, window_from
from bot.effectiveness.queries import RawRow, contact_rows, event_rows
from bot.effectiveness.sql import prepare

__all__ = ["FUNNEL", "TREND", "experiment_block", "page", "promise_card", "report_for", "weeks"]

#: The funnel's stages: (label, the report's metric).  Each is counted in the window on its own
#: (not as a cohort): a promise made last week and kept this week is in this week's "kept".
FUNNEL = (
    (N_("contacts"), "contacts"),
    (N_("reached"), "reached"),
    (N_("right party"), "right_party_contacts"),
    (N_("promises"), "promises"),
    (N_("kept"), "kept"),
    (N_("paid"), "payments"),
)
#: The weekly trend's series (the report's counts, added over currencies; the page translates the names).
TREND = (N_("contacts"), N_("reached"), N_("promises"), N_("kept"))


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


def _raw(session: Session, window: Window, *, contacts: bool = True) -> Iterator[RawRow]:
    """The report's contact and outcome rows for ``window`` (no cures, no roll rates)."""
    prepare(session)
    if contacts:
        yield from contact_rows(session, window)
    yield from event_rows(session, window)


def _iso_week(day: date) -> str:
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"  # the report's ``week`` key


def weeks(session: Session, window: Window) -> list[dict[str, Any]]:
    """One row per ISO week of the borrower-local day: :data:`TREND`'s counts over every
    currency, and the amount recovered per currency (``--by week`` added over currencies)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    recovered: dict[str, Counter[str]] = defaultdict(Counter)
    for row in _raw(session, window):
        week = _iso_week(row.day)
        counts[week].update({name: row.values.get(name, 0) for name in TREND})
        recovered[week][row.currency] += row.values.get("recovered_minor", 0)  # a currency with none shows 0
    return [{"week": week, **{name: counts[week][name] for name in TREND},
             "recovered": dict(sorted(recovered[week].items()))} for week in sorted(counts)]


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
    funnel = _funnel(report["totals"])
    trend = weeks(session, window_from(settings, filters.date_from, filters.date_to))
    return {"report": report, "key_columns": [*report["by"], "currency"],
            "funnel": funnel, "funnel_pairs": [(s["label"], s["count"]) for s in funnel],
            "weeks": trend, "trend_series": [(name, [w[name] for w in trend]) for name in TREND],
            "experiment": experiment_block(session, settings, policy, today)}


def promise_card(session: Session, settings: Any, today: date) -> dict[str, Any]:
    """The dashboard's promises over the last seven borrower-local days (the Effectiveness
    page's default window), the report's totals of its outcome events: promises made, kept,
    broken, kept rate (``kept / (kept + broken)``), payments, promised and recovered per currency."""
    start, end = default_report_window(today)
    totals: Counter[str] = Counter()
    money: dict[str, Counter[str]] = defaultdict(Counter)
    for row in _raw(session, window_from(settings, start, end), contacts=False):
        totals.update(row.values)
        money[row.currency].update({k: row.values[k] for k in ("promised_minor", "recovered_minor")})
    resolved = totals["kept"] + totals["broken"]
    return {"from": start.isoformat(), "to": end.isoformat(),
            **{name: totals[name] for name in ("promises", "kept", "broken", "payments")},
            "kept_rate": round(totals["kept"] / resolved, 4) if resolved else None,
            "currencies": [{"currency": c, "promised_minor": money[c]["promised_minor"],
                            "recovered_minor": money[c]["recovered_minor"]} for c in sorted(money)]}
