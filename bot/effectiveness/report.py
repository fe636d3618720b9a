"""Fold the queries' raw rows into the groups asked for; derive rates, costs and totals.

The report's JSON shape (docs/metrics.md, docs/cli.md)::

    {"from": "2026-11-01", "to": "2026-12-01", "by": ["channel"],
     "groups": [{"key": {"channel": "sms", "currency": "USD"}, "metrics": {...}}],
     "totals": {...}}

Every group's key carries the currency of what it counts, so amounts are never
summed across currencies; counts and rates in ``totals`` are over every currency,
amounts there are per currency (``totals["currencies"]``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from bot.effectiveness.queries import (
    BUCKETS,
    CONTACT_FIGURES,
    CSAT_KINDS,
    CURE_FIGURES,
    EVENT_AMOUNTS,
    EVENT_KINDS,
    RawRow,
    Window,
    contact_rows,
    cure_rows,
    event_rows,
    paid_on_table,
    roll_counts,
)
from bot.effectiveness.sql import prepare

__all__ = ["DIMENSIONS", "UNATTRIBUTED", "Costs", "build_report", "csat", "month_ends"]

#: What a report may be grouped by.
DIMENSIONS = ("channel", "step", "arm", "locale", "segment", "day", "week", "month")
#: channel, step and arm of an event with no reached contact in the attribution window.
UNATTRIBUTED = "unattributed"
#: step and arm of a contact that has none (imported history, replies, manual contacts); the
#: segment of a borrower and loan without one.
NONE = "none"

_PLANNED_STEP = re.compile(r"^(?P<arm>[^:]+):(?P<step>D[+-]?\d+:[a-z]+)$")
_FIGURES = (*CONTACT_FIGURES, *EVENT_KINDS, *EVENT_AMOUNTS.values(), *CURE_FIGURES)


@dataclass(frozen=True, slots=True)
class Costs:
    """Unit costs of the bot's own contacts, in minor units of ``currency``."""

    sms_segment_minor: int = 0
    call_minute_minor: int = 0
    email_minor: int = 0
    currency: str = "USD"

    def of(self, figures: dict[str, int]) -> int:
        # One segment per SMS: the segment count of a sent message is not stored (docs/metrics.md).
        return (figures["sms_sent"] * self.sms_segment_minor + figures["call_minutes"] * self.call_minute_minor
                + figures["emails_sent"] * self.email_minor)


def _step_arm(row: RawRow) -> tuple[str, str, str]:
    """(channel, step, arm) of a row: the planner's ``<arm>:<D+n>:<channel>`` label is split."""
    if row.channel is None:
        return UNATTRIBUTED, UNATTRIBUTED, UNATTRIBUTED
    match = _PLANNED_STEP.match(row.step or "")
    if match:
        return row.channel, match["step"], match["arm"]
    return row.channel, row.step or NONE, NONE


def _key(row: RawRow, by: Sequence[str]) -> tuple[tuple[str, str], ...]:
    channel, step, arm = _step_arm(row)
    iso = row.day.isocalendar()
    values = {"channel": channel, "step": step, "arm": arm, "locale": row.locale, "segment": row.segment or NONE,
              "day": row.day.isoformat(), "week": f"{iso.year}-W{iso.week:02d}", "month": row.day.strftime("%Y-%m")}
    return (*((name, values[name]) for name in by), ("currency", row.currency))


#: Cost per recovered is a small ratio (a few cents on thousands): six decimals, not the rates' four.
COST_DIGITS = 6


def _rate(numerator: int, denominator: int, digits: int = 4) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def _metrics(f: dict[str, int], costs: Costs, *, currency: str | None) -> dict[str, Any]:
    right_party = f["rpc_calls"] + f["rpc_replies"]
    resolved = f["kept"] + f["broken"]
    out: dict[str, Any] = {
        "contacts": f["contacts"], "reached": f["reached"], "contact_rate": _rate(f["reached"], f["contacts"]),
        "right_party_contacts": right_party, "right_party_rate": _rate(right_party, f["contacts"]),
        "promises": f["promises"], "kept": f["kept"], "broken": f["broken"], "kept_rate": _rate(f["kept"], resolved),
        "payments": f["payments"],
        "reached_overdue": f["reached_overdue"], "cured": f["cured"],
        "cure_rate": _rate(f["cured"], f["reached_overdue"]),
        "opt_outs": f["opt_outs"], "opt_out_rate": _rate(f["opt_outs"], f["contacts"]),
        "disputes": f["disputes"], "dispute_rate": _rate(f["disputes"], f["contacts"]),
        "complaints": f["complaints"], "complaint_rate": _rate(f["complaints"], f["contacts"]),
        "cost_minor": costs.of(f), "cost_currency": costs.currency,
        "csat": csat([f[kind] for kind in CSAT_KINDS]),
    }
    if currency is not None:
        out.update(_amounts(f, costs, currency))
    return out


