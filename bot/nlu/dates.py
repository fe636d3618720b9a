"""Dates in borrower replies, resolved against the reply's local date.

A hand-written resolver for a fixed, documented list of forms (docs/nlu.md)
rather than ``dateparser``: that library takes hundreds of milliseconds to
warm up, guesses freely ("may" is a month, "sat" a weekday) and happily
returns dates in the past, while a promise date has to be explainable and
tested form by form.

The input is text already passed through :func:`bot.nlu.normalize.normalize`
(lower case, contractions expanded, Chinese numerals as digits).  The rules
for the ambiguous forms:

* a bare weekday ("Friday", "周五", "금요일") is the next one strictly after
  today — on a Friday, "Friday" means a week later;
* "this Friday" / "这周五" / "이번 주 금요일" is the first on or after today;
* "next Friday" / "下周五" / "다음 주 금요일" is the Friday of next week, with
  weeks starting on Monday (ISO 8601, and the Chinese convention);
* "next week" / "下周" / "다음 주" is a week from today;
* a day of the month ("the 15th", "15号", "15일") is this month's if that day
  exists and is today or later, otherwise next month's;
* a month and day without a year is this year's if not yet past, else next
  year's; "12/10" is month/day where the locale writes months first (en-US,
  zh, ko) and day/month where it writes days first (en-GB, en-AU, ...);
* a date that does not exist ("2/30", "2月30号") is a mention with no value.

Bounds (past, more than 90 days ahead) are the classifier's business: this
module only reads what the text says.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = [
    "DateMention",
    "day_of_month",
    "end_of_month",
    "find_dates",
    "month_day",
    "weekday_next_week",
    "weekday_on_or_after",
    "weekday_strictly_after",
]


@dataclass(frozen=True, slots=True)
class DateMention:
    """One date expression found in a text."""

    start: int
    end: int
    value: date | None  # None: the text names a date that does not exist
    form: str  # which resolver read it, e.g. "weekday", "month_day" (shown as the matched rule)


# --- resolvers (pure, unit-tested) --------------------------------------------


def weekday_strictly_after(today: date, weekday: int) -> date:
    """The first ``weekday`` (Monday=0) after today; a week ahead if today is one."""
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def weekday_on_or_after(today: date, weekday: int) -> date:
    """The first ``weekday`` on or after today ("this Friday")."""
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def weekday_next_week(today: date, weekday: int) -> date:
    """That weekday in the week after this one (weeks start on Monday)."""
    next_monday = today - timedelta(days=today.weekday()) + timedelta(days=7)
    return next_monday + timedelta(days=weekday)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _shift_month(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def day_of_month(today: date, day: int) -> date | None:
    """This month's ``day`` if it exists and is not past, else next month's."""
    this = _safe_date(today.year, today.month, day)
    if this is not None and this >= today:
        return this
    year, month = _shift_month(today.year, today.month, 1)
    return _safe_date(year, month, day)


def month_day(today: date, month: int, day: int, year: int | None = None) -> date | None:
    """A calendar date; without a year, this year's if not yet past, else next year's.

    None when that date does not exist ("2/30"; "2/29" when the coming
    February has no 29th).
    """
    if year is not None:
        if year < 100:
            year += 2000
        return _safe_date(year, month, day)
    this = _safe_date(today.year, month, day)
    if this is not None and this >= today:
        return this
    following = _safe_date(today.year + 1, month, day)
    if following is not None:
        return following
    return None


def end_of_month(today: date, months_ahead: int = 0) -> date:
    year, month = _shift_month(today.year, today.month, months_ahead)
    return date(year, month, calendar.monthrange(year, month)[1])


def _in_month(today: date, months_ahead: int, day: int) -> date | None:
    year, month = _shift_month(today.year, today.month, months_ahead)
    return _safe_date(year, month, day)


# --- vocabularies -----------------------------------------------------------

_EN_WEEKDAYS = {name: i for i, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
)}
_EN_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}
_EN_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "thirty": 30,
    "a couple of": 2, "a couple": 2, "couple of": 2, "couple": 2,
}
_ORDINAL_UNITS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
_EN_ORDINALS: dict[str, int] = {name: i + 1 for i, name in enumerate(_ORDINAL_UNITS)}
_EN_ORDINALS.update({
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
})
for _i, _name in enumerate(_ORDINAL_UNITS):
    _EN_ORDINALS[f"twenty {_name}"] = 21 + _i
    _EN_ORDINALS[f"twenty-{_name}"] = 21 + _i
_EN_ORDINALS["thirty first"] = _EN_ORDINALS["thirty-first"] = 31

_CJK_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
                 "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_KO_WEEKDAYS = {"월": 0, "화": 1, "수": 2, "목": 3, "금": 4, "토": 5, "일": 6}
_KO_NATIVE_DAYS = {"하루": 1, "이틀": 2, "사흘": 3, "나흘": 4, "닷새": 5}


def _alt(words: Iterable[str]) -> str:
    """A regex alternation, longest first so that "september" wins over "sep"."""
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_MONTHS_RE = _alt(_EN_MONTHS)
# "may first" is also "may, first, ..." ("I may first call"): spoken May needs a preposition before it
_SPOKEN_MONTHS_RE = _alt(m for m in _EN_MONTHS if m != "may") + "|" + "|".join(
    f"(?<={p} )may" for p in ("on", "by", "before", "until", "till", "of", "in"))
_WEEKDAYS_RE = _alt(_EN_WEEKDAYS)
_NUMBERS_RE = _alt(_EN_NUMBERS)
_ORDINALS_RE = _alt(_EN_ORDINALS)

Resolver = Callable[[re.Match[str], date, bool], date | None]


@dataclass(frozen=True, slots=True)
class _Form:
    name: str
    pattern: re.Pattern[str]
    resolve: Resolver
    needs_digit: bool  # the pattern cannot match text without a digit: skip it then


_DIGIT = re.compile(r"\d")


def _form(name: str, pattern: str, resolve: Resolver, *, digit: bool = False) -> _Form:
    """``digit=True`` promises that every match contains a digit, so text without one can skip it."""
    return _Form(name, re.compile(pattern), resolve, digit)


def _days(n: int) -> Resolver:
    return lambda m, today, _df: today + timedelta(days=n)


def _num(text: str) -> int:
    return int(text) if text.isdigit() else _EN_NUMBERS[text]


def _numeric(m: re.Match[str], today: date, day_first: bool) -> date | None:
    a, b = int(m.group(1)), int(m.group(2))
    month, day = (b, a) if day_first else (a, b)
    year = int(m.group(3)) if m.group(3) else None
    return month_day(today, month, day, year)


def _en_weekday(m: re.Match[str], today: date, _df: bool) -> date:
    modifier, weekday = m.group(1), _EN_WEEKDAYS[m.group(2)]
    if modifier == "next":
        return weekday_next_week(today, weekday)
    if modifier in {"this", "this coming", "coming"}:
        return weekday_on_or_after(today, weekday)
    return weekday_strictly_after(today, weekday)


def _cjk_weekday(prefix_next: tuple[str, ...], prefix_this: tuple[str, ...], table: dict[str, int]) -> Resolver:
    def resolve(m: re.Match[str], today: date, _df: bool) -> date:
        prefix = re.sub(r"\s+", "", m.group(1) or "")
        weekday = table[m.group(2)]
        if prefix in prefix_next:
            return weekday_next_week(today, weekday)
        if prefix in prefix_this:
            return weekday_on_or_after(today, weekday)
        return weekday_strictly_after(today, weekday)

    return resolve


def _weekend(next_week: bool) -> Resolver:
    def resolve(m: re.Match[str], today: date, _df: bool) -> date:
        if next_week:
            return weekday_next_week(today, 5)
        return weekday_on_or_after(today, 5)

    return resolve


_EN_FORMS: tuple[_Form, ...] = (
    _form("iso", r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b",
          lambda m, t, _df: month_day(t, int(m.group(2)), int(m.group(3)), int(m.group(1))), digit=True),
    _form("numeric", r"(?<![\d/$£€¥.,])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])", _numeric, digit=True),
    _form("month_day",
          rf"\b({_MONTHS_RE})\.?\s+(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?",
          lambda m, t, _df: month_day(t, _EN_MONTHS[m.group(1)], int(m.group(2)),
                                      int(m.group(3)) if m.group(3) else None), digit=True),
    _form("day_month",
          rf"\b(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTHS_RE})\b\.?(?:,?\s+(\d{{4}}))?",
          lambda m, t, _df: month_day(t, _EN_MONTHS[m.group(2)], int(m.group(1)),
                                      int(m.group(3)) if m.group(3) else None), digit=True),
    # spoken forms, as speech recognisers write them: "december tenth", "the tenth of december"
    _form("month_day", rf"\b({_SPOKEN_MONTHS_RE})\s+(?:the\s+)?({_ORDINALS_RE})\b",
          lambda m, t, _df: month_day(t, _EN_MONTHS[m.group(1)], _EN_ORDINALS[m.group(2)])),
    _form("day_month", rf"\b(?:the\s+)?({_ORDINALS_RE})\s+of\s+({_MONTHS_RE})\b",
          lambda m, t, _df: month_day(t, _EN_MONTHS[m.group(2)], _EN_ORDINALS[m.group(1)])),
    _form("end_of_next_month", r"\b(?:the\s+)?end of next month\b", lambda m, t, _df: end_of_month(t, 1)),
    _form("end_of_month",
          r"\b(?:the\s+)?(?:end of (?:the |this )?month|month'?s? end|last day of (?:the |this )?month)\b",
          lambda m, t, _df: end_of_month(t)),
    _form("in_hours", rf"\bin (?:\d{{1,2}}|{_NUMBERS_RE}) (?:hours?|hrs?|minutes?|mins?)\b", _days(0)),
    _form("in_days",
          rf"\b(?:in|within) (\d{{1,3}}|{_NUMBERS_RE}) (days?|weeks?)\b",
          lambda m, t, _df: t + timedelta(days=_num(m.group(1)) * (7 if m.group(2).startswith("week") else 1))),
    _form("in_days",
          rf"\b(\d{{1,3}}|{_NUMBERS_RE}) (days?|weeks?) from (?:now|today)\b",
          lambda m, t, _df: t + timedelta(days=_num(m.group(1)) * (7 if m.group(2).startswith("week") else 1))),
    _form("relative_day", r"\b(?:the\s+)?day after tomorrow\b", _days(2)),
    _form("relative_day", r"\btomorrow\b", _days(1)),
    _form("relative_day",
          r"\b(?:today|tonight|this (?:morning|afternoon|evening)|end of (?:the )?day|eod|(?:right )?now)\b", _days(0)),
    _form("next_weekend", r"\bnext weekend\b", _weekend(next_week=True)),
    _form("weekend", r"\b(?:this |the )?weekend\b", _weekend(next_week=False)),
    _form("next_week", r"\bnext week\b", _days(7)),
    _form("weekday", rf"\b(?:(next|this coming|this|coming)\s+)?({_WEEKDAYS_RE})\b", _en_weekday),
    _form("day_of_month",
          rf"\bthe ({_ORDINALS_RE})\b(?!\s+(?:time|place|payment|installment|one|of))",
          lambda m, t, _df: day_of_month(t, _EN_ORDINALS[m.group(1)])),
    _form("day_of_month",
          r"\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b(?!\s+(?:time|place|payment|installment|one|bill|month|week|year))",
          lambda m, t, _df: day_of_month(t, int(m.group(1))), digit=True),
    _form("day_of_month",
          r"\b(?:on|by|before|until|till) the (\d{1,2})\b(?![:.]?\d|\s*(?:am|pm|days?|weeks?|hours?|dollars?|bucks|%))",
          lambda m, t, _df: day_of_month(t, int(m.group(1))), digit=True),
)

_ZH_FORMS: tuple[_Form, ...] = (
    _form("iso", r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]",
          lambda m, t, _df: month_day(t, int(m.group(2)), int(m.group(3)), int(m.group(1))), digit=True),
    _form("next_month_day", r"下个?月(\d{1,2})[日号]", lambda m, t, _df: _in_month(t, 1, int(m.group(1))), digit=True),
    _form("this_month_day", r"(?:这个?月|本月)(\d{1,2})[日号]",
          lambda m, t, _df: _in_month(t, 0, int(m.group(1))), digit=True),
    _form("month_day", r"(?<!\d)(\d{1,2})月(\d{1,2})(?:[日号](?!码)|(?!\d|天|个))",
          lambda m, t, _df: month_day(t, int(m.group(1)), int(m.group(2))), digit=True),
    _form("end_of_next_month", r"下个?月(?:月)?[底末]", lambda m, t, _df: end_of_month(t, 1)),
    _form("end_of_month", r"(?:这个?月|本月)?月[底末]", lambda m, t, _df: end_of_month(t)),
    _form("relative_day", r"大后天", _days(3)),
    _form("relative_day", r"后天", _days(2)),
    _form("relative_day", r"明天|明日|明儿|明早|明晚", _days(1)),
    _form("relative_day", r"今天|今日|今晚|今儿|今早|当天", _days(0)),
    _form("in_days", r"(\d{1,3})(?:天|日)(?:之?后|以后|之内|内)",
          lambda m, t, _df: t + timedelta(days=int(m.group(1))), digit=True),
    _form("in_days", r"过(\d{1,3})天", lambda m, t, _df: t + timedelta(days=int(m.group(1))), digit=True),
    _form("in_days", r"(\d{1,2})个?(?:星期|礼拜|周)(?:之?后|以后|之内|内)",
          lambda m, t, _df: t + timedelta(days=7 * int(m.group(1))), digit=True),
    _form("weekday", r"下下个?(?:周|星期|礼拜)([一二三四五六日天1-7])",
          lambda m, t, _df: weekday_next_week(t, _CJK_WEEKDAYS[m.group(1)]) + timedelta(days=7)),
    _form("in_days", r"下下个?(?:周|星期|礼拜)", _days(14)),
    _form("next_weekend", r"下个?周末", _weekend(next_week=True)),
    _form("weekend", r"(?:这个?|本)?周末", _weekend(next_week=False)),
    _form("weekday", r"(下个?|这个?|本)?(?:周|星期|礼拜)([一二三四五六日天1-7])",
          _cjk_weekday(("下", "下个"), ("这", "这个", "本"), _CJK_WEEKDAYS)),
    _form("next_week", r"下个?(?:周|星期|礼拜)", _days(7)),
    _form("day_of_month", r"(?<![\d月年.])(\d{1,2})[日号](?!码|线|楼)",
          lambda m, t, _df: day_of_month(t, int(m.group(1))), digit=True),
)

_KO_FORMS: tuple[_Form, ...] = (
    _form("iso", r"(\d{4})년\s*(\d{1,2})월\s*(\d{1,2})일",
          lambda m, t, _df: month_day(t, int(m.group(2)), int(m.group(3)), int(m.group(1))), digit=True),
    _form("next_month_day", r"다음\s*달\s*(\d{1,2})\s*일", lambda m, t, _df: _in_month(t, 1, int(m.group(1))), digit=True),
    _form("this_month_day", r"이번\s*달\s*(\d{1,2})\s*일", lambda m, t, _df: _in_month(t, 0, int(m.group(1))), digit=True),
    _form("month_day", r"(\d{1,2})\s*월\s*(\d{1,2})\s*일",
          lambda m, t, _df: month_day(t, int(m.group(1)), int(m.group(2))), digit=True),
    _form("end_of_next_month", r"다음\s*달\s*(?:말일?|월말)", lambda m, t, _df: end_of_month(t, 1)),
    _form("end_of_month", r"(?:이번\s*달\s*)?(?:월말|말일)|이번\s*달\s*말", lambda m, t, _df: end_of_month(t)),
    _form("relative_day", r"글피", _days(3)),
    _form("relative_day", r"모레", _days(2)),
    _form("relative_day", r"내일", _days(1)),
    _form("relative_day", r"오늘", _days(0)),
    _form("in_days", r"(\d{1,3})\s*일\s*(?:후|뒤|이내|안에)",
          lambda m, t, _df: t + timedelta(days=int(m.group(1))), digit=True),
    _form("in_days", r"(하루|이틀|사흘|나흘|닷새)\s*(?:후|뒤|안에)",
          lambda m, t, _df: t + timedelta(days=_KO_NATIVE_DAYS[m.group(1)])),
    _form("in_days", r"(\d{1,2})\s*주\s*(?:후|뒤)", lambda m, t, _df: t + timedelta(days=7 * int(m.group(1))), digit=True),
    _form("in_days", r"일주일\s*(?:후|뒤|안에)", _days(7)),
    _form("next_weekend", r"다음\s*주\s*주말|담주\s*주말", _weekend(next_week=True)),
    _form("weekend", r"(?:이번\s*)?주말", _weekend(next_week=False)),
    _form("weekday", r"(다음\s*주|담주|이번\s*주)?\s*([월화수목금토일])요일",
          _cjk_weekday(("다음주", "담주"), ("이번주",), _KO_WEEKDAYS)),
    _form("next_week", r"다음\s*주|담주", _days(7)),
    _form("day_of_month", r"(?<![\d월])(\d{1,2})\s*일(?!\s*(?:후|뒤|이내|안에|동안))",
          lambda m, t, _df: day_of_month(t, int(m.group(1))), digit=True),
)

# Spanish (accents folded by normalisation: "mañana" is "manana", "miércoles" "miercoles")
_ES_WEEKDAYS = {name: i for i, name in enumerate(
    ("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo")
)}
_ES_MONTHS = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
    "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}
_ES_NUMBERS = {"un": 1, "una": 1, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
               "ocho": 8, "nueve": 9, "diez": 10, "quince": 15, "un par de": 2}
_ES_WEEKDAYS_RE = _alt(_ES_WEEKDAYS)
_ES_MONTHS_RE = _alt(_ES_MONTHS)
_ES_NUMBERS_RE = _alt(_ES_NUMBERS)


def _es_num(text: str) -> int:
    return int(text) if text.isdigit() else _ES_NUMBERS[text]


def _es_day(text: str) -> int:
    return 1 if text == "primero" else int(text)


def _es_weekday(m: re.Match[str], today: date, _df: bool) -> date:
    before, weekday, after = m.group(1) or "", _ES_WEEKDAYS[m.group(2)], m.group(3) or ""
    if "proxim" in before or after:
        return weekday_next_week(today, weekday)
    if before.strip() == "este":
        return weekday_on_or_after(today, weekday)
    return weekday_strictly_after(today, weekday)


_ES_FORMS: tuple[_Form, ...] = (
    _form("month_day", rf"\b(?:el\s+)?(?:dia\s+)?(\d{{1,2}}|primero)\s+de\s+({_ES_MONTHS_RE})\b(?:\s+de\s+(\d{{4}}))?",
          lambda m, t, _df: month_day(t, _ES_MONTHS[m.group(2)], _es_day(m.group(1)),
                                      int(m.group(3)) if m.group(3) else None)),
    _form("end_of_next_month", r"\b(?:a\s+)?(?:fin|fines|finales)\s+del?\s+(?:mes\s+que\s+viene|proximo\s+mes)\b",
          lambda m, t, _df: end_of_month(t, 1)),
    _form("end_of_month", r"\b(?:a\s+)?(?:fin|fines|finales)\s+de(?:l)?\s+mes\b|\bultimo\s+dia\s+del\s+mes\b",
          lambda m, t, _df: end_of_month(t)),
    _form("relative_day", r"\bpasado\s+manana\b", _days(2)),
    _form("relative_day", r"\b(?:hoy|esta\s+noche|esta\s+tarde|esta\s+manana|hoy\s+mismo|ahorita)\b", _days(0)),
    # "manana" is also "morning": "en la manana", "por la manana" are not tomorrow
    _form("relative_day", r"(?<!la )(?<!esta )\bmanana\b", _days(1)),
    _form("in_days", rf"\b(?:en|dentro\s+de)\s+(\d{{1,3}}|{_ES_NUMBERS_RE})\s+(dias?|semanas?)\b",
          lambda m, t, _df: t + timedelta(days=_es_num(m.group(1)) * (7 if m.group(2).startswith("semana") else 1))),
    _form("next_weekend", r"\b(?:el\s+)?(?:proximo\s+fin\s+de\s+semana|fin\s+de\s+semana\s+que\s+viene)\b",
          _weekend(next_week=True)),
    _form("weekend", r"\b(?:este|el)\s+fin\s+de\s+semana\b", _weekend(next_week=False)),
    _form("weekday", rf"\b((?:el\s+)?(?:proximo|este)\s+|el\s+)?({_ES_WEEKDAYS_RE})(\s+que\s+viene|\s+de\s+la\s+"
          rf"(?:semana\s+que\s+viene|proxima\s+semana))?\b", _es_weekday),
    _form("next_week", r"\b(?:la\s+)?(?:semana\s+que\s+viene|proxima\s+semana)\b", _days(7)),
    _form("day_of_month", r"\b(?:el|para\s+el|antes\s+del)\s+(?:dia\s+)?(\d{1,2}|primero)\b(?!\s*(?:%|dolares|pesos|dias))",
          lambda m, t, _df: day_of_month(t, _es_day(m.group(1)))),
)

_HAN = re.compile(r"[\u4e00-\u9fff]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN_OR_DIGIT = re.compile(r"[a-z0-9]")


def find_dates(text: str, *, today: date, day_first: bool = False) -> list[DateMention]:
    """Every date expression in normalised ``text``, left to right.

    Forms are tried in table order and a later form never reuses characters
    an earlier one took ("Dec 10th" is one month-day, not also "the 10th").
    """
    forms: list[_Form] = []
    has_digit = bool(_DIGIT.search(text))
    if _LATIN_OR_DIGIT.search(text):
        forms.extend(_EN_FORMS)
        forms.extend(_ES_FORMS)
    if _HAN.search(text):
        forms.extend(_ZH_FORMS)
    if _HANGUL.search(text):
        forms.extend(_KO_FORMS)
    taken: list[tuple[int, int]] = []
    found: list[DateMention] = []
    for form in forms:
        if form.needs_digit and not has_digit:
            continue
        for match in form.pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append(DateMention(start, end, form.resolve(match, today, day_first), form.name))
    found.sort(key=lambda mention: mention.start)
    return found
