"""The database under contention and outages (PostgreSQL), and crash reconciliation in batches.

* planning, two dispatch workers and the Twilio webhooks (SMS status, voice status,
  over real HTTP to the bot's app) run at the same moment for many rounds: no pass
  fails, no webhook is refused, and no deadlock happens at all (the writers take
  their row locks in one order, bot.db.retry);
* the database connections are killed from another connection
  (``pg_terminate_backend``) in the middle of a dispatch pass and of webhooks: the
  pass runs again and sends everything once, the webhooks are stored; a database
  that stays away makes ``bot tick`` end with one line and exit status 3, and a
  webhook answer 503;
* delivery statuses whose callbacks never came are fetched from the sandbox;
* more attempts stuck ``sending`` than a batch holds are all reconciled in one pass.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text, update

from bot.channels.base import ApprovedMessage, SendResult
from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db import retry as db_retry
from bot.db.models import CallSession, ContactAttempt
from bot.dispatch import DispatchOptions, Dispatcher, DispatchReport
from bot.dispatch.reconcile import NotFound, Stuck
from bot.policy import Policy, load_policy
from bot.sandbox import Sandbox, SandboxServer
from bot.scheduler.planner import plan

from builders import AT, add_borrower, add_loan
from dispatch_support import FakeChannel, attempts, due_in, free_port
from test_web_support import PUBLIC, TOKEN, WebHarness, harness, make_settings  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def web(harness: WebHarness) -> WebHarness:
    """The bot's app on a real uvicorn server (one per module), pointed by each test at its database."""
    return harness


class Placed(FakeChannel):
    """A fake adapter that tells the webhook thread what it sent (as the provider would call back)."""

    def __init__(self, channel: str, events: queue.Queue[tuple[str, int, str]]) -> None:
        super().__init__(channel)
        self.events = events
        self.serial = 0

    async def send(self, message: ApprovedMessage) -> SendResult:
        self.calls += 1
        self.serial += 1
        sid = ("CA" if self.channel == "voice" else "SM") + f"{message.attempt_id:016x}{self.serial:016x}"
        self.sent.append(message)
        self.events.put((self.channel, message.attempt_id, sid))
        await asyncio.sleep(0)
        return SendResult(sid, "queued", 1)


class Lookup:
    channels = frozenset({"sms", "voice"})

    async def find(self, stuck: Stuck) -> Any:
        return NotFound()


def _portfolio(db: Database, count: int) -> None:
    """SMS (D-3) and call (D+3) borrowers, planned in two rounds so that attempt ids do not
    follow the planner's borrower order (the order that used to deadlock)."""
    for n in range(1, count + 1):
        add_borrower(db, f"B{n:04d}")
    for parity in (1, 0):
        for n in range(1, count + 1):
            if n % 2 == parity:
                add_loan(db, f"B{n:04d}", f"L{n}", [(f"I{n}", due_in(3 if n % 3 else -3))])
        with db.sessions() as session:
            plan(session, AT, policy=load_policy())


def _reset(db: Database) -> None:
    """Everything back to planned, as if nothing had been sent (the next round sends it all again)."""
    with db.session() as session:
        session.execute(update(ContactAttempt).values(
            status="planned", next_attempt_at=AT, provider_id=None, provider_status=None, outcome=None,
            claimed_by=None, claimed_until=None, occurred_at=None, sent_at=None, tries=0, last_error=None))
        session.execute(update(CallSession).values(call_sid=None, status="queued", ended_at=None, outcome=None,
                                                   answered_by=None, state=None))


