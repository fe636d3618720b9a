"""The report's window and unit costs from the settings: one reading for every caller
(``bot report``, ``bot experiment status``, the console's Effectiveness page, the demo)."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.effectiveness.queries import Window
from bot.effectiveness.report import Costs

__all__ = ["costs_from", "window_from"]


def costs_from(settings: Any) -> Costs:
    """The unit costs of the bot's own contacts (``BOT_COST_*``)."""
    return Costs(settings.cost_sms_segment_minor, settings.cost_call_minute_minor, settings.cost_email_minor,
                 settings.cost_currency)


def window_from(settings: Any, start: date, end: date) -> Window:
    """The borrower-local days ``[start, end)`` with the settings' zone, attribution and cure days."""
    return Window(start, end, settings.default_timezone, attribution_days=settings.attribution_days,
                  cure_days=settings.cure_days)
