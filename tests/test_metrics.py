"""``/metrics`` and ``/readyz`` over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.clock import FixedClock
from bot.db import Database
from bot.db.models import ContactAttempt
from bot.metrics import HEARTBEAT, Heartbeat
from test_web_support import EMAIL, PHONE, T0, WebHarness, add_account, harness, web  # noqa: F401 - fixtures

TOKEN = "a-metrics-token-for-tests"


@pytest.fixture
def populated(db: Database) -> None:
    with db.session() as s:
        add_account(s, "B1")
        s.flush()
        for n, (channel, status) in enumerate([("sms", "planned"), ("sms", "planned"), ("email", "sent"),
                                               ("voice", "deferred")]):
            s.add(ContactAttempt(dedupe_key=f"k{n}", borrower_id="B1", loan_id="B1-L1", installment_id="B1-L1-I1",
                                 channel=channel, source="planner", status=status, address=PHONE,
                                 next_attempt_at=T0 - timedelta(minutes=n) if status != "sent" else None,
                                 created_at=T0, updated_at=T0))


def scrape(web: WebHarness, token: str | None = TOKEN) -> str:
    assert web.client is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = web.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_are_off_by_default_and_need_the_token(web: WebHarness, db: Database) -> None:
    assert web.client is not None
    assert web.client.get("/metrics").status_code == 404
    web.configure(metrics_enabled=True, metrics_token=TOKEN)
    assert web.client.get("/metrics").status_code == 401
    assert web.client.get("/metrics", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    assert "bot_contact_attempts" in scrape(web)


def test_database_figures_and_no_personal_data(web: WebHarness, db: Database, populated: None,
                                               clock: FixedClock) -> None:
    web.configure(metrics_enabled=True, metrics_token=TOKEN)
    clock.set(T0)
    text = scrape(web)
    assert 'bot_contact_attempts{channel="sms",status="planned"} 2.0' in text
    assert 'bot_contact_attempts{channel="email",status="sent"} 1.0' in text
    assert 'bot_send_queue{channel="sms"} 2.0' in text and 'bot_send_queue{channel="voice"} 1.0' in text
    assert "bot_send_queue_oldest_seconds 180.0" in text  # the voice attempt was due 3 minutes ago
    for secret in (PHONE, PHONE[2:], EMAIL, "Jane", "Doe", TOKEN):
        assert secret not in text


def test_webhook_latency_is_labelled_by_route_template(web: WebHarness, db: Database) -> None:
    web.configure(metrics_enabled=True, metrics_token=TOKEN)
    assert web.client is not None
    assert web.client.post("/twilio/status?attempt=12345", data={"MessageSid": "SMx"}).status_code == 403
    text = scrape(web)
    assert 'bot_webhook_seconds_count{route="/twilio/status",status="403"}' in text
    assert "attempt=12345" not in text and "SMx" not in text


@pytest.fixture
def heartbeat() -> Iterator[Heartbeat]:
    saved = (HEARTBEAT.interval, HEARTBEAT.last, HEARTBEAT.started)
    try:
        yield HEARTBEAT
    finally:
        HEARTBEAT.interval, HEARTBEAT.last, HEARTBEAT.started = saved


def test_readyz_checks_database_schema_and_scheduler(web: WebHarness, db: Database, clock: FixedClock,
                                                     heartbeat: Heartbeat) -> None:
    assert web.client is not None
    heartbeat.interval = heartbeat.started = heartbeat.last = None
    ready = web.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "database": "ok", "schema": "ok", "scheduler": "not in this process"}
    heartbeat.expect(300, clock.now())
    heartbeat.beat(clock.now())
    assert web.client.get("/readyz").status_code == 200
    clock.set(clock.now() + timedelta(seconds=3 * 300 + 61))  # three intervals and a minute without a pass
    stale = web.client.get("/readyz")
    assert stale.status_code == 503 and stale.json()["scheduler"] == "stale"
    heartbeat.beat(clock.now())
    assert web.client.get("/readyz").status_code == 200
