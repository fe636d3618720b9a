"""A report as a text table (fits 80 columns) or CSV (formula-safe, one row per group)."""

from __future__ import annotations

import csv
import io
import textwrap
from typing import Any

from bot.portfolio import format_money
from bot.privacy import csv_safe

__all__ = ["CSV_METRICS", "csat_text", "to_csv", "to_table"]

#: The CSV's metric columns, in order (the key's columns come first).
CSV_METRICS = (
    "contacts", "reached", "contact_rate", "right_party_contacts", "right_party_rate",
    "promises", "promised_minor", "kept", "broken", "kept_rate", "payments", "recovered_minor",
    "reached_overdue", "cured", "cure_rate", "cost_minor", "cost_currency", "cost_per_recovered",
    "opt_outs", "opt_out_rate", "disputes", "dispute_rate", "complaints", "complaint_rate",
    "csat_mean", "csat_n", "csat_1", "csat_2", "csat_3", "csat_4", "csat_5",
)


def _flat(m: dict[str, Any]) -> dict[str, Any]:
    """The metrics with ``csat`` spread over its CSV columns."""
    c = m["csat"]
    return {**m, "csat_mean": c["mean"], "csat_n": c["n"],
            **{f"csat_{score}": count for score, count in c["distribution"].items()}}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def to_csv(report: dict[str, Any]) -> str:
    keys = [*report["by"], "currency"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys + list(CSV_METRICS))
    for group in report["groups"]:
        metrics = _flat(group["metrics"])
        row = [group["key"][k] for k in keys] + [_cell(metrics[m]) for m in CSV_METRICS]
        writer.writerow([csv_safe(cell) for cell in row])
    return out.getvalue()


def money(minor: int, currency: str) -> str:
    """``123456, "USD"`` → ``$1,234.56`` (the currency's own decimals, English digits)."""
    return format_money(minor, currency, "en-US")


def cost_share(ratio: float | None) -> str:
    """Cost per recovered as a share of what was recovered: ``0.0000437`` → ``0.00437%`` (three significant
    digits: a week's texts cost a few cents on thousands recovered), ``-`` when there is none."""
    return "-" if ratio is None else f"{ratio * 100:.3g}%"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _pairs(m: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [
        ("contacts", str(m["contacts"])), ("reached", f"{m['reached']} ({_pct(m['contact_rate'])})"),
        ("right party", f"{m['right_party_contacts']} ({_pct(m['right_party_rate'])})"),
        ("promises", str(m["promises"])),
        ("kept / broken", f"{m['kept']} / {m['broken']} ({_pct(m['kept_rate'])})"),
        ("payments", str(m["payments"])),
        ("cured", f"{m['cured']} of {m['reached_overdue']} ({_pct(m['cure_rate'])})"),
        ("opt-outs", f"{m['opt_outs']} ({_pct(m['opt_out_rate'])})"),
        ("disputes", f"{m['disputes']} ({_pct(m['dispute_rate'])})"),
        ("complaints", f"{m['complaints']} ({_pct(m['complaint_rate'])})"),
        ("cost", money(m["cost_minor"], m["cost_currency"])),
        ("csat", csat_text(m["csat"])),
    ]
    if "currency" in m:
        pairs[4:4] = [("promised", money(m["promised_minor"], m["currency"]))]
        pairs[6:6] = [("recovered", money(m["recovered_minor"], m["currency"]))]
        if m["cost_per_recovered"] is not None:
            pairs.append(("cost/recovered", cost_share(m["cost_per_recovered"])))
    return pairs


def csat_text(c: dict[str, Any]) -> str:
    """``4.25 (n=8)``, or ``-`` without answers."""
    return "-" if not c["n"] else f"{c['mean']:.2f} (n={c['n']})"


def _block(title: str, pairs: list[tuple[str, str]]) -> list[str]:
    lines = [title]
    cells = [f"{label:<14} {value}" for label, value in pairs]
    for left, right in zip(cells[::2], [*cells[1::2], ""], strict=False):
        lines.append(f"  {left:<38}{right}".rstrip() if len(left) <= 38 else f"  {left}")
        if len(left) > 38 and right:
            lines.append(f"  {right}")
    return lines


def to_table(report: dict[str, Any]) -> str:
    """Blocks of two columns of ``label value`` per group, then the totals and roll rates."""
    by = ", ".join(report["by"]) or "nothing"
    lines = [*textwrap.wrap(f"Effectiveness {report['from']} to {report['to']} (exclusive), by {by}", 80), ""]
    for group in report["groups"]:
        title = "  ".join(f"{k}={v}" for k, v in group["key"].items())
        block = _block(title, _pairs(group["metrics"]))
        lines += [*textwrap.wrap(block[0], 80, break_on_hyphens=False), *block[1:], ""]
    totals = report["totals"]
    lines += _block("TOTAL", _pairs(totals))
    for money_row in totals["currencies"]:
        c = money_row["currency"]
        text = f"  {c}: promised {money(money_row['promised_minor'], c)}, recovered {money(money_row['recovered_minor'], c)}"
        if money_row["cost_per_recovered"] is not None:
            text += f", cost/recovered {cost_share(money_row['cost_per_recovered'])}"
        lines.append(text)
    if totals["roll_rates"]:
        lines += ["", "Roll rates (installments, bucket at one month end -> the next)"]
        for r in totals["roll_rates"]:
            lines.append(f"  {r['from_month_end']} -> {r['to_month_end']}  {r['from']:>7} -> {r['to']:<6}"
                         f" {r['rolled']:>7} of {r['installments']:<7} {_pct(r['rate'])}")
    return "\n".join(lines) + "\n"
