"""``bot sample-data`` and :func:`bot.sample.write_portfolio`: formats, realism, reproducibility."""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import timezone as pn_timezone

import bot.sample
from bot.clock import FixedClock
from bot.sample import HEADERS, KINDS, SHOWCASE, US_STATES, generate_portfolio, write_portfolio

AS_OF = date(2026, 11, 28)
STATE_ZONE = {s.code: s.zone for s in US_STATES}


def read(directory: Path, kind: str) -> list[dict[str, str]]:
    with (directory / f"{kind}.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    """A 2,000-borrower portfolio, read back (shared by the read-only tests)."""
    directory = tmp_path_factory.mktemp("portfolio")
    write_portfolio(directory, borrowers=2000, seed=3, as_of=AS_OF)
    return {kind: read(directory, kind) for kind in KINDS}


# --- the files ----------------------------------------------------------------------


def test_files_and_headers(tmp_path: Path) -> None:
    paths = write_portfolio(tmp_path / "new" / "dir", borrowers=3, as_of=AS_OF)
    assert sorted(paths) == sorted(KINDS)
    expected_headers = {
        "borrowers": "borrower_id,full_name,phone,email,locale,timezone,region,country,"
        "consent_sms,consent_voice,consent_email",
        "loans": "loan_id,borrower_id,product,principal,currency,opened_on",
        "installments": "installment_id,loan_id,due_date,amount_due,amount_paid",
        "payments": "payment_id,loan_id,paid_at,amount",
        "contacts": "borrower_id,loan_id,channel,occurred_at,outcome",
    }
    for kind, path in paths.items():
        assert path == tmp_path / "new" / "dir" / f"{kind}.csv"
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line == expected_headers[kind] == ",".join(HEADERS[kind])
    assert not (tmp_path / "new" / "dir" / "EXPECTED_ERRORS.md").exists()


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_and_date_give_identical_bytes(tmp_path: Path) -> None:
    write_portfolio(tmp_path / "a", borrowers=300, seed=5, as_of=AS_OF, with_errors=True)
    write_portfolio(tmp_path / "b", borrowers=300, seed=5, as_of=AS_OF, with_errors=True, progress=True)
    write_portfolio(tmp_path / "c", borrowers=300, seed=6, as_of=AS_OF, with_errors=True)
    write_portfolio(tmp_path / "d", borrowers=300, seed=5, as_of=AS_OF + timedelta(days=1), with_errors=True)
    a = _digest(tmp_path / "a")
    assert a == _digest(tmp_path / "b")
    assert a["borrowers.csv"] != _digest(tmp_path / "c")["borrowers.csv"]
    assert a["installments.csv"] != _digest(tmp_path / "d")["installments.csv"]


def test_errors_do_not_change_the_generated_rows(tmp_path: Path) -> None:
    write_portfolio(tmp_path / "plain", borrowers=50, as_of=AS_OF)
    write_portfolio(tmp_path / "bad", borrowers=50, as_of=AS_OF, with_errors=True)
    for kind in KINDS:
        plain = (tmp_path / "plain" / f"{kind}.csv").read_text(encoding="utf-8")
        bad = (tmp_path / "bad" / f"{kind}.csv").read_text(encoding="utf-8")
        assert bad.startswith(plain) and len(bad) > len(plain)


def test_as_of_defaults_to_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.sample, "SystemClock", lambda: FixedClock(datetime(2027, 3, 2, 23, tzinfo=UTC)))
    result = generate_portfolio(tmp_path, borrowers=1)
    assert result.as_of == date(2027, 3, 2)
    due = {r["due_date"] for r in read(tmp_path, "installments")}
    assert "2027-03-02" in due  # the first borrower's installment is due "today"


def test_at_least_one_borrower() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        write_portfolio(Path("unused"), borrowers=0)


# --- ids -------------------------------------------------------------------------------


def test_ids_are_zero_padded_and_unique(portfolio: dict[str, list[dict[str, str]]]) -> None:
    patterns = {
        "borrowers": ("borrower_id", r"B\d{7}"),
        "loans": ("loan_id", r"L\d{7}"),
        "installments": ("installment_id", r"I\d{8}"),
        "payments": ("payment_id", r"P\d{8}"),
    }
    for kind, (column, pattern) in patterns.items():
        ids = [r[column] for r in portfolio[kind]]
        assert all(re.fullmatch(pattern, i) for i in ids), kind
        assert len(set(ids)) == len(ids), kind
    assert portfolio["borrowers"][0]["borrower_id"] == "B0000001"


def test_id_width_grows_with_the_count() -> None:
    ids = bot.sample._Ids.for_count(20_000_000)
    assert ids.borrower(1) == "B00000001"
    assert len(ids.installment(1)) == 1 + len(str(2 * 12 * 20_000_000 + 100))


def test_references_point_to_existing_rows(portfolio: dict[str, list[dict[str, str]]]) -> None:
    borrowers = {r["borrower_id"] for r in portfolio["borrowers"]}
    loans = {r["loan_id"]: r["borrower_id"] for r in portfolio["loans"]}
    assert set(loans.values()) <= borrowers
    assert {r["loan_id"] for r in portfolio["installments"]} == set(loans)
    assert {r["loan_id"] for r in portfolio["payments"]} <= set(loans)
    for r in portfolio["contacts"]:
        assert loans[r["loan_id"]] == r["borrower_id"]
    per_borrower = Counter(loans.values())
    assert set(per_borrower.values()) == {1, 2}
    assert len(per_borrower) == len(borrowers)


# --- people ----------------------------------------------------------------------------------


def test_locale_mix(portfolio: dict[str, list[dict[str, str]]]) -> None:
    shares = Counter(r["locale"] for r in portfolio["borrowers"])
    n = len(portfolio["borrowers"])
    assert 0.55 < shares["en-US"] / n < 0.65
    assert 0.20 < shares["zh-CN"] / n < 0.30
    assert 0.07 < shares["ko-KR"] / n < 0.13
    assert 0.02 < shares["en-GB"] / n < 0.08
    countries = {r["locale"]: r["country"] for r in portfolio["borrowers"]}
    assert countries == {"en-US": "US", "zh-CN": "CN", "ko-KR": "KR", "en-GB": "GB"}
    states = {r["region"] for r in portfolio["borrowers"] if r["country"] == "US"}
    assert {"NY", "CA", "MA", "WA", "FL", "TX", "IL", "AZ", "HI"} <= states


def _script(name: str) -> set[str]:
    return {unicodedata.name(ch).split()[0] for ch in name}


def test_names_match_the_locale(portfolio: dict[str, list[dict[str, str]]]) -> None:
    for r in portfolio["borrowers"]:
        if r["country"] == "CN":
            assert _script(r["full_name"]) == {"CJK"} and 2 <= len(r["full_name"]) <= 4
        elif r["country"] == "KR":
            assert _script(r["full_name"]) == {"HANGUL"} and len(r["full_name"]) == 3
        else:
            assert re.fullmatch(r"[^\W\d_][\w'.\-]*( [\w'.\-]+)+", r["full_name"]), r["full_name"]


def test_every_phone_number_is_valid_and_in_the_right_zone(portfolio: dict[str, list[dict[str, str]]]) -> None:
    mismatched = 0
    us = 0
    forms: set[str] = set()
    for r in portfolio["borrowers"]:
        number = phonenumbers.parse(r["phone"], r["country"])
        assert phonenumbers.is_valid_number(number), r["borrower_id"]
        assert phonenumbers.region_code_for_number(number) == r["country"]
        forms.add(re.sub(r"\d", "9", r["phone"]))
        zones = pn_timezone.time_zones_for_number(number)
        if r["country"] == "US":
            us += 1
            assert len(zones) == 1
            if zones[0] != STATE_ZONE[r["region"]]:
                mismatched += 1
        elif r["country"] == "CN":
            assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
            assert re.sub(r"\D", "", r["phone"])[-11:][:2] in {"13", "15", "18"}
            assert zones == ("Asia/Shanghai",)
        elif r["country"] == "KR":
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL).startswith("010-")
            assert zones == ("Asia/Seoul",)
        else:
            assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    # ~5% of US borrowers have an area code from a state in another zone
    assert 0.02 < mismatched / us < 0.09
    for form in ("(999) 999-9999", "999.999.9999", "+9 999 999 9999", "999 9999 9999", "999-9999-9999"):
        assert form in forms


def test_timezones_emails_and_consents(portfolio: dict[str, list[dict[str, str]]]) -> None:
    rows = portfolio["borrowers"]
    for r in rows:
        if r["timezone"]:
            expected = STATE_ZONE[r["region"]] if r["country"] == "US" else {
                "CN": "Asia/Shanghai", "KR": "Asia/Seoul", "GB": "Europe/London"}[r["country"]]  # fmt: skip
            assert r["timezone"] == expected
        if r["email"]:
            assert re.fullmatch(r"[a-z0-9.]+@example\.(com|org|net)", r["email"]), r["email"]
        else:
            assert r["consent_email"] == "false"
        for column in ("consent_sms", "consent_voice", "consent_email"):
            assert r[column] in {"true", "false"}
    empty_zone = sum(1 for r in rows if not r["timezone"]) / len(rows)
    assert 0.1 < empty_zone < 0.5
    sms = Counter(r["consent_sms"] for r in rows)
    assert sms["true"] > 0.85 * len(rows) and sms["false"] > 0


# --- money and schedules ------------------------------------------------------------------------------

DECIMALS = {"USD": 2, "CNY": 2, "GBP": 2, "KRW": 0}


def test_currency_and_decimals_follow_the_country(portfolio: dict[str, list[dict[str, str]]]) -> None:
    country = {r["borrower_id"]: r["country"] for r in portfolio["borrowers"]}
    expected = {"US": "USD", "CN": "CNY", "KR": "KRW", "GB": "GBP"}
    currency = {}
    for r in portfolio["loans"]:
        assert r["currency"] == expected[country[r["borrower_id"]]]
        currency[r["loan_id"]] = r["currency"]
        places = DECIMALS[r["currency"]]
        pattern = r"[1-9]\d*" + (rf"\.\d{{{places}}}" if places else "")
        assert re.fullmatch(pattern, r["principal"]), r["principal"]
        assert r["product"] in {"personal", "auto", "card-installment", "consumer"}
    for r in portfolio["installments"]:
        places = DECIMALS[currency[r["loan_id"]]]
        for column in ("amount_due", "amount_paid"):
            assert re.fullmatch(r"\d+" + (rf"\.\d{{{places}}}" if places else ""), r[column])
        assert Decimal(r["amount_paid"]) <= Decimal(r["amount_due"])


def test_loans_open_3_to_24_months_before_and_pay_monthly(portfolio: dict[str, list[dict[str, str]]]) -> None:
    opened = {r["loan_id"]: date.fromisoformat(r["opened_on"]) for r in portfolio["loans"]}
    for day in opened.values():
        assert 85 <= (AS_OF - day).days <= 731
    schedule: dict[str, list[date]] = defaultdict(list)
    for r in portfolio["installments"]:
        schedule[r["loan_id"]].append(date.fromisoformat(r["due_date"]))
    for loan_id, dues in schedule.items():
        assert 6 <= len(dues) <= 12
        assert dues == sorted(dues)
        months = [(d.year * 12 + d.month) for d in dues]
        assert months == list(range(months[0], months[0] + len(dues)))
        assert months[0] == opened[loan_id].year * 12 + opened[loan_id].month + 1
    average = len(portfolio["installments"]) / len(portfolio["borrowers"])
    assert 8.0 < average < 10.0


def test_due_dates_are_spread_around_as_of(portfolio: dict[str, list[dict[str, str]]]) -> None:
    buckets: Counter[str] = Counter()
    partial = 0
    for r in portfolio["installments"]:
        due, paid = Decimal(r["amount_due"]), Decimal(r["amount_paid"])
        if paid >= due:
            continue
        partial += paid > 0
        days = (AS_OF - date.fromisoformat(r["due_date"])).days
        if days == 0:
            buckets["today"] += 1
        elif -5 <= days < 0:
            buckets["next 5 days"] += 1
        elif 1 <= days <= 7:
            buckets["1-7"] += 1
        elif 8 <= days <= 30:
            buckets["8-30"] += 1
        elif days > 30:
            buckets["31+"] += 1
    for name in ("today", "next 5 days", "1-7", "8-30", "31+"):
        assert buckets[name] >= 10, (name, buckets)
    assert partial >= 10


def test_payments_match_the_paid_amounts(portfolio: dict[str, list[dict[str, str]]]) -> None:
    paid: Counter[str] = Counter()
    for r in portfolio["installments"]:
        paid[r["loan_id"]] += Decimal(r["amount_paid"])
    payments: Counter[str] = Counter()
    for r in portfolio["payments"]:
        instant = datetime.fromisoformat(r["paid_at"])
        assert instant.tzinfo is not None
        assert instant.date() < AS_OF
        assert Decimal(r["amount"]) > 0
        payments[r["loan_id"]] += Decimal(r["amount"])
    assert +paid == payments


def test_contact_history(portfolio: dict[str, list[dict[str, str]]]) -> None:
    consents = {r["borrower_id"]: r for r in portfolio["borrowers"]}
    outcomes = {
        "sms": {"delivered", "failed", "attempted"},
        "email": {"delivered", "failed"},
        "voice": {"attempted", "connected", "conversation", "voicemail", "failed"},
    }
    calls_this_week: Counter[str] = Counter()
    seen = set()
    for r in portfolio["contacts"]:
        assert r["outcome"] in outcomes[r["channel"]]
        assert consents[r["borrower_id"]][f"consent_{r['channel']}"] == "true"
        when = datetime.fromisoformat(r["occurred_at"])
        assert re.search(r"[+-]\d{2}:\d{2}$", r["occurred_at"])
        assert 1 <= (AS_OF - when.date()).days <= 14
        assert 8 <= when.hour < 21  # local time of day
        key = (r["borrower_id"], r["loan_id"], r["channel"], when)
        assert key not in seen  # the importer rejects duplicate contacts
        seen.add(key)
        if r["channel"] == "voice" and (AS_OF - when.date()).days <= 7:
            calls_this_week[r["borrower_id"]] += 1
    busy = [b for b, n in calls_this_week.items() if n >= 4 and consents[b]["country"] == "US"]
    assert len(busy) >= 3
    assert len(portfolio["contacts"]) > 0.3 * len(portfolio["borrowers"])


def test_showcase_borrowers(portfolio: dict[str, list[dict[str, str]]]) -> None:
    people = portfolio["borrowers"][: len(SHOWCASE)]
    for person, case in zip(people, SHOWCASE, strict=True):
        assert (person["locale"], person["region"]) == (case.locale, case.region)
    loans = {r["borrower_id"]: r["loan_id"] for r in portfolio["loans"]}
    unpaid: dict[str, list[int]] = defaultdict(list)
    for r in portfolio["installments"]:
        if Decimal(r["amount_paid"]) < Decimal(r["amount_due"]):
            unpaid[r["loan_id"]].append((date.fromisoformat(r["due_date"]) - AS_OF).days)
    for person, case in zip(people, SHOWCASE, strict=True):
        offsets = unpaid[loans[person["borrower_id"]]]
        assert min(offsets) == case.offset, case.note
    # B0000005 lives in California with a New York number
    number = phonenumbers.parse(people[4]["phone"], "US")
    assert pn_timezone.time_zones_for_number(number) == ("America/New_York",)
    calls = Counter(r["borrower_id"] for r in portfolio["contacts"] if r["channel"] == "voice")
    assert calls["B0000006"] == 7 and calls["B0000004"] == 2


# --- --with-errors -------------------------------------------------------------------------------------

_EXPECTED_ROW = re.compile(r"\| (\w+\.csv) \| (\d+) \| (\w+) \| (.+) \|")


def expected_errors(directory: Path) -> list[tuple[str, int, str, str]]:
    text = (directory / "EXPECTED_ERRORS.md").read_text(encoding="utf-8")
    return [(m[1], int(m[2]), m[3], m[4]) for m in _EXPECTED_ROW.finditer(text)]


def test_with_errors_lists_each_bad_row(tmp_path: Path) -> None:
    write_portfolio(tmp_path, borrowers=40, as_of=AS_OF, with_errors=True)
    errors = expected_errors(tmp_path)
    assert len(errors) >= 13
    reasons = [(name, reason) for name, _, _, reason in errors]
    assert len(set(reasons)) == len(reasons)  # one row per reason and file
    for name, line, column, _ in errors:
        with (tmp_path / name).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header, row = rows[0], rows[line - 1]
        assert column in header
        value = row[header.index(column)]
        kind = name.removesuffix(".csv")
        bad_values = {"12345", "bad.email(at)example.com", "America/Atlantis", "maybe", "-500.00", "12O.00",
                      "2026-02-30", "fax", "answered", "B0000001"}  # fmt: skip
        assert value in bad_values or column in {"borrower_id", "loan_id"}, (kind, column, value)
    text = (tmp_path / "EXPECTED_ERRORS.md").read_text(encoding="utf-8")
    assert "=HYPERLINK(" in (tmp_path / "borrowers.csv").read_text(encoding="utf-8")
    assert "must be accepted" in text
    # a run without errors removes the stale list
    write_portfolio(tmp_path, borrowers=40, as_of=AS_OF)
    assert not (tmp_path / "EXPECTED_ERRORS.md").exists()


def test_importer_rejects_exactly_the_listed_rows(tmp_path: Path, run_bot, db_url: str) -> None:
    """The sample files import cleanly except for the deliberate bad rows."""
    directory = tmp_path / "data"
    write_portfolio(directory, borrowers=60, as_of=AS_OF, with_errors=True)
    assert run_bot("init", db_url=db_url).exit_code == 0
    files = [str(directory / f"{kind}.csv") for kind in KINDS]
    result = run_bot("import", *files, db_url=db_url)
    assert result.exit_code == 1, result.output
    rejected = set()
    for line in result.stderr.splitlines():
        m = re.match(r".*/(\w+\.csv):(\d+): (\w+): ", line)
        if m:
            rejected.add((m[1], int(m[2]), m[3]))
    expected = {(name, line, column) for name, line, column, _ in expected_errors(directory)}
    assert rejected == expected
    # and a second import of the same files changes nothing and rejects the same rows
    again = run_bot("import", *files, db_url=db_url)
    assert again.exit_code == 1


# --- the command ----------------------------------------------------------------------------------------


def test_cli_writes_files_without_a_database(run_bot, tmp_path: Path) -> None:
    result = run_bot(
        "--database-url", "sqlite:////nonexistent/dir/bot.db",
        "sample-data", str(tmp_path / "out"), "--borrowers", "25", "--seed", "9", "--as-of", "2026-11-28",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = result.stderr.strip()
    assert "\n" not in summary
    assert summary.startswith("wrote 25 borrowers, ") and "as of 2026-11-28, seed 9" in summary
    assert f"{len(read(tmp_path / 'out', 'installments')):,} installments" in summary
    assert result.stdout == ""
    same = tmp_path / "same"
    write_portfolio(same, borrowers=25, seed=9, as_of=AS_OF)
    assert _digest(same) == _digest(tmp_path / "out")


def test_cli_with_errors_mentions_the_list(run_bot, tmp_path: Path) -> None:
    result = run_bot("sample-data", str(tmp_path), "-n", "3", "--as-of", "2026-11-28", "--with-errors")
    assert result.exit_code == 0, result.output
    assert "EXPECTED_ERRORS.md" in result.stderr
    assert (tmp_path / "EXPECTED_ERRORS.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--borrowers", "0"), "--borrowers must be at least 1"),
        (("--borrowers", "-5"), "--borrowers must be at least 1"),
        (("--borrowers", "many"), "is not a valid integer"),
        (("--borrowers", "3", "--as-of", "2026-02-30"), "is not a date"),
        ((), "Missing option '--borrowers'"),
    ],
)
def test_cli_usage_errors(run_bot, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_bot("sample-data", str(tmp_path / "x"), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "x").exists()
