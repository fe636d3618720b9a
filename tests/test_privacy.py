"""Masking, redaction, the logging filter, CSV escaping, and privacy end to end.

The end-to-end tests load a generated sample portfolio into the database with
the ORM (not the importer, which is tested on its own), then run ``bot show``
and ``bot summary`` the way a person would and search everything that came out
(stdout, stderr, every log record at DEBUG) for the borrowers' raw phone
numbers, email addresses and names.
"""

from __future__ import annotations

import csv
import itertools
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import phonenumbers
import pytest
from babel.numbers import get_currency_precision
from sqlalchemy import select

from builders import CHANNELS, add_borrower, add_loan

from bot.db import Database
from bot.db.models import AuditEvent, ContactAttempt, Payment
from bot.ledger import settle_loans
from bot.privacy import (
    RedactingFilter,
    csv_safe,
    csv_unescape,
    install_log_filter,
    mask_address,
    mask_card,
    mask_email,
    mask_id,
    mask_name,
    mask_phone,
    redact,
)
from bot.sample import write_portfolio

# --- mask_phone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+12125550147", "+1 ***-***-0147"),
        ("+1 (212) 555-0147", "+1 ***-***-0147"),
        ("+1 212 555 0147", "+1 ***-***-0147"),
        ("(212) 555-0147", "******0147"),
        ("212.555.0147", "******0147"),
        ("+8613812345678", "+86 138****5678"),
        ("+86 138 1234 5678", "+86 138****5678"),
        ("138 1234 5678", "*******5678"),
        ("+821012345678", "+82 ******5678"),
        ("010-1234-5678", "*******5678"),
        ("+447400123456", "+44 ******3456"),
        ("+44 7400 123456", "+44 ******3456"),
        ("+35312345678", "+353 ****5678"),
        ("call me", "*"),
        ("12", "*12"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(raw: str | None, masked: str) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize("raw", ["+12125550147", "+8613812345678", "+821012345678", "+447400123456", "2125550147"])
def test_mask_phone_keeps_at_most_country_code_prefix_and_last_four(raw: str) -> None:
    masked = mask_phone(raw)
    digits = re.sub(r"\D", "", masked)
    national = re.sub(r"\D", "", raw)[-8:]
    assert national not in digits
    assert masked.endswith(raw[-4:])
    assert len(digits) <= 3 + 3 + 4  # country code + CN mobile prefix + last four


# --- mask_email, mask_name ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("jane.doe@example.com", "j***@example.com"),
        ("J@example.org", "J***@example.org"),
        ("wei.zhang88@example.net", "w***@example.net"),
        ("张伟@example.cn", "张***@example.cn"),
        ("odd@name@example.com", "o***@example.com"),
        ("no-at-sign", "n***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_email(raw: str | None, masked: str) -> None:
    assert mask_email(raw) == masked


@pytest.mark.parametrize(
    ("address", "channel", "masked"),
    [
        ("jane.doe@example.com", "email", "j***@example.com"),
        ("jane.doe@example.com", None, "j***@example.com"),  # told apart by its @
        ("jane.doe@example.com", "sms", "j***@example.com"),  # never shown as a phone number
        ("+14155550123", "sms", mask_phone("+14155550123")),
        ("+14155550123", "voice", mask_phone("+14155550123")),
        ("+14155550123", None, mask_phone("+14155550123")),
        ("", "email", ""),
        (None, "sms", ""),
    ],
)
def test_mask_address_masks_what_the_address_is(address: str | None, channel: str | None, masked: str) -> None:
    assert mask_address(address, channel) == masked
    assert "jane" not in mask_address(address, channel) and "5550123" not in mask_address(address, channel)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("Jane Doe", "J*** D***"),
        ("Mary Ann O'Neil-Smith", "M*** A*** O***"),
        ("José  García Jr.", "J*** G*** J***"),
        ("张伟", "张*"),
        ("欧阳娜娜", "欧***"),
        ("김민준", "김**"),
        ("김 민준", "김**"),
        ("J", "J***"),
        ("  ", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_name(raw: str | None, masked: str) -> None:
    assert mask_name(raw) == masked


# --- mask_card, mask_id ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("4111 1111 1111 1111", "411111******1111"),
        ("4111-1111-1111-1111", "411111******1111"),
        ("4111111111111111", "411111******1111"),
        ("378282246310005", "378282*****0005"),  # Amex, 15 digits
        ("6011000990139424", "601100******9424"),
        ("4222222222222", "422222***2222"),  # 13 digits
        ("6200000000000000005", "620000*********0005"),  # 19 digits
        ("1234567890", "******7890"),  # not card length: six plus four would be everything
        ("1234567", "*******"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_card(raw: str | None, masked: str) -> None:
    assert mask_card(raw) == masked


@pytest.mark.parametrize("length", range(1, 21))
def test_mask_card_never_shows_more_than_six_and_four(length: int) -> None:
    number = "".join(str((7 * i + 3) % 10) for i in range(length))
    shown = re.sub(r"\D", "", mask_card(number))
    assert len(shown) <= 10
    assert len(shown) < length or length == 0
    assert len(mask_card(number)) == length


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("123-45-6789", "***-**-6789"),
        ("123456789", "*****6789"),
        ("11010519491231002X", "**************002X"),
        ("110105194912310021", "**************0021"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_id(raw: str | None, masked: str) -> None:
    assert mask_id(raw) == masked


# --- redact ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Card 4111 1111 1111 1111 exp 12/27", "Card [card 411111******1111] exp 12/27"),
        ("my card is 4111111111111111.", "my card is [card 411111******1111]."),
        # Fails the Luhn check: not called a card, still masked as a number.
        ("card 4111 1111 1111 1112 please", "card ************1112 please"),
        ("SSN 123-45-6789, DOB 1980", "SSN ***-**-6789, DOB 1980"),
        ("身份证 11010519491231002X 已核实", "身份证 **************002X 已核实"),
        ("call +1 212 555 0147 after 6", "call +1 ***-***-0147 after 6"),
        ("call (212) 555-0147 after 6", "call ******0147 after 6"),
        ("or 212.555.0147 or 212-555-0147", "or ******0147 or ******0147"),
        ("手机 138 1234 5678 或 +86 138 1234 5678", "手机 *******5678 或 +86 138****5678"),
        ("전화 010-1234-5678 로", "전화 *******5678 로"),
        ("webhook From=%2B12125550147&Body=STOP", "webhook From=+1 ***-***-0147&Body=STOP"),
        ("write to jane.doe@example.com today", "write to j***@example.com today"),
        ("Jane <jane@example.org>, +447400123456", "Jane <j***@example.org>, +44 ******3456"),
    ],
)
def test_redact_masks_personal_data(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "due 2026-11-28, paid 2026-11-03",
        "at 2026-11-28T15:00:00+00:00 and 2026-11-28 09:30",
        "due 2026.11.28 / 2026/11/28 / 28/11/2026",
        "2026-11-28 120.00 paid",
        "amount $1,250.00 (1250.00 USD), 12500.00 CNY, ₩1,500,000",
        "loan L0000123, installment I00000001, borrower B0000001, payment P00000042",
        "request 3f2b8c1e-1234-5678-9abc-def012345678 done",
        "3 of 12 installments, 45 days past due, 15:00-21:00",
        "version 1.2.3, 99.5% delivered",
    ],
)
def test_redact_leaves_dates_amounts_and_ids_alone(text: str) -> None:
    assert redact(text) == text


# What the log filter sees every day: none of it is a phone number, none of it may be masked.
@pytest.mark.parametrize(
    "text",
    [
        "sent at 15:42:01.221597",  # a time with microseconds (was 15:42:****1597)
        "2026-11-28 15:42:01.221597+00:00 tick",
        "2026-11-28T15:42:01.5971234Z",
        "elapsed 0:01:23.456789, took 1234567 ms, 938.123456 s",
        "epoch 1764343321, 1764343321.123, 1764343321123 ms",
        "20261128",
        "processed 1000000 rows, 12 345 678 bytes, 100 200 300 items",
        "rows 1000-2000, 2500000 of 9999999",
        "id 12345678, job 987654321, call 4711, attempt 1234567",
        "15000000 KRW, 2500000000 won, 1234567.8901",
        "2 of 3 plus 45 and 1764343",
    ],
)
def test_redact_leaves_timestamps_durations_counts_and_ids_alone(text: str) -> None:
    assert redact(text) == text


# Phone numbers in international and national forms are masked (US, CN, KR, UK).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("us +1 212 555 0147", "us +1 ***-***-0147"),
        ("us +12125550147", "us +1 ***-***-0147"),
        ("us (212) 555-0147", "us ******0147"),
        ("us 212-555-0147 3 times", "us ******0147 3 times"),
        ("us 1-212-555-0147", "us *******0147"),
        ("us 2125550147", "us ******0147"),
        ("us local 555-0147", "us local ***0147"),
        ("cn +86 138 1234 5678", "cn +86 138****5678"),
        ("cn 138 1234 5678", "cn *******5678"),
        ("cn 13812345678", "cn *******5678"),
        ("cn 010-1234 5678", "cn *******5678"),
        ("cn 0755-1234-5678", "cn ********5678"),
        ("cn 0086 138 1234 5678", "cn +86 138****5678"),
        ("kr +82 10-1234-5678", "kr +82 ******5678"),
        ("kr 010-1234-5678", "kr *******5678"),
        ("kr 01012345678", "kr *******5678"),
        ("kr 02-123-4567", "kr *****4567"),
        ("uk +44 20 7946 0958", "uk +44 ******0958"),
        ("uk 020 7946 0958", "uk *******0958"),
        ("uk 07400 123456", "uk *******3456"),
        ("uk 0044 7400 123456", "uk +44 ******3456"),
        ("at 15:42:01 call 2125550147", "at 15:42:01 call ******0147"),
    ],
)
def test_redact_masks_phone_numbers_in_every_written_form(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_every_number_masks_long_numbers_too() -> None:
    """What a person wrote (a reply, a note) loses every long number, phone or not."""
    assert redact("acct 12345678 and 1764343321") == "acct 12345678 and 1764343321"
    assert redact("acct 12345678 and 1764343321", every_number=True) == "acct ****5678 and ******3321"


def test_redact_is_idempotent() -> None:
    text = "Card 4111 1111 1111 1111, +1 212 555 0147, 123-45-6789, jane@example.com, 138 1234 5678"
    once = redact(text)
    assert once != text
    assert redact(once) == once


def test_redact_empty() -> None:
    assert redact("") == ""


# --- the logging filter -------------------------------------------------------------------------


@pytest.fixture
def filtered_logger() -> Iterator[tuple[logging.Logger, list[str]]]:
    """A real logger with a real handler and formatter, the filter installed on it."""
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.getLogger("test.privacy.filter")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = ListHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    install_log_filter(logger)
    yield logger, lines
    logger.handlers.clear()
    logger.filters.clear()


def test_log_filter_masks_percent_args(filtered_logger: tuple[logging.Logger, list[str]]) -> None:
    logger, lines = filtered_logger
    logger.info("sms to %s failed; email %s instead (loan %s, due %s)", "+12125550147", "jane.doe@example.com",
                "L0000123", date(2026, 11, 28))  # fmt: skip
    assert lines == [
        "INFO test.privacy.filter: sms to +1 ***-***-0147 failed; email j***@example.com instead "
        "(loan L0000123, due 2026-11-28)"
    ]


def test_log_filter_masks_exception_text(filtered_logger: tuple[logging.Logger, list[str]]) -> None:
    logger, lines = filtered_logger
    try:
        raise ValueError("cannot reach +8613812345678 or wei@example.net")
    except ValueError:
        logger.exception("delivery to %s failed", "+8613812345678")
    text = "\n".join(lines)
    assert "Traceback" in text and "ValueError" in text
    assert "13812345678" not in text and "wei@example.net" not in text
    assert "+86 138****5678" in text and "w***@example.net" in text


def test_log_filter_masks_stack_info(filtered_logger: tuple[logging.Logger, list[str]]) -> None:
    logger, lines = filtered_logger
    logger.warning("look at the stack", stack_info=True)  # the caller's line shows: +12125550147
    assert "Stack (most recent call last)" in lines[0]
    assert "12125550147" not in lines[0] and "the caller's line shows: +1 ***-***-0147" in lines[0]


def test_log_filter_survives_a_broken_format(filtered_logger: tuple[logging.Logger, list[str]]) -> None:
    logger, lines = filtered_logger
    logger.error("two args %s %s for +12125550147", "only one")
    assert lines and "12125550147" not in lines[0] and "0147" in lines[0]


def test_log_filter_on_root_reaches_child_loggers(caplog: pytest.LogCaptureFixture) -> None:
    """The CLI installs the filter on the root logger and its handlers (caplog's too)."""
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    flt = install_log_filter(root)
    try:
        logging.getLogger("bot.some.module").debug("reply from %s", "+821012345678")
        assert "+82 ******5678" in caplog.text
        assert "1012345678" not in caplog.text
    finally:
        root.removeFilter(flt)
        for handler in root.handlers:
            handler.removeFilter(flt)


def test_filter_leaves_clean_records_untouched() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %d", (3,), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "plain 3"


# --- CSV formula injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1 212 555 0147", "'+1 212 555 0147"),
        ("-5.00", "'-5.00"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("'=already quoted", "''=already quoted"),
        ("''", "'''"),
        ("'tis", "'tis"),
        ("Jane Doe", "Jane Doe"),
        ("", ""),
        (None, ""),
        (12, "12"),
    ],
)
def test_csv_safe(value: object, cell: str) -> None:
    assert csv_safe(value) == cell


