"""Small SVG charts drawn on the server: no script, no inline style, escaped text.

Colours come from the console's stylesheet through class names (``s0``,
``s1``... per series), since the Content-Security-Policy allows no inline
styles; SVG presentation attributes (sizes, positions) are not styles.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["bar_chart", "funnel", "meter"]


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """Grouped vertical bars: one group per label, one bar per series, a legend below.

    Every bar carries a ``<title>`` (series, label, value) for a tooltip and
    for screen readers; the chart as a whole has ``role="img"`` and a label.
    """
    for name, values in series:
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")
    top, bottom, left, right = 16, 40, 36, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([v for _, values in series for v in values] + [1])
    group_w = plot_w / max(len(labels), 1)
    bar_w = max((group_w - 8) / max(len(series), 1), 1)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(labels):
        x0 = left + i * group_w + 4
        for j, (name, values) in enumerate(series):
            value = values[i]
            h = plot_h * value / peak
            x = x0 + j * bar_w
            y = top + plot_h - h
            parts.append(
                f'<rect class="bar s{j}" x="{_num(x)}" y="{_num(y)}" width="{_num(max(bar_w - 1, 1))}" '
                f'height="{_num(h)}"><title>{escape(name)} {escape(label)}: {value}</title></rect>'
            )
        parts.append(f'<text class="label" x="{_num(x0 + (group_w - 8) / 2)}" y="{top + plot_h + 14}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    x = left
    for j, (name, _) in enumerate(series):
        parts.append(f'<rect class="bar s{j}" x="{x}" y="{height - 14}" width="10" height="10"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="{height - 5}">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def meter(label: str, numerator: int, denominator: int, *, width: int = 240, height: int = 14,
          text: str | None = None) -> Markup:
    """A horizontal bar filled to ``numerator / denominator`` (empty when there is nothing to count).

    ``text`` is what it says to a screen reader and in its tooltip (the page's language); by
    default ``label: numerator of denominator (rate)`` in English."""
    fraction = numerator / denominator if denominator else 0.0
    fraction = min(max(fraction, 0.0), 1.0)
    if text is None:
        text = f"{label}: {numerator} of {denominator}" + (f" ({fraction:.0%})" if denominator else "")
    return Markup(
        f'<svg class="meter" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(text)}"><title>{escape(text)}</title>'
        f'<rect class="track" x="0" y="0" width="{width}" height="{height}"/>'
        f'<rect class="fill" x="0" y="0" width="{_num(width * fraction)}" height="{height}"/></svg>'
    )


def funnel(title: str, stages: Sequence[tuple[str, int]], *, width: int = 560, row: int = 26) -> Markup:
    """One horizontal bar per stage, as long as its count against the largest, label and count beside.

    Each bar carries a ``<title>``; the chart has ``role="img"`` and a label naming every stage.
    """
    label_w, count_w = 96, 64
    plot_w = width - label_w - count_w
    peak = max([n for _, n in stages] + [1])
    height = row * max(len(stages), 1) + 4
    summary = ", ".join(f"{label} {n}" for label, n in stages)
    parts = [
        f'<svg class="chart funnel" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}: {escape(summary)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, n) in enumerate(stages):
        y = 2 + i * row
        w = plot_w * n / peak
        parts.append(f'<text class="label" x="{label_w - 6}" y="{y + row / 2 + 4:.0f}" text-anchor="end">'
                     f"{escape(label)}</text>")
        parts.append(f'<rect class="bar s0" x="{label_w}" y="{y + 3}" width="{_num(max(w, 1 if n else 0))}" '
                     f'height="{row - 6}"><title>{escape(label)}: {n}</title></rect>')
        parts.append(f'<text class="tick" x="{_num(label_w + w + 6)}" y="{y + row / 2 + 4:.0f}">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
