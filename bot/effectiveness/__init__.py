"""Collection effectiveness: every metric defined once (docs/metrics.md), set-based in SQL.

``build_report(session, Window(start, end, default_timezone), by=["channel"])`` gives
the JSON document behind ``bot report``; :mod:`bot.effectiveness.queries` holds the
statements, :mod:`bot.effectiveness.report` folds their rows into groups and totals,
:mod:`bot.effectiveness.output` renders a table or CSV.  (``bot.metrics`` is the
Prometheus exposition, a different thing.)
"""

from __future__ import annotations

from bot.effectiveness.queries import REACHED, Window
from bot.effectiveness.report import DIMENSIONS, UNATTRIBUTED, Costs, build_report

__all__ = ["DIMENSIONS", "REACHED", "UNATTRIBUTED", "Costs", "Window", "build_report"]
