"""bot.messages: segments, opt-out rule, unsubscribe tokens, compose, template checks."""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from builders import add_borrower, add_loan

from bot.config import Settings
from bot.db import Database
from bot.db.models import ContactAttempt, InboundMessage
from bot.messages import (
    REPLY_KINDS,
    ComposeError,
    MessageData,
    TemplateCheckError,
    compose,
    ends_with_opt_out,
    is_gsm7,
    list_unsubscribe_headers,
    load_message_data,
    load_message_data_many,
    make_message_id,
    make_unsubscribe_token,
    public_url_warnings,
    read_unsubscribe_token,
    sms_segments,
    validate_reply_templates,
    validate_sms_templates,
)
from bot.messages.segments import GSM7_BASIC, GSM7_BASIC_TABLE, GSM7_EXTENSION
from bot.rendering import Renderer
from bot.sandbox.segments import count_segments

SECRET = "test-unsubscribe-secret-0123456789"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
AT = datetime(2026, 1, 18, 15, 0, tzinfo=UTC)  # 10:00 in New York


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(public_base_url="https://bot.example.com", unsubscribe_secret=SECRET,
                    smtp_from="Example Lending <reminders@mail.example.com>")


@dataclass
class Attempt:
    """Stands in for ContactAttempt (compose reads only these fields)."""

    id: int = 7
    dedupe_key: str = "plan:I1:main:1:sms"
    borrower_id: str = "B1"
    installment_id: str | None = "I1"
    channel: str = "sms"
    source: str = "planner"
    template: str | None = "reminder_overdue"
    address: str | None = "+12125551234"
    decision: dict[str, Any] | None = field(
        default_factory=lambda: {"allowed": True, "planner": {"locale": "en-US", "zone": "America/New_York",
                                                              "local_date": "2026-01-18"}})
    next_attempt_at: datetime | None = AT


def data(**overrides: Any) -> MessageData:
    values: dict[str, Any] = dict(borrower_id="B1", full_name="Jane Doe", locale="en-US", timezone=None,
                                  loan_id="L-2026-0042", currency="USD", due_date=date(2026, 1, 15),
                                  outstanding_minor=12345)
    values.update(overrides)
    return MessageData(**values)


# --- segments -------------------------------------------------------------------------------------

SEGMENT_CASES = [
    ("empty", "", "GSM-7", 0, 0),
    ("one char", "a", "GSM-7", 1, 1),
    ("GSM 160", "a" * 160, "GSM-7", 160, 1),
    ("GSM 161", "a" * 161, "GSM-7", 161, 2),
    ("GSM 306", "a" * 306, "GSM-7", 306, 2),
    ("GSM 307", "a" * 307, "GSM-7", 307, 3),
    ("basic accents and Greek", "Ça coute? ÄÖÑÜ§¿¡ΔΦΓΛΩΠΨΣΘΞ£¥èéùìò@\n", "GSM-7", 36, 1),
    ("euro counts double 80", "€" * 80, "GSM-7", 160, 1),
    ("euro counts double 81", "€" * 81, "GSM-7", 162, 2),
    ("brace makes 161", "{" + "a" * 159, "GSM-7", 161, 2),
    ("every extension char", "^{}\\[~]|€\f", "GSM-7", 20, 1),
    ("escape never straddles parts", "a" * 152 + "[" + "a" * 152, "GSM-7", 306, 3),
    ("lower-case c cedilla is not GSM", "façade", "UCS-2", 6, 1),
    ("curly quote forces UCS-2", "It’s due", "UCS-2", 8, 1),
    ("Chinese 70", "中" * 70, "UCS-2", 70, 1),
    ("Chinese 71", "中" * 71, "UCS-2", 71, 2),
    ("Chinese 134", "中" * 134, "UCS-2", 134, 2),
    ("Chinese 135", "中" * 135, "UCS-2", 135, 3),
    ("Korean", "납부일입니다", "UCS-2", 6, 1),
    ("emoji are two units 35", "😀" * 35, "UCS-2", 70, 1),
    ("emoji are two units 36", "😀" * 36, "UCS-2", 72, 2),
    ("surrogate pair never straddles", "中" * 66 + "😀" + "中" * 66, "UCS-2", 134, 3),
    ("one emoji in English text", "Thanks 🙏", "UCS-2", 9, 1),
]


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [c[1:] for c in SEGMENT_CASES],
                         ids=[c[0] for c in SEGMENT_CASES])
