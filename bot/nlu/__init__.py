"""Understanding borrower replies: intent, promised date, opt-out scope.

``classify(text, locale=..., today=..., context=...)`` is the whole API; see
docs/nlu.md for the intents, keywords, date forms, priority order and limits.
The same classifier serves SMS replies and speech-recognised voice answers.
"""

from __future__ import annotations

from datetime import date

from bot.domain import Intent
from bot.nlu.classifier import MAX_PROMISE_DAYS, PRIORITY, Context, Interpretation, LocaleInfo, classify, locale_info
from bot.nlu.dates import DateMention, find_dates
from bot.nlu.normalize import normalize

__all__ = [
    "MAX_PROMISE_DAYS",
    "PRIORITY",
    "Context",
    "DateMention",
    "Intent",
    "Interpretation",
    "LocaleInfo",
    "classify",
    "find_dates",
    "locale_info",
    "normalize",
    "parse_date",
]


def parse_date(text: str, *, today: date, locale: str = "en-US") -> date | None:
    """The first date ``text`` names, unbounded by the promise window (for tests and the console)."""
    mentions = find_dates(normalize(text).text, today=today, day_first=locale_info(locale).day_first)
    return mentions[0].value if mentions else None