def test_planning_dispatch_and_webhooks_at_once_never_deadlock(pg_db: Database, policy: Policy,
                                                                web: WebHarness) -> None:
    db = pg_db
    clock = FixedClock(AT)
    web.use(make_settings(), db, clock)
    settings = load_settings(twilio_from_numbers=["+15005550006"], rate_limits_enabled=False,
                             public_base_url=PUBLIC, twilio_auth_token=TOKEN)
    _portfolio(db, 240)
    total = len(attempts(db))
    assert total == 240
    before = Counter(db_retry.RETRIES)
    failures: list[str] = []
    refused: Counter[int] = Counter()
    rounds = 8
    for _ in range(rounds):
        _reset(db)
        events: queue.Queue[tuple[str, int, str]] = queue.Queue()
        done = threading.Event()
        channels = {"sms": Placed("sms", events), "voice": Placed("voice", events)}
        reports: list[DispatchReport] = []

        def dispatch(worker: str) -> None:
            try:
                for _ in range(50):
                    options = DispatchOptions(worker_id=worker, batch_size=25, rate_limits=False)
                    report = asyncio.run(Dispatcher(db, settings, channels=channels, policy=policy, clock=clock,
                                                    options=options, lookup=Lookup(),
                                                    rng=random.Random(1)).run_pass())
                    reports.append(report)
                    if report.claimed == 0:
                        return
            except Exception as exc:  # a failed pass
                failures.append(f"dispatch {worker}: {type(exc).__name__}: {str(exc)[:200]}")

        def planning() -> None:
            try:
                while not done.is_set():
                    with db.sessions() as session:
                        plan(session, AT, policy=policy, batch_size=30)
            except Exception as exc:
                failures.append(f"planner: {type(exc).__name__}: {str(exc)[:200]}")

        def webhooks() -> None:
            while not (done.is_set() and events.empty()):
                try:
                    channel, attempt_id, sid = events.get(timeout=0.05)
                except queue.Empty:
                    continue
                if channel == "voice":
                    params = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "CallStatus": "ringing",
                              "From": "+15005550006", "To": "+12125550000", "ApiVersion": "2010-04-01"}
                    response = web.post_signed(f"/twilio/voice/status?attempt={attempt_id}", params)
                else:
                    response = web.status(sid, "sent", attempt=attempt_id)
                if response.status_code >= 300:
                    refused[response.status_code] += 1

        threads = [threading.Thread(target=dispatch, args=(f"w{n}",)) for n in (1, 2)]
        helpers = [threading.Thread(target=planning), threading.Thread(target=webhooks)]
        for t in threads + helpers:
            t.start()
        for t in threads:
            t.join()
        done.set()
        for t in helpers:
            t.join()
        rows = attempts(db)
        assert Counter(r.status for r in rows) == {"sent": total}, failures
        assert sum(r.total("sent") for r in reports) == total
    retried = Counter(db_retry.RETRIES) - before
    assert failures == [] and refused == Counter()
    assert retried["deadlock"] == 0 and retried["serialization"] == 0, retried
    with db.sessions() as session:  # every call's session got its CallSid (from the dispatcher or the webhook)
        assert session.scalar(select(text("count(*)")).select_from(CallSession).where(
            CallSession.call_sid.is_(None))) == 0


# --- outages ------------------------------------------------------------------------------------


def _own_database(db_url: str, name: str) -> Database:
    """A Database whose connections carry an application name of their own, so the test kills
    only them (other test sessions share the PostgreSQL server)."""
    return Database(db_url, connect_args={"application_name": name})


