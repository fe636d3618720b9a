"""Holiday calendars: the days on which no contact is made.

The source is the ``holidays`` package (``holidays.country_holidays(country,
years=...)``).  For China it carries the State Council's yearly schedule: the
statutory holidays, the substituted days off ("Day off (substituted from ...)")
and the weekend working days of 调休 (``weekend_workdays``; e.g. Saturday
2026-10-10 is a working day).

A *blocked* day is:

* a holiday of the package's public category, or an extra holiday from the
  override file;
* with ``bridge_weekends``: a weekend day joined to such a holiday by a run of
  non-working days (the 2026 National Day break is 1-7 October, but the package
  lists Sunday 4 October as an ordinary weekend day; it is part of the break the
  State Council announced, so it is blocked too);

and never a working day: a weekend working day (调休) or an extra working day
from the override file is always a normal day.

Calendars are computed once per (calendar, year, overrides) and cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache

import holidays as holidays_lib

__all__ = ["CalendarKey", "blocked_days", "day_name", "supported_calendars"]

# (country, bridge_weekends, extra_holidays, extra_working_days)
CalendarKey = tuple[str, bool, frozenset[date], frozenset[date]]

_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=None)
def supported_calendars() -> frozenset[str]:
    return frozenset(holidays_lib.list_supported_countries())


@lru_cache(maxsize=256)
def _package_calendar(country: str, year: int) -> holidays_lib.HolidayBase:
    return holidays_lib.country_holidays(country, years=year)


def _is_holiday(country: str, day: date, extra: frozenset[date]) -> bool:
    return day in extra or day in _package_calendar(country, day.year)


def _is_weekend_workday(country: str, day: date, extra_working: frozenset[date]) -> bool:
    if day in extra_working:
        return True
    calendar = _package_calendar(country, day.year)
    return day in getattr(calendar, "weekend_workdays", ())


def _is_rest_day(country: str, day: date, extra_h: frozenset[date], extra_w: frozenset[date]) -> bool:
    """A day nobody works: a holiday, or a weekend day that is not a working day."""
    if day in extra_w:
        return False
    if _is_holiday(country, day, extra_h):
        return True
    weekend = getattr(_package_calendar(country, day.year), "weekend", {5, 6})
    return day.weekday() in weekend and not _is_weekend_workday(country, day, extra_w)


@lru_cache(maxsize=256)
def blocked_days(key: CalendarKey, year: int) -> frozenset[date]:
    """Every blocked day of ``year`` (see the module docstring)."""
    country, bridge, extra_h, extra_w = key
    first, last = date(year, 1, 1), date(year, 12, 31)
    seeds: set[date] = {d for d in _package_calendar(country, year) if first <= d <= last}
    seeds.update(d for d in extra_h if d.year == year)
    if bridge:
        # A break may start in December and run into January: look one week
        # beyond each end of the year for holidays whose break reaches in.
        for d in _days(first - timedelta(days=7), first - _ONE_DAY):
            if _is_holiday(country, d, extra_h):
                seeds.add(d)
        for d in _days(last + _ONE_DAY, last + timedelta(days=7)):
            if _is_holiday(country, d, extra_h):
                seeds.add(d)
    blocked: set[date] = set()
    for day in seeds:
        if day in extra_w:
            continue
        blocked.add(day)
        if not bridge:
            continue
        for step in (_ONE_DAY, -_ONE_DAY):
            cursor = day + step
            while _is_rest_day(country, cursor, extra_h, extra_w):
                blocked.add(cursor)
                cursor += step
    return frozenset(d for d in blocked if d.year == year)


def _days(start: date, end: date) -> Iterable[date]:
    day = start
    while day <= end:
        yield day
        day += _ONE_DAY


def day_name(country: str, day: date, extra_h: frozenset[date] = frozenset()) -> str:
    """A label for an explanation: the holiday's name, or why the day is blocked."""
    if day in extra_h:
        return "holiday (override file)"
    name = _package_calendar(country, day.year).get(day)
    return str(name) if name else "rest day of a holiday break"