def test_csv_round_trip_for_every_short_text() -> None:
    alphabet = ["'", "=", "+", "-", "@", "\t", "\r", "a", " ", "1"]
    for size in range(4):
        for chars in itertools.product(alphabet, repeat=size):
            text = "".join(chars)
            cell = csv_safe(text)
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), repr(text)
            assert csv_unescape(cell) == text, repr(text)


def test_csv_round_trip_through_a_file(tmp_path: Path) -> None:
    values = ['=HYPERLINK("https://example.com","pay")', "+8613812345678", "'=x", "李伟, \"quoted\"", "plain"]
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerow([csv_safe(v) for v in values])
    with path.open(newline="", encoding="utf-8") as fh:
        row = next(csv.reader(fh))
    assert not any(cell.startswith(("=", "+")) for cell in row)
    assert [csv_unescape(cell) for cell in row] == values


# --- end to end: sample portfolio -> database -> bot show / summary ----------------------------------

AS_OF = date(2026, 11, 28)
AT = "2026-11-28T15:00:00Z"
WIDE = {"COLUMNS": "250"}  # no wrapping: a raw value split over two lines would hide a leak


def _minor(text: str, currency: str) -> int:
    return int(Decimal(text).scaleb(get_currency_precision(currency)))


def _e164(text: str, country: str) -> str:
    number = phonenumbers.parse(text, country)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def load_sample(db: Database, directory: Path, borrower_ids: set[str]) -> list[dict[str, str]]:
    """Insert the given borrowers of a sample portfolio (and their rows) with the ORM."""
    def rows(kind: str) -> list[dict[str, str]]:
        with (directory / f"{kind}.csv").open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    people = [r for r in rows("borrowers") if r["borrower_id"] in borrower_ids]
    loans = [r for r in rows("loans") if r["borrower_id"] in borrower_ids]
    currency = {r["loan_id"]: r["currency"] for r in loans}
    with db.session() as session:
        for r in people:
            add_borrower(session, r["borrower_id"], name=r["full_name"], phone=_e164(r["phone"], r["country"]),
                         email=r["email"] or None, locale=r["locale"], timezone=r["timezone"] or None,
                         region=r["region"], country=r["country"],
                         refused=[c for c in CHANNELS if r[f"consent_{c}"] != "true"], at=now)
        installments: dict[str, list[tuple[str, date, int, int]]] = defaultdict(list)
        for r in rows("installments"):
            if r["loan_id"] in currency:
                cur = currency[r["loan_id"]]
                installments[r["loan_id"]].append((r["installment_id"], date.fromisoformat(r["due_date"]),
                                                   _minor(r["amount_due"], cur), _minor(r["amount_paid"], cur)))
        for r in loans:  # settled below, with their payments
            add_loan(session, r["borrower_id"], r["loan_id"], installments[r["loan_id"]], currency=r["currency"],
                     principal=_minor(r["principal"], r["currency"]), product=r["product"],
                     opened_on=date.fromisoformat(r["opened_on"]), at=now, settle=False)
        for r in rows("payments"):
            if r["loan_id"] in currency:
                session.add(Payment(
                    id=r["payment_id"], loan_id=r["loan_id"], paid_at=datetime.fromisoformat(r["paid_at"]),
                    amount_minor=_minor(r["amount"], currency[r["loan_id"]]), created_at=now, updated_at=now,
                ))  # fmt: skip
        session.flush()
        settle_loans(session, list(currency), at=now)
        by_id = {r["borrower_id"]: r for r in people}
        for n, r in enumerate(rows("contacts")):
            if r["borrower_id"] in by_id:
                person = by_id[r["borrower_id"]]
                address = person["email"] if r["channel"] == "email" else _e164(person["phone"], person["country"])
                session.add(ContactAttempt(
                    dedupe_key=f"test:{n}", borrower_id=r["borrower_id"], loan_id=r["loan_id"],
                    channel=r["channel"], source="import", status="done", outcome=r["outcome"],
                    address=address, occurred_at=datetime.fromisoformat(r["occurred_at"]),
                    created_at=now, updated_at=now,
                ))  # fmt: skip
    return people


