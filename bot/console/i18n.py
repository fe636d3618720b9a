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
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from babel.support import Translations

__all__ = [
    "CODE_LABELS",
    "Code",
    "IntentCode",
    "DEFAULT_LOCALE",
    "INTENT_LABELS",
    "Message",
    "N_",
    "LOCALES",
    "LOCALE_DIR",
    "LOCALE_NAMES",
    "Formats",
    "catalog_name",
    "field_message",
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

#: Stored codes named for a person at display time (the code itself stays in the data, the JSON
#: API and the exports): channels, statuses of contacts, calls, tasks and promises, outcomes,
#: who answered, a turn's source, task kinds, where a record came from, flag reasons, compliance
#: reason codes (bot.compliance.reasons) and the kinds of a borrower's timeline events.
#: A code missing here is shown as it is; ``Code("quiet_hours")`` marks a code inside a :class:`Message`.
CODE_LABELS = {
    # channels
    "sms": N_("SMS"), "email": N_("email"), "voice": N_("voice"),
    # contact attempts: status and outcome
    "planned": N_("planned"), "deferred": N_("deferred"), "blocked": N_("blocked"), "sending": N_("sending"),
    "sent": N_("sent"), "done": N_("done"), "failed": N_("failed"), "cancelled": N_("cancelled"),
    "unknown": N_("unknown"), "attempted": N_("attempted"), "delivered": N_("delivered"),
    "connected": N_("connected"), "conversation": N_("conversation"), "voicemail": N_("voicemail"),
    "undelivered": N_("undelivered"),
    # calls: status (Twilio's), outcome (the scripts' kinds), who answered
    "queued": N_("queued"), "initiated": N_("initiated"), "ringing": N_("ringing"),
    "in-progress": N_("in progress"), "completed": N_("completed"), "busy": N_("busy"),
    "no-answer": N_("no answer"), "canceled": N_("cancelled"), "promise": N_("promise"),
    "paid_claim": N_("says it is paid"), "dispute": N_("dispute"), "hardship": N_("hardship"),
    "callback": N_("callback"), "opt_out": N_("opt-out"), "wrong_party": N_("wrong person"),
    "no_answer": N_("no answer"), "partial": N_("partial"), "refused": N_("refused"),
    "human": N_("a person"), "machine_start": N_("answering machine"),
    "machine_end_beep": N_("answering machine (beep)"), "machine_end_silence": N_("answering machine (silence)"),
    "machine_end_other": N_("answering machine (other)"), "fax": N_("fax"),
    # a turn's source
    "tts": N_("spoken by the bot"), "speech": N_("speech"), "dtmf": N_("keypad"), "silence": N_("silence"),
    # tasks and promises
    "review": N_("review"), "handoff": N_("handoff"), "wrong_number": N_("wrong number"), "open": N_("open"),
    "closed": N_("closed"), "pending": N_("pending"), "kept": N_("kept"), "broken": N_("broken"),
    # where a record came from
    "import": N_("import"), "planner": N_("planner"), "manual": N_("manual"), "reply": N_("reply"),
    "console": N_("console"), "api": N_("API"),
    # flag reasons the voice service and the scripts set
    "paid_during_call": N_("paid during the call"), "compliance_at_answer": N_("not allowed any more at the answer"),
    "low_confidence": N_("low recognition confidence"),
    # compliance reason codes
    "paid": N_("paid"), "hold": N_("on hold"), "cease_communication": N_("asked to cease communication"),
    "dispute_open": N_("dispute open"), "opted_out": N_("opted out"), "no_consent": N_("no consent"),
    "no_address": N_("no address"), "promise_pending": N_("promise pending"),
    "inconvenient_time": N_("inconvenient time"), "holiday": N_("holiday"), "sunday": N_("rest day"),
    "quiet_hours": N_("quiet hours"), "frequency_cap": N_("frequency cap"),
    "post_conversation_wait": N_("wait after a conversation"),
    # the kinds of a borrower's timeline events
    "contact": N_("contact"), "task": N_("task"), "call": N_("call"), "note": N_("note"),
    # the fields a supervisor may reveal
    "phone": N_("phone"), "name": N_("name"),
    # the effectiveness report's groupings
    "channel": N_("channel"), "step": N_("step"), "arm": N_("arm"), "locale": N_("locale"),
    "segment": N_("segment"), "day": N_("day"), "week": N_("week"), "month": N_("month"),
    "currency": N_("currency"),
}


class Code(str):
    """A stored code inside a :class:`Message`: a page shows its label (:data:`CODE_LABELS`)."""


class IntentCode(Code):
    """An intent code inside a :class:`Message`: named as :meth:`Formats.intent_label` names it."""


class Message(str):
    """A message the server shows: its value is the English text (JSON answers, logs, the
    command line), ``msgid`` and ``values`` let a page show it in the reader's language.

    ``Message(N_("no task %(id)s"), id=7)`` is ``"no task 7"``; a value that is itself a
    :class:`Message` is translated too, a :class:`Code` is named by its label, a date is
    written the language's way, any other value (a name, a number, what somebody typed) is
    shown as it is.
    """

    msgid: str
    values: dict[str, object]

    def __new__(cls, msgid: str, **values: object) -> Message:
        english = {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items()}
        self = super().__new__(cls, msgid % english if values else msgid)
        self.msgid, self.values = msgid, values
        return self


def field_message(field: str, message: str) -> Message:
    """``"promise_date: is not a real calendar date"``: the field by its name, the message translatable."""
    return Message("%(field)s: %(message)s", field=field,
                   message=message if isinstance(message, Message) else Message(message))


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

    def code(self, code: str | None) -> str:
        """A stored code (a status, an outcome, a reason...) named in this language; unknown ones as they are."""
        if not code:
            return ""
        label = CODE_LABELS.get(str(code))
        return self._gettext(label) if label else str(code)

    def codes(self, codes: Iterable[str]) -> str:
        return ", ".join(self.code(c) for c in codes)

    def message(self, text: str | None) -> str:
        """A :class:`Message` in this language, a :class:`Code` by its label; any other text as it is
        (it may be somebody's words: only what the console itself wrote is translated)."""
        if not text:
            return ""
        if isinstance(text, IntentCode):
            return self.intent_label(text)
        if isinstance(text, Code):
            return self.code(text)
        if not isinstance(text, Message):
            return str(text)
        translated = self._gettext(text.msgid)
        if not text.values:
            return translated
        return translated % {k: self.message(v) if isinstance(v, (Message, Code)) else
                             self.day(v) if isinstance(v, date) else v for k, v in text.values.items()}

    def short_day(self, value: date | str) -> str:
        """A day in a chart's axis: ``11-28`` in English, ``11月28日``, ``11월 28일``."""
        day = date.fromisoformat(value) if isinstance(value, str) else value
        return f"{day:%m-%d}" if self.tag == "en" else format_skeleton("MMMd", day, locale=self.locale)

    def intent_label(self, code: str | None) -> str:
        """An intent code named in this language; an unknown code as it is."""
        if not code:
            return ""
        label = INTENT_LABELS.get(code)
        return self._gettext(label) if label else code


@lru_cache(maxsize=len(LOCALES))
def formats(tag: str) -> Formats:
    return Formats(tag)
