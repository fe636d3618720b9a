"""Where the borrower is, in time: the candidate IANA zones of a subject.

Rules are judged in the borrower's local time, but the bot rarely *knows* that
time: the lender's file may give a zone, the state may span two zones (Florida's
panhandle is Central), and the phone number may belong to yet another area.
Following the CFPB's reading of ambiguous location, every plausible zone is a
candidate and contact is allowed only when the instant is inside the window in
**every** candidate zone.

Candidates, in this order (the first one is the *primary* zone, used to display
times):

1. the explicit ``timezone`` of the borrower file;
2. the zone(s) of the region (:data:`REGION_ZONES`: US states, Chinese
   provinces, Canadian provinces, Australian states);
3. the zone(s) of the phone number (``phonenumbers`` time-zone data), except for
   non-geographic numbers (toll-free, premium, many mobiles), for which
   phonenumbers answers ``Etc/Unknown`` or a whole country's list: they locate
   nobody and add nothing;
4. only when 1-3 gave nothing: the country's zone(s) (:data:`COUNTRY_ZONES`, or
   phonenumbers' list for a calling code used by that country alone), else the
   configured default zone.

Everything here is pure and cached: the planner resolves zones for up to a
million installments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

__all__ = [
    "COUNTRY_ZONES",
    "REGION_ZONES",
    "ZoneSet",
    "local_midnight",
    "phone_zone_names",
    "resolve_zones",
    "wall_time",
    "zone",
]

_NY = "America/New_York"
_CHI = "America/Chicago"
_DEN = "America/Denver"
_PHX = "America/Phoenix"
_LA = "America/Los_Angeles"
_ANC = "America/Anchorage"
_ADAK = "America/Adak"
_HNL = "Pacific/Honolulu"
_BOISE = "America/Boise"
_SH = "Asia/Shanghai"

_US_STATES: dict[str, tuple[str, ...]] = {
    "AL": (_CHI,), "AK": (_ANC, _ADAK), "AR": (_CHI,), "CA": (_LA,), "CO": (_DEN,),
    "CT": (_NY,), "DC": (_NY,), "DE": (_NY,), "GA": (_NY,), "HI": (_HNL,), "IA": (_CHI,),
    "IL": (_CHI,), "LA": (_CHI,), "MA": (_NY,), "MD": (_NY,), "ME": (_NY,), "MN": (_CHI,),
    "MO": (_CHI,), "MS": (_CHI,), "MT": (_DEN,), "NC": (_NY,), "NH": (_NY,), "NJ": (_NY,),
    "NM": (_DEN,), "NV": (_LA,), "NY": (_NY,), "OH": (_NY,), "OK": (_CHI,), "PA": (_NY,),
    "RI": (_NY,), "SC": (_NY,), "UT": (_DEN,), "VA": (_NY,), "VT": (_NY,), "WA": (_LA,),
    "WI": (_CHI,), "WV": (_NY,), "WY": (_DEN,),
    # States split between two zones: both are candidates.
    "AZ": (_PHX, _DEN),  # no DST, except the Navajo Nation (Mountain with DST)
    "FL": (_NY, _CHI),  # the panhandle west of the Apalachicola is Central
    "ID": (_BOISE, _LA),  # the north of Idaho is Pacific
    "IN": ("America/Indiana/Indianapolis", _CHI),  # NW and SW corners are Central
    "KS": (_CHI, _DEN),  # four western counties are Mountain
    "KY": ("America/Kentucky/Louisville", _CHI),  # the west is Central
    "MI": ("America/Detroit", "America/Menominee"),  # four UP counties are Central
    "ND": (_CHI, _DEN),  # the south-west is Mountain
    "NE": (_CHI, _DEN),  # the panhandle is Mountain
    "OR": (_LA, _BOISE),  # most of Malheur County is Mountain
    "SD": (_CHI, _DEN),  # the west is Mountain
    "TN": (_CHI, _NY),  # East Tennessee is Eastern
    "TX": (_CHI, _DEN),  # El Paso and Hudspeth are Mountain
    # Territories, when a file puts them under country US.
    "PR": ("America/Puerto_Rico",), "VI": ("America/St_Thomas",), "GU": ("Pacific/Guam",),
    "MP": ("Pacific/Saipan",), "AS": ("Pacific/Pago_Pago",),
}

# Mainland China, Hong Kong and Macau keep one official time (UTC+8).  Xinjiang
# officially uses Beijing time too, but much of daily life runs on "Xinjiang time"
# (UTC+6, tz database Asia/Urumqi): both are candidates there, so a Xinjiang
# borrower's 08:00 is never before 08:00 on either clock.
_CN_PROVINCES = (
    "AH BJ CQ FJ GD GS GX GZ HA HB HE HI HL HN JL JS JX LN NM NX QH SC SD SH SN SX TJ XZ YN ZJ"
).split()
_CN_NUMERIC = (
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64"
).split()
_CN: dict[str, tuple[str, ...]] = {code: (_SH,) for code in _CN_PROVINCES + _CN_NUMERIC}
_CN.update({"XJ": (_SH, "Asia/Urumqi"), "65": (_SH, "Asia/Urumqi"),
            "HK": ("Asia/Hong_Kong",), "91": ("Asia/Hong_Kong",),
            "MO": ("Asia/Macau",), "92": ("Asia/Macau",)})

_CA_PROVINCES: dict[str, tuple[str, ...]] = {
    "AB": ("America/Edmonton",), "BC": ("America/Vancouver", "America/Edmonton"),
    "MB": ("America/Winnipeg",), "NB": ("America/Moncton",),
    "NL": ("America/St_Johns", "America/Goose_Bay"), "NS": ("America/Halifax",),
    "NT": ("America/Edmonton",), "NU": ("America/Iqaluit", "America/Winnipeg", "America/Edmonton"),
    "ON": ("America/Toronto", "America/Winnipeg"), "PE": ("America/Halifax",),
    "QC": ("America/Toronto", "America/Halifax"), "SK": ("America/Regina",),
    "YT": ("America/Whitehorse",),
}

_AU_STATES: dict[str, tuple[str, ...]] = {
    "ACT": ("Australia/Sydney",), "NSW": ("Australia/Sydney", "Australia/Broken_Hill"),
    "NT": ("Australia/Darwin",), "QLD": ("Australia/Brisbane",), "SA": ("Australia/Adelaide",),
    "TAS": ("Australia/Hobart",), "VIC": ("Australia/Melbourne",), "WA": ("Australia/Perth",),
}

#: (country, region) -> zones.  Regions are the codes the importer stores (``MA``, ``XJ``).
REGION_ZONES: dict[tuple[str, str], tuple[str, ...]] = {
    **{("US", k): v for k, v in _US_STATES.items()},
    **{("CN", k): v for k, v in _CN.items()},
    **{("CA", k): v for k, v in _CA_PROVINCES.items()},
    **{("AU", k): v for k, v in _AU_STATES.items()},
}

#: Fallback zones of a country when nothing else is known.  Countries missing here
#: use phonenumbers' list for their calling code when no other country shares it.
COUNTRY_ZONES: dict[str, tuple[str, ...]] = {
    "US": (_NY, _CHI, _DEN, _PHX, _LA, _ANC, _HNL),
    "CA": ("America/St_Johns", "America/Halifax", "America/Toronto", "America/Winnipeg",
           "America/Regina", "America/Edmonton", "America/Vancouver"),
    "AU": ("Australia/Sydney", "Australia/Brisbane", "Australia/Adelaide", "Australia/Darwin",
           "Australia/Perth"),
    "CN": (_SH,),
    "HK": ("Asia/Hong_Kong",),
    "MO": ("Asia/Macau",),
    "KR": ("Asia/Seoul",),
    "JP": ("Asia/Tokyo",),
    "GB": ("Europe/London",),
    "IE": ("Europe/Dublin",),
    "PR": ("America/Puerto_Rico",),
}


@dataclass(frozen=True, slots=True)
class ZoneSet:
    """The candidate zones of one subject, primary first, with where each came from."""

    names: tuple[str, ...]
    zones: tuple[ZoneInfo, ...]
    sources: tuple[str, ...]  # parallel to names: timezone | region | phone | country | default

    @property
    def primary(self) -> ZoneInfo:
        return self.zones[0]


@lru_cache(maxsize=None)
def zone(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or None when the tz database does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _lookup_phone_zones(e164: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    names = pn_timezone.time_zones_for_number(number)
    if not names or pn_timezone.UNKNOWN_TIMEZONE in names:
        return ()
    kind = phonenumbers.number_type(number)
    if len(names) > 1 and not pn_timezone.is_number_type_geographical(kind, number.country_code):
        # A country-wide list (US toll-free gives 42 zones): it locates nobody.
        return ()
    return tuple(name for name in names if zone(name) is not None)


# Keyed by the number's first nine digits and its length: phonenumbers' zone data
# never looks further than nine digits, so numbers sharing that key share zones.
# (A plain dict, not lru_cache: the key is a prefix but the lookup needs a whole
# number to parse.)
_PHONE_MEMO: dict[str, tuple[str, ...]] = {}
_PHONE_MEMO_MAX = 200_000


def phone_zone_names(e164: str | None) -> tuple[str, ...]:
    """The zones a phone number places its owner in; () when it says nothing."""
    if not e164:
        return ()
    key = f"{e164[:10]}/{len(e164)}"
    found = _PHONE_MEMO.get(key)
    if found is None:
        found = _lookup_phone_zones(e164)
        if len(_PHONE_MEMO) >= _PHONE_MEMO_MAX:
            _PHONE_MEMO.clear()
        _PHONE_MEMO[key] = found
    return found


@lru_cache(maxsize=None)
def _country_zone_names(country: str) -> tuple[str, ...]:
    if country in COUNTRY_ZONES:
        return COUNTRY_ZONES[country]
    code = phonenumbers.country_code_for_region(country)
    if not code or len(phonenumbers.region_codes_for_country_code(code)) != 1:
        return ()
    names = pn_timezone.TIMEZONE_DATA.get(str(code), ())
    return tuple(n for n in names if n != pn_timezone.UNKNOWN_TIMEZONE and zone(n) is not None)


def normalise_region(country: str, region: str | None) -> str | None:
    """``us-ma`` / ``MA`` -> ``MA``; None stays None."""
    if not region:
        return None
    code = region.strip().upper()
    prefix = country + "-"
    if code.startswith(prefix):
        code = code[len(prefix):]
    return code or None


def resolve_zones(
    country: str,
    region: str | None,
    timezone: str | None,
    phone_e164: str | None,
    default_timezone: str,
) -> ZoneSet:
    """The candidate zones (see the module docstring); never empty.

    Cached per (country, region, timezone, the phone number's zones): a million
    borrowers share a few thousand keys, so the planner nearly always hits.
    """
    return _resolve(country, region, timezone, phone_zone_names(phone_e164), default_timezone)


@lru_cache(maxsize=16_384)
def _resolve(
    country: str,
    region: str | None,
    timezone: str | None,
    phone_zones: tuple[str, ...],
    default_timezone: str,
) -> ZoneSet:
    country = (country or "").strip().upper()
    found: list[tuple[str, str]] = []

    def add(names: tuple[str, ...], source: str) -> None:
        for name in names:
            if zone(name) is not None and all(name != seen for seen, _ in found):
                found.append((name, source))

    if timezone:
        add((timezone.strip(),), "timezone")
    code = normalise_region(country, region)
    if code:
        add(REGION_ZONES.get((country, code), ()), "region")
    add(phone_zones, "phone")
    if not found:
        add(_country_zone_names(country), "country")
    if not found:
        add((default_timezone,), "default")
    if not found:
        add(("UTC",), "default")
    names = tuple(n for n, _ in found)
    return ZoneSet(
        names=names,
        zones=tuple(zone(n) for n in names),  # type: ignore[misc]  # all known by add()
        sources=tuple(s for _, s in found),
    )


def wall_time(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time.

    A wall time that does not exist (skipped by a DST jump) maps to the instant
    of the jump; one that exists twice maps to the first occurrence.
    """
    local = datetime.combine(day, clock, tzinfo=tz)
    instant = local.astimezone(UTC)
    wall = local.replace(tzinfo=None)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    # Skipped: zoneinfo applied the offset from before the jump, which lands after
    # the jump.  Walk back to the jump, the first instant whose clock reads >= wall.
    step = timedelta(minutes=1)
    while (instant - step).astimezone(tz).replace(tzinfo=None) >= wall:
        instant -= step
    return instant


_MIDNIGHT = time(0, 0)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts in ``tz``."""
    return wall_time(day, _MIDNIGHT, tz)