def test_segments_and_encoding(text: str, encoding: str, units: int | None, segments: int) -> None:
    info = sms_segments(text)
    assert (info.encoding, info.segments) == (encoding, segments)
    if units is not None:
        assert info.units == units
    assert info.characters == len(text)


def test_segment_counts_agree_with_the_sandbox() -> None:
    """Everywhere, a character straddling a segment boundary included (Twilio's rule)."""
    straddles = [name for name, *_ in SEGMENT_CASES if "straddle" in name]
    assert straddles  # not vacuous
    for _name, text, _enc, _units, _segs in SEGMENT_CASES:
        assert sms_segments(text).segments == count_segments(text), _name


def test_gsm7_tables() -> None:
    assert len(GSM7_BASIC_TABLE) == 128
    assert len(GSM7_BASIC) == 127  # every position but the escape, no duplicates
    assert GSM7_BASIC_TABLE.index("@") == 0 and GSM7_BASIC_TABLE.index("A") == 0x41
    assert GSM7_BASIC_TABLE.index("à") == 0x7F and GSM7_BASIC_TABLE.index("¡") == 0x40
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert is_gsm7("Reply STOP to opt out. $12.50 @ 5%") and not is_gsm7("回T退订")
    assert sms_segments("a" * 161).per_segment == 153 and sms_segments("中").per_segment == 70


# --- opt-out rule -------------------------------------------------------------------------------------

OPT_OUT_CASES = [
    ("Pay today. Reply STOP to opt out.", "en-US", True),
    ("Pay today. reply stop to opt out", "en-US", True),
    ("Pay today. Reply STOP to opt out.  ", "en-US", True),
    ("Pay today. Text STOP to opt out!", "en-US", True),
    ("Reply STOP to opt out. Pay today.", "en-US", False),
    ("Pay today.", "en-US", False),
    ("【Lender】请还款。回T退订", "zh-CN", True),
    ("【Lender】请还款。回复T退订。", "zh-CN", True),
    ("【Lender】请还款。Reply STOP to opt out.", "zh-CN", True),
    ("【Lender】请还款。", "zh-CN", False),
    ("[Lender] 납부해 주세요. 수신거부: STOP 회신", "ko-KR", True),
    ("[Lender] 납부해 주세요.", "ko-KR", False),
    ("回T退订", "en-US", False),  # a Chinese ending does not count in English
]


@pytest.mark.parametrize(("body", "locale", "expected"), OPT_OUT_CASES)
def test_opt_out_instruction_must_come_last(body: str, locale: str, expected: bool) -> None:
    assert ends_with_opt_out(body, locale) is expected


# --- unsubscribe tokens -------------------------------------------------------------------------------

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.mark.parametrize(("borrower_id", "address"), [
    ("B000123", "jane.doe@example.com"),
    ("借款人-7", "zhang.wei@例子.公司"),
    ("B1", "a+tag@sub.example.co.uk"),
])
def test_token_round_trip(borrower_id: str, address: str) -> None:
    token = make_unsubscribe_token(SECRET, borrower_id, address)
    assert TOKEN_RE.match(token)
    assert read_unsubscribe_token(SECRET, token) == (borrower_id, address)
    assert make_unsubscribe_token(SECRET, borrower_id, address) == token  # deterministic
    # The address is not readable from the token, neither raw nor base64-encoded.
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert address.encode() not in raw and address not in token
    assert base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")[:12] not in token


