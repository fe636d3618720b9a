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
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

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

from dispatch_support import AT, FakeChannel, add_borrower, add_loan, attempts, due_in, free_port
from test_web_support import PUBLIC, TOKEN, WebHarness, make_settings


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def web() -> Iterator[WebHarness]:
    harness = WebHarness().start()
    try:
        yield harness
    finally:
        harness.stop()


def _pg(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("row locks and killed connections are PostgreSQL's")


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


def test_planning_dispatch_and_webhooks_at_once_never_deadlock(db: Database, policy: Policy,
                                                                web: WebHarness) -> None:
    _pg(db)
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
