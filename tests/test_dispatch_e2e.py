"""The dispatcher end to end: real HTTP to the in-process Twilio sandbox (the official
twilio client through bot.channels.sms) and real SMTP to aiosmtpd (aiosmtplib through
bot.channels.email), on SQLite and PostgreSQL.

* ``bot tick``: plan -> dispatch -> the messages at the sandbox and the SMTP server;
* the send-time re-check (an opt-out after planning, quiet hours) and rate limits;
* the CRASH test: the dispatcher runs in a subprocess that dies (``os._exit``) right
  after the provider accepted a message and before it is recorded, is restarted, and
  every planned message has reached the sandbox / SMTP server exactly once;
* the FAULT test: 429 bursts and 5xx from the sandbox, an SMTP server that refuses
  connections at first, an invalid number (21211) and a refused mailbox (550):
  everything else is eventually sent once, the permanent failures are recorded and
  never retried; time is advanced by hand between passes, nothing sleeps;
* two workers on one database never send the same attempt twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import ContactAttempt, RateBucket
from bot.dispatch import DispatchOptions, DispatchReport, Dispatcher, build_channels, dispatch_once
from bot.policy import load_policy
from bot.ratelimit import Limit
from bot.replies import record_opt_out
from bot.sandbox import Sandbox, SandboxServer
from bot.scheduler.planner import plan

from builders import AT, add_borrower, add_loan
from dispatch_support import SmtpSink, add_reply, attempts, consent, due_in, free_port

NIGHT = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)  # 21:30 Saturday in New York
NEXT_MORNING = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)  # 08:00 Sunday in New York


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(Sandbox(clock=FixedClock(AT))) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def env_for(sandbox: SandboxServer, smtp_port: int, **extra: str) -> dict[str, str]:
    return {"BOT_TWILIO_API_BASE_URL": sandbox.base_url, "BOT_SMTP_PORT": str(smtp_port), **extra}


def settings_for(db: Database, sandbox: SandboxServer, smtp_port: int, **extra: Any) -> Settings:
    return load_settings(database_url=db.url, twilio_api_base_url=sandbox.base_url, smtp_port=smtp_port,
                         **{"rate_limits_enabled": False, **extra})


def sms_borrowers(db: Database, count: int, start: int = 1, **kwargs: Any) -> list[str]:
    """Borrowers with an SMS due today (D-3); their phone numbers."""
    phones = []
    for n in range(start, start + count):
        add_borrower(db, f"B{n}", **kwargs)
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due_in(3))])
        phones.append(f"+1212555{n:04d}")
    return phones


def email_borrowers(db: Database, count: int, start: int = 500) -> list[str]:
    """Borrowers with an email due today (D0); their addresses."""
    addresses = []
    for n in range(start, start + count):
        add_borrower(db, f"B{n}")
        add_loan(db, f"B{n}", f"L{n}", [(f"I{n}", due_in(0))])
        addresses.append(f"borrower{n}@example.com")
    return addresses


def sent_counts(server: SandboxServer, phones: list[str]) -> Counter[str]:
    return Counter({p: len([m for m in server.sandbox.messages_to(p) if m.direction == "outbound-api"])
                    for p in phones})


# --- bot tick --------------------------------------------------------------------------------


def test_tick_plans_and_sends_through_the_sandbox_and_smtp(db_url: str, db: Database, sandbox: SandboxServer,
                                                           smtp: SmtpSink, run_bot: Any) -> None:
    [phone_en] = sms_borrowers(db, 1)
    add_borrower(db, "B2", name="张伟", locale="zh-CN")
    add_loan(db, "B2", "L2", [("I2", due_in(3))], amount=123_456, currency="CNY")
    [address] = email_borrowers(db, 1)

    result = run_bot("-vv", "tick", "--at", AT.isoformat(), "--no-rate-limit", db_url=db_url,
                     env=env_for(sandbox, smtp.port))

    assert result.exit_code == 0, result.output
    [en] = sandbox.sandbox.messages_to(phone_en)
    [zh] = sandbox.sandbox.messages_to("+12125550002")
    assert en.from_ == "+15005550006" and "Jane" in en.body and "$100.00" in en.body
    assert en.body.endswith("Reply STOP to opt out.")
    assert "张伟" in zh.body and "¥1,234.56" in zh.body and "退订" in zh.body
    rows = {a.address: a for a in attempts(db)}
    assert rows[phone_en].provider_id == en.sid and rows[phone_en].status == "sent"
    assert en.status_callback == f"http://127.0.0.1:8000/twilio/status?attempt={rows[phone_en].id}"
    [mail] = smtp.messages
    assert mail["To"] == address and "due today" in mail["Subject"]
    assert mail["Message-ID"] == f"<{rows[address].provider_id}>"
    assert mail["List-Unsubscribe-Post"] is None  # an http:// public URL: no RFC 8058 one-click
    unsubscribe = mail["List-Unsubscribe"].split(",")[0].strip("<> ")
    text, html = (part.get_content() for part in mail.iter_parts())
    assert unsubscribe in text and unsubscribe in html
    assert {r.status for r in rows.values()} == {"sent"}
    assert "sent" in result.stdout and "sms" in result.stdout and "email" in result.stdout
    for secret in ("+1212555", "2125550001", "borrower500@example.com", "Jane", "张伟"):
        assert secret not in result.output  # -vv: the logs too


def test_tick_json_counts_and_rate_limits_delay_without_dropping(db_url: str, db: Database, sandbox: SandboxServer,
                                                                smtp: SmtpSink, run_bot: Any, tmp_path: Path) -> None:
    phones = sms_borrowers(db, 3)
    prompts = tmp_path / "media" / "prompts"  # tick also expires the prompt cache (as bot run does daily)
    prompts.mkdir(parents=True)
    for name, age in (("old.wav", timedelta(days=8)), ("recent.wav", timedelta(days=1))):
        (prompts / name).write_bytes(b"RIFF")
        os.utime(prompts / name, ((AT - age).timestamp(),) * 2)
    env = {**env_for(sandbox, smtp.port), "BOT_SMS_RATE_PER_NUMBER": "2",  # one sender: a 2-segment reminder a second
           "BOT_MEDIA_DIR": str(tmp_path / "media")}

    first = run_bot("tick", "--at", AT.isoformat(), "--json", db_url=db_url, env=env)

    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["plan"]["by_status"] == {"planned": 3}
    assert data["dispatch"]["by_channel"] == {"sms": {"sent": 1, "rate_limited": 2}}
    assert sum(sent_counts(sandbox, phones).values()) == 1
    assert data["prompts_pruned"] == 1 and [p.name for p in prompts.iterdir()] == ["recent.wav"]
    for second in (1, 2):
        later = run_bot("tick", "--no-plan", "--json", "--at", (AT + timedelta(seconds=second)).isoformat(),
                        db_url=db_url, env=env)
        assert json.loads(later.stdout)["dispatch"]["totals"] == {"sent": 1}
    assert sent_counts(sandbox, phones) == Counter({p: 1 for p in phones})


def test_tick_at_a_simulated_instant_leaves_the_live_rate_buckets_alone(
        db_url: str, db: Database, sandbox: SandboxServer, smtp: SmtpSink, run_bot: Any) -> None:
    """A rehearsal a month ahead (``bot tick --at``) with rate limits on must not hold the live
    service: its buckets are its own, so a live pass at the real (here fixed) clock sends at once,
    the STOP confirmation included."""
    later = AT + timedelta(days=30)
    add_borrower(db, "B1")
    add_loan(db, "B1", "L1", [("I1", due_in(3, later.date()))])  # due for a reminder a month ahead
    rehearsal = run_bot("tick", "--at", later.isoformat(), "--json", db_url=db_url, env=env_for(sandbox, smtp.port))
    assert rehearsal.exit_code == 0, rehearsal.output
    assert json.loads(rehearsal.stdout)["dispatch"]["by_channel"] == {"sms": {"sent": 1}}
    with db.sessions() as s:
        assert s.scalars(select(RateBucket)).all() == []  # nothing stamped at the future instant

    add_borrower(db, "B2")
    add_loan(db, "B2", "L2", [("I2", due_in(3))])
    add_borrower(db, "B3")
    add_loan(db, "B3", "L3", [("I3", due_in(10))])
    stop = add_reply(db, "B3", "opt_out")
    settings = settings_for(db, sandbox, smtp.port, rate_limits_enabled=True, sms_rate_per_account=100.0,
                            sms_rate_per_number=10.0)
    with db.sessions() as s:
        plan(s, AT, policy=load_policy(), commit=True)
    report = asyncio.run(dispatch_once(db, settings, clock=FixedClock(AT), channels=None,
                                       options=DispatchOptions.from_settings(settings)))
    assert report.by_channel() == {"sms": {"sent": 2}}
    assert [a.status for a in attempts(db) if a.borrower_id != "B1"] == ["sent", "sent"]
    assert any(a.id == stop and a.status == "sent" for a in attempts(db))
    with db.sessions() as s:  # the live pass uses (and stamps) the shared buckets at the live instant
        assert {b.updated_at for b in s.scalars(select(RateBucket))} == {AT}


def most_segments_in_a_second(messages: list[Any]) -> dict[str, int]:
    """Per sender: the most segments the sandbox created within any one second (sliding, by its own instants)."""
    peaks: dict[str, int] = {}
    for sender in {m.from_ for m in messages}:
        sent = sorted((m.date_created, m.num_segments) for m in messages if m.from_ == sender)
        peaks[sender] = max(sum(n for at, n in sent if start <= at < start + timedelta(seconds=1))
                            for start, _ in sent)
    return peaks


def test_grants_hold_at_the_provider_when_a_worker_sends_late(db: Database) -> None:
    """Three workers share one sender's bucket (10 segments/s: at most 10 + 10 = 20 segments in
    any one second at the provider).  Worker A takes tokens at 0 s but its lanes get to the
    batch only at 1.0 s (a loaded machine); B takes tokens at 1.0 s and sends at once, C at
    1.5 s.  Sent late, A's grants would reach the provider together with B's and C's (24
    segments within half a second); they are planned again instead and sent later, once."""
    clock = FixedClock(AT)
    phones = sms_borrowers(db, 12)
    with db.sessions() as s:
        plan(s, AT, policy=load_policy())
    rate = 10.0
    reports: dict[str, DispatchReport] = {}
    with SandboxServer(Sandbox(clock=clock)) as server:
        settings = settings_for(db, server, free_port(), rate_limits_enabled=True, sms_rate_per_number=rate)

        async def worker(name: str, late_by: float = 0.0, meanwhile: Any = None, batch: int = 500) -> DispatchReport:
            channels = build_channels(settings)
            dispatcher = Dispatcher(db, settings, channels=channels, policy=load_policy(), clock=clock,
                                    options=DispatchOptions.from_settings(settings, worker_id=name, batch_size=batch))
            lanes = dispatcher._send

            async def late_lanes(ready: Any, report: DispatchReport, *rest: Any) -> None:  # the first batch's
                dispatcher._send = lanes  # type: ignore[method-assign]
                clock.advance(timedelta(seconds=late_by))
                await meanwhile()
                await lanes(ready, report, *rest)

            if late_by:
                dispatcher._send = late_lanes  # type: ignore[method-assign]
            try:
                reports[name] = report = await dispatcher.run_pass()
                return report
            finally:
                for channel in channels.values():
                    await channel.aclose()

        asyncio.run(worker("A", late_by=1.0, meanwhile=lambda: worker("B"), batch=5))  # B: the other 7
        clock.advance(timedelta(seconds=0.5))
        asyncio.run(worker("C"))
        for n in range(40):  # on time from here, a pass every half second until everything is sent
            if all(a.status == "sent" for a in attempts(db)):
                break
            clock.advance(timedelta(seconds=0.5))
            asyncio.run(worker(f"W{n}"))
        messages = server.sandbox.messages(direction="outbound-api")

    allowed = Limit.per_second("n", rate).burst + rate * 1  # a full bucket and one second of refill
    assert most_segments_in_a_second(messages) == {"+15005550006": 8}  # at 1.0 s B's two, at 1.5 s C's two
    assert max(most_segments_in_a_second(messages).values()) <= allowed
    assert reports["A"].total("late") == 2 and reports["A"].total("sent") == 0  # not sent at the late instant
    assert reports["B"].total("sent") == 2 and reports["C"].total("sent") == 2
    assert min(m.date_created for m in messages) == AT + timedelta(seconds=1)  # B's: A's two were sent later
    assert sent_counts(server, phones) == Counter({p: 1 for p in phones})  # nothing lost, nothing twice
    assert all(a.status == "sent" for a in attempts(db))


def test_send_time_check_blocks_an_opt_out_and_defers_at_night(db_url: str, db: Database, sandbox: SandboxServer,
                                                                smtp: SmtpSink, run_bot: Any) -> None:
    phones = sms_borrowers(db, 2)
    env = env_for(sandbox, smtp.port)
    assert run_bot("plan", "--at", AT.isoformat(), db_url=db_url).exit_code == 0  # planned at 10:00
    with db.session() as s:  # then B1 texts STOP
        record_opt_out(s, "B1", "sms", phones[0], "sms", AT + timedelta(hours=1))

    night = run_bot("tick", "--no-plan", "--json", "--no-rate-limit", "--at", NIGHT.isoformat(), db_url=db_url,
                    env=env)
    assert json.loads(night.stdout)["dispatch"]["by_channel"] == {"sms": {"blocked": 1, "deferred": 1}}
    assert sum(sent_counts(sandbox, phones).values()) == 0  # nothing at night

    morning = run_bot("tick", "--no-plan", "--json", "--no-rate-limit", "--at", NEXT_MORNING.isoformat(),
                      db_url=db_url, env=env)
    assert json.loads(morning.stdout)["dispatch"]["by_channel"] == {"sms": {"sent": 1}}
    assert sent_counts(sandbox, phones) == Counter({phones[0]: 0, phones[1]: 1})
    blocked = next(a for a in attempts(db) if a.address == phones[0])
    assert blocked.status == "blocked" and "opted_out" in blocked.decision["reasons"]


# --- the crash test ----------------------------------------------------------------------------

CRASHING_DISPATCHER = textwrap.dedent('''
    """One dispatch pass in its own process; with CRASH_AFTER_EMAILS=k it dies mid-batch.

    The lane of the k-th email the SMTP server accepted stops right there (accepted,
    never recorded); the process then dies (os._exit(1)) in the recording step of the
    next SMS results: those SMS are at the sandbox but not in the database, other SMS
    were not sent yet, earlier ones are recorded.  A watchdog ends a run that never
    gets there (exit status 3) instead of hanging.
    """
    import asyncio, json, os, sys
    from datetime import datetime

    from bot.clock import FixedClock
    from bot.config import load_settings
    from bot.db import Database
    from bot.dispatch import DispatchOptions, dispatch_once
    from bot.dispatch import runner
    from bot.dispatch.records import Sent
    from bot.policy import load_policy

    crash_after = int(os.environ.get("CRASH_AFTER_EMAILS") or 0)
    state = {"emails": 0, "held": False}
    send_one, apply = runner.Dispatcher._send_one, runner.Dispatcher._apply

    async def holding_send_one(self, adapter, item):
        result = await send_one(self, adapter, item)
        if item.channel == "email" and isinstance(result, Sent):
            state["emails"] += 1
            if state["emails"] == crash_after:
                state["held"] = True
                asyncio.get_running_loop().call_later(20, os._exit, 3)
                await asyncio.Event().wait()  # accepted by the SMTP server, never recorded
        return result

    def dying_apply(self, writes, report):
        if state["held"] and any(isinstance(w.record, Sent) and w.record.channel == "sms" for w in writes):
            sys.stdout.flush()
            os._exit(1)
        return apply(self, writes, report)

    if crash_after:
        runner.Dispatcher._send_one, runner.Dispatcher._apply = holding_send_one, dying_apply
    settings = load_settings()
    db = Database(settings.database_url)
    options = DispatchOptions.from_settings(settings, worker_id=os.environ["WORKER"],
                                            channel_concurrency={"email": 1})
    report = asyncio.run(dispatch_once(db, settings, clock=FixedClock(datetime.fromisoformat(os.environ["AT"])),
                                       policy=load_policy(), options=options))
    print(json.dumps(report.to_json()))
''')


def run_dispatcher(script: Path, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BOT_") or k.startswith("BOT_TEST_")}
    full.update(env)
    full.update(extra)
    return subprocess.run([sys.executable, str(script)], env=full, capture_output=True, text=True, timeout=120,
                          cwd=script.parent)


def test_crash_between_send_and_record_never_sends_twice(db_url: str, db: Database, sandbox: SandboxServer,
                                                          smtp: SmtpSink, tmp_path: Path) -> None:
    phones = sms_borrowers(db, 60)
    addresses = email_borrowers(db, 8)
    with db.sessions() as s:
        plan(s, AT, policy=load_policy())
    script = tmp_path / "dispatcher.py"
    script.write_text(CRASHING_DISPATCHER)
    env = {"BOT_DATABASE_URL": db_url, "BOT_TWILIO_API_BASE_URL": sandbox.base_url, "BOT_SMTP_PORT": str(smtp.port),
           "BOT_RATE_LIMITS_ENABLED": "false", "BOT_DISPATCH_LEASE_SECONDS": "300"}

    # Slow SMS answers (0.2 s) keep SMS flowing while the first emails go out, so the
    # crash finds SMS in every state: recorded, accepted but unrecorded, never sent.
    sandbox.sandbox.faults.slow(0.2)
    crashed = run_dispatcher(script, env, AT=AT.isoformat(), WORKER="first", CRASH_AFTER_EMAILS="3")
    sandbox.sandbox.faults.clear()

    assert crashed.returncode == 1, crashed.stderr or crashed.stdout
    assert crashed.stdout == ""  # it died in the middle of the pass
    before = Counter(a.status for a in attempts(db))
    assert before["sending"] >= 2 and before["planned"] >= 1  # killed mid-batch, results unrecorded
    assert smtp.count() == 3

    # A restart before the lease ran out touches nothing that is being sent.
    settings = settings_for(db, sandbox, smtp.port)
    early = asyncio.run(dispatch_once(db, settings, clock=FixedClock(AT + timedelta(minutes=1)),
                                      policy=load_policy(), options=DispatchOptions.from_settings(settings)))
    assert early.handled == 0
    assert Counter(a.status for a in attempts(db)) == before

    restarted = run_dispatcher(script, env, AT=(AT + timedelta(minutes=6)).isoformat(), WORKER="third")

    assert restarted.returncode == 0, restarted.stderr
    totals = json.loads(restarted.stdout)["totals"]
    assert totals["reconciled"] >= 1 and totals["requeued"] >= 1  # both crash windows were hit
    assert totals["unknown"] == 1  # the accepted, unrecorded email: for review, not resent
    assert sent_counts(sandbox, phones) == Counter({p: 1 for p in phones})  # every SMS exactly once
    assert smtp.received() == Counter({a: 1 for a in addresses})  # every email exactly once
    rows = attempts(db)
    by_phone = {a.address: a for a in rows if a.channel == "sms"}
    for phone in phones:
        [message] = sandbox.sandbox.messages_to(phone)
        assert by_phone[phone].status == "sent" and by_phone[phone].provider_id == message.sid
    email_statuses = Counter(a.status for a in rows if a.channel == "email")
    assert email_statuses == Counter({"sent": len(addresses) - 1, "unknown": 1})
    [unknown] = [a for a in rows if a.status == "unknown"]
    assert smtp.received()[unknown.address] == 1 and "review" in (unknown.last_error or "")

    final = asyncio.run(dispatch_once(db, settings, clock=FixedClock(AT + timedelta(hours=1)),
                                      policy=load_policy(), options=DispatchOptions.from_settings(settings)))
    assert final.handled == 0  # nothing left, nothing resent
    assert sum(sent_counts(sandbox, phones).values()) == len(phones) and smtp.count() == len(addresses)


# --- the fault test ---------------------------------------------------------------------------


def test_faults_are_retried_until_everything_is_sent_once(db: Database, sandbox: SandboxServer) -> None:
    phones = sms_borrowers(db, 8)
    invalid = "+12125559999"
    add_borrower(db, "B9", phone=invalid)
    add_loan(db, "B9", "L9", [("I9", due_in(3))])
    addresses = email_borrowers(db, 5)
    refused = addresses[-1]
    with db.sessions() as s:
        plan(s, AT, policy=load_policy())
    sandbox.sandbox.add_phone(invalid, line_type="invalid")
    sandbox.sandbox.faults.rate_limit(4)  # a burst of 429s ...
    sandbox.sandbox.faults.server_errors(3, status=503)  # ... then 5xx
    smtp = SmtpSink(port=free_port())  # not started yet: connections are refused
    smtp.refuse[refused] = 550
    settings = settings_for(db, sandbox, smtp.port, dispatch_backoff_base_seconds=2.0,
                            dispatch_backoff_cap_seconds=20.0)
    clock = FixedClock(AT)
    reports: list[DispatchReport] = []
    failed_with: dict[str, int] = {}  # address -> tries when it failed
    try:
        for n in range(12):
            reports.append(asyncio.run(dispatch_once(db, settings, clock=clock, policy=load_policy(),
                                                     options=DispatchOptions.from_settings(settings, worker_id="w"))))
            if n == 0:
                smtp.start()  # the SMTP server comes up after the first pass
            rows = attempts(db)
            for row in rows:
                if row.status == "failed":
                    failed_with.setdefault(row.address or "", row.tries)
            if not any(a.status in ("planned", "sending") for a in rows):
                break
            clock.advance(timedelta(seconds=20))  # past any backoff: time moves by hand
        assert sent_counts(sandbox, phones) == Counter({p: 1 for p in phones})
        assert smtp.received() == Counter({a: 1 for a in addresses if a != refused})
    finally:
        smtp.stop()

    first = reports[0].by_channel()
    assert first["sms"]["retry"] >= 4 and first["email"]["retry"] == 5  # 429/503 and refused connections
    rows = {a.address: a for a in attempts(db)}
    assert rows[invalid].status == "failed" and rows[invalid].last_error.startswith("permanent: 21211")
    assert rows[refused].status == "failed" and rows[refused].last_error.startswith("permanent: 550")
    assert failed_with == {invalid: rows[invalid].tries, refused: rows[refused].tries}  # never retried
    assert smtp.refused_count[refused] == 1  # one RCPT for it, refused once, never again
    assert consent(db, "B9", "sms").address_flag == "invalid"
    assert consent(db, "B504", "email").address_flag == "invalid"  # 550 5.1.1: the mailbox does not exist
    assert all(rows[p].status == "sent" for p in phones)
    assert max(rows[p].tries for p in phones) >= 2 and all(rows[a].tries >= 2 for a in addresses[:-1])
    assert len(sandbox.sandbox.messages_to(invalid)) == 0


def test_an_smtp_connection_lost_before_data_is_retried_not_left_unknown(db: Database, sandbox: SandboxServer,
                                                                         smtp: SmtpSink) -> None:
    """The server drops the session at RCPT: the message cannot have been delivered, so the
    attempt is retried like any transient failure (not ``sending`` then ``unknown`` for a person)."""
    [address] = email_borrowers(db, 1)
    with db.sessions() as s:
        plan(s, AT, policy=load_policy())
    smtp.drop[address] = 2
    settings = settings_for(db, sandbox, smtp.port, dispatch_backoff_base_seconds=2.0,
                            dispatch_backoff_cap_seconds=20.0)
    clock = FixedClock(AT)
    reports = []
    for _ in range(3):
        reports.append(asyncio.run(dispatch_once(db, settings, clock=clock, policy=load_policy(),
                                                 options=DispatchOptions.from_settings(settings, worker_id="w"))))
        [row] = attempts(db)
        if row.status != "planned":
            break
        assert row.last_error and row.last_error.startswith("transient: connection")
        clock.advance(timedelta(seconds=20))
    assert [r.by_channel() for r in reports] == [{"email": {"retry": 1}}, {"email": {"retry": 1}},
                                                 {"email": {"sent": 1}}]
    assert (row.status, row.tries) == ("sent", 3)
    assert smtp.received() == Counter({address: 1})


# --- two workers -----------------------------------------------------------------------------


def test_two_workers_against_the_sandbox_never_send_twice(db: Database, sandbox: SandboxServer,
                                                          smtp: SmtpSink) -> None:
    phones = sms_borrowers(db, 60)
    with db.sessions() as s:
        plan(s, AT, policy=load_policy())
    settings = settings_for(db, sandbox, smtp.port, dispatch_batch_size=5)
    reports: list[DispatchReport] = []

    def work(name: str) -> None:
        options = DispatchOptions.from_settings(settings, worker_id=name)
        reports.append(asyncio.run(dispatch_once(db, settings, clock=FixedClock(AT), policy=load_policy(),
                                                 options=options)))

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sent_counts(sandbox, phones) == Counter({p: 1 for p in phones})
    assert sum(r.total("sent") for r in reports) == 60
    with db.sessions() as s:
        assert set(s.scalars(select(ContactAttempt.status))) == {"sent"}


# --- bot run ----------------------------------------------------------------------------------


def test_bot_run_once_plans_and_dispatches(db_url: str, db: Database, sandbox: SandboxServer, smtp: SmtpSink,
                                           run_bot: Any) -> None:
    """The scheduler's dispatch job runs the real dispatcher (registered through the settings)."""
    phones = sms_borrowers(db, 2)
    [address] = email_borrowers(db, 1)
    result = run_bot("run", "--once", "--at", AT.isoformat(), db_url=db_url,
                     env=env_for(sandbox, smtp.port, BOT_RATE_LIMITS_ENABLED="false"))
    assert result.exit_code == 0, result.output
    assert sent_counts(sandbox, phones) == Counter({p: 1 for p in phones})
    assert smtp.received() == Counter({address: 1})
    assert {a.status for a in attempts(db)} == {"sent"}


def test_the_service_runs_the_dispatcher_only_when_given_settings(db: Database) -> None:
    from bot.scheduler.service import PlannerService

    bare = PlannerService(db=db, clock=FixedClock(AT), policy=load_policy(), dispatchers=[])
    assert bare.dispatchers == []
    wired = PlannerService(db=db, clock=FixedClock(AT), policy=load_policy(), dispatchers=[],
                           settings=load_settings())
    [dispatcher] = wired.dispatchers
    assert dispatcher.__qualname__.startswith("make_dispatcher")
    assert dispatcher(db, FixedClock(AT)) == 0  # nothing planned: nothing handled, no provider called