def csat(counts: Sequence[int]) -> dict[str, Any]:
    """Satisfaction from the counts of scores 1..5: ``{"mean", "n", "distribution"}`` (mean None when n is 0)."""
    n = sum(counts)
    mean = round(sum(score * count for score, count in enumerate(counts, start=1)) / n, 2) if n else None
    return {"mean": mean, "n": n, "distribution": {str(score): count for score, count in enumerate(counts, start=1)}}


def _amounts(f: dict[str, int], costs: Costs, currency: str) -> dict[str, Any]:
    cost = costs.of(f) if "contacts" in f else f["cost_minor"]
    same = currency == costs.currency
    return {"currency": currency, "promised_minor": f["promised_minor"], "recovered_minor": f["recovered_minor"],
            "cost_per_recovered": _rate(cost, f["recovered_minor"], COST_DIGITS) if same else None}


def month_ends(window: Window) -> list[date]:
    """The month ends from the day before the window to its last day (roll rates go from one to the next)."""
    ends = []
    day = window.start.replace(day=1) - timedelta(days=1)
    while day < window.end:
        if day >= window.start - timedelta(days=1):
            ends.append(day)
        day = (day + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return ends


def roll_rates(session: Session, window: Window, po: Table) -> list[dict[str, Any]]:
    names = ["current", *(name for name, _ in BUCKETS)]
    out = []
    ends = month_ends(window)
    for first, second in pairwise(ends):
        counts = roll_counts(session, po, first, second)
        for bucket, following in pairwise(names):
            total = sum(n for (b0, _b1), n in counts.items() if b0 == bucket)
            rolled = counts.get((bucket, following), 0)
            out.append({"from_month_end": first.isoformat(), "to_month_end": second.isoformat(), "from": bucket,
                        "to": following, "installments": total, "rolled": rolled, "rate": _rate(rolled, total)})
    return out


def build_report(session: Session, window: Window, by: Iterable[str] = (), costs: Costs | None = None) -> dict[str, Any]:
    """Every metric for ``window`` grouped by ``by`` (names of :data:`DIMENSIONS`)."""
    by = list(dict.fromkeys(by))
    unknown = [name for name in by if name not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown report grouping {', '.join(unknown)} (known: {', '.join(DIMENSIONS)})")
    costs = costs or Costs()
    prepare(session)
    groups: dict[tuple[tuple[str, str], ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_FIGURES, 0))
    with paid_on_table(session, window) as po:
        for rows in (contact_rows(session, window), event_rows(session, window), cure_rows(session, window, po)):
            for row in rows:
                figures = groups[_key(row, by)]
                for name, value in row.values.items():
                    figures[name] += value
        rolls = roll_rates(session, window, po)
    totals: dict[str, int] = dict.fromkeys(_FIGURES, 0)
    per_currency: dict[str, dict[str, int]] = defaultdict(lambda: {"promised_minor": 0, "recovered_minor": 0,
                                                                   "cost_minor": 0})
    out_groups = []
    for key in sorted(groups):
        figures = groups[key]
        currency = dict(key)["currency"]
        for name, value in figures.items():
            totals[name] += value
        money = per_currency[currency]
        money["promised_minor"] += figures["promised_minor"]
        money["recovered_minor"] += figures["recovered_minor"]
        money["cost_minor"] += costs.of(figures)
        out_groups.append({"key": dict(key), "metrics": _metrics(figures, costs, currency=currency)})
    total_metrics = _metrics(totals, costs, currency=None)
    total_metrics["currencies"] = [_amounts(per_currency[c], costs, c) for c in sorted(per_currency)]
    total_metrics["roll_rates"] = rolls
    return {"from": window.start.isoformat(), "to": window.end.isoformat(), "by": by,
            "groups": out_groups, "totals": total_metrics}
