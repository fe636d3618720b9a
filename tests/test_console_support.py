"""Helpers shared by the console tests, and their own checks.

* :func:`seed` writes a small portfolio with calls: borrowers (tests/builders.py), contacts,
  replies, a promise, tasks, three call sessions with turns, and the turns'
  audio as real WAV files under a media directory;
* :func:`add_users` writes the three console users (one per role) with a
  password hashed once per test run (argon2 is slow on purpose);
* :class:`ConsoleServer` serves the bot's app with uvicorn in a thread (real
  HTTP); :class:`Browser` is an HTTP client with its own cookie jar that
  signs in and posts forms with the page's CSRF token.
"""

from __future__ import annotations

import array
import io
import math
import re
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from builders import add_account

from bot.app import create_app
from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.console import charts
from bot.console.filters import InvalidInput, parse_audit_filters, parse_call_filters, parse_task_filters
from bot.db import Database
from bot.db.models import CallSession, CallTurn, ContactAttempt, InboundMessage, Promise, Task, User
from bot.sandbox.server import ThreadedServer
from bot.http.context import WebContext

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 10:00 in New York
PASSWORD = "correct horse battery staple"
#: argon2 at the bot's parameters (64 MiB, 3 passes) takes most of a second on a busy test machine; the
#: console tests hash with minimal parameters instead (argon2 verifies with the parameters stored in the
#: hash, so the code paths are the same).  tests/test_console_users.py checks the real parameters.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD_HASH = FAST_HASHER.hash(PASSWORD)
USERS = {"ada": "admin", "sam": "supervisor", "vic": "viewer"}

B1_NAME, B1_PHONE, B1_EMAIL = "Jane Doe", "+12125551234", "jane.doe@example.com"
B2_NAME, B2_PHONE, B2_EMAIL = "张伟", "+8613812345678", "zhang.wei@example.org"
#: Every written form of the seeded personal data that must never reach a page unrevealed.
RAW_VALUES = (B1_PHONE, "2125551234", "212-555-1234", "(212) 555-1234", "555-1234", B1_EMAIL, "jane.doe",
              B1_NAME, B2_PHONE, "13812345678", B2_EMAIL, "zhang.wei", B2_NAME)


def console_settings(media_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"console_secure_cookies": False, "media_dir": media_dir,
                              "default_timezone": "America/New_York", "console_page_size": 50}
    values.update(overrides)
    return load_settings(None, **values)


