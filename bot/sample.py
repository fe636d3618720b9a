"""Realistic, reproducible sample portfolios in the import CSV formats.

``bot sample-data`` and the benchmarks use :func:`write_portfolio` to make a
portfolio that looks like a real lender's: mixed locales (US states in several
time zones, mainland China, Korea, the UK), phone numbers in the forms people
actually type, installments due today, tomorrow and overdue by days or months,
partial payments, and a recent contact history.

Why it is written the way it is:

* **Reproducible.** One ``random.Random(seed)`` drives everything, nothing
  iterates over a set or dict whose order could vary, and the only other input
  is the as-of date: the same seed and as-of date give byte-identical files.
* **Streaming.** Rows are written as each borrower is generated, so memory
  stays flat for millions of rows.
* **Valid by construction.** Phone numbers are built from ranges that
  ``phonenumbers`` accepts (US ``555`` exchanges under area codes of the right
  state, CN 13x/15x/18x mobiles, KR 010 mobiles, UK 07xxx mobiles) instead of
  being validated row by row, which would be too slow for a million rows; the
  tests validate every number of a generated portfolio.
* **Showcase first.** The first borrowers are fixed scenarios (due today,
  overdue 5 days, a Californian with a New York number, an Arizonan with seven
  calls this week...) so that small portfolios always contain them; the table
  is :data:`SHOWCASE` and docs/cli.md lists it.

``--with-errors`` appends a fixed set of bad rows, one per rejection reason,
and lists them in ``EXPECTED_ERRORS.md``; see :func:`_write_bad_rows`.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from bot.clock import SystemClock

__all__ = [
    "HEADERS",
    "KINDS",
    "SHOWCASE",
    "US_STATES",
    "SampleResult",
    "generate_portfolio",
    "write_portfolio",
]

KINDS = ("borrowers", "loans", "installments", "payments", "contacts")

HEADERS: dict[str, tuple[str, ...]] = {
    "borrowers": (
        "borrower_id", "full_name", "phone", "email", "locale", "timezone", "region",
        "country", "consent_sms", "consent_voice", "consent_email",
    ),
    "loans": ("loan_id", "borrower_id", "product", "principal", "currency", "opened_on"),
    "installments": ("installment_id", "loan_id", "due_date", "amount_due", "amount_paid"),
    "payments": ("payment_id", "loan_id", "paid_at", "amount"),
    "contacts": ("borrower_id", "loan_id", "channel", "occurred_at", "outcome"),
}

EXPECTED_ERRORS_FILE = "EXPECTED_ERRORS.md"

# --- reference data ------------------------------------------------------------


@dataclass(frozen=True)
class UsState:
    code: str
    zone: str
    area_codes: tuple[int, ...]
    weight: float  # roughly population share


# Area codes whose phonenumbers time zone is exactly the state's zone (codes of
# states split across zones, e.g. FL 850 or TX 915, are left out on purpose).
US_STATES: tuple[UsState, ...] = (
    UsState("CA", "America/Los_Angeles", (213, 310, 415, 510, 619, 714, 818, 916, 408, 949), 12.0),
    UsState("TX", "America/Chicago", (214, 713, 512, 210, 817, 972, 469), 9.0),
    UsState("FL", "America/New_York", (305, 407, 813, 904, 954, 561, 727), 7.0),
    UsState("NY", "America/New_York", (212, 646, 718, 917, 516, 914, 585, 716, 347, 631), 6.0),
    UsState("IL", "America/Chicago", (312, 773, 630, 847, 217, 708), 4.0),
    UsState("PA", "America/New_York", (215, 412, 717, 610), 4.0),
    UsState("OH", "America/New_York", (216, 614, 513, 330), 3.5),
    UsState("GA", "America/New_York", (404, 678, 770, 912), 3.2),
    UsState("NC", "America/New_York", (704, 919, 336, 910), 3.2),
    UsState("NJ", "America/New_York", (201, 973, 732, 609), 2.8),
    UsState("VA", "America/New_York", (703, 804, 757, 540), 2.6),
    UsState("WA", "America/Los_Angeles", (206, 253, 425, 360, 509), 2.3),
    UsState("AZ", "America/Phoenix", (602, 480, 520, 623, 928), 2.2),
    UsState("MA", "America/New_York", (617, 508, 781, 413, 978), 2.1),
    UsState("TN", "America/Chicago", (615, 901, 629), 2.1),
    UsState("CO", "America/Denver", (303, 720, 719, 970), 1.8),
    UsState("MD", "America/New_York", (410, 301, 443), 1.8),
    UsState("MN", "America/Chicago", (612, 651, 952), 1.7),
    UsState("OR", "America/Los_Angeles", (503, 541, 971), 1.3),
    UsState("NV", "America/Los_Angeles", (702,), 1.0),
    UsState("HI", "Pacific/Honolulu", (808,), 0.5),
)
_STATE_BY_CODE = {s.code: s for s in US_STATES}
_STATE_CUM = list(accumulate(s.weight for s in US_STATES))

_CN_PROVINCES = ("GD", "SH", "BJ", "ZJ", "JS", "SC", "SD", "HB", "FJ", "HA", "HN", "CQ", "TJ", "LN")
_CN_CUM = list(accumulate((12, 10, 9, 8, 8, 6, 6, 5, 4, 4, 4, 3, 3, 3)))
_CN_MOBILE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139,
    150, 151, 152, 153, 155, 156, 157, 158, 159,
    180, 181, 182, 183, 184, 185, 186, 187, 188, 189,
)  # fmt: skip
_KR_REGIONS = ("11", "41", "26", "28", "27", "30", "29")  # ISO 3166-2:KR
_KR_CUM = list(accumulate((30, 30, 10, 10, 8, 6, 6)))
_GB_REGIONS = ("ENG", "SCT", "WLS", "NIR")
# UK mobile ranges 074xx, 075xx and 078xx, less those of Jersey, Guernsey and
# the Isle of Man (phonenumbers gives them other region codes).
_GB_MOBILE_PREFIXES = tuple(
    p for p in (*range(7400, 7600), *range(7800, 7900)) if p not in {7457, 7509, 7524, 7829, 7839}
)
_GB_CUM = list(accumulate((84, 8, 5, 3)))

_US_FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Christopher", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty",
    "Mark", "Sandra", "Steven", "Ashley", "Andrew", "Emily", "Kevin", "Michelle", "Brian",
    "Amanda", "Jason", "Melissa", "José", "María", "Luis", "Sofía", "Carlos", "Ana", "Juan",
    "Camila", "DeShawn", "Aaliyah", "Jamal", "Imani", "Minh", "Linh", "Priya", "Arjun",
    "Zoë", "Renée", "Mei", "Hiroshi", "Fatima", "Omar", "Kateryna", "Siobhan",
)  # fmt: skip
_US_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "O'Brien", "Kowalski", "Patel",
    "Kim", "Chen", "Peña", "Núñez", "Smith-Jones", "Okafor", "Yamamoto", "Dubois",
)  # fmt: skip
_US_SUFFIX = ("Jr.", "Sr.", "III")

_CN_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"),
    ("高", "gao"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"), ("彭", "peng"),
    ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("潘", "pan"), ("袁", "yuan"),
    ("蔡", "cai"), ("蒋", "jiang"), ("余", "yu"), ("叶", "ye"), ("程", "cheng"), ("魏", "wei"),
    ("苏", "su"), ("丁", "ding"), ("任", "ren"), ("卢", "lu"), ("欧阳", "ouyang"), ("司马", "sima"),
)  # fmt: skip
_CN_GIVEN = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("英", "ying"), ("华", "hua"), ("玉", "yu"),
    ("兰", "lan"), ("文", "wen"), ("建", "jian"), ("国", "guo"), ("红", "hong"), ("志", "zhi"),
    ("海", "hai"), ("宇", "yu"), ("欣", "xin"), ("怡", "yi"), ("婷", "ting"), ("浩", "hao"),
    ("博", "bo"), ("子", "zi"), ("涵", "han"), ("轩", "xuan"), ("雪", "xue"), ("晨", "chen"),
    ("佳", "jia"), ("琳", "lin"), ("鑫", "xin"), ("思", "si"), ("雨", "yu"), ("梓", "zi"),
)  # fmt: skip
_KR_SURNAMES = (
    ("김", "kim"), ("이", "lee"), ("박", "park"), ("최", "choi"), ("정", "jung"), ("강", "kang"),
    ("조", "cho"), ("윤", "yoon"), ("장", "jang"), ("임", "lim"), ("한", "han"), ("오", "oh"),
    ("서", "seo"), ("신", "shin"), ("권", "kwon"), ("황", "hwang"), ("안", "ahn"), ("송", "song"),
    ("류", "ryu"), ("홍", "hong"),
)  # fmt: skip
_KR_GIVEN = (
    ("민준", "minjun"), ("서연", "seoyeon"), ("도윤", "doyun"), ("서윤", "seoyun"),
    ("예준", "yejun"), ("지우", "jiwoo"), ("시우", "siwoo"), ("하은", "haeun"), ("주원", "juwon"),
    ("지호", "jiho"), ("수아", "sua"), ("지민", "jimin"), ("현우", "hyunwoo"), ("은지", "eunji"),
    ("성민", "sungmin"), ("영희", "younghee"), ("철수", "chulsoo"), ("미영", "miyoung"),
    ("동현", "donghyun"), ("수빈", "subin"),
)  # fmt: skip
_GB_FIRST = (
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Emily", "Charlotte",
    "Thomas", "Sophie", "William", "Freya", "Callum", "Niamh", "Rhys", "Aoife", "Mohammed",
)  # fmt: skip
_GB_LAST = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans",
    "Roberts", "Walker", "Wright", "Hughes", "Patel", "Khan", "Singh", "MacDonald", "O'Neill",
)  # fmt: skip

_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True)
class Product:
    name: str
    low: int  # principal range in whole currency units
    high: int
    rate_low: float  # annual simple rate
    rate_high: float


@dataclass(frozen=True)
class Market:
    """What differs per country: currency, its decimals, products, consent habits."""

    locale: str
    country: str
    currency: str
    decimals: int
    round_to: int  # installment amounts are rounded to this many minor units
    products: tuple[Product, ...]
    empty_zone: float  # share of rows with an empty timezone column
    no_email: float  # share of borrowers without an email address


_MARKETS = {
    "en-US": Market("en-US", "US", "USD", 2, 1, (
        Product("personal", 1_000, 15_000, 0.09, 0.24),
        Product("auto", 8_000, 35_000, 0.05, 0.14),
        Product("card-installment", 500, 5_000, 0.15, 0.29),
    ), 0.2, 0.03),
    "zh-CN": Market("zh-CN", "CN", "CNY", 2, 1, (
        Product("personal", 5_000, 100_000, 0.06, 0.18),
        Product("consumer", 3_000, 30_000, 0.08, 0.24),
        Product("card-installment", 2_000, 50_000, 0.07, 0.18),
    ), 0.5, 0.15),
    "ko-KR": Market("ko-KR", "KR", "KRW", 0, 10, (
        Product("personal", 3_000_000, 50_000_000, 0.05, 0.15),
        Product("auto", 10_000_000, 40_000_000, 0.04, 0.10),
        Product("card-installment", 500_000, 5_000_000, 0.10, 0.19),
    ), 0.3, 0.05),
    "en-GB": Market("en-GB", "GB", "GBP", 2, 1, (
        Product("personal", 1_000, 15_000, 0.07, 0.22),
        Product("auto", 6_000, 30_000, 0.05, 0.12),
        Product("card-installment", 500, 4_000, 0.15, 0.29),
    ), 0.3, 0.02),
}  # fmt: skip

# Locale shares: ~60% US, ~25% mainland China, ~10% Korea, ~5% UK.
_LOCALES = ("en-US", "zh-CN", "ko-KR", "en-GB")
_LOCALE_CUM = list(accumulate((60, 25, 10, 5)))

# Term in months; with ~1.2 loans per borrower this gives ~9 installments per borrower.
_TERMS = (6, 6, 6, 6, 6, 9, 9, 9, 12, 12)
_SECOND_LOAN = 0.12
_MISMATCHED_AREA_CODE = 0.05  # US borrowers whose number is from another state

# --- showcase borrowers -----------------------------------------------------------


@dataclass(frozen=True)
class Showcase:
    """A fixed scenario for one of the first borrowers.

    ``offset`` places one installment ``offset`` days from the as-of date
    (negative: overdue); ``unpaid`` says whether it and every later past
    installment are unpaid.  ``calls_this_week`` adds that many voice calls in
    the last seven days.
    """

    locale: str
    region: str
    offset: int
    unpaid: bool
    calls_this_week: int = 0
    phone_state: str | None = None  # area code of another state
    note: str = ""


SHOWCASE: tuple[Showcase, ...] = (
    Showcase("en-US", "NY", 0, True, note="installment due today"),
    Showcase("zh-CN", "SH", -5, True, note="overdue 5 days"),
    Showcase("ko-KR", "11", 3, True, note="installment due in 3 days (KRW, no decimals)"),
    Showcase("en-US", "MA", -12, True, calls_this_week=2,
             note="Massachusetts, overdue 12 days, 2 calls this week (the state limit)"),
    Showcase("en-US", "CA", -3, True, phone_state="NY",
             note="lives in California, New York phone number (two zones)"),
    Showcase("en-US", "AZ", -40, True, calls_this_week=7,
             note="Arizona (no DST), overdue 40 days, 7 calls this week"),
    Showcase("en-US", "HI", 1, True, note="Hawaii, installment due tomorrow"),
    Showcase("en-GB", "ENG", -9, True, note="United Kingdom, overdue 9 days"),
    Showcase("zh-CN", "GD", 0, True, note="Guangdong, installment due today"),
    Showcase("en-US", "TX", 20, False, note="Texas, all paid, next installment in 20 days"),
)  # fmt: skip

# --- small helpers -------------------------------------------------------------------

_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_len(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def _month_day(year: int, month: int, months: int, day: int) -> date:
    """The date ``months`` after (year, month), on ``day`` clamped to the month's end."""
    index = year * 12 + (month - 1) + months
    y, m = divmod(index, 12)
    m += 1
    return date(y, m, min(day, _month_len(y, m)))


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _money(minor: int, decimals: int) -> str:
    """Minor units as the decimal text of the import files (``1250.00``, ``1500000``)."""
    if decimals == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


