"""Parsers for the values of one CSV cell.

Each parser takes the cleaned text of a cell (trimmed, ``csv_safe`` escaping
undone) and returns the stored value or raises :class:`BadValue`.  Reasons
name what is wrong and may quote codes (country, currency, zone, locale: not
personal data) but never a phone number, email address or name: they end up on
stderr, in the JSON summary and in the rejects file.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import get_currency_precision, is_currency

__all__ = [
    "BadValue",
    "parse_amount_minor",
    "parse_bool",
    "parse_country",
    "parse_currency",
    "parse_date",
    "parse_email",
    "parse_instant",
    "parse_locale",
    "parse_phone",
    "parse_region",
    "parse_risk_score",
    "parse_segment",
    "parse_zone",
    "shown",
]

# The largest value a BIGINT column holds.
_MAX_MINOR = 2**63 - 1


class BadValue(ValueError):
    """A cell whose value cannot be accepted; the message is the reason."""


_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_/+\-]{0,39}")


def shown(text: str) -> str:
    """A rejected code quoted for a reason, e.g. `` 'XX'``, or nothing.

    Codes (country, currency, zone, locale, channel) help to fix a file and
    are not personal data, but a misplaced column could put a phone number or
    an address where a code belongs: anything that does not look like a code
    is left out of the message.
    """
    if _CODE_RE.fullmatch(text) and sum(ch.isdigit() for ch in text) < 4:
        return f" {text!r}"
    return ""


# --- booleans -----------------------------------------------------------------

_BOOLEANS = {
    "": False,
    "true": True,
    "yes": True,
    "1": True,
    "false": False,
    "no": False,
    "0": False,
}


def parse_bool(text: str) -> bool:
    """``true/false/yes/no/1/0`` in any case; empty is false (no consent)."""
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise BadValue("bad boolean: use true/false, yes/no or 1/0") from None


# --- codes --------------------------------------------------------------------

# Territories that babel knows but that are not countries a borrower lives in.
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ"})


@cache
def _countries() -> frozenset[str]:
    territories = Locale("en").territories
    return frozenset(
        code for code in territories if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    )


def parse_country(text: str) -> str:
    """An ISO 3166-1 alpha-2 code, returned upper-case."""
    code = text.upper()
    if code not in _countries():
        raise BadValue(f"unknown country{shown(code)} (expected an ISO 3166 alpha-2 code such as US)")
    return code


_REGION_RE = re.compile(r"[A-Z0-9]{1,3}")


def parse_region(text: str, country: str) -> str | None:
    """A state/province code such as ``CA`` or ``MA``; ``US-MA`` is accepted as ``MA``."""
    if not text:
        return None
    code = text.upper()
    prefix = country + "-"
    if code.startswith(prefix):
        code = code[len(prefix) :]
    if not _REGION_RE.fullmatch(code):
        raise BadValue("not a state/province code (1 to 3 letters or digits, e.g. CA)")
    return code


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def parse_zone(text: str) -> str | None:
    """An IANA time zone name such as ``America/Chicago``; empty means none."""
    if not text:
        return None
    if text not in _zones():
        raise BadValue(f"unknown time zone{shown(text)} (expected an IANA name such as America/Chicago)")
    return text


@lru_cache(maxsize=512)
def parse_locale(text: str) -> str:
    """A locale such as ``en-US``, ``zh-CN``, ``ko-KR``; empty means ``en-US``.

    Validated with babel; stored in canonical case with ``-`` separators
    (``en_us`` becomes ``en-US``).
    """
    if not text:
        return "en-US"
    tag = text.replace("_", "-")
    try:
        Locale.parse(tag, sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise BadValue(f"unknown locale{shown(text)} (expected a tag such as en-US)") from None
    parts = tag.split("-")
    canonical = [parts[0].lower()]
    for part in parts[1:]:
        canonical.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(canonical)


@lru_cache(maxsize=512)
def parse_currency(text: str) -> tuple[str, int]:
    """An ISO 4217 code known to babel and its number of decimals."""
    code = text.upper()
    if not code:
        raise BadValue("missing required value")
    if len(code) != 3 or not code.isalpha() or not is_currency(code):
        raise BadValue(f"unknown currency{shown(code)} (expected an ISO 4217 code such as USD)")
    return code, get_currency_precision(code)


# --- contact addresses -------------------------------------------------------------


def parse_phone(text: str, country: str) -> str | None:
    """Any common written form, normalised to E.164 with ``country`` as default region."""
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise BadValue(f"not a valid phone number for country {country}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# A deliberately plain check: one @, a local part without spaces or the
# characters that need quoting, and a domain of dot-separated labels ending in
# a top-level domain of letters.  Internationalised (Unicode) addresses pass.
_EMAIL_RE = re.compile(
    r"""
    (?P<local>[^\s@"(),:;<>\[\]\\.]+(?:\.[^\s@"(),:;<>\[\]\\.]+)*)
    @
    (?P<domain>(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63})
    """,
    re.VERBOSE,
)


def parse_email(text: str) -> str | None:
    """A plausible email address, with its domain lower-cased; empty means none."""
    if not text:
        return None
    match = _EMAIL_RE.fullmatch(text)
    if match is None or len(text) > 254 or len(match["local"]) > 64:
        raise BadValue("not a valid email address")
    return f"{match['local']}@{match['domain'].lower()}"


# --- amounts ---------------------------------------------------------------------

# Plain decimal notation only: no exponent, no NaN/Infinity, no digit
# separators (Decimal itself would accept "1e5", "NaN" and "1_000").
_AMOUNT_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_amount_minor(text: str, currency: str, decimals: int, *, positive: bool = False) -> int:
    """A decimal amount in ``currency`` as an integer count of minor units.

    Parsed with :class:`~decimal.Decimal`, never float.  Trailing zeros past
    the currency's decimals are allowed (``10.500`` USD is 1050 cents); any
    other extra decimal is rejected rather than rounded.
    """
    # Fast path for the usual "1234.56": ASCII digits and at most one dot.
    if not (text.isascii() and text.replace(".", "", 1).isdigit()):
        if not text:
            raise BadValue("missing required value")
        if not _AMOUNT_RE.fullmatch(text):
            raise BadValue("not a number (use plain decimal notation such as 1234.56)")
        if text.startswith("-") and Decimal(text) != 0:
            raise BadValue("negative amount")
        text = text.lstrip("-")
    fraction = text.partition(".")[2]
    if len(fraction) > decimals and fraction[decimals:].strip("0"):
        raise BadValue(f"too many decimals for {currency} (at most {decimals})")
    try:
        value = int(Decimal(text).scaleb(decimals))
    except InvalidOperation:  # pragma: no cover - the checks above exclude these
        raise BadValue("not a number (use plain decimal notation such as 1234.56)") from None
    if positive and value == 0:
        raise BadValue("amount must be greater than zero")
    if value > _MAX_MINOR:
        raise BadValue("amount too large")
    return value


# --- the lender's risk score and segment ------------------------------------------------

MAX_RISK_SCORE = 1000
_SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def parse_risk_score(text: str) -> int | None:
    """The lender's risk score: a whole number from 0 to 1000 (higher is riskier); empty means none."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadValue(f"not a whole number from 0 to {MAX_RISK_SCORE}")
    value = int(text)
    if value > MAX_RISK_SCORE:
        raise BadValue(f"out of range: a risk score is from 0 to {MAX_RISK_SCORE}")
    return value


def parse_segment(text: str) -> str | None:
    """The lender's segment name: letters, digits and ``_ . : -`` (at most 64); empty means none."""
    if not text:
        return None
    if not _SEGMENT_RE.fullmatch(text):
        raise BadValue("not a segment name (letters, digits and _ . : -, at most 64, e.g. prime)")
    return text


# --- dates and instants --------------------------------------------------------------


def parse_date(text: str) -> date:
    """A calendar date written ``YYYY-MM-DD``."""
    if not text:
        raise BadValue("missing required value")
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise BadValue("bad date: use YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadValue("bad date: use YYYY-MM-DD") from None


_INSTANT_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?"
)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date-time, returned as an aware UTC datetime.

    With an offset (``Z``, ``+08:00``) it is exact; without one it is taken
    as UTC; a plain date means 00:00 UTC that day.
    """
    if not text:
        raise BadValue("missing required value")
    if not _INSTANT_RE.fullmatch(text):
        raise BadValue("bad date-time: use ISO 8601 such as 2026-03-01T14:30:00-05:00")
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        value = datetime.fromisoformat(text.replace(",", "."))
    except ValueError:
        raise BadValue("bad date-time: use ISO 8601 such as 2026-03-01T14:30:00-05:00") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
