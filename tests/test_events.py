"""Events out: the outbox, signed webhooks to a real local receiver, retries, dead letters,
replay, per-borrower order and a sender killed mid-run; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from bot.clock import FixedClock, SystemClock
from bot.db import Database
from bot.db.models import OutboxEvent, WebhookDelivery
from bot.events import emit
from bot.events.delivery import DeliveryOptions, backoff, deliver_due
from bot.events.subscriptions import add_subscription, list_deliveries, replay
from bot.replies import record_opt_out

from builders import Build
from events_support import Receiver

ROOT = Path(__file__).resolve().parent.parent
FAST = DeliveryOptions(timeout=0.5, backoff_base=5.0, backoff_cap=3600.0, batch_size=20)


def real_now_clock() -> FixedClock:
    # The standardwebhooks verifier checks the timestamp against the real time (5 minutes).
    return FixedClock(SystemClock().now().replace(microsecond=0))


def subscribe(db: Database, url: str, *events: str, pii: bool = False, at=None) -> str:  # type: ignore[no-untyped-def]
    with db.session() as s:
        _view, secret = add_subscription(s, url, events or ("consent.changed",), pii=pii,
                                         at=at or SystemClock().now())
    return secret


def opt_out(db: Database, borrower_id: str, at) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        record_opt_out(s, borrower_id, "sms", f"+1212555{int(borrower_id[1:]):04d}", "sms", at)


def delivery_rows(db: Database) -> list[WebhookDelivery]:
    with db.sessions() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def count(db: Database, model) -> int:  # type: ignore[no-untyped-def]
    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- the outbox ---------------------------------------------------------------------------


def test_an_event_is_written_iff_its_transaction_commits(db: Database, build: Build) -> None:
    clock = real_now_clock()
    build.borrower("B1")
    subscribe(db, "http://127.0.0.1:9/hooks")
    with pytest.raises(RuntimeError), db.session() as s:
        assert record_opt_out(s, "B1", "sms", "+12125550001", "sms", clock.now())
        raise RuntimeError("the change fails after the event was emitted")
    assert count(db, OutboxEvent) == 0 and count(db, WebhookDelivery) == 0  # rolled back: no event

    opt_out(db, "B1", clock.now())
    assert count(db, OutboxEvent) == 1 and count(db, WebhookDelivery) == 1
    opt_out(db, "B1", clock.now())  # changes nothing: no second event
    assert count(db, OutboxEvent) == 1


def test_nothing_is_written_without_a_subscription_and_types_are_checked(db: Database, build: Build) -> None:
    clock = real_now_clock()
    build.borrower("B1")
    opt_out(db, "B1", clock.now())
    assert count(db, OutboxEvent) == 0
    subscribe(db, "http://127.0.0.1:9/hooks", "task.opened")  # another type only
    with db.session() as s:
        assert emit(s, "consent.changed", borrower_id="B1", data={}, at=clock.now()) is None
        with pytest.raises(ValueError, match="unknown event type 'payment.done'"):
            emit(s, "payment.done", borrower_id="B1", data={}, at=clock.now())
        assert emit(s, "payment.applied", borrower_id="B1", data={"payment_id": "P1"}, at=clock.now()) is None


# --- signed delivery ------------------------------------------------------------------------


def test_deliveries_are_signed_and_verify_with_standardwebhooks(db: Database, build: Build) -> None:
    clock = real_now_clock()
    build.borrower("B1")
    with Receiver() as receiver:
        masked_secret = subscribe(db, receiver.url + "?token=masked")
        pii_secret = subscribe(db, receiver.url + "?token=pii", pii=True)
        opt_out(db, "B1", clock.now())
        report = deliver_due(db, clock, FAST)
    assert report.counts["delivered"] == 2
    by_token = {r.path.rsplit("=", 1)[1]: r for r in receiver.requests}
    masked = Webhook(masked_secret).verify(by_token["masked"].body, by_token["masked"].headers)
    unmasked = Webhook(pii_secret).verify(by_token["pii"].body, by_token["pii"].headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(pii_secret).verify(by_token["masked"].body, by_token["masked"].headers)
    assert masked["type"] == "consent.changed" and masked["timestamp"].endswith("Z")
    assert masked["data"]["address"] != "+12125550001" and masked["data"]["address"].endswith("0001")
    assert unmasked["data"] == {"channel": "sms", "address": "+12125550001", "change": "opt_out", "flag": None,
                                "source": "sms"}
    headers = by_token["masked"].headers
    assert headers["webhook-id"].startswith("evt_") and headers["webhook-id"] == by_token["pii"].headers["webhook-id"]
    assert headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert headers["content-type"] == "application/json"
    assert all(d.status == "delivered" and d.tries == 1 and d.delivered_at == clock.now() for d in delivery_rows(db))
    assert deliver_due(db, clock, FAST).counts == {}  # nothing due any more


def test_retries_after_a_500_and_a_timeout_with_bounded_backoff(db: Database, build: Build,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    clock = real_now_clock()
    start = clock.now()
    build.borrower("B1")
    answers = iter([(500, 0.0), (200, 1.0), (200, 0.0)])  # a 500, then slower than the 0.5 s timeout, then ok
    with Receiver(lambda _r: next(answers)) as receiver:
        secret = subscribe(db, receiver.url + "?token=s3cr3t-query")
        opt_out(db, "B1", start)
        caplog.set_level(logging.INFO)
        first = deliver_due(db, clock, FAST, rng=random.Random(1))
        [row] = delivery_rows(db)
        assert first.counts["retry"] == 1 and row.status == "pending" and row.tries == 1
        assert row.last_status_code == 500 and row.last_error == "http 500"
        assert timedelta(seconds=2.5) <= row.next_attempt_at - start <= timedelta(seconds=5)  # base 5 s, jitter
        assert deliver_due(db, clock, FAST).counts == {}  # not before its time

        clock.set(row.next_attempt_at)
        second = deliver_due(db, clock, FAST, rng=random.Random(1))
        [row] = delivery_rows(db)
        assert second.counts["retry"] == 1 and row.tries == 2 and row.last_error.startswith("timeout")
        assert row.last_status_code is None
        assert timedelta(seconds=5) <= row.next_attempt_at - clock.now() <= timedelta(seconds=10)  # doubled

        clock.set(row.next_attempt_at)
        third = deliver_due(db, clock, FAST)
    [row] = delivery_rows(db)
    assert third.counts["delivered"] == 1 and row.status == "delivered" and row.tries == 3
    assert len(receiver.requests) == 3 and len(set(receiver.ids())) == 1  # one webhook-id for every try
    for request in receiver.requests:  # each try signed with its own timestamp
        stamp = int(request.headers["webhook-timestamp"])
        expected = Webhook(secret).sign(request.headers["webhook-id"], SystemClock().now().fromtimestamp(
            stamp, tz=start.tzinfo), request.body)
        assert request.headers["webhook-signature"] == expected
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "s3cr3t" not in logged and "127.0.0.1" not in logged and "+1212" not in logged
    assert "webhook delivery" in logged


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(3)
    for tries, low, high in ((1, 2.5, 5), (2, 5, 10), (5, 40, 80), (20, 1800, 3600)):
        for _ in range(50):
            wait = backoff(tries, base=5, cap=3600, rng=rng).total_seconds()
            assert low <= wait <= high


def test_dead_after_24_hours_listed_and_replayed(db: Database, build: Build, run_bot, db_url: str) -> None:  # type: ignore[no-untyped-def]
    clock = real_now_clock()
    start = clock.now()
    build.borrower("B1")
    status = {"code": 503}
    with Receiver(lambda _r: (status["code"], 0.0)) as receiver:
        subscribe(db, receiver.url)
        opt_out(db, "B1", start)
        tries = 0
        while True:
            report = deliver_due(db, clock, FAST)
            tries += 1
            [row] = delivery_rows(db)
            if row.status == "dead":
                break
            assert row.next_attempt_at <= start + timedelta(hours=24)  # the last try is at the end of the window
            clock.set(row.next_attempt_at)
        assert report.counts["dead"] == 1 and clock.now() == start + timedelta(hours=24)
        assert row.tries == tries == len(receiver.requests) and 25 <= tries <= 60
        stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert max(gaps) <= 3600 and gaps[0] <= 5  # grows from 5 s, never above the cap

        dead = run_bot("webhook", "deliveries", "--status", "dead", "--json", db_url=db_url)
        assert dead.exit_code == 0, dead.output
        [listed] = json.loads(dead.stdout)
        assert listed["status"] == "dead" and listed["tries"] == tries and listed["type"] == "consent.changed"
        assert deliver_due(db, clock, FAST).counts == {}  # dead is not retried

        status["code"] = 200
        replayed = run_bot("webhook", "replay", "--dead", "--at", clock.now().isoformat(), db_url=db_url)
        assert replayed.exit_code == 0 and "1 deliveries queued again" in replayed.stderr
        assert deliver_due(db, clock, FAST).counts["delivered"] == 1
    [row] = delivery_rows(db)
    assert row.status == "delivered" and row.retry_since == clock.now()
    assert len(set(receiver.ids())) == 1  # the replay has the event's webhook-id
    with db.session() as s:  # one delivery by id: sent once more
        assert replay(s, at=clock.now(), delivery_ids=[row.id]) == 1
        assert list_deliveries(s, status="pending")[0].id == row.id


def test_a_borrower_s_events_arrive_in_order(db: Database, build: Build) -> None:
    clock = real_now_clock()
    at = clock.now()
    for borrower in ("B1", "B2"):
        build.borrower(borrower)
    failed_once: set[str] = set()

    def respond(request):  # type: ignore[no-untyped-def]
        data = json.loads(request.body)["data"]
        if data.get("n") == 1 and "first" not in failed_once:
            failed_once.add("first")
            return 500, 0.0
        return 204, 0.0

    with Receiver(respond) as receiver:
        subscribe(db, receiver.url, "task.opened")
        with db.session() as s:
            for n, borrower in ((1, "B1"), (2, "B1"), (3, "B2"), (4, "B1")):
                emit(s, "task.opened", borrower_id=borrower, data={"n": n}, at=at)
        first = deliver_due(db, clock, FAST)
        sent = [json.loads(r.body)["data"]["n"] for r in receiver.requests]
        assert sent == [1, 3] and first.counts == {"retry": 1, "delivered": 1}  # 2 and 4 wait for 1
        clock.advance(timedelta(minutes=1))
        deliver_due(db, clock, FAST)
    sent = [json.loads(r.body)["data"]["n"] for r in receiver.requests]
    assert sent == [1, 3, 1, 2, 4]


# --- the CLI --------------------------------------------------------------------------------


def test_webhook_commands_add_list_remove(db: Database, run_bot, db_url: str) -> None:  # type: ignore[no-untyped-def]
    added = run_bot("webhook", "add", "https://user:pw@hooks.example.com/in?key=abc", "--event", "promise.kept",
                    "--event", "attempt.sent", db_url=db_url)
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and Webhook(secret)  # a valid Standard Webhooks secret
    assert "added webhook 1 for attempt.sent, promise.kept" in added.stderr
    listed = run_bot("webhook", "list", "--json", db_url=db_url)
    [sub] = json.loads(listed.stdout)
    assert sub["url"] == "https://hooks.example.com/in" and sub["events"] == ["attempt.sent", "promise.kept"]
    assert sub["pii"] is False and "whsec_" not in listed.output and "abc" not in listed.output
    table = run_bot("webhook", "list", db_url=db_url)
    assert "https://hooks.example.com/in" in table.stdout and "user" not in table.stdout
    bad = run_bot("webhook", "add", "ftp://x", "--event", "attempt.sent", db_url=db_url)
    assert bad.exit_code == 2 and "http:// or https://" in bad.stderr
    unknown = run_bot("webhook", "add", "https://x.example", "--event", "attempt.lost", db_url=db_url)
    assert unknown.exit_code == 2
    assert run_bot("webhook", "remove", "1", db_url=db_url).exit_code == 0
    assert run_bot("webhook", "remove", "1", db_url=db_url).exit_code == 2
    assert json.loads(run_bot("webhook", "list", "--json", db_url=db_url).stdout) == []


# --- at least once across a kill -9 -----------------------------------------------------------


def test_no_event_is_lost_when_the_sender_is_killed(db: Database, build: Build, db_url: str, tmp_path: Path) -> None:
    clock = real_now_clock()
    events = 120
    for borrower in range(1, 7):
        build.borrower(f"B{borrower}")
    with Receiver(lambda _r: (204, 0.01)) as receiver:
        subscribe(db, receiver.url, "task.opened")
        with db.session() as s:
            for n in range(events):
                emit(s, "task.opened", borrower_id=f"B{n % 6 + 1}", data={"n": n}, at=clock.now())
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_") or k.startswith("BOT_TEST_")}
        env.update(PYTHONPATH=str(ROOT), BOT_WEBHOOK_BATCH_SIZE="10")
        proc = subprocess.Popen([sys.executable, "-m", "bot", "--database-url", db_url, "webhook", "deliver"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(receiver.requests) < 15 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            if proc.stderr:
                proc.stderr.close()
        received_before = len(set(receiver.ids()))
        assert 15 <= received_before < events
        pending = [d for d in delivery_rows(db) if d.status == "pending"]
        assert pending and any(d.claimed_by for d in pending)  # a lease the dead worker held
        # Another worker, once the dead worker's lease has run out, delivers the rest (with a timeout
        # no loaded machine reaches: a late answer would be a retry on a clock that does not move).
        clock.advance(timedelta(minutes=10))
        deliver_due(db, clock, DeliveryOptions(timeout=30.0, backoff_base=5.0, backoff_cap=3600.0, batch_size=20),
                    worker="survivor")
    received = [json.loads(r.body)["data"]["n"] for r in receiver.requests]
    assert set(received) == set(range(events))  # every event at least once
    assert all(d.status == "delivered" for d in delivery_rows(db))
    for borrower in range(6):  # and each borrower's first deliveries in order
        mine = [n for n in dict.fromkeys(received) if n % 6 == borrower]
        assert mine == sorted(mine)


# --- where events come from -------------------------------------------------------------------


def outbox(db: Database) -> list[tuple[str, str | None, dict]]:
    with db.sessions() as s:
        return [tuple(r) for r in s.execute(select(OutboxEvent.type, OutboxEvent.borrower_id, OutboxEvent.data)
                                             .order_by(OutboxEvent.id))]


def subscribe_all(db: Database) -> None:
    from bot.events import EVENT_TYPES

    subscribe(db, "http://127.0.0.1:9/hooks", *EVENT_TYPES)


def test_replies_emit_reply_promise_consent_and_task_events(db: Database, build: Build) -> None:
    from datetime import date

    from bot.db.models import Installment, Loan, Payment
    from bot.channels.events import InboundText
    from bot.replies import check_promises, process_inbound_sms

    from builders import AT

    build.borrower("B1")
    build.loan("B1", "L1", [("I1", date(2026, 11, 20))])
    subscribe_all(db)

    def sms(body: str, sid: str, at=AT) -> None:  # type: ignore[no-untyped-def]
        process_inbound_sms(db, InboundText(sid, "+12125550001", "+15005550006", body, at))

    sms("I will pay on December 3", "SM1")
    sms("I will pay on December 3", "SM1")  # a retried webhook: no second event
    sms("this is not my debt", "SM2")
    sms("STOP", "SM3")
    events = outbox(db)
    assert [t for t, _, _ in events] == ["reply.received", "promise.created", "reply.received", "task.opened",
                                         "reply.received", "consent.changed"]
    assert all(b == "B1" for _, b, _ in events)
    reply, promise = events[0][2], events[1][2]
    assert reply["intent"] == "promise_to_pay" and reply["address"] == "+12125550001"
    assert reply["promise_date"] == "2026-12-03" and reply["text"]
    assert promise["promised_date"] == "2026-12-03" and promise["loan_id"] == "L1" and promise["amount_minor"] > 0
    assert events[3][2]["kind"] == "dispute" and events[5][2]["change"] == "opt_out"

    with db.session() as s:  # paid in full: the promise is kept
        s.add(Payment(id="P1", loan_id="L1", paid_at=AT + timedelta(days=1), amount_minor=10_000,
                      created_at=AT, updated_at=AT))
        s.execute(update(Installment).values(amount_paid_minor=10_000))
        check_promises(s, AT + timedelta(days=2))
    kept = outbox(db)[-1]
    assert kept[0] == "promise.kept" and kept[2]["paid_minor"] == 10_000
    assert Loan  # the loan table is the promise's


def test_status_callbacks_and_dispatch_writes_emit_attempt_events(db: Database, build: Build) -> None:
    from bot.db.models import ContactAttempt
    from bot.dispatch.attempts import AttemptStore
    from bot.dispatch.records import Failed, Sent
    from bot.dispatch.delivery import apply_status

    from dispatch_support import AT

    build.borrower("B1")
    subscribe_all(db)
    with db.session() as s:
        for n in (1, 2, 3):
            s.add(ContactAttempt(dedupe_key=f"k{n}", borrower_id="B1", channel="sms", source="planned",
                                 status="sending", address="+12125550001", claimed_by="w1" if n < 3 else "w2",
                                 claimed_until=AT + timedelta(minutes=5), created_at=AT, updated_at=AT))
    records = AttemptStore("w1", lease=timedelta(minutes=5))
    with db.session() as s:  # attempt 3 is another worker's: its result is not ours to record
        records.record(s, [Sent(1, "sms", "SM1", "queued"), Failed(2, "sms", "provider: 30006 X"),
                           Sent(3, "sms", "SM3", "queued")], AT)
    assert [(t, d["attempt_id"]) for t, _, d in outbox(db)] == [("attempt.sent", 1), ("attempt.failed", 2)]
    assert outbox(db)[1][2]["error"] == "provider: 30006 X"
    with db.session() as s:
        apply_status(s, message_sid="SM1", status="delivered", error_code=None, attempt_id=1, at=AT)
        apply_status(s, message_sid="SM1", status="delivered", error_code=None, attempt_id=1, at=AT)  # duplicate
    with pytest.raises(RuntimeError), db.session() as s:  # a callback whose transaction fails: no event
        apply_status(s, message_sid="SM1", status="read", error_code=None, attempt_id=1, at=AT)
        raise RuntimeError
    last = outbox(db)[-1]
    assert [t for t, _, _ in outbox(db)].count("attempt.delivered") == 1
    assert last[2]["provider_status"] == "delivered" and last[2]["address"] == "+12125550001"
