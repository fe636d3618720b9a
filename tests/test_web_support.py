"""Helpers shared by tests/test_replies.py and tests/test_web_*.py, and their own checks.

* ``add_account`` writes a borrower with consents, a loan and one installment (tests/builders.py);
* ``sign`` signs a webhook the way Twilio does (twilio's own
  ``RequestValidator.compute_signature``);
* ``WebHarness`` serves the bot's ASGI app with uvicorn in a thread (real HTTP)
  and posts signed webhooks to it.  One server serves a whole test module; each
  test points it at its own database, clock and settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from twilio.request_validator import RequestValidator

import builders

from bot.app import create_app
from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import AuditEvent, Consent, ContactAttempt, InboundMessage, Promise, Task
from bot.sandbox.server import ThreadedServer
from bot.sandbox.signing import sign as sandbox_sign
from bot.http.context import WebContext

T0 = datetime(2026, 10, 1, tzinfo=UTC)
PHONE = "+12125551234"
EMAIL = "jane.doe@example.com"
OUR_NUMBER = "+15005550006"
TOKEN = "test-auth-token"
PUBLIC = "https://bot.example.com"
_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032x}"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"twilio_auth_token": TOKEN, "public_base_url": PUBLIC}
    values.update(overrides)
    return load_settings(None, **values)


#: A borrower with consent on each channel, one loan ``<id>-L1`` and one installment (tests/builders.py),
#: all borrowers of these tests on the one phone and address the webhooks use by default.
add_account = functools.partial(builders.add_account, phone=PHONE, email=EMAIL, at=T0)


def counts(db: Database) -> dict[str, int]:
    """Rows per table the webhooks write to (to check that nothing was written)."""
    with db.session() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (InboundMessage, ContactAttempt, Consent, Task, Promise, AuditEvent)}


def sign(url: str, params: Mapping[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, dict(params))


def wait_for_lock_wait(db: Database, deadline: float = 10.0) -> None:
    """Poll until some other session of this database waits on a row lock (bounded, no fixed sleep)."""
    end = time.monotonic() + deadline
    with db.engine.connect() as conn:
        while time.monotonic() < end:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )).scalar()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.01)
    raise AssertionError("the second transaction never waited for the first")


class WebHarness:
    """The bot's app on a real uvicorn server, re-pointed per test."""

    def __init__(self) -> None:
        self._placeholder = Database("sqlite://")
        self.app = create_app(make_settings(), self._placeholder, FixedClock())
        self.server = ThreadedServer(self.app)
        self.client: httpx.Client | None = None

    def start(self) -> WebHarness:
        self.server.start()
        self.client = httpx.Client(base_url=self.server.base_url, trust_env=False, timeout=10)
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()
        self._placeholder.dispose()

    def use(self, settings: Settings, db: Database, clock: FixedClock) -> None:
        self.app.state.bot = WebContext(settings=settings, db=db, clock=clock)

    @property
    def settings(self) -> Settings:
        return self.app.state.bot.settings

    def configure(self, **overrides: Any) -> None:
        context = self.app.state.bot
        values = context.settings.model_dump() | overrides
        self.app.state.bot = dataclasses.replace(context, settings=Settings(**values))

    def post_signed(self, path: str, params: Mapping[str, str], *, signed_url: str | None = None,
                    token: str | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """POST ``params`` to ``path`` signed for ``signed_url`` (default: the public URL of ``path``)."""
        assert self.client is not None
        url = signed_url if signed_url is not None else self.settings.public_base_url + path
        all_headers = {"X-Twilio-Signature": sign(url, params, token or self.settings.twilio_auth_token)}
        all_headers.update(headers or {})
        return self.client.post(path, data=dict(params), headers=all_headers)

    def inbound(self, body: str, *, from_: str = PHONE, sid: str | None = None, to: str = OUR_NUMBER,
                **extra: str) -> httpx.Response:
        params = {"MessageSid": sid or new_sid(), "AccountSid": "AC" + "0" * 32, "From": from_, "To": to,
                  "Body": body, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
                  "ApiVersion": "2010-04-01", **extra}
        return self.post_signed("/twilio/sms", params)

    def status(self, sid: str, status: str, *, attempt: int | None = None, error: str | None = None
               ) -> httpx.Response:
        params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": "AC" + "0" * 32, "From": OUR_NUMBER, "To": PHONE, "ApiVersion": "2010-04-01"}
        if error:
            params["ErrorCode"] = error
        path = "/twilio/status" + (f"?attempt={attempt}" if attempt is not None else "")
        return self.post_signed(path, params)


@pytest.fixture(scope="module")
def harness() -> Iterator[WebHarness]:
    h = WebHarness().start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def web(harness: WebHarness, db: Database, clock: FixedClock) -> WebHarness:
    harness.use(make_settings(), db, clock)
    return harness


# --- the helpers' own checks ---------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://bot.example.com/twilio/sms",
    "http://127.0.0.1:8123/twilio/status?attempt=17",
    "https://bot.example.com/prefix/twilio/status?attempt=1&x=%2B1",
])
def test_sign_agrees_with_the_sandbox_signer(url: str) -> None:
    params = {"Body": "I'll pay Friday 明天", "From": "+12125551234", "MessageSid": "SM" + "a" * 32}
    assert sign(url, params) == sandbox_sign(TOKEN, url, params.items())
    assert RequestValidator(TOKEN).validate(url, params, sign(url, params))
    assert not RequestValidator(TOKEN).validate(url, params | {"Body": "x"}, sign(url, params))


def test_from_environment_builds_the_app_from_bot_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from bot.app import from_environment

    monkeypatch.setenv("BOT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.setenv("BOT_PUBLIC_BASE_URL", "https://hooks.example.net/")
    app = from_environment()
    context = app.state.bot
    try:
        assert context.settings.public_base_url == "https://hooks.example.net"
        assert [app.url_path_for(name) for name in ("healthz", "inbound_sms", "status_callback")] == [
            "/healthz", "/twilio/sms", "/twilio/status"]
        assert app.url_path_for("unsubscribe_one_click", token="t") == "/unsubscribe/t"
        assert app.openapi_url is None and app.docs_url is None
    finally:
        context.db.dispose()


@pytest.mark.parametrize("owned", [True, False])
def test_the_lifespan_disposes_only_a_database_the_app_owns(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                            owned: bool) -> None:
    """``from_environment`` builds its own database and closes it at shutdown; an app built on a
    caller's database (``bot run``, the demo, the tests) leaves it to the caller."""
    from bot.app import from_environment

    monkeypatch.setenv("BOT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    app = from_environment() if owned else create_app(make_settings(), Database(f"sqlite:///{tmp_path / 'x.db'}"))
    db = app.state.bot.db
    disposed: list[bool] = []
    monkeypatch.setattr(db, "dispose", lambda: disposed.append(True))

    async def serve() -> None:
        async with app.router.lifespan_context(app):  # what uvicorn runs at start-up and shutdown
            assert disposed == []

    asyncio.run(serve())
    assert disposed == ([True] if owned else [])
    monkeypatch.undo()
    db.dispose()