def wav_bytes(seconds: float = 1.0, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A valid mono 16-bit PCM WAV: a quiet sine tone."""
    samples = array.array("h", (int(6000 * math.sin(2 * math.pi * freq * i / rate))
                                for i in range(int(seconds * rate))))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def add_users(db: Database, users: dict[str, str] = USERS) -> None:
    with db.session() as session:
        for name, role in users.items():
            session.add(User(name=name, password_hash=PASSWORD_HASH, role=role, failed_logins=0,
                             disabled=False, created_at=NOW - timedelta(days=30)))


@dataclass(frozen=True)
class Seeded:
    call_promise: int  # B1, today, flagged, low confidence, promise, not reviewed
    call_dispute: int  # B2, yesterday, zh-CN, reviewed
    call_voicemail: int  # B1, two days ago, machine
    promise_turn: int  # the borrower turn of call_promise understood as a promise
    bot_turn: int  # a bot prompt with audio
    media_dir: Path


def _attempt(session: Any, key: str, bid: str, channel: str, address: str, at: datetime, *,
             provider_status: str | None = None, outcome: str | None = None) -> int:
    decision = {"allowed": True, "reasons": [], "rule_set": "us+us-ny", "zones": ["America/New_York"],
                "next_allowed_at": None}
    row = ContactAttempt(dedupe_key=key, borrower_id=bid, loan_id=f"{bid}-L1", installment_id=f"{bid}-L1-I1",
                         channel=channel, source="planner", status="sent", outcome=outcome, step="d+7",
                         template="reminder_overdue", address=address, occurred_at=at, provider_id=f"P{key}",
                         decision=decision, tries=1, provider_status=provider_status, sent_at=at,
                         created_at=at - timedelta(hours=1), updated_at=at)
    session.add(row)
    session.flush()
    return row.id


def _turns(session: Any, call_id: int, at: datetime, turns: list[dict[str, Any]]) -> list[int]:
    ids = []
    for seq, spec in enumerate(turns, start=1):
        turn = CallTurn(session_id=call_id, seq=seq, at=at + timedelta(seconds=5 * seq), flagged=False, **spec)
        session.add(turn)
        session.flush()
        ids.append(turn.id)
    return ids


def seed(db: Database, media_dir: Path) -> Seeded:
    """The console's test world (module docstring); audio files are written under ``media_dir``."""
    (media_dir / "prompts").mkdir(parents=True, exist_ok=True)
    (media_dir / "recordings").mkdir(parents=True, exist_ok=True)
    for name in ("prompts/greeting.wav", "prompts/ask.wav", "recordings/1-2.wav", "recordings/1-4.wav"):
        (media_dir / name).write_bytes(wav_bytes())
    today_call = NOW - timedelta(hours=1)
    with db.session() as session:
        created = NOW - timedelta(days=200)
        add_account(session, "B1", name=B1_NAME, phone=B1_PHONE, email=B1_EMAIL, due=date(2026, 11, 20), at=created)
        add_account(session, "B2", name=B2_NAME, phone=B2_PHONE, email=B2_EMAIL, locale="zh-CN", country="CN",
                    region="SH", due=date(2026, 11, 23), at=created)
        _attempt(session, "sms-b1", "B1", "sms", B1_PHONE, NOW - timedelta(hours=3), provider_status="delivered",
                 outcome="delivered")
        _attempt(session, "sms-b2", "B2", "sms", B2_PHONE, NOW - timedelta(hours=2), provider_status="undelivered",
                 outcome="failed")
        _attempt(session, "email-b1", "B1", "email", B1_EMAIL, NOW - timedelta(hours=2))
        voice = _attempt(session, "voice-b1", "B1", "voice", B1_PHONE, today_call, outcome="conversation")
        session.add(InboundMessage(provider_id="SMin1", channel="sms", borrower_id="B1", from_address=B1_PHONE,
                                   to_address="+15005550006", body_redacted="I will pay friday, call me at "
                                   "******1234", intent="promise_to_pay", promise_date=date(2026, 12, 4),
                                   confidence=0.9, matched="promise", received_at=NOW - timedelta(hours=2, minutes=30),
                                   handled_at=NOW - timedelta(hours=2, minutes=30)))
        session.add(Promise(borrower_id="B1", loan_id="B1-L1", promised_date=date(2026, 12, 4), amount_minor=10_000,
                            status="pending", source="voice", created_at=today_call + timedelta(minutes=2)))
        session.add(Task(borrower_id="B2", loan_id=None, kind="dispute", status="open", source="voice",
                         dedupe_key="seed:dispute:B2", assigned_to=None, note="call: dispute",
                         created_at=NOW - timedelta(days=1)))
        session.add(Task(borrower_id="B1", loan_id=None, kind="review", status="open", source="sms",
                         dedupe_key="seed:review:B1", assigned_to=None, note="sms reply to review",
                         created_at=NOW - timedelta(hours=5)))

        promise_call = CallSession(
            attempt_id=voice, call_sid="CA" + "1" * 32, borrower_id="B1", loan_id="B1-L1", locale="en-US",
            script="first_stage", status="completed", answered_by="human", outcome="promise",
            promise_date=date(2026, 12, 4), speech=True, flagged=True, flags={"reasons": ["low_confidence"]},
            min_confidence=0.42,
            state={"node": "goodbye", "path": ["greeting", "right_party", "disclosure", "ask_payment",
                                               "promise_date", "goodbye"],
                   "facts": {"right_party_confirmed": True, "disclosed": True}},
            decision={"allowed": True, "reasons": [], "rule_set": "us+us-ny", "zones": ["America/New_York"],
                      "next_allowed_at": None},
            recording_dir="recordings", started_at=today_call, answered_at=today_call + timedelta(seconds=4),
            ended_at=today_call + timedelta(seconds=70), duration_s=66.0, created_at=today_call,
            updated_at=today_call)
        session.add(promise_call)
        session.flush()
        ids = _turns(session, promise_call.id, today_call, [
            dict(speaker="bot", node="greeting", source="tts", audio_ref="prompts/greeting.wav",
                 text_redacted="Hello, this is Example Lending. Am I speaking with J. D.?"),
            dict(speaker="borrower", node="right_party", source="speech", text_redacted="yes speaking",
                 confidence=0.91, intent="affirm", audio_ref="recordings/1-2.wav"),
            dict(speaker="bot", node="ask_payment", source="tts", audio_ref="prompts/ask.wav",
                 text_redacted="You owe $100.00, due on November 20. When can you pay?"),
            dict(speaker="borrower", node="promise_date", source="speech",
                 text_redacted="I can pay next friday, call me on ******1234", confidence=0.42,
                 intent="promise_to_pay", promise_date=date(2026, 12, 4), audio_ref="recordings/1-4.wav"),
            dict(speaker="bot", node="goodbye", source="tts", text_redacted="Thank you. Goodbye."),
        ])
        dispute_call = CallSession(
            attempt_id=None, call_sid="CA" + "2" * 32, borrower_id="B2", loan_id="B2-L1", locale="zh-CN",
            script="first_stage", status="completed", answered_by="human", outcome="dispute", speech=True,
            flagged=False, min_confidence=0.88, state={"path": ["greeting", "right_party", "dispute"]},
            decision={"allowed": True, "reasons": [], "rule_set": "cn", "zones": ["Asia/Shanghai"]},
            started_at=NOW - timedelta(days=1), reviewed_at=NOW - timedelta(hours=20), reviewed_by="sam",
            created_at=NOW - timedelta(days=1), updated_at=NOW - timedelta(hours=20))
        voicemail_call = CallSession(
            attempt_id=None, call_sid="CA" + "3" * 32, borrower_id="B1", loan_id="B1-L1", locale="en-US",
            script="first_stage", status="completed", answered_by="machine_end_beep", outcome="voicemail",
            speech=True, flagged=False, state={"path": ["voicemail"]}, started_at=NOW - timedelta(days=2),
            created_at=NOW - timedelta(days=2), updated_at=NOW - timedelta(days=2))
        session.add_all([dispute_call, voicemail_call])
        session.flush()
        _turns(session, dispute_call.id, NOW - timedelta(days=1), [
            dict(speaker="bot", node="greeting", source="tts", text_redacted="您好，这里是 Example Lending。"),
            dict(speaker="borrower", node="right_party", source="speech", text_redacted="这不是我的欠款",
                 confidence=0.88, intent="dispute"),
        ])
        return Seeded(promise_call.id, dispute_call.id, voicemail_call.id, ids[3], ids[0], media_dir)


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- HTTP ----------------------------------------------------------------------------------------

_CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """An HTTP client with its own cookies that signs in and posts forms with the page's CSRF token."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, trust_env=False, timeout=15, follow_redirects=False)
        self.csrf_token: str | None = None

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def login(self, name: str, password: str = PASSWORD, *, next_: str = "/console") -> httpx.Response:
        page = self.http.get("/console/login")
        token = _CSRF_RE.search(page.text)
        assert token, "the sign-in page has no CSRF field"
        return self.http.post("/console/login", data={"csrf": token.group(1), "name": name, "password": password,
                                                      "next": next_})

    def csrf(self, path: str = "/console") -> str:
        page = self.http.get(path)
        assert page.status_code == 200, (path, page.status_code)
        found = _CSRF_RE.search(page.text)
        assert found, f"no CSRF field on {path}"
        self.csrf_token = found.group(1)
        return self.csrf_token

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: str | None | bool = True) -> httpx.Response:
        values = dict(data or {})
        if csrf is True:
            values["csrf"] = self.csrf_token or self.csrf()
        elif isinstance(csrf, str):
            values["csrf"] = csrf
        return self.http.post(path, data=values)


class ConsoleServer:
    """The bot's app on a real uvicorn server, re-pointed per test (database, clock, settings)."""

    def __init__(self) -> None:
        self._placeholder = Database("sqlite://")
        self.app = create_app(console_settings(Path("media")), self._placeholder, FixedClock(NOW))
        self.server = ThreadedServer(self.app)
        self.browsers: list[Browser] = []

    def start(self) -> ConsoleServer:
        self.server.start()
        return self

    def stop(self) -> None:
        for browser in self.browsers:
            browser.close()
        self.server.stop()
        self._placeholder.dispose()

    def use(self, settings: Settings, db: Database, clock: FixedClock) -> None:
        self.app.state.bot = WebContext(settings=settings, db=db, clock=clock)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def browser(self) -> Browser:
        browser = Browser(self.base_url)
        self.browsers.append(browser)
        return browser

    def signed_in(self, name: str) -> Browser:
        browser = self.browser()
        response = browser.login(name)
        assert response.status_code == 303 and response.headers["location"] == "/console", response.text[:500]
        return browser


@pytest.fixture(scope="module")
def console_server() -> Iterator[ConsoleServer]:
    server = ConsoleServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class World:
    server: ConsoleServer
    db: Database
    clock: FixedClock
    seeded: Seeded
    settings: Settings

    def as_(self, name: str) -> Browser:
        return self.server.signed_in(name)


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.console import users

    monkeypatch.setattr(users, "_hasher", FAST_HASHER)
    monkeypatch.setattr(users, "_DUMMY_HASH", FAST_HASHER.hash("not anybody's password"))


@pytest.fixture
def world(console_server: ConsoleServer, db: Database, tmp_path: Path, fast_hashing: None) -> Iterator[World]:
    clock = FixedClock(NOW)
    settings = console_settings(tmp_path / "media")
    seeded = seed(db, tmp_path / "media")
    add_users(db)
    console_server.use(settings, db, clock)
    try:
        yield World(console_server, db, clock, seeded, settings)
    finally:
        for browser in console_server.browsers:
            browser.close()
        console_server.browsers.clear()


# --- the helpers' own checks, and the pure pieces ---------------------------------------------------


def test_wav_bytes_is_a_valid_wav() -> None:
    with wave.open(io.BytesIO(wav_bytes(0.5)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 4000)


def test_bar_chart_is_escaped_svg_without_styles() -> None:
    svg = str(charts.bar_chart("<b>sent</b>", ["11-27", "11-28"], [("sms<", [3, 0]), ("email", [1, 2])]))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<b>" not in svg and "&lt;b&gt;sent&lt;/b&gt;" in svg and "sms&lt;" in svg
    assert "style" not in svg and "<script" not in svg
    assert svg.count('class="bar s0"') == 3 and svg.count('class="bar s1"') == 3  # 2 bars + 1 legend swatch each
    assert 'height="0"' in svg  # a zero value draws an empty bar, not a missing one
    with pytest.raises(ValueError, match="series 'x' has 1 values for 2 labels"):
        charts.bar_chart("t", ["a", "b"], [("x", [1])])


def test_meter_handles_an_empty_denominator() -> None:
    assert 'width="0"' in str(charts.meter("rate", 0, 0)) and "0 of 0" in str(charts.meter("rate", 0, 0))
    assert 'width="120"' in str(charts.meter("rate", 1, 2, width=240)) and "(50%)" in str(charts.meter("r", 1, 2))


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01"}, "from"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-11-28", "to": "2026-11-01"}, "to"),
    ({"outcome": "promise' OR '1'='1"}, "outcome"),
    ({"outcome": "unheard_of"}, "outcome"),
    ({"intent": "promise_to_pay; DROP TABLE call_sessions"}, "intent"),
    ({"flagged": "maybe"}, "flagged"),
    ({"reviewed": "1"}, "reviewed"),
    ({"low": "yes"}, "low"),
    ({"locale": "en-US' --"}, "locale"),
    ({"page": "0"}, "page"),
    ({"page": "-1"}, "page"),
    ({"page": "1e9"}, "page"),
    ({"locale": "x" * 300}, "locale"),
])
def test_call_filters_refuse_bad_values_naming_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_call_filters(params)
    assert caught.value.field == field
    assert all(v not in str(caught.value) for v in params.values() if len(v) > 3)  # the value is never echoed


