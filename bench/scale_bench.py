"""Scale benchmark: several ``bot run --no-web`` workers on one PostgreSQL database, a Twilio
sandbox with realistic latency in its own process, and an SMTP sink.

    python bench/scale_bench.py [--sms 20000] [--emails 5000] [--workers 1 2 4]
                                [--latency-ms 150] [--jitter-ms 50] [--database-url URL]
                                [--skip-throughput] [--skip-rate] [--skip-chaos]

Processes: ``bot sandbox --latency-ms 150 --jitter-ms 50`` (every REST request waits
100-200 ms, concurrently, as Twilio answers), aiosmtpd in a child process (the SMTP sink
of bench/dispatch_bench.py), and N workers ``bot run --no-web --dispatch-interval 1``.
Each phase gets a PostgreSQL schema of its own on the given server (created, migrated,
seeded and planned by this script with the real planner at the real instant, then
dropped); the workers reach it through ``options=-csearch_path``.  Borrowers are in New
York with SMS (D-3) or email (D0) due; a compliance file switches ``us.hours`` off so the
bench gives the same figures at any hour of the day (the check still runs).

Phases, each bounded by ``--phase-timeout``:

1. **throughput**: 1, 2 and 4 workers, rate limits off: messages per second from the
   workers' start to the last attempt settled, and over the sending span (first to last
   message); the ratio to a plain one-at-a-time loop under the same latency (the official
   twilio client's ``messages.create`` and ``smtplib`` over one connection, measured on a
   sample and extrapolated); the scaling from 1 to 4 workers;
2. **rate limits**: rate limits on (``--rate-per-number`` per sender, several senders),
   the largest worker count: from the sandbox's own creation instants, the most
   segments any sender had in any one-second and five-second window, against what
   its token bucket allows (burst + rate x window, plus the spread of the sandbox's
   latency); PASS, or each window over its allowance and by how much; and how many
   messages a lane reached after the send tolerance (``late``: planned again, not sent);
3. **chaos**: the largest worker count, rate limits off; ``kill -9`` of random workers and
   ``pg_terminate_backend`` of every connection of the bench's database during the run,
   then workers restarted; afterwards the sandbox's records and the SMTP sink's log
   against the attempts table: duplicates (0 expected), lost (0 expected), and attempts
   left ``unknown`` (an email in flight when its worker died cannot be looked up).

The system PostgreSQL server is never restarted.  Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.db import Database  # noqa: E402
from bot.db.models import ContactAttempt  # noqa: E402
from dispatch_bench import database, seed, smtp_sink  # noqa: E402

SID, TOKEN = "AC" + "0" * 32, "sandbox-token"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SETTLED = ("sent", "failed", "unknown", "cancelled", "blocked")
APP_NAME = f"scale-bench-{os.getpid()}"
COMPLIANCE = "rules:\n  us.hours:\n    enabled: false\n"  # the bench runs at any hour of the day


@dataclass
class Rig:
    """What every phase shares: the sandbox, the SMTP sink, the settings files."""

    args: argparse.Namespace
    sandbox_url: str
    smtp: Any
    tmp: Path
    senders: list[str]
    compliance: Path = field(init=False)

    def __post_init__(self) -> None:
        self.compliance = self.tmp / "compliance.yaml"
        self.compliance.write_text(COMPLIANCE)

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.sandbox_url}/_sandbox{path}", auth=(SID, TOKEN), timeout=120,
                                 trust_env=False, **kwargs)
        response.raise_for_status()
        return response.json()

    def worker_env(self, db: Database, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        env.update({
            "PYTHONPATH": str(ROOT), "BOT_DATABASE_URL": db.url, "BOT_TWILIO_API_BASE_URL": self.sandbox_url,
            "BOT_TWILIO_FROM_NUMBERS": ",".join(self.senders), "BOT_SMTP_PORT": str(self.smtp.port),
            "BOT_PUBLIC_BASE_URL": "http://127.0.0.1:9", "BOT_COMPLIANCE_FILE": str(self.compliance),
            "BOT_RATE_LIMITS_ENABLED": "false", "BOT_DISPATCH_CONCURRENCY": str(self.args.concurrency),
            "BOT_DISPATCH_LEASE_SECONDS": "30", "BOT_DISPATCH_BACKOFF_BASE_SECONDS": "2",
            "BOT_MEDIA_DIR": str(self.tmp / "media"),
        })
        # Named connections: the outage of the chaos phase cuts these and nobody else's.
        env["BOT_DATABASE_URL"] += f"&application_name={APP_NAME}"
        env.update(extra)
        return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sms", type=int, default=20_000, help="SMS attempts per phase (default 20000)")
    parser.add_argument("--emails", type=int, default=5_000, help="email attempts per phase (default 5000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default 1 2 4)")
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--jitter-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=64, help="BOT_DISPATCH_CONCURRENCY of each worker")
    parser.add_argument("--senders", type=int, default=10, help="SMS sender numbers (default 10)")
    parser.add_argument("--rate-per-number", type=float, default=10.0, help="rate phase: SMS segments/s per sender")
    parser.add_argument("--rate-sms", type=int, default=2000, help="rate phase: SMS attempts (default 2000)")
    parser.add_argument("--chaos-sms", type=int, default=None, help="chaos phase: SMS (default: --sms / 2)")
    parser.add_argument("--chaos-emails", type=int, default=None, help="chaos phase: emails (default: --emails / 2)")
    parser.add_argument("--loop-sample", type=int, default=40, help="messages of the plain loop sample")
    parser.add_argument("--phase-timeout", type=float, default=900.0, help="seconds a phase may last at most")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"PostgreSQL server (default {DEFAULT_URL})")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-chaos", action="store_true")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgresql"):
        parser.error("several workers need PostgreSQL: give --database-url postgresql+psycopg://...")
    senders = [f"+1500555{n:04d}" for n in range(args.senders)]
    ok = True
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-bench-")))
        smtp = stack.enter_context(smtp_sink(False))
        sandbox_url = stack.enter_context(sandbox_process(args, senders, tmp))
        rig = Rig(args, sandbox_url, smtp, tmp, senders)
        print(f"sandbox {sandbox_url}: latency {args.latency_ms:g} ms +/- {args.jitter_ms:g} ms; "
              f"SMTP sink on port {smtp.port}; {len(senders)} SMS senders", flush=True)
        if not args.skip_throughput:
            ok &= throughput(rig)
        if not args.skip_rate:
            ok &= rate_limits(rig)
        if not args.skip_chaos:
            ok &= chaos(rig)
    return 0 if ok else 1


# --- processes -------------------------------------------------------------------------------------


@contextmanager
def sandbox_process(args: argparse.Namespace, senders: list[str], tmp: Path) -> Iterator[str]:
    """``bot sandbox`` in its own process; yields its base URL once it prints its banner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update({"PYTHONPATH": str(ROOT), "BOT_TWILIO_FROM_NUMBERS": ",".join(senders)})
    # Real-time callbacks would go to port 9 (nothing listens): keep them out of the way.
    personas = tmp / "personas.yaml"
    personas.write_text("timing: {sms_sent_after: 600, sms_delivered_after: 600, call_ring_after: 1}\n")
    log = (tmp / "sandbox.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--personas", str(personas),
         "--latency-ms", str(args.latency_ms), "--jitter-ms", str(args.jitter_ms), "--latency-seed", "1"],
        env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("bot sandbox did not start (see its log)")
            if "listening on" in line:
                url = line.split("listening on ")[1].strip()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Workers:
    """``bot run --no-web`` processes on one database; kill -9 and restart on demand."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, verbose: bool = False) -> None:
        self.env, self.log_dir, self.verbose = env, log_dir, verbose
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, n: int) -> None:
        for _ in range(n):
            index = len(self.processes)
            self.logs.append(self.log_dir / f"worker-{index}.log")
            log = self.logs[-1].open("wb")
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "bot", *(["-v"] if self.verbose else []), "run", "--no-web",
                 "--dispatch-interval", "1", "--plan-interval", "3600"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def outcome_total(self, outcome: str) -> int:
        """The sum of ``outcome`` over the passes the workers logged (``-v``: each pass's totals)."""
        pattern = re.compile(rf"dispatch pass by .*'{re.escape(outcome)}': (\d+)")
        return sum(int(m.group(1)) for path in self.logs if path.exists()
                   for m in pattern.finditer(path.read_text(errors="replace")))

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def kill9(self, rng: random.Random, count: int) -> int:
        victims = rng.sample(self.alive(), min(count, len(self.alive())))
        for process in victims:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        return len(victims)

    def stop(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# --- data ----------------------------------------------------------------------------------------


@contextmanager
def phase_db(rig: Rig, sms: int, emails: int) -> Iterator[Database]:
    """A fresh schema, seeded and planned at the real instant; the sandbox and sink emptied."""
    with database(rig.args.database_url) as db:
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed(db, sms, emails, at=now, today=now.astimezone(ZoneInfo("America/New_York")).date())
        planned = plan(db, now, rig.compliance)
        rig.control("POST", "/reset")
        rig.smtp.log.write_text("")
        print(f"  data: {sms} SMS + {emails} emails planned {planned} in {time.perf_counter() - started:.1f} s",
              flush=True)
        yield db


def plan(db: Database, now: datetime, compliance: Path) -> dict[str, int]:
    from bot.compliance.config import load_compliance_config
    from bot.policy import load_policy
    from bot.scheduler.planner import plan as run_plan

    with db.sessions() as s:
        report = run_plan(s, now, policy=load_policy(), limit=0, commit=True,
                          compliance_config=load_compliance_config(compliance))
    return dict(report.by_status)


def statuses(db: Database) -> Counter[str]:
    with db.sessions() as s:
        return Counter(dict(s.execute(select(ContactAttempt.status, func.count()).group_by(ContactAttempt.status))
                            .all()))


def run_until_settled(db: Database, workers: Workers, total: int, timeout: float, label: str,
                      during: Any = None) -> float:
    """Wait (printing progress) until every attempt is settled or the timeout; seconds taken."""
    started = time.monotonic()
    last = 0.0
    while True:
        elapsed = time.monotonic() - started
        counts = statuses(db)
        settled = sum(counts[s] for s in SETTLED)
        if during is not None:
            during(elapsed, counts)
        if settled >= total:
            return elapsed
        if elapsed > timeout:
            print(f"  !! {label}: timeout after {elapsed:.0f} s with {dict(counts)}", flush=True)
            return elapsed
        if elapsed - last >= 5:
            last = elapsed
            print(f"  {label} {elapsed:5.0f} s: {dict(sorted(counts.items()))} "
                  f"({len(workers.alive())} workers alive)", flush=True)
        time.sleep(0.5)


def sandbox_messages(rig: Rig) -> list[dict[str, Any]]:
    return [m for m in rig.control("GET", "/messages", params={"direction": "outbound-api"})]


def sending_span(db: Database, channel: str) -> float:
    with db.sessions() as s:
        first, last = s.execute(select(func.min(ContactAttempt.sent_at), func.max(ContactAttempt.sent_at))
                                .where(ContactAttempt.channel == channel)).one()
    return (last - first).total_seconds() if first and last else 0.0


# --- phases ----------------------------------------------------------------------------------------


def throughput(rig: Rig) -> bool:
    args = rig.args
    total = args.sms + args.emails
    print(f"\n== throughput: {args.sms} SMS + {args.emails} emails, rate limits off, "
          f"workers {args.workers} ==", flush=True)
    results: dict[int, tuple[float, float, float]] = {}
    ok = True
    for n in args.workers:
        print(f"- {n} worker(s)", flush=True)
        with phase_db(rig, args.sms, args.emails) as db:
            workers = Workers(rig.worker_env(db), rig.tmp)
            workers.start(n)
            try:
                elapsed = run_until_settled(db, workers, total, args.phase_timeout, f"{n}w")
            finally:
                workers.stop()
            counts = statuses(db)
            sms_span, email_span = sending_span(db, "sms"), sending_span(db, "email")
            messages = sandbox_messages(rig)
            received = sum(rig.smtp.received().values())
            dup_sms = sum(c - 1 for c in Counter(m["to"] for m in messages).values() if c > 1)
            dup_email = sum(c - 1 for c in rig.smtp.message_ids().values() if c > 1)
            results[n] = (total / elapsed, args.sms / max(sms_span, 1e-9), args.emails / max(email_span, 1e-9))
            print(f"  {n} worker(s): {dict(counts)} in {elapsed:.1f} s = {total / elapsed:.0f} messages/s from start; "
                  f"sending spans: SMS {sms_span:.1f} s ({results[n][1]:.0f}/s), "
                  f"email {email_span:.1f} s ({results[n][2]:.0f}/s); sandbox {len(messages)} SMS "
                  f"({dup_sms} duplicates), SMTP {received} ({dup_email} duplicates)", flush=True)
            ok &= counts["sent"] == total and len(messages) == args.sms and received == args.emails
            ok &= dup_sms == 0 and dup_email == 0
    sms_loop, email_loop = plain_loops(rig, args.loop_sample)
    print(f"\n{'workers':>8} {'msgs/s':>8} {'SMS/s':>8} {'email/s':>8} {'SMS vs loop':>12} {'email vs loop':>14}")
    for n, (overall, sms_rate, email_rate) in results.items():
        print(f"{n:>8} {overall:>8.0f} {sms_rate:>8.0f} {email_rate:>8.0f} {sms_rate / sms_loop:>11.0f}x "
              f"{email_rate / email_loop:>13.0f}x")
    if 1 in results and max(results) > 1:
        top = max(results)
        print(f"scaling 1 -> {top} workers: {results[top][0] / results[1][0]:.2f}x overall, "
              f"{results[top][1] / results[1][1]:.2f}x SMS, {results[top][2] / results[1][2]:.2f}x email")
    print(f"plain loop under the same latency: SMS {sms_loop:.1f}/s, email {email_loop:.0f}/s "
          f"({args.sms} SMS one at a time: {args.sms / sms_loop / 60:.0f} min); target >= 50x", flush=True)
    return ok


def plain_loops(rig: Rig, n: int) -> tuple[float, float]:
    """One at a time, no database: the official twilio client, and smtplib over one connection."""
    from twilio.rest import Client

    client = Client(SID, TOKEN)
    client.api.base_url = rig.sandbox_url
    started = time.perf_counter()
    for i in range(n):
        client.messages.create(to=f"+1313{i:07d}", from_=rig.senders[0], body=f"Plain loop {i}. Reply STOP to opt out.")
    sms = n / (time.perf_counter() - started)
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", rig.smtp.port) as smtp:
        for i in range(n):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "reminders@example.com", f"plain{i}@example.com", "Hi"
            message.set_content(f"Plain loop message {i}.")
            smtp.send_message(message)
    email = n / (time.perf_counter() - started)
    print(f"plain loops ({n} each): SMS {sms:.1f}/s, email {email:.0f}/s", flush=True)
    return sms, email


def rate_limits(rig: Rig) -> bool:
    args = rig.args
    n = max(args.workers)
    rate = args.rate_per_number
    account_rate = rate * len(rig.senders) * 2  # the per-number limits are the binding ones
    print(f"\n== rate limits: {args.rate_sms} SMS, {n} workers, {rate:g} segments/s per sender, "
          f"{len(rig.senders)} senders ==", flush=True)
    with phase_db(rig, args.rate_sms, 0) as db:
        env = rig.worker_env(db, BOT_RATE_LIMITS_ENABLED="true", BOT_SMS_RATE_PER_NUMBER=str(rate),
                             BOT_SMS_RATE_PER_ACCOUNT=str(account_rate))
        workers = Workers(env, rig.tmp, verbose=True)
        workers.start(n)
        try:
            elapsed = run_until_settled(db, workers, args.rate_sms, args.phase_timeout, "rate")
        finally:
            workers.stop()
        messages = sandbox_messages(rig)
        counts = statuses(db)
        late, rate_limited = workers.outcome_total("late"), workers.outcome_total("rate_limited")
    by_sender: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for m in messages:
        by_sender[m["from"]].append((datetime.fromisoformat(m["created_at"]), int(m["num_segments"])))
    # A full bucket (one second's worth) plus the window's refill, plus what the spread of the
    # sandbox's latency can squeeze into the window (it stamps a message after its latency).
    allowed = {w: max(1.0, rate) + rate * (w + 2 * args.jitter_ms / 1000) for w in (1, 5)}
    print(f"  {dict(counts)} in {elapsed:.0f} s; {len(messages)} SMS at the sandbox "
          f"(expected about {args.rate_sms * 2 / (rate * len(rig.senders)):.0f} s at the limits); "
          f"passes counted {rate_limited} rate_limited and {late} late (reached after the send tolerance: "
          f"planned again, not sent)")
    print("  max in 1 s: the most segments the sandbox created for the sender within any one second; allowed: "
          "burst + one second of refill (+ the latency's spread); the same over five seconds; mean/s: segments "
          "per second from its first to its last")
    print(f"  {'sender':>14} {'SMS':>5} {'segments':>9} {'max in 1 s':>11} {'allowed':>8} {'max in 5 s':>11} "
          f"{'allowed':>8} {'mean/s':>7}")
    ok = counts["sent"] == args.rate_sms and len(messages) == args.rate_sms
    over: list[str] = []
    for sender, sent in sorted(by_sender.items()):
        sent.sort()
        peaks = {w: max_in_window(sent, timedelta(seconds=w)) for w in (1, 5)}
        span = (sent[-1][0] - sent[0][0]).total_seconds()
        segments = sum(s for _, s in sent)
        mean = (segments - sent[-1][1]) / span if span else float("nan")
        print(f"  {sender[:6] + '…' + sender[-4:]:>14} {len(sent):>5} {segments:>9} {peaks[1]:>11} "
              f"{allowed[1]:>8.1f} {peaks[5]:>11} {allowed[5]:>8.1f} {mean:>7.2f}")
        over += [f"{sender[-4:]}: {peaks[w]} segments in {w} s, allowed {allowed[w]:.1f} "
                 f"(over by {peaks[w] - allowed[w]:.1f})" for w in (1, 5) if peaks[w] > allowed[w]]
    busiest = {w: max(max_in_window(sorted(sent), timedelta(seconds=w)) for sent in by_sender.values())
               for w in (1, 5)} if by_sender else {1: 0, 5: 0}
    if over:
        print(f"  FAIL: {len(over)} window(s) over the limit across {n} workers: " + "; ".join(over), flush=True)
    else:
        print(f"  {'PASS' if ok else 'FAIL'}: every sender within its limit across {n} workers in every 1 s and "
              f"5 s window (busiest {busiest[1]} / {allowed[1]:.1f} and {busiest[5]} / {allowed[5]:.1f})"
              + ("" if ok else f"; but {counts['sent']} of {args.rate_sms} sent, {len(messages)} at the sandbox"),
              flush=True)
    return ok and not over


def max_in_window(sent: list[tuple[datetime, int]], window: timedelta) -> int:
    """The most segments within any window of this length (sliding, by the sandbox's instants)."""
    best = total = start = 0
    for end in range(len(sent)):
        total += sent[end][1]
        while sent[end][0] - sent[start][0] >= window:
            total -= sent[start][1]
            start += 1
        best = max(best, total)
    return best


def chaos(rig: Rig) -> bool:
    args = rig.args
    n = max(args.workers)
    sms = args.chaos_sms if args.chaos_sms is not None else args.sms // 2
    emails = args.chaos_emails if args.chaos_emails is not None else args.emails // 2
    rng = random.Random(7)
    print(f"\n== chaos: {sms} SMS + {emails} emails, {n} workers; kill -9 and connection outages ==", flush=True)
    with phase_db(rig, sms, emails) as db:
        workers = Workers(rig.worker_env(db), rig.tmp)
        workers.start(n)
        events: list[str] = []
        # Chaos by progress (share of attempts settled), so it lands mid-run at any size.
        plan_of_chaos = [(0.15, "kill"), (0.25, "terminate"), (0.35, "restart"), (0.5, "kill"),
                         (0.6, "terminate"), (0.7, "restart")]

        def during(elapsed: float, counts: Counter[str]) -> None:
            done = sum(counts[s] for s in SETTLED) / (sms + emails)
            while plan_of_chaos and done >= plan_of_chaos[0][0]:
                _, what = plan_of_chaos.pop(0)
                if what == "kill":
                    killed = workers.kill9(rng, max(1, n // 2))
                    events.append(f"{elapsed:.0f} s ({done:.0%} settled): kill -9 of {killed} worker(s)")
                elif what == "terminate":
                    events.append(f"{elapsed:.0f} s ({done:.0%} settled): pg_terminate_backend of "
                                  f"{terminate_backends(db)} connection(s)")
                else:
                    missing = n - len(workers.alive())
                    workers.start(missing)
                    events.append(f"{elapsed:.0f} s ({done:.0%} settled): {missing} worker(s) restarted")
                print(f"  chaos {events[-1]}", flush=True)

        try:
            elapsed = run_until_settled(db, workers, sms + emails, args.phase_timeout, "chaos", during)
        finally:
            workers.stop()
        counts = statuses(db)
        with db.sessions() as s:
            rows = s.execute(select(ContactAttempt.channel, ContactAttempt.address, ContactAttempt.status,
                                    ContactAttempt.provider_id)).all()
        messages = sandbox_messages(rig)
        at_sandbox = Counter(m["to"] for m in messages)
        at_sink = rig.smtp.received()
    report = verify(rows, at_sandbox, at_sink)
    print(f"  settled in {elapsed:.0f} s: {dict(counts)}")
    for key, value in report.items():
        print(f"  {key}: {value}")
    ok = report["SMS duplicates"] == 0 and report["email duplicates"] == 0 and report["lost"] == 0
    print(f"  0 duplicates and 0 lost: {'yes' if ok else 'NO'}", flush=True)
    return ok


def verify(rows: list[Any], at_sandbox: Counter[str], at_sink: Counter[str]) -> dict[str, int]:
    """The provider's records against the attempts: each borrower has exactly one attempt."""
    received = {"sms": at_sandbox, "email": at_sink}
    report = Counter[str]()
    for channel, address, status, _provider_id in rows:
        got = received[channel].get(address, 0)
        report[f"{'SMS' if channel == 'sms' else 'email'} duplicates"] += max(got - 1, 0)
        if status == "sent" and got == 0:
            report["lost"] += 1  # recorded sent, never received
        elif status in ("planned", "deferred", "sending"):
            report["lost"] += 1  # never settled
        elif status == "unknown":
            report[f"unknown ({channel}; received {got})"] += 1
        elif status not in ("sent", "unknown") and got:
            report[f"received but recorded {status}"] += 1
    report.setdefault("SMS duplicates", 0)
    report.setdefault("email duplicates", 0)
    report.setdefault("lost", 0)
    return dict(report)


def terminate_backends(db: Database) -> int:
    """Cut every other connection to the bench's database (its workers'): an outage they must survive."""
    import psycopg

    plain = db.url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = %s",
            (APP_NAME,)).fetchall()
    return len(rows)


if __name__ == "__main__":
    raise SystemExit(main())