def test_token_binds_borrower_and_address() -> None:
    one = make_unsubscribe_token(SECRET, "B1", "x@example.com")
    assert make_unsubscribe_token(SECRET, "B2", "x@example.com") != one
    assert make_unsubscribe_token(SECRET, "B1", "y@example.com") != one
    assert make_unsubscribe_token("another-secret-0123456789", "B1", "x@example.com") != one


def test_tampered_truncated_or_foreign_tokens_are_refused() -> None:
    token = make_unsubscribe_token(SECRET, "B000123", "jane.doe@example.com")
    assert read_unsubscribe_token("wrong-secret-0123456789", token) is None
    for i in range(len(token)):  # flip every character in turn
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        assert read_unsubscribe_token(SECRET, flipped) is None, i
    for bad in ("", token[:-1], token[:20], token + "A", "!!!!", "é" * 40, "A" * 5000, token.replace("-", "+")):
        assert read_unsubscribe_token(SECRET, bad) is None
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[0] = 2  # another version
    other = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert read_unsubscribe_token(SECRET, other) is None
    with pytest.raises(ValueError):
        make_unsubscribe_token(SECRET, "", "x@example.com")


@pytest.mark.parametrize(("url", "warned"), [
    ("https://bot.example.com", False), ("http://bot.example.com", True), ("http://10.0.0.5:8000", True),
    ("http://127.0.0.1:8000", False), ("http://127.8.9.1", False), ("http://[::1]:8000", False),
    ("http://localhost:8000", False), ("http://bot.localhost", False), ("HTTP://Bot.Example.com/x", True),
])
def test_an_http_public_url_off_this_machine_is_warned_about(url: str, warned: bool) -> None:
    warnings = public_url_warnings(url)
    assert bool(warnings) == warned
    assert all("RFC 8058" in w and "https://" in w for w in warnings)