def _kill(db_url: str, name: str) -> int:
    """Terminate every backend of connections named ``name``, from another connection."""
    import psycopg

    plain = db_url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]
    with psycopg.connect(plain, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return len(rows)


def _closed_port_url() -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"


class Killer(FakeChannel):
    """Sends like FakeChannel.  From its ``at``-th send on, the next statement the dispatcher
    runs finds its connection killed (terminated from another connection just before)."""

    def __init__(self, db: Database, db_url: str, name: str, at: int) -> None:
        super().__init__("sms")
        self.db_url, self.app_name, self.at, self.killed = db_url, name, at, 0
        event.listen(db.engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.calls >= self.at and not self.killed and statement.lstrip().upper().startswith("UPDATE"):
            self.killed = _kill(self.db_url, self.app_name)


class SentLookup:
    """Finds at the "provider" what the Killer adapter really sent."""

    channels = frozenset({"sms"})

    def __init__(self, adapter: FakeChannel) -> None:
        self.adapter = adapter

    async def find(self, stuck: Stuck) -> Any:
        from bot.dispatch.reconcile import Found

        sent = [m for m in self.adapter.sent if m.attempt_id == stuck.attempt_id]
        return Found(f"SM{stuck.attempt_id:032d}") if sent else NotFound()


def test_a_dispatch_pass_that_loses_the_database_runs_again_and_sends_each_message_once(
        pg_db_url: str, pg_db: Database, policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    db_url, db = pg_db_url, pg_db
    for n in range(1, 41):
        add_borrower(db, f"B{n}")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due_in(3))])
    with db.sessions() as session:
        plan(session, AT, policy=policy)
    name = f"bot-outage-{random.randrange(10**9)}"
    own = _own_database(db_url, name)
    clock = FixedClock(AT)
    adapter = Killer(own, db_url, name, at=15)
    settings = load_settings(twilio_from_numbers=["+15005550006"], rate_limits_enabled=False,
                             database_retry_pause_seconds=0)
    from bot.dispatch import dispatch_retrying

    def run() -> DispatchReport:
        return dispatch_retrying(own, settings, clock=clock, policy=policy, channels={"sms": adapter},
                                 options=DispatchOptions(worker_id="w1", batch_size=10, rate_limits=False))

    monkeypatch.setattr(Dispatcher, "__init__", _with_lookup(Dispatcher.__init__, SentLookup(adapter)))
    try:
        before = db_retry.RETRIES["disconnect"]
        report = run()  # the connections die at the 15th send; the pass runs again and finishes
        assert adapter.killed >= 1 and db_retry.RETRIES["disconnect"] > before
        assert report.total("sent") >= 1
        clock.set(AT + timedelta(minutes=6))  # the lease of what was in doubt ends: reconciled, not resent
        run()
    finally:
        own.dispose()
    sends = Counter(m.attempt_id for m in adapter.sent)
    rows = attempts(db)
    assert {r.status for r in rows} == {"sent"} and len(rows) == 40
    assert set(sends) == {r.id for r in rows} and max(sends.values()) == 1  # each exactly once
    assert all(r.claimed_by is None for r in rows)


def _with_lookup(init: Any, lookup: Any) -> Any:
    def patched(self: Dispatcher, *args: Any, **kwargs: Any) -> None:
        kwargs["lookup"] = lookup
        init(self, *args, **kwargs)

    return patched


def test_bot_tick_without_its_database_ends_with_one_line_and_status_3(run_bot: Any) -> None:
    url = _closed_port_url()
    result = run_bot("tick", "--at", AT.isoformat(), "--no-rate-limit", db_url=url,
                     env={"BOT_DATABASE_RETRY_PAUSE_SECONDS": "0", "BOT_DATABASE_RETRIES": "2"})
    assert result.exit_code == 3, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: planning pass: the database is unavailable after 2 tries")
    assert "Traceback" not in result.output and "SELECT" not in result.output and len(result.output) < 300