def _secrets(person: dict[str, str]) -> list[str]:
    """Every form in which the borrower's personal data could leak."""
    number = phonenumbers.parse(person["phone"], person["country"])
    found = [
        person["full_name"],
        person["phone"],
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        str(number.national_number),
    ]
    if person["email"]:
        found += [person["email"], person["email"].split("@")[0]]
    # Each part of a Latin name (given name, family name) must not show either.
    found += [part for part in person["full_name"].split() if len(part) > 2 and part.isalpha()]
    return found


@pytest.fixture
def sample_people(db: Database, tmp_path: Path) -> list[dict[str, str]]:
    directory = tmp_path / "sample"
    write_portfolio(directory, borrowers=12, seed=7, as_of=AS_OF)
    ids = {f"B{n:07d}" for n in (1, 2, 3, 4, 5, 6, 8)}  # US, CN, KR, MA, CA/NY phone, AZ, GB
    people = load_sample(db, directory, ids)
    assert {p["country"] for p in people} == {"US", "CN", "KR", "GB"}
    return people


def test_nothing_personal_in_show_summary_or_logs(
    run_bot, db_url: str, sample_people: list[dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    for person in sample_people:
        for args in (
            ("show", person["borrower_id"], "--at", AT),
            ("show", person["borrower_id"], "--json", "--at", AT),
            ("-vv", "show", person["borrower_id"], "--at", AT),
        ):
            result = run_bot(*args, db_url=db_url, env=WIDE)
            assert result.exit_code == 0, result.output
            assert person["borrower_id"] in result.stdout
            outputs.append(result.stdout + result.stderr)
    for args in (("summary", "--at", AT), ("summary", "--json", "--at", AT), ("-vv", "summary")):
        result = run_bot(*args, db_url=db_url, env=WIDE)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout + result.stderr)
    assert any(r.name.startswith("bot.") for r in caplog.records), "-vv should log something at DEBUG"
    everything = "\n".join(outputs) + "\n" + caplog.text
    for person in sample_people:
        for secret in _secrets(person):
            assert secret not in everything, f"{person['borrower_id']}: raw personal data in output"
    # and the masked forms are what is shown instead
    first = sample_people[0]
    assert mask_name(first["full_name"]) in everything
    assert mask_phone(_e164(first["phone"], first["country"])) in everything


def test_reveal_shows_raw_values_and_is_audited(run_bot, db_url: str, db: Database,
                                                sample_people: list[dict[str, str]]) -> None:  # fmt: skip
    person = next(p for p in sample_people if p["country"] == "CN")
    result = run_bot("show", person["borrower_id"], "--reveal", "--at", AT, db_url=db_url, env=WIDE)
    assert result.exit_code == 0, result.output
    assert person["full_name"] in result.stdout
    assert _e164(person["phone"], person["country"]) in result.stdout
    if person["email"]:
        assert person["email"] in result.stdout
    with db.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "reveal")).all()
    assert len(events) == 1
    event = events[0]
    assert (event.actor, event.subject_type, event.subject_id) == ("cli", "borrower", person["borrower_id"])
    assert event.detail is not None and "phone" in event.detail["fields"] and "full_name" in event.detail["fields"]
    # the audit record names fields, never values
    assert person["full_name"] not in str(event.detail)


