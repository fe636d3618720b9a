"""The console's languages: gettext catalogs, per-locale dates, numbers and amounts.

The console speaks English (``en``), Simplified Chinese (``zh-CN``) and Korean
(``ko-KR``), chosen per user (``users.locale``, else the setting
``console_default_locale``).  The catalogs are ``bot/console/locale/<ll_CC>/LC_MESSAGES/
messages.po`` (and the compiled ``.mo`` beside, kept in the repository; a test
compiles the ``.po`` and compares); docs/locales.md says how to add a language.

Each language has its own Jinja environment (``bot.console.web.environment``) with
its own translations and :class:`Formats`, so nothing about one user's language is
shared state another request could see.

The borrower's own words are never translated: only the console's labels are,
and the intent codes the bot understood are named by :func:`Formats.intent_label`.
"""

from __future__ import annotations

import gettext as _gettext
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from babel.support import Translations

__all__ = [
    "DEFAULT_LOCALE",
    "INTENT_LABELS",
    "N_",
    "LOCALES",
    "LOCALE_DIR",
    "LOCALE_NAMES",
    "Formats",
    "catalog_name",
    "formats",
    "translations",
]

#: The console's languages (BCP 47 tags as stored in ``users.locale``).
LOCALES = ("en", "zh-CN", "ko-KR")
DEFAULT_LOCALE = "en"
#: Each language named in itself (the language form's choices; never translated).
LOCALE_NAMES = {"en": "English", "zh-CN": "简体中文", "ko-KR": "한국어"}
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "extract, translate later"
    return message


#: What the bot understood, named for a person (the code stays in ``data-intent`` and the API).
INTENT_LABELS = {
    "opt_out": N_("opt-out"),
    "opt_in": N_("opt-in"),
    "help": N_("help"),
    "paid": N_("says paid"),
    "promise_to_pay": N_("promise to pay"),
    "dispute": N_("dispute"),
    "wrong_number": N_("wrong number"),
    "hardship": N_("hardship"),
    "callback_request": N_("callback request"),
    "identity_question": N_("asks who is calling"),
    "balance_inquiry": N_("asks the balance"),
    "affirm": N_("yes"),
    "deny": N_("no"),
    "survey_response": N_("survey answer"),
    "other": N_("other"),
}

#: Values the templates show translated (``_(value)``): task statuses, yes/no choices, a turn's speaker.
VALUE_LABELS = (N_("open"), N_("closed"), N_("all"), N_("yes"), N_("no"), N_("bot"), N_("borrower"))


def catalog_name(tag: str) -> str:
    """``zh-CN`` → ``zh_CN`` (the catalog's directory and Babel's locale name)."""
    return tag.replace("-", "_")


@lru_cache(maxsize=len(LOCALES))
def translations(tag: str) -> _gettext.NullTranslations:
    """The compiled catalog of a console language (English: the messages themselves)."""
    if tag == DEFAULT_LOCALE:
        return _gettext.NullTranslations()
    return Translations.load(str(LOCALE_DIR), [catalog_name(tag)], domain="messages")


class Formats:
    """Dates, times, numbers and amounts as a language writes them (Babel, CLDR data).

    English keeps the console's ISO dates (``2026-11-29 10:05 +01:00``); Chinese and
    Korean use their own medium dates and short times (``2026年11月29日 10:05``,
    ``2026. 11. 29. 오전 10:05``).  The zone is the caller's (the display zone logic
    is ``bot.console.queries``), and the offset is always shown as ``+01:00``.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.locale = Locale.parse(catalog_name("en-US" if tag == "en" else tag))
        self._gettext = translations(tag).gettext

    def when(self, value: datetime | None, with_zone: bool = True) -> str:
        if value is None:
            return ""
        if self.tag == "en":
            text = f"{value:%Y-%m-%d %H:%M}"
        else:
            text = (f"{format_date(value, 'medium', locale=self.locale)} "
                    f"{format_time(value, 'short', tzinfo=value.tzinfo, locale=self.locale)}")
        offset = value.strftime("%z") if with_zone else ""
        return f"{text} {offset[:3]}:{offset[3:]}" if offset else text

    def day(self, value: date | str | None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return value.isoformat() if self.tag == "en" else format_date(value, "medium", locale=self.locale)

    def number(self, value: int | float | None) -> str:
        return "" if value is None else format_decimal(value, locale=self.locale)

    def confidence(self, value: float | None) -> str:
        return "" if value is None else format_decimal(value, "0.00", locale=self.locale)

    def margin(self, value: float | None) -> str:
        """A recognition margin (a score difference, one decimal)."""
        return "" if value is None else format_decimal(value, "0.0", locale=self.locale)

    def pct(self, numerator: int, denominator: int) -> str:
        if not denominator:
            return "–"
        return format_percent(Decimal(f"{numerator / denominator * 100:.0f}") / 100, "#,##0%", locale=self.locale)

    def rate(self, value: float | None) -> str:
        """A fraction as the report's table prints it: ``0.8814`` → ``88.1%``, ``None`` → ``–``."""
        if value is None:
            return "–"
        # rounded as the report rounds (Python's float formatting), then written the language's way
        return format_percent(Decimal(f"{value * 100:.1f}") / 100, "#,##0.0%", locale=self.locale)

    def money(self, minor: int | None, currency: str) -> str:
        """Minor units in the currency's own decimals: ``123456, "CNY"`` → ``¥1,234.56`` in Chinese."""
        if minor is None:
            return "–"
        amount = Decimal(minor).scaleb(-get_currency_precision(currency))
        return format_currency(amount, currency, locale=self.locale)

    def intent_label(self, code: str | None) -> str:
        """An intent code named in this language; an unknown code as it is."""
        if not code:
            return ""
        label = INTENT_LABELS.get(code)
        return self._gettext(label) if label else code


@lru_cache(maxsize=len(LOCALES))
def formats(tag: str) -> Formats:
    return Formats(tag)