def test_webhooks_survive_killed_connections_and_answer_503_while_the_database_is_away(
        pg_db_url: str, pg_db: Database, web: WebHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    db_url, db = pg_db_url, pg_db
    monkeypatch.setattr(db_retry, "OUTAGE_PAUSE", 0.0)
    add_borrower(db, "B1")
    with db.session() as session:
        attempt = ContactAttempt(dedupe_key="k1", borrower_id="B1", channel="sms", source="planner", status="sent",
                                 step="d-3", template="reminder", address="+12125550001", provider_id="SM" + "1" * 32,
                                 provider_status="queued", sent_at=AT, created_at=AT, updated_at=AT, tries=1)
        session.add(attempt)
        session.flush()
        attempt_id = attempt.id
    name = f"bot-web-{random.randrange(10**9)}"
    own = _own_database(db_url, name)
    clock = FixedClock(AT)
    try:
        web.use(make_settings(), own, clock)
        assert web.status("SM" + "1" * 32, "sent", attempt=attempt_id).status_code == 204  # the pool has a connection
        assert _kill(db_url, name) >= 1  # the pooled connection is dead now
        assert web.status("SM" + "1" * 32, "delivered", attempt=attempt_id).status_code == 204
        with db.sessions() as session:
            assert session.get(ContactAttempt, attempt_id).provider_status == "delivered"
    finally:
        own.dispose()
    away = Database(_closed_port_url())
    try:
        web.use(make_settings(), away, clock)
        response = web.status("SM" + "1" * 32, "read", attempt=attempt_id)
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        voice = web.post_signed(f"/twilio/voice/status?attempt={attempt_id}",
                                {"CallSid": "CA" + "2" * 32, "CallStatus": "completed"})
        assert voice.status_code == 503
    finally:
        away.dispose()


# --- lost status callbacks ------------------------------------------------------------------------


def test_a_status_whose_callback_never_came_is_fetched_from_the_provider(db: Database, policy: Policy) -> None:
    from bot.channels.sms import SmsChannel
    from bot.dispatch import dispatch_once

    sandbox = SandboxServer(Sandbox(clock=FixedClock(AT))).start()
    try:
        # Status callbacks go to a port nobody listens on: every one of them is lost.
        settings = load_settings(twilio_api_base_url=sandbox.base_url, rate_limits_enabled=False,
                                 public_base_url=f"http://127.0.0.1:{free_port()}", status_check_after_minutes=30)
        for n in (1, 2):
            add_borrower(db, f"B{n}")
            add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due_in(3))])
        with db.sessions() as session:
            plan(session, AT, policy=policy)
        clock = FixedClock(AT)

        async def pass_() -> DispatchReport:
            channel = SmsChannel(settings)
            try:
                return await dispatch_once(db, settings, clock=clock, policy=policy, channels={"sms": channel})
            finally:
                await channel.aclose()

        def run() -> DispatchReport:
            return asyncio.run(pass_())

        assert run().total("sent") == 2
        sandbox.sandbox.advance(60)  # the sandbox delivers them; its callbacks find nobody
        assert {m.status for m in sandbox.sandbox.messages(direction="outbound-api")} == {"delivered"}
        assert {r.provider_status for r in attempts(db)} == {"queued"}
        clock.set(AT + timedelta(minutes=29))
        assert run().total("status_fetched") == 0  # not yet: the callback may still come
        clock.set(AT + timedelta(minutes=31))
        report = run()
        assert report.total("status_fetched") == 2
        assert {(r.provider_status, r.outcome) for r in attempts(db)} == {("delivered", "delivered")}
        clock.set(AT + timedelta(minutes=90))
        assert run().total("status_fetched") == 0  # final: never asked again
    finally:
        sandbox.stop()


# --- crash reconciliation in batches --------------------------------------------------------------


def test_more_stuck_attempts_than_a_batch_are_all_reconciled_in_one_pass(db: Database, policy: Policy) -> None:
    for n in range(1, 12):
        add_borrower(db, f"B{n}")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due_in(3))])
    with db.sessions() as session:
        plan(session, AT, policy=policy)
    with db.session() as session:  # a dead worker left them all sending
        session.execute(update(ContactAttempt).values(
            status="sending", occurred_at=AT, claimed_by="dead", claimed_until=AT + timedelta(minutes=5),
            body_sha256="ab" * 32, sender="+15005550006"))
    clock = FixedClock(AT + timedelta(minutes=6))
    sms = FakeChannel("sms")
    settings = load_settings(twilio_from_numbers=["+15005550006"], rate_limits_enabled=False)
    dispatcher = Dispatcher(db, settings, channels={"sms": sms}, policy=policy, clock=clock, lookup=Lookup(),
                            options=DispatchOptions(worker_id="w1", batch_size=4, rate_limits=False))
    report = asyncio.run(dispatcher.run_pass())
    assert report.total("requeued") == 11  # three batches of reconciliation in this one pass
    assert report.total("sent") == 11 and len(sms.sent) == 11
    assert {r.status for r in attempts(db)} == {"sent"}