def test_call_filters_parse_good_values_and_round_trip_to_a_query() -> None:
    f = parse_call_filters({"from": "2026-11-01", "to": "2026-11-28", "outcome": "promise", "intent": "dispute",
                            "flagged": "yes", "reviewed": "no", "low": "1", "locale": "zh-CN", "page": "3",
                            "ignored": "x"})
    assert (f.date_from, f.date_to, f.outcome, f.intent, f.flagged, f.reviewed, f.low_confidence, f.locale,
            f.page) == (date(2026, 11, 1), date(2026, 11, 28), "promise", "dispute", True, False, True, "zh-CN", 3)
    assert parse_call_filters(dict(httpx.QueryParams(f.query(2)))) == parse_call_filters(
        {**f.form_values(), "page": "2"})
    assert parse_call_filters({}) == parse_call_filters({"from": "", "outcome": ""})


def test_task_and_audit_filters() -> None:
    assert parse_task_filters({"kind": "dispute", "assigned": "me"}).kind == "dispute"
    assert parse_task_filters({}).status == "open"
    for bad in ({"kind": "x"}, {"assigned": "a b"}, {"status": "deleted"}):
        with pytest.raises(InvalidInput):
            parse_task_filters(bad)
    assert parse_audit_filters({"action": "console.", "actor": "sam", "subject": "B1"}).action == "console."
    for bad in ({"action": "reveal%"}, {"actor": "x' OR 1=1"}, {"subject": "B1;"}):
        with pytest.raises(InvalidInput):
            parse_audit_filters(bad)


def test_seed_writes_the_world(db: Database, tmp_path: Path) -> None:
    seeded = seed(db, tmp_path / "media")
    assert count(db, CallSession) == 3 and count(db, CallTurn) == 7 and count(db, Task) == 2
    assert (tmp_path / "media" / "recordings" / "1-4.wav").read_bytes()[:4] == b"RIFF"
    with db.session() as session:
        turn = session.get(CallTurn, seeded.promise_turn)
        assert turn is not None and turn.intent == "promise_to_pay" and turn.speaker == "borrower"