def _ascii(text: str) -> str:
    """``Peña`` → ``pena``; ``O'Brien`` → ``obrien``: an email-safe local part."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


def _local_instant(day_ordinal: int, minute_of_day: int, zone: ZoneInfo) -> str:
    """ISO 8601 with the zone's offset that day, e.g. ``2026-11-25T10:32:00-05:00``.

    The offset is taken at local noon: sample times are all after 07:00, when
    any DST change of the day (at 01:00-03:00) has happened.
    """
    hour, minute = divmod(minute_of_day, 60)
    return f"{_day_text(day_ordinal)}T{hour:02d}:{minute:02d}:00{_offset(day_ordinal, zone)}"


@lru_cache(maxsize=4096)
def _day_text(day_ordinal: int) -> str:
    return date.fromordinal(day_ordinal).isoformat()


@lru_cache(maxsize=65536)
def _offset(day_ordinal: int, zone: ZoneInfo) -> str:
    day = date.fromordinal(day_ordinal)
    return datetime(day.year, day.month, day.day, 12, tzinfo=zone).isoformat()[19:]


# --- per-borrower generation ------------------------------------------------------------


@dataclass
class _Counters:
    loan: int = 0
    installment: int = 0
    payment: int = 0


@dataclass
class _Ids:
    borrower_width: int
    loan_width: int
    installment_width: int
    payment_width: int

    @classmethod
    def for_count(cls, borrowers: int) -> _Ids:
        extra = 100  # room for the --with-errors rows
        return cls(
            borrower_width=max(7, len(str(borrowers + extra))),
            loan_width=max(7, len(str(2 * borrowers + extra))),
            installment_width=max(8, len(str(2 * max(_TERMS) * borrowers + extra))),
            payment_width=max(8, len(str(2 * max(_TERMS) * borrowers + extra))),
        )

    def borrower(self, n: int) -> str:
        return f"B{n:0{self.borrower_width}d}"

    def loan(self, n: int) -> str:
        return f"L{n:0{self.loan_width}d}"

    def installment(self, n: int) -> str:
        return f"I{n:0{self.installment_width}d}"

    def payment(self, n: int) -> str:
        return f"P{n:0{self.payment_width}d}"


@dataclass
class _Person:
    name: str
    phone: str
    email: str
    region: str
    zone: str  # where the borrower really is (used for local times)
    timezone_column: str
    consents: tuple[bool, bool, bool]  # sms, voice, email


class _Generator:
    """Generates and writes one borrower (with loans, schedule, payments, contacts) at a time."""

    def __init__(self, rng: random.Random, as_of: date, ids: _Ids, writers: dict[str, Any]) -> None:
        self.rng = rng
        self.as_of = as_of
        self.ids = ids
        self.w = writers
        self.n = _Counters()
        self.rows = dict.fromkeys(KINDS, 0)

    # -- people -------------------------------------------------------------------------

    def _us_phone(self, state: UsState) -> str:
        rng = self.rng
        area = state.area_codes[rng.randrange(len(state.area_codes))]
        line = rng.randrange(10_000)
        # 555 exchanges look fictional (555-01XX is reserved for fiction) and
        # phonenumbers validates them under every area code used here.
        style = rng.randrange(6)
        if style == 0:
            return f"({area}) 555-{line:04d}"
        if style == 1:
            return f"{area}.555.{line:04d}"
        if style == 2:
            return f"+1 {area} 555 {line:04d}"
        if style == 3:
            return f"{area}-555-{line:04d}"
        if style == 4:
            return f"+1{area}555{line:04d}"
        return f"1-{area}-555-{line:04d}"

    def _cn_phone(self) -> str:
        rng = self.rng
        prefix = _CN_MOBILE_PREFIXES[rng.randrange(len(_CN_MOBILE_PREFIXES))]
        a, b = rng.randrange(10_000), rng.randrange(10_000)
        style = rng.randrange(5)
        if style == 0:
            return f"{prefix} {a:04d} {b:04d}"
        if style == 1:
            return f"{prefix}{a:04d}{b:04d}"
        if style == 2:
            return f"+86 {prefix} {a:04d} {b:04d}"
        if style == 3:
            return f"+86{prefix}{a:04d}{b:04d}"
        return f"{prefix}-{a:04d}-{b:04d}"

    def _kr_phone(self) -> str:
        rng = self.rng
        # 010-5[7-9]xx ranges are not allocated; a first digit other than 5 is always valid.
        a = int("2346789"[rng.randrange(7)]) * 1000 + rng.randrange(1000)
        b = rng.randrange(10_000)
        style = rng.randrange(4)
        if style == 0:
            return f"010-{a:04d}-{b:04d}"
        if style == 1:
            return f"010{a:04d}{b:04d}"
        if style == 2:
            return f"+82 10-{a:04d}-{b:04d}"
        return f"+82 10 {a:04d} {b:04d}"

    def _gb_phone(self) -> str:
        rng = self.rng
        prefix = _GB_MOBILE_PREFIXES[rng.randrange(len(_GB_MOBILE_PREFIXES))]
        tail = rng.randrange(1_000_000)
        style = rng.randrange(3)
        if style == 0:
            return f"0{prefix} {tail:06d}"
        if style == 1:
            return f"+44 {prefix} {tail:06d}"
        return f"0{prefix}{tail:06d}"

    def _email(self, parts: Sequence[str], no_email: float) -> str:
        rng = self.rng
        if rng.random() < no_email:
            return ""
        first, last = parts[0], parts[-1]
        style = rng.randrange(4)
        if style == 0:
            local = f"{first}.{last}"
        elif style == 1:
            local = f"{first}{last}{rng.randrange(1, 100)}"
        elif style == 2:
            local = f"{first[:1]}.{last}{rng.randrange(100, 1000)}"
        else:
            local = f"{last}.{first}{rng.randrange(10, 10_000)}"
        return f"{local}@{_EMAIL_DOMAINS[rng.randrange(3)]}"

    def _consents(self, email: str) -> tuple[bool, bool, bool]:
        rng = self.rng
        return (rng.random() < 0.92, rng.random() < 0.88, bool(email) and rng.random() < 0.85)

    def person(self, market: Market, showcase: Showcase | None) -> _Person:
        rng = self.rng
        locale = market.locale
        if locale == "en-US":
            if showcase is not None:
                state = _STATE_BY_CODE[showcase.region]
            else:
                state = rng.choices(US_STATES, cum_weights=_STATE_CUM)[0]
            phone_state = state
            if showcase is not None and showcase.phone_state:
                phone_state = _STATE_BY_CODE[showcase.phone_state]
            elif showcase is None and rng.random() < _MISMATCHED_AREA_CODE:
                others = [s for s in US_STATES if s.zone != state.zone]
                phone_state = others[rng.randrange(len(others))]
            first = _US_FIRST[rng.randrange(len(_US_FIRST))]
            last = _US_LAST[rng.randrange(len(_US_LAST))]
            roll = rng.random()
            if roll < 0.1:
                name = f"{first} {chr(65 + rng.randrange(26))}. {last}"
            elif roll < 0.12:
                name = f"{first} {last} {_US_SUFFIX[rng.randrange(3)]}"
            else:
                name = f"{first} {last}"
            phone = self._us_phone(phone_state)
            email = self._email((_ascii(first), _ascii(last)), market.no_email)
            region, zone = state.code, state.zone
        elif locale == "zh-CN":
            surname, s_py = _CN_SURNAMES[rng.randrange(len(_CN_SURNAMES))]
            given, g_py = _CN_GIVEN[rng.randrange(len(_CN_GIVEN))]
            if rng.random() < 0.6:
                g2, g2_py = _CN_GIVEN[rng.randrange(len(_CN_GIVEN))]
                given, g_py = given + g2, g_py + g2_py
            name = surname + given
            phone = self._cn_phone()
            email = self._email((g_py, s_py), market.no_email)
            region = showcase.region if showcase else rng.choices(_CN_PROVINCES, cum_weights=_CN_CUM)[0]
            zone = "Asia/Shanghai"
        elif locale == "ko-KR":
            surname, s_rom = _KR_SURNAMES[rng.randrange(len(_KR_SURNAMES))]
            given, g_rom = _KR_GIVEN[rng.randrange(len(_KR_GIVEN))]
            name = surname + given
            phone = self._kr_phone()
            email = self._email((g_rom, s_rom), market.no_email)
            region = showcase.region if showcase else rng.choices(_KR_REGIONS, cum_weights=_KR_CUM)[0]
            zone = "Asia/Seoul"
        else:  # en-GB
            first = _GB_FIRST[rng.randrange(len(_GB_FIRST))]
            last = _GB_LAST[rng.randrange(len(_GB_LAST))]
            name = f"{first} {last}"
            phone = self._gb_phone()
            email = self._email((_ascii(first), _ascii(last)), market.no_email)
            region = showcase.region if showcase else rng.choices(_GB_REGIONS, cum_weights=_GB_CUM)[0]
            zone = "Europe/London"
        consents = self._consents(email)
        if showcase is not None:  # showcase borrowers can be reached on every channel they have
            consents = (True, True, bool(email))
            timezone_column = zone
        else:
            timezone_column = "" if rng.random() < market.empty_zone else zone
        return _Person(name, phone, email, region, zone, timezone_column, consents)

    # -- loans ----------------------------------------------------------------------------

    def borrower(self, index: int, showcase: Showcase | None) -> None:
        rng = self.rng
        if showcase is not None:
            locale = showcase.locale
        else:
            locale = rng.choices(_LOCALES, cum_weights=_LOCALE_CUM)[0]
        market = _MARKETS[locale]
        person = self.person(market, showcase)
        borrower_id = self.ids.borrower(index)
        sms, voice, mail = person.consents
        self.w["borrowers"].writerow((
            borrower_id, person.name, person.phone, person.email, market.locale,
            person.timezone_column, person.region, market.country,
            _bool(sms), _bool(voice), _bool(mail),
        ))  # fmt: skip
        self.rows["borrowers"] += 1

        zone = _zone(person.zone)
        loans = 2 if (showcase is None and rng.random() < _SECOND_LOAN) else 1
        worst_dpd = -1  # days past due of the oldest unpaid installment over all loans
        worst_loan = ""
        next_due = 10_000
        for n in range(loans):
            loan_id, dpd, upcoming = self.loan(
                borrower_id, market, zone, showcase if n == 0 else None
            )
            if dpd > worst_dpd:
                worst_dpd, worst_loan = dpd, loan_id
            next_due = min(next_due, upcoming)
            if not worst_loan:
                worst_loan = loan_id
        self.contacts(borrower_id, worst_loan, person, zone, worst_dpd, next_due, showcase)

    def loan(
        self, borrower_id: str, market: Market, zone: ZoneInfo, showcase: Showcase | None
    ) -> tuple[str, int, int]:
        """Write one loan, its schedule and payments.

        Returns (loan id, days past due of the oldest unpaid past installment or
        -1, days until the next unpaid installment or a large number).
        """
        rng, as_of = self.rng, self.as_of
        self.n.loan += 1
        loan_id = self.ids.loan(self.n.loan)
        product = market.products[rng.randrange(len(market.products))]
        term = _TERMS[rng.randrange(len(_TERMS))]

        if showcase is not None:
            # Installment number 4 of 12 falls exactly on as_of + offset.
            term, target_no = 12, 4
            target = as_of + timedelta(days=showcase.offset)
            pay_day = target.day
            opened_on = _month_day(target.year, target.month, -target_no, pay_day)
        else:
            if rng.random() < 0.82:  # still running: opened 3 months to one term ago
                days_ago = rng.randint(91, max(92, term * 30 + 10))
            else:  # matured: opened more than a term ago (paid off, or long overdue)
                days_ago = rng.randint(min(term * 30 + 11, 700), 730)
            opened_on = as_of - timedelta(days=days_ago)
            pay_day = opened_on.day
            target_no = 0

        scale = 10**market.decimals
        unit = 10 ** (len(str(product.high)) - 3)  # 15,000 → hundreds; 50,000,000 → 100,000s
        principal_units = rng.randint(product.low, product.high)
        principal = max(principal_units - principal_units % unit, product.low) * scale
        rate = rng.uniform(product.rate_low, product.rate_high)
        amount = round(principal * (1 + rate * term / 12) / term)
        amount -= amount % market.round_to

        self.w["loans"].writerow((
            loan_id, borrower_id, product.name, _money(principal, market.decimals),
            market.currency, opened_on.isoformat(),
        ))  # fmt: skip
        self.rows["loans"] += 1

        dues = [_month_day(opened_on.year, opened_on.month, k, pay_day) for k in range(1, term + 1)]
        n_past = sum(1 for d in dues if d < as_of)

        # Who pays what: the first past installment that is not paid in full.
        partial = False
        if showcase is not None:
            first_unpaid = target_no if showcase.unpaid else term + 1
        else:
            roll = rng.random()
            if roll < 0.72 or n_past == 0:  # pays on time
                first_unpaid = n_past + 1
            elif roll < 0.91:  # a month or two behind
                first_unpaid = max(1, n_past - (1 if rng.random() < 0.3 else 0))
                partial = rng.random() < 0.3
            else:  # stopped paying a while ago
                first_unpaid = max(1, n_past - rng.randint(2, 6))
                partial = rng.random() < 0.2
        good = first_unpaid > n_past

        # This loop runs a million times for a large portfolio: plain ints and
        # rng.random() instead of randint, and the amount text formatted once.
        rand = rng.random
        decimals = market.decimals
        amount_text = _money(amount, decimals)
        zero_text = _money(0, decimals)
        as_of_ord = as_of.toordinal()
        last_payment_ord = as_of_ord - 1
        first_payment_ord = opened_on.toordinal() + 1
        ids, counters, rows = self.ids, self.n, self.rows
        write_installment = self.w["installments"].writerow
        write_payment = self.w["payments"].writerow
        dpd, upcoming = -1, 10_000
        for k, due in enumerate(dues, 1):
            counters.installment += 1
            due_ord = due.toordinal()
            paid, paid_ord = 0, 0
            if due_ord < as_of_ord:
                if k < first_unpaid:
                    paid, paid_ord = amount, due_ord + int(rand() * 9) - 6
                elif k == first_unpaid and partial:
                    paid = round(amount * (0.2 + 0.6 * rand()))
                    paid -= paid % market.round_to
                    paid_ord = due_ord + int(rand() * 14) - 3
            elif good and k == n_past + 1 and showcase is None:
                if due_ord - as_of_ord <= 5 and rand() < 0.12:  # paid a few days early
                    paid, paid_ord = amount, as_of_ord - 1 - int(rand() * 5)
            if paid:
                paid_ord = max(min(paid_ord, last_payment_ord), first_payment_ord)
                counters.payment += 1
                write_payment((
                    ids.payment(counters.payment), loan_id,
                    _local_instant(paid_ord, 420 + int(rand() * 900), zone),
                    amount_text if paid == amount else _money(paid, decimals),
                ))  # fmt: skip
                rows["payments"] += 1
            if paid < amount:
                days = as_of_ord - due_ord
                if days > 0:
                    dpd = max(dpd, days)
                else:
                    upcoming = min(upcoming, -days)
            write_installment((
                ids.installment(counters.installment), loan_id, due.isoformat(), amount_text,
                amount_text if paid == amount else (_money(paid, decimals) if paid else zero_text),
            ))  # fmt: skip
        rows["installments"] += len(dues)
        return loan_id, dpd, upcoming

    # -- contact history ------------------------------------------------------------------

    def contacts(
        self,
        borrower_id: str,
        loan_id: str,
        person: _Person,
        zone: ZoneInfo,
        dpd: int,
        next_due: int,
        showcase: Showcase | None,
    ) -> None:
        rng = self.rng
        sms, voice, mail = person.consents
        channels = [c for c, ok in (("sms", sms), ("voice", voice), ("email", mail)) if ok]
        if not channels:
            return
        planned: list[tuple[int, int, str, str]] = []  # (days ago, minute of day, channel, outcome)
        if showcase is not None:
            calls = showcase.calls_this_week
            if showcase.unpaid and showcase.offset < 0:  # a reminder after the due date
                planned.append((min(-showcase.offset, 14), 10 * 60 + 5, "sms", "delivered"))
            elif showcase.unpaid and showcase.offset <= 3:  # a reminder before it
                planned.append((1, 9 * 60 + 30, "sms", "delivered"))
        else:
            calls = 0
            if dpd > 0:
                count = rng.randint(1, 5) if rng.random() < 0.75 else 0
                if person.region in _STATE_BY_CODE and rng.random() < 0.04:
                    calls = rng.randint(4, 8)  # a borrower the dialer has been chasing
            elif next_due <= 5:
                count = rng.randint(1, 2) if rng.random() < 0.4 else 0
            else:
                count = 1 if rng.random() < 0.05 else 0
            for _ in range(count):
                channel = channels[rng.randrange(len(channels))]
                planned.append((rng.randint(1, 14), rng.randint(8 * 60 + 30, 20 * 60 + 30),
                                channel, _outcome(rng, channel)))  # fmt: skip
        if calls and voice:
            for i in range(calls):
                days_ago = 1 + (i * 6) // max(calls, 1)  # spread over the last 7 days
                outcome = ("attempted", "voicemail", "failed", "voicemail", "attempted")[i % 5]
                planned.append((days_ago, 9 * 60 + 15 + 97 * i % 600, "voice", outcome))
        planned.sort(key=lambda p: (-p[0], p[1], p[2]))
        writer = self.w["contacts"]
        as_of_ord = self.as_of.toordinal()
        previous: tuple[int, int, str] | None = None
        for days_ago, minute, channel, outcome in planned:
            if (days_ago, minute, channel) == previous:
                continue  # the same contact twice would be a duplicate row
            previous = (days_ago, minute, channel)
            when = _local_instant(as_of_ord - days_ago, minute, zone)
            writer.writerow((borrower_id, loan_id, channel, when, outcome))
            self.rows["contacts"] += 1


def _outcome(rng: random.Random, channel: str) -> str:
    roll = rng.random()
    if channel == "sms":
        return "delivered" if roll < 0.85 else ("failed" if roll < 0.95 else "attempted")
    if channel == "email":
        return "delivered" if roll < 0.9 else "failed"
    if roll < 0.15:
        return "connected"
    if roll < 0.35:
        return "conversation"
    if roll < 0.65:
        return "voicemail"
    return "failed" if roll < 0.8 else "attempted"


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --- bad rows for --with-errors -----------------------------------------------------------


@dataclass(frozen=True)
class ExpectedError:
    file: str
    line: int
    column: str
    reason: str


@dataclass
class _BadRows:
    """Appends the deliberate bad rows and remembers where each one went."""

    writers: dict[str, Any]
    rows: dict[str, int]
    errors: list[ExpectedError] = field(default_factory=list)
    accepted: list[ExpectedError] = field(default_factory=list)

    def add(self, kind: str, row: Sequence[str], column: str | None, reason: str) -> int:
        self.writers[kind].writerow(tuple(row))
        self.rows[kind] += 1
        line = self.rows[kind] + 1  # line 1 is the header
        entry = ExpectedError(f"{kind}.csv", line, column or "", reason)
        (self.errors if column else self.accepted).append(entry)
        return line


def _write_bad_rows(bad: _BadRows, ids: _Ids, borrowers: int, as_of: date) -> None:
    """One bad row per rejection reason, plus one odd-looking row that is valid.

    Every id here is new (numbered after the generated ones) unless the row is
    about a duplicate or an unknown id, so each row fails for exactly one reason.
    """
    nb = borrowers
    b = [ids.borrower(nb + i) for i in range(1, 8)]
    unknown_borrower = ids.borrower(nb + 99)
    loans = [ids.loan(2 * nb + i) for i in range(1, 5)]
    unknown_loan = ids.loan(2 * nb + 99)
    inst = [ids.installment(2 * max(_TERMS) * nb + i) for i in range(1, 6)]
    pay = ids.payment(2 * max(_TERMS) * nb + 1)
    due = _month_day(as_of.year, as_of.month, 1, 15).isoformat()
    opened = _month_day(as_of.year, as_of.month, -3, 15).isoformat()

    def borrower(bid: str, name: str, phone: str = "+1 212 555 0101",
                 email: str = "sample.row@example.com", zone: str = "America/New_York",
                 sms: str = "true") -> list[str]:  # fmt: skip
        return [bid, name, phone, email, "en-US", zone, "NY", "US", sms, "true", "true"]

    # A valid borrower and loan that the bad installment rows below hang on.
    formula_name = '=HYPERLINK("https://example.com/pay","Pay now")'
    bad.add("borrowers", borrower(b[0], formula_name), None,
            "valid: a name that looks like a spreadsheet formula is stored as text "
            "(exports escape it with a leading ')")
    bad.add("loans", [loans[0], b[0], "personal", "1200.00", "USD", opened], None,
            "valid: loan of the borrower above")
    bad_phone_line = bad.add("borrowers", borrower(b[1], "Bad Phone", phone="12345"), "phone",
                             "not a valid phone number for US")
    bad.add("borrowers", borrower(b[2], "Bad Email", email="bad.email(at)example.com"), "email",
            "not an email address")
    bad.add("borrowers", borrower(b[3], "Unknown Zone", zone="America/Atlantis"), "timezone",
            "unknown IANA time zone")
    bad.add("borrowers", borrower(b[4], "Bad Boolean", sms="maybe"), "consent_sms",
            "not a boolean (true/false)")
    bad.add("borrowers", borrower(ids.borrower(1), "Duplicate Row"), "borrower_id",
            "duplicate borrower_id (first on line 2)")
    bad.add("loans", [loans[1], b[0], "personal", "-500.00", "USD", opened], "principal",
            "negative amount")
    bad.add("loans", [loans[2], unknown_borrower, "personal", "900.00", "USD", opened],
            "borrower_id", "unknown borrower")
    bad.add("loans", [loans[3], b[1], "personal", "700.00", "USD", opened], "borrower_id",
            f"the borrower's row was rejected (borrowers.csv line {bad_phone_line})")
    bad.add("installments", [inst[0], loans[0], due, "12O.00", "0.00"], "amount_due",
            "not a number")
    bad.add("installments", [inst[1], loans[0], "2026-02-30", "100.00", "0.00"], "due_date",
            "not a valid date (YYYY-MM-DD)")
    bad.add("installments", [inst[2], unknown_loan, due, "100.00", "0.00"], "loan_id",
            "unknown loan")
    bad.add("payments", [pay, unknown_loan, f"{opened}T10:00:00-05:00", "100.00"], "loan_id",
            "unknown loan")
    bad.add("contacts", [b[0], loans[0], "fax", f"{opened}T10:00:00-05:00", "delivered"],
            "channel", "unknown channel (sms, email, voice)")
    bad.add("contacts", [b[0], loans[0], "voice", f"{opened}T11:00:00-05:00", "answered"],
            "outcome", "unknown outcome (attempted, delivered, connected, conversation, "
            "voicemail, failed)")


def _expected_errors_md(bad: _BadRows, seed: int, as_of: date, borrowers: int) -> str:
    lines = [
        "# Expected import errors",
        "",
        f"`bot sample-data DIR --borrowers {borrowers} --seed {seed} "
        f"--as-of {as_of.isoformat()} --with-errors`",
        "appended these rows after the generated ones. Each is wrong for exactly one reason;",
        "`bot import` should reject each of them (and nothing else) and name the file, line",
        "and column. Line 1 is the header.",
        "",
        "| file | line | column | reason |",
        "|---|---|---|---|",
    ]
    lines += [f"| {e.file} | {e.line} | {e.column} | {e.reason} |" for e in bad.errors]
    lines += ["", "## Rows that look odd but are valid and must be accepted", ""]
    lines += ["| file | line | note |", "|---|---|---|"]
    lines += [f"| {e.file} | {e.line} | {e.reason} |" for e in bad.accepted]
    return "\n".join(lines) + "\n"


# --- the public entry points --------------------------------------------------------------------


@dataclass(frozen=True)
class SampleResult:
    paths: dict[str, Path]
    rows: dict[str, int]  # data rows written per kind (headers excluded)
    expected_errors: Path | None
    as_of: date


def generate_portfolio(
    directory: Path,
    *,
    borrowers: int,
    seed: int = 1,
    as_of: date | None = None,
    with_errors: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> SampleResult:
    """Write the five CSV files and return their paths and row counts.

    ``on_progress(n)`` is called with the number of borrowers written so far
    every few thousand borrowers and at the end.
    """
    if borrowers < 1:
        raise ValueError("borrowers must be at least 1")
    if as_of is None:
        as_of = SystemClock().now().date()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"{kind}.csv" for kind in KINDS}
    rng = random.Random(seed)
    ids = _Ids.for_count(borrowers)

    files: list[IO[str]] = []
    try:
        writers: dict[str, Any] = {}
        for kind in KINDS:
            fh = paths[kind].open("w", encoding="utf-8", newline="")
            files.append(fh)
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(HEADERS[kind])
            writers[kind] = writer
        gen = _Generator(rng, as_of, ids, writers)
        step = 2_000
        for index in range(1, borrowers + 1):
            showcase = SHOWCASE[index - 1] if index <= len(SHOWCASE) else None
            gen.borrower(index, showcase)
            if on_progress is not None and index % step == 0:
                on_progress(index)
        expected: Path | None = None
        if with_errors:
            bad = _BadRows(writers, gen.rows)
            _write_bad_rows(bad, ids, borrowers, as_of)
            expected = directory / EXPECTED_ERRORS_FILE
            expected.write_text(_expected_errors_md(bad, seed, as_of, borrowers), encoding="utf-8")
        else:  # a stale list from an earlier run would describe other files
            (directory / EXPECTED_ERRORS_FILE).unlink(missing_ok=True)
    finally:
        for fh in files:
            fh.close()
    if on_progress is not None:
        on_progress(borrowers)
    return SampleResult(paths, dict(gen.rows), expected, as_of)


def write_portfolio(
    directory: Path,
    *,
    borrowers: int,
    seed: int = 1,
    as_of: date | None = None,
    with_errors: bool = False,
    progress: bool = False,
) -> dict[str, Path]:
    """Write borrowers.csv, loans.csv, installments.csv, payments.csv and contacts.csv.

    The files are byte-identical for the same ``borrowers``, ``seed`` and
    ``as_of`` (which defaults to today's UTC date from the system clock).
    ``progress`` shows a progress bar on stderr.
    """
    if not progress:
        return generate_portfolio(
            directory, borrowers=borrowers, seed=seed, as_of=as_of, with_errors=with_errors
        ).paths
    with progress_bar(borrowers) as advance:
        return generate_portfolio(
            directory, borrowers=borrowers, seed=seed, as_of=as_of,
            with_errors=with_errors, on_progress=advance,
        ).paths  # fmt: skip


@contextmanager
def progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(done)``, which drives a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("writing borrowers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task("sample", total=total)
        yield lambda done: prog.update(task, completed=done)