def test_list_unsubscribe_headers_and_message_id() -> None:
    headers = list_unsubscribe_headers("https://bot.example.com/unsubscribe/TOKEN", "support@example.com")
    assert headers == {
        "List-Unsubscribe": "<https://bot.example.com/unsubscribe/TOKEN>, "
                            "<mailto:support@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    # RFC 8058: one-click only with an HTTPS URI.
    for url in ("http://bot.example.com/unsubscribe/TOKEN", "http://127.0.0.1:8000/unsubscribe/TOKEN"):
        assert list_unsubscribe_headers(url, None) == {"List-Unsubscribe": f"<{url}>"}
    assert "List-Unsubscribe-Post" in list_unsubscribe_headers("HTTPS://bot.example.com/unsubscribe/T", None)
    mid = make_message_id(42, "plan:I1:main:0:email", "Example <reminders@mail.example.com>")
    assert re.fullmatch(r"<attempt-42\.[0-9a-f]{16}@mail\.example\.com>", mid)
    assert make_message_id(42, "plan:I1:main:0:email", "reminders@mail.example.com") == mid
    assert make_message_id(42, "plan:I2:main:0:email", "reminders@mail.example.com") != mid


# --- compose: reminders ------------------------------------------------------------------------------


def test_sms_reminder(renderer: Renderer, settings: Settings) -> None:
    composed = compose(data(), Attempt(), settings, renderer=renderer)
    assert composed.channel == "sms" and composed.to == "+12125551234"
    assert composed.body.startswith("Example Lending: Hi Jane, your payment of $123.45 on loan ending 0042")
    assert "3 days late" in composed.body and composed.body.endswith("Reply STOP to opt out.")
    assert (composed.encoding, composed.segments) == ("GSM-7", sms_segments(composed.body).segments)
    assert composed.status_callback == "https://bot.example.com/twilio/status?attempt=7"
    assert composed.idempotency_key == "plan:I1:main:1:sms" and composed.locale == "en-US"
    assert composed.subject is None and composed.html is None and not composed.headers
    fields = composed.approve_fields()
    assert fields["attempt_id"] == 7 and fields["channel"] == "sms" and fields["body"] == composed.body


def test_local_date_comes_from_the_sending_instant_in_the_borrowers_zone(renderer: Renderer,
                                                                         settings: Settings) -> None:
    # 03:00 UTC on the 19th is still the 18th in New York: 3 days late, not 4.
    late = compose(data(), Attempt(), settings, renderer=renderer, at=datetime(2026, 1, 19, 3, 0, tzinfo=UTC))
    assert "3 days late" in late.body
    later = compose(data(), Attempt(), settings, renderer=renderer, at=datetime(2026, 1, 19, 6, 0, tzinfo=UTC))
    assert "4 days late" in later.body
    # Without a planner zone, the borrower's own zone counts: at 17:00 UTC it is
    # still the 18th in New York but already the 19th in Shanghai.
    attempt = Attempt(decision=None, next_attempt_at=datetime(2026, 1, 18, 17, 0, tzinfo=UTC))
    assert "3 days late" in compose(data(), attempt, settings, renderer=renderer).body
    assert "4 days late" in compose(data(timezone="Asia/Shanghai"), attempt, settings, renderer=renderer).body


def test_chinese_and_korean_reminders_are_ucs2(renderer: Renderer, settings: Settings) -> None:
    zh = compose(data(full_name="张伟", currency="CNY", outstanding_minor=123456),
                 Attempt(decision={"planner": {"locale": "zh-CN", "zone": "Asia/Shanghai"}}), settings,
                 renderer=renderer)
    assert zh.encoding == "UCS-2" and zh.body.startswith("【Example Lending】张伟您好") and zh.body.endswith("回T退订")
    assert "¥1,234.56" in zh.body and zh.segments == sms_segments(zh.body).segments
    ko = compose(data(full_name="김민준", currency="KRW", outstanding_minor=150000),
                 Attempt(decision={"planner": {"locale": "ko-KR", "zone": "Asia/Seoul"}}), settings, renderer=renderer)
    assert ko.encoding == "UCS-2" and "₩150,000" in ko.body and ko.body.endswith("수신거부: STOP 회신")


def test_sms_over_the_segment_limit_is_refused(renderer: Renderer) -> None:
    tight = Settings(sms_max_segments=1)
    with pytest.raises(ComposeError) as info:
        compose(data(full_name="张伟", currency="CNY"), Attempt(decision={"planner": {"locale": "zh-CN"}}), tight,
                renderer=renderer)
    error = info.value
    assert error.reason == "sms_too_long" and error.template == "reminder_overdue" and error.locale == "zh-CN"
    assert "template 'reminder_overdue' for locale zh-CN" in str(error) and "sms_max_segments=1" in str(error)
    assert "UCS-2" in str(error) and "张伟" not in str(error)


@pytest.fixture
def edited_templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates a test may break."""
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATES, root)
    return root


def test_sms_without_opt_out_instruction_is_refused(edited_templates: Path, settings: Settings) -> None:
    path = edited_templates / "sms/en-US/reminder_overdue.txt.j2"
    path.write_text("{{ lender_name }}: Hi {{ first_name }}, please pay {{ amount_minor|money(currency, locale) }}.\n")
    with pytest.raises(ComposeError) as info:
        compose(data(), Attempt(), settings, renderer=Renderer(edited_templates))
    assert info.value.reason == "no_opt_out" and "Jane" not in str(info.value)


def test_template_errors_are_compose_errors(edited_templates: Path, settings: Settings) -> None:
    (edited_templates / "sms/en-US/reminder_overdue.txt.j2").write_text("{{ borrower_ssn }} Reply STOP to opt out.\n")
    with pytest.raises(ComposeError) as info:
        compose(data(), Attempt(), settings, renderer=Renderer(edited_templates))
    assert info.value.reason == "template_error" and "borrower_ssn" in str(info.value)


@pytest.mark.parametrize(("attempt", "message_data", "reason"), [
    (Attempt(address=None), data(), "no_address"),
    (Attempt(template=None), data(), "no_template"),
    (Attempt(channel="voice", template="first_stage"), data(), "unsupported_channel"),
    (Attempt(), data(outstanding_minor=0), "paid"),
    (Attempt(), data(due_date=None, loan_id=None, currency=None, outstanding_minor=None), "missing_data"),
    (Attempt(next_attempt_at=None, decision=None), data(), "no_date"),
    (Attempt(source="reply", template="reply_unknown"), data(), "unknown_reply"),
    (Attempt(source="reply", template="reply_help", channel="email", address="x@example.com"), data(),
     "unsupported_channel"),
])
def test_compose_refusals(attempt: Attempt, message_data: MessageData, reason: str, renderer: Renderer,
                          settings: Settings) -> None:
    with pytest.raises(ComposeError) as info:
        compose(message_data, attempt, settings, renderer=renderer)
    assert info.value.reason == reason


# --- compose: email -----------------------------------------------------------------------------------


def email_attempt(**overrides: Any) -> Attempt:
    values: dict[str, Any] = dict(id=11, dedupe_key="plan:I1:main:0:email", channel="email", template="reminder_due",
                                  address="jane.doe@example.com",
                                  decision={"planner": {"locale": "en-US", "zone": "America/New_York"}})
    values.update(overrides)
    return Attempt(**values)


def test_email_reminder_has_unsubscribe_link_and_headers(renderer: Renderer, settings: Settings) -> None:
    composed = compose(data(due_date=date(2026, 1, 18)), email_attempt(), settings, renderer=renderer)
    url = composed.unsubscribe_url
    assert url is not None and url.startswith("https://bot.example.com/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert read_unsubscribe_token(SECRET, token) == ("B1", "jane.doe@example.com")
    assert url in composed.body and f'href="{url}"' in (composed.html or "")
    assert composed.subject == "Example Lending: your payment of $123.45 is due today"
    assert composed.headers["List-Unsubscribe"] == f"<{url}>, <mailto:support@example.com?subject=unsubscribe>"
    assert composed.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert composed.message_id == make_message_id(11, "plan:I1:main:0:email", settings.smtp_from)
    assert composed.message_id.endswith("@mail.example.com>")
    assert composed.segments is None and composed.status_callback is None
    again = compose(data(due_date=date(2026, 1, 18)), email_attempt(), settings, renderer=renderer)
    assert again == composed  # a re-send after a crash is the same message


def test_email_without_visible_unsubscribe_link_is_refused(edited_templates: Path, settings: Settings) -> None:
    layout = edited_templates / "email/_layout.html.j2"
    layout.write_text(layout.read_text().replace('href="{{ unsubscribe_url }}"', 'href="https://example.com/"'))
    with pytest.raises(ComposeError) as info:
        compose(data(), email_attempt(), settings, renderer=Renderer(edited_templates))
    assert info.value.reason == "no_unsubscribe_link" and "HTML" in str(info.value)
    text = edited_templates / "email/en-US/reminder_due.txt.j2"
    text.write_text(text.read_text().replace("{{ unsubscribe_url }}", "(see the link in the HTML version)"))
    with pytest.raises(ComposeError) as info:
        compose(data(), email_attempt(), settings, renderer=Renderer(edited_templates))
    assert "plain-text" in str(info.value)


def test_chinese_email(renderer: Renderer, settings: Settings) -> None:
    composed = compose(data(full_name="张伟", currency="CNY", locale="zh-CN", due_date=date(2026, 1, 18)),
                       email_attempt(decision={"planner": {"locale": "zh-CN", "zone": "Asia/Shanghai"}}),
                       settings, renderer=renderer)
    assert composed.locale == "zh-CN" and "¥123.45" in (composed.subject or "")
    assert composed.unsubscribe_url in composed.body and composed.unsubscribe_url in (composed.html or "")


# --- compose: replies --------------------------------------------------------------------------------


def reply_attempt(kind: str, **overrides: Any) -> Attempt:
    values: dict[str, Any] = dict(id=21, dedupe_key=f"reply:SM{'1' * 32}", installment_id=None, source="reply",
                                  template=f"reply_{kind}", decision=None)
    values.update(overrides)
    return Attempt(**values)


@pytest.mark.parametrize("locale", ["en-US", "zh-CN", "ko-KR"])
@pytest.mark.parametrize("kind", REPLY_KINDS)
def test_every_reply_renders(kind: str, locale: str, renderer: Renderer, settings: Settings) -> None:
    attempt = reply_attempt(kind)
    if kind == "payment_link":  # a link to the call's installment (short links keep it in one segment)
        settings = settings.model_copy(update={"payment_url_template": PAY_URL, "payment_short_links": True})
        attempt = reply_attempt(kind, installment_id="I1")
    composed = compose(data(locale=locale, promise_date=date(2026, 1, 23)), attempt, settings, renderer=renderer)
    assert composed.locale == locale and composed.segments is not None and composed.segments <= 2
    assert settings.lender_name in composed.body
    assert composed.status_callback == "https://bot.example.com/twilio/status?attempt=21"
    assert ends_with_opt_out(composed.body, locale) is (kind in ("opt_in", "help", "survey", "payment_link"))


PAY_URL = "https://pay.example.com/checkout/{token}"


@pytest.mark.parametrize("locale", ["en-US", "es-US", "zh-CN", "ko-KR"])
def test_the_payment_link_reply_links_to_its_installment(locale: str, renderer: Renderer,
                                                         settings: Settings) -> None:
    from bot.paylinks import make_code, read_token

    linked = settings.model_copy(update={"payment_url_template": PAY_URL})
    attempt = reply_attempt("payment_link", installment_id="I1")
    if locale in ("en-US", "es-US"):  # the long link fits a GSM-7 text; in UCS-2 only the short one does
        body = compose(data(locale=locale), attempt, linked, renderer=renderer).body
        token = body.split("https://pay.example.com/checkout/", 1)[1].split()[0]
        claim = read_token(linked.payment_link_secret, token, now=AT)
        assert claim is not None
        assert (claim.installment_id, claim.loan_id, claim.attempt_id) == ("I1", "L-2026-0042", 21)
    short = linked.model_copy(update={"payment_short_links": True})
    body = compose(data(locale=locale), attempt, short, renderer=renderer).body
    assert f"https://bot.example.com/p/{make_code(linked.payment_link_secret, 21)}" in body
    assert linked.lender_name in body and ends_with_opt_out(body, locale)


@pytest.mark.parametrize(("template", "installment", "outstanding", "reason"), [
    (None, "I1", 12345, "no_payment_link"),  # no payment_url_template: no link to send
    (PAY_URL, None, None, "no_payment_link"),  # not about an installment
    (PAY_URL, "I1", 0, "paid"),  # paid since the call: nothing to pay
])
def test_no_payment_link_reply_without_a_link(template: str | None, installment: str | None, outstanding: int | None,
                                              reason: str, renderer: Renderer, settings: Settings) -> None:
    linked = settings.model_copy(update={"payment_url_template": template})
    fields = {"outstanding_minor": outstanding} if installment else {"loan_id": None, "outstanding_minor": None}
    with pytest.raises(ComposeError) as info:
        compose(data(**fields), reply_attempt("payment_link", installment_id=installment), linked, renderer=renderer)
    assert info.value.reason == reason


def test_help_says_who_we_are_and_how_to_reach_us(renderer: Renderer, settings: Settings) -> None:
    body = compose(data(), reply_attempt("help"), settings, renderer=renderer).body
    for part in (settings.lender_name, settings.lender_phone, settings.lender_email, "Reply STOP to opt out"):
        assert part in body


def test_opt_out_confirmation_and_promise_read_back(renderer: Renderer, settings: Settings) -> None:
    opt_out = compose(data(), reply_attempt("opt_out"), settings, renderer=renderer).body
    assert "no more text messages" in opt_out
    promise = compose(data(promise_date=date(2026, 1, 23)), reply_attempt("promise"), settings, renderer=renderer)
    assert "Jan 23, 2026" in promise.body
    zh = compose(data(locale="zh-CN", full_name="张伟", promise_date=date(2026, 1, 23)), reply_attempt("promise"),
                 settings, renderer=renderer)
    assert "2026年1月23日" in zh.body
    undated = compose(data(promise_date=None), reply_attempt("promise"), settings, renderer=renderer)
    assert "plan to pay" in undated.body and "None" not in undated.body


@pytest.mark.parametrize(("stored", "used"), [("zh-TW", "zh-CN"), ("zh_CN", "zh-CN"), ("ko", "ko-KR"),
                                              ("fr-FR", "en-US"), ("", "en-US")])
def test_reply_locale_falls_back_by_language(stored: str, used: str, renderer: Renderer, settings: Settings) -> None:
    assert compose(data(locale=stored), reply_attempt("paid"), settings, renderer=renderer).locale == used


def test_reply_help_without_opt_out_is_refused_but_other_replies_need_none(edited_templates: Path,
                                                                          settings: Settings) -> None:
    (edited_templates / "sms/en-US/reply_help.txt.j2").write_text("{{ lender_name }}: call {{ lender_phone }}.\n")
    edited = Renderer(edited_templates)
    with pytest.raises(ComposeError) as info:
        compose(data(), reply_attempt("help"), settings, renderer=edited)
    assert info.value.reason == "no_opt_out"
    assert compose(data(), reply_attempt("dispute"), settings, renderer=edited).body


# --- template checks ---------------------------------------------------------------------------------


def test_shipped_templates_pass_the_checks(renderer: Renderer) -> None:
    validate_reply_templates(renderer)
    validate_sms_templates(renderer, ["reminder_upcoming", "reminder_due", "reminder_overdue"],
                           ["en-US", "zh-CN", "ko-KR"])


def test_template_checks_list_every_problem(edited_templates: Path) -> None:
    (edited_templates / "sms/zh-CN/reply_paid.txt.j2").write_text("【{{ lender_name }}】{{ borrower_ssn }}\n")
    (edited_templates / "sms/en-US/reply_help.txt.j2").write_text("{{ lender_name }}: call {{ lender_phone }}.\n")
    (edited_templates / "sms/ko-KR/reply_other.txt.j2").unlink()
    (edited_templates / "sms/en-US/reply_promise.txt.j2").write_text("{{ promise_date.isoformat() }}\n")
    with pytest.raises(TemplateCheckError) as info:
        validate_reply_templates(Renderer(edited_templates))
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("templates/sms/zh-CN/reply_paid.txt.j2:1: undefined variable") for p in problems)
    assert any(p.startswith("templates/sms/en-US/reply_help.txt.j2:") and "opt-out" in p for p in problems)
    assert any(p.startswith("templates/sms/ko-KR/reply_other.txt.j2") and "does not exist" in p for p in problems)
    # reply_promise must also work without a date
    assert any(p.startswith("templates/sms/en-US/reply_promise.txt.j2") for p in problems)
    with pytest.raises(TemplateCheckError) as info:
        validate_sms_templates(Renderer(TEMPLATES), ["reminder_overdue"], ["zh-CN"], max_segments=1)
    assert "sms_too_long" not in str(info.value) and "exceed sms_max_segments=1" in str(info.value)


def test_validate_templates_checks_what_the_bot_can_send(edited_templates: Path) -> None:
    from bot.messages import validate_templates
    from bot.policy import load_policy

    policy = load_policy()
    validate_templates(Renderer(TEMPLATES), policy=policy)  # the shipped templates pass
    # a locale with only some reply templates falls back for the others: not a problem
    for kind in REPLY_KINDS[1:]:
        (edited_templates / f"sms/ko-KR/reply_{kind}.txt.j2").unlink()
    validate_templates(Renderer(edited_templates), policy=policy)
    # en-US is the last fallback: every reply must be there; and the email needs its link
    (edited_templates / "sms/en-US/reply_other.txt.j2").unlink()
    html = edited_templates / "email/zh-CN/reminder_due.html.j2"
    html.write_text("<p>{{ first_name }}</p>\n", encoding="utf-8")
    with pytest.raises(TemplateCheckError) as info:
        validate_templates(Renderer(edited_templates), policy=policy)
    assert info.value.problems == [
        "templates/sms/en-US/reply_other.txt.j2: template file does not exist",
        "templates/email/zh-CN/reminder_due.html.j2: template 'reminder_due' for locale zh-CN: "
        "the HTML part must show {{ unsubscribe_url }} (the unsubscribe link)",
    ]
    assert str(edited_templates) in str(info.value)


# --- loading from the database ----------------------------------------------------------------------


def test_load_message_data_and_compose_from_a_session(db: Database, renderer: Renderer, settings: Settings) -> None:
    sid = "SM" + "a" * 32
    with db.session() as s:
        add_borrower(s, "B1", phone="+12125551234", email="jane@example.com", timezone="America/Chicago",
                     region="IL", consent=(), at=AT)
        add_loan(s, "B1", "L-77-0042", [("I1", date(2026, 1, 15), 20_000, 5_000)], opened_on=date(2025, 1, 1), at=AT)
        planned = ContactAttempt(dedupe_key="plan:I1:main:1:sms", borrower_id="B1", loan_id="L-77-0042",
                                 installment_id="I1", channel="sms", source="planner", status="planned",
                                 template="reminder_overdue", address="+12125551234", next_attempt_at=AT,
                                 decision={"planner": {"locale": "en-US", "zone": "America/Chicago"}},
                                 created_at=AT, updated_at=AT)
        reply = ContactAttempt(dedupe_key=f"reply:{sid}", borrower_id="B1", channel="sms", source="reply",
                               status="planned", step="reply", template="reply_promise", address="+12125551234",
                               next_attempt_at=AT, created_at=AT, updated_at=AT)
        s.add_all([planned, reply])
        s.flush()
        s.add(InboundMessage(provider_id=sid, channel="sms", borrower_id="B1", from_address="+12125551234",
                             to_address="+15005550006", body_redacted="friday", intent="promise_to_pay",
                             promise_date=date(2026, 1, 23), received_at=AT, reply_attempt_id=reply.id))
    with db.session() as s:
        planned = s.query(ContactAttempt).filter_by(source="planner").one()
        reply = s.query(ContactAttempt).filter_by(source="reply").one()
        loaded = load_message_data_many(s, [planned, reply])
        assert loaded[planned.id] == MessageData("B1", "Jane Doe", "en-US", "America/Chicago", "L-77-0042", "USD",
                                                 date(2026, 1, 15), 15_000, None)
        assert loaded[reply.id].promise_date == date(2026, 1, 23) and loaded[reply.id].due_date is None
        assert load_message_data(s, reply) == loaded[reply.id]
        sms = compose(s, planned, settings, renderer=renderer)
        assert "$150.00" in sms.body and "3 days late" in sms.body
        assert "Jan 23, 2026" in compose(s, reply, settings, renderer=renderer).body
        ghost = Attempt(id=999, borrower_id="nobody")
        with pytest.raises(ComposeError) as info:
            compose(s, ghost, settings, renderer=renderer)
        assert info.value.reason == "missing_data"