def test_masked_show_writes_no_audit(run_bot, db_url: str, db: Database, sample_people: list[dict[str, str]]) -> None:
    result = run_bot("show", sample_people[0]["borrower_id"], "--json", db_url=db_url)
    assert result.exit_code == 0, result.output
    with db.session() as session:
        assert session.scalars(select(AuditEvent)).all() == []


# --- JSON log lines ----------------------------------------------------------------------------


def test_json_log_lines_are_masked_like_text_ones() -> None:
    import io
    import json
    import logging

    from bot.cli.common import JsonFormatter
    from bot.privacy import install_log_filter

    stream = io.StringIO()
    logger = logging.getLogger("bot.test.jsonlog")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    install_log_filter(logger)
    try:
        logger.warning("texting %s at 15:42:01.221597 about %d items", "+12125551234", 3)
        try:
            raise ValueError("bad address jane.doe@example.com")
        except ValueError:
            logger.exception("send failed for %s", "+12125551234")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["logger"] == "bot.test.jsonlog"
    assert "+12125551234" not in first["message"] and "15:42:01.221597" in first["message"]
    assert "3 items" in first["message"] and first["time"].endswith("+00:00")
    assert "+12125551234" not in second["message"] and "jane.doe@example.com" not in second["exception"]
    assert "ValueError" in second["exception"]


def test_bot_logs_json_lines_with_log_format_json(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["BOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'bot.db'}"
    done = subprocess.run([sys.executable, "-m", "bot", "--log-format", "json", "-vv", "init"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # Every log line is one JSON object; the command's own words to the user stay plain.
    logs = [line for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(logs) >= 3 and all(set(json.loads(line)) >= {"time", "level", "logger", "message"} for line in logs)
    text_log = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR) ")
    assert not [line for line in done.stderr.splitlines() if text_log.match(line)]
    env["BOT_LOG_FORMAT"] = "xml"
    bad = subprocess.run([sys.executable, "-m", "bot", "init"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "BOT_LOG_FORMAT" in bad.stderr
