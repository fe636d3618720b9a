"""Benchmark of ``POST /api/v1/payments`` under concurrent clients, on PostgreSQL.

    python bench/api_bench.py [--database-url URL] [--clients 50] [--rate 300] [--arrivals poisson|fixed]
                              [--requests 6000] [--closed-requests 3000] [--web-workers 2]
                              [--warmup 300] [--lag-samples 200]

Data (not timed): one borrower per payment, each with one loan, one overdue installment
of $100.00 and one planned SMS reminder about it (what a payment must cancel), written
straight into a schema of its own (``api_bench_<pid>``, dropped at the end), and an API
key with ``payments:write``.

The bot's web app runs as it does in production: ``uvicorn --factory
bot.app:from_environment`` in its own processes (``--web-workers``), with its
access log off, on 127.0.0.1, each keeping a database connection open for every
request it has in flight (``BOT_DATABASE_POOL_SIZE`` = clients / workers).  The client
is lean, so that it takes little of the machine's CPU from the server: ``--clients``
keep-alive HTTP/1.1 connections on asyncio streams, every request's bytes encoded
before timing (only the ids differ), each answer read by its status line and
Content-Length.

Timed:

1. **closed loop** (``--closed-requests`` payments; the only run with ``--rate 0``): each
   connection sends its next payment as soon as the last is answered, so ``--clients``
   requests are always in flight: the top throughput; its latency is ``clients /
   throughput`` (Little's law), not a property of the server alone;
2. **open loop** (``--requests`` payments, ``--rate`` > 0): the connections together offer
   ``--rate`` requests a second, due at Poisson (or evenly spaced) instants, payment i on
   connection i mod ``--clients``; latency counts from the *due* instant, so a server that
   falls behind pays for the wait (no coordinated omission).  Printed: offered and achieved
   rate, p50/p95/p99/max, and whether the target is met (p95 < 50 ms, >= 300 requests/s
   offered and at least 95 % of the offered rate answered, no error);
3. for each run, the CPU time a request of the web app's processes, of the PostgreSQL
   backends serving them and of this client (from /proc), with the ceiling their sum puts
   on 2 cores, and the load average before and after (the machine may be shared);
4. **from the 201 to the cancellation**: ``--lag-samples`` payments one after another;
   right after each 201 the reminder's status is read from the database (a separate
   connection) until it is ``cancelled``: the time from the 201 to seeing it.  The
   cancellation is in the payment's own transaction, so it should be there at once.

It then checks every paid installment is covered and every reminder cancelled with
the reason ``paid``, and that each payment exists once.  Target on the 2-core
reference machine: p95 < 50 ms at >= 300 requests/s with 50 clients (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.api.keys import create_key  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import Borrower, Consent, ContactAttempt, Installment, Loan, Payment  # noqa: E402

AT = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def seed(db: Database, count: int) -> None:
    rows_b, rows_c, rows_l, rows_i, rows_a = [], [], [], [], []
    for n in range(count):
        bid, lid, iid = f"B{n:07d}", f"L{n:07d}", f"I{n:07d}"
        phone = f"+1212{n:07d}"
        rows_b.append({"id": bid, "full_name": "Bench Borrower", "phone_e164": phone, "email": None,
                       "locale": "en-US", "timezone": "America/New_York", "region": "NY", "country": "US",
                       "created_at": AT, "updated_at": AT})
        rows_c.append({"borrower_id": bid, "channel": "sms", "address": phone, "granted": True, "updated_at": AT})
        rows_l.append({"id": lid, "borrower_id": bid, "product": "personal", "principal_minor": 100_000,
                       "currency": "USD", "opened_on": date(2026, 1, 1), "created_at": AT, "updated_at": AT})
        rows_i.append({"id": iid, "loan_id": lid, "due_date": date(2026, 11, 25), "amount_due_minor": 10_000,
                       "amount_paid_minor": 0, "created_at": AT, "updated_at": AT})
        rows_a.append({"dedupe_key": f"plan:{iid}:main:5:sms", "borrower_id": bid, "loan_id": lid,
                       "installment_id": iid, "channel": "sms", "source": "planner", "status": "planned",
                       "step": "D+5", "template": "reminder_overdue", "address": phone, "next_attempt_at": AT,
                       "created_at": AT, "updated_at": AT})
    with db.engine.begin() as conn:
        for model, rows in ((Borrower, rows_b), (Consent, rows_c), (Loan, rows_l), (Installment, rows_i),
                            (ContactAttempt, rows_a)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(model), rows[start:start + 5000])


def start_server(url: str, port: int, workers: int, pool: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BOT_DATABASE_URL=url, BOT_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
               BOT_DATABASE_POOL_SIZE=str(pool),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bot.app:from_environment", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
           "--timeout-keep-alive", "60"]
    proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the web app exited with status {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the web app did not answer /healthz within 60 s")


def cpu_seconds(parent: int) -> float:
    """User + system CPU time of ``parent`` and its child processes (the uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(stat.parent.name) == parent or int(fields[1]) == parent:  # fields[1]: the parent's pid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def body(n: int) -> dict[str, str]:
    return {"payment_id": f"BP{n:07d}", "loan_id": f"L{n:07d}", "paid_at": "2026-11-30T13:00:00Z",
            "amount": "100.00"}


def requests_bytes(port: int, key: str, numbers: list[int]) -> list[bytes]:
    """Each payment's whole HTTP/1.1 request, encoded before timing (only the ids differ)."""
    head = (f"POST /api/v1/payments HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n").encode()
    out = []
    for n in numbers:
        payload = json.dumps(body(n), separators=(",", ":")).encode()
        out.append(head % len(payload) + payload)
    return out


class HttpError(Exception):
    """The connection failed or closed, or the answer was not HTTP/1.1 with a Content-Length."""


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a request out, its answer read with the
    least parsing (status line, Content-Length, body).  Reconnects after a failure or a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        try:
            if self.writer is None:
                await self.open()
            assert self.reader is not None and self.writer is not None
            self.writer.write(data)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if not head.startswith(b"HTTP/1.1 ") or at < 0:
                raise HttpError("an answer without a Content-Length")
            length = int(head[at + 17:head.index(b"\r\n", at + 2)])
            payload = await self.reader.readexactly(length)
            if b"\r\nconnection: close" in lowered:
                self.close()
            return int(head[9:12]), payload
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise HttpError(type(exc).__name__) from exc
        except HttpError:
            self.close()
            raise


@dataclass
class Load:
    """What one run measured: latencies (s), the wall time from the first due send to the last answer,
    the answers that were not 201 and the offered rate (requests/s, 0 for a closed loop)."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0
    offered: float = 0.0


def schedule(count: int, rate: float, arrivals: str, seed: int = 1) -> list[float]:
    """Send times (s from the start) of ``count`` requests offered at ``rate`` a second: evenly spaced,
    or a Poisson process (exponential gaps, seeded: every run offers the same load)."""
    if arrivals == "fixed":
        return [i / rate for i in range(count)]
    rng, at, out = random.Random(seed), 0.0, []
    for _ in range(count):
        out.append(at)
        at += rng.expovariate(rate)
    return out


async def run_load(port: int, requests: list[bytes], clients: int, rate: float = 0.0,
                   arrivals: str = "poisson") -> Load:
    """Send ``requests`` on ``clients`` connections.

    ``rate`` 0: a closed loop, each connection sends its next request when the last is answered
    (latency from its send).  ``rate`` > 0: an open loop, request i is due at its scheduled time on
    connection i mod ``clients`` and is sent then, or when that connection is free if later; its
    latency counts from the *due* time, so a server that falls behind is charged for the wait (no
    coordinated omission)."""
    conns = [Connection("127.0.0.1", port) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))  # connected before timing
    loop = asyncio.get_running_loop()
    load = Load()
    due_at = schedule(len(requests), rate, arrivals) if rate > 0 else []
    if due_at:
        load.offered = len(requests) / max(due_at[-1], 1 / rate)
    start = loop.time() + 0.01
    finished = start

    async def send(conn: Connection, data: bytes, since: float) -> None:
        nonlocal finished
        try:
            status, _answer = await conn.request(data)
        except HttpError as exc:  # counted, and shown: the server dropped the connection
            load.errors += 1
            print(f"  request failed: {exc}", file=sys.stderr, flush=True)
            return
        finished = loop.time()
        load.latencies.append(finished - since)
        if status != 201:
            load.errors += 1

    shared = iter(requests)

    async def closed(conn: Connection) -> None:
        for data in shared:  # the next request not yet taken by any connection
            await send(conn, data, loop.time())

    async def opened(k: int) -> None:
        conn = conns[k]
        for i in range(k, len(requests), clients):
            due = start + due_at[i]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await send(conn, requests[i], due)

    await asyncio.gather(*(opened(k) if rate > 0 else closed(conns[k]) for k in range(clients)))
    load.elapsed = finished - start
    for conn in conns:
        conn.close()
    return load


def backends_cpu(plain_url: str, name: str) -> dict[int, float]:
    """CPU time (s) of each PostgreSQL backend serving the web app now (by its application_name)."""
    with psycopg.connect(plain_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,))]
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile, or PostgreSQL runs elsewhere
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def measured(title: str, port: int, requests: list[bytes], clients: int, rate: float, arrivals: str,
             server_pid: int, pg: tuple[str, str]) -> tuple[Load, dict[str, float]]:
    """One timed run with the CPU each side spent a request, printed.  ``pg``: the PostgreSQL URL and
    the web app's application_name there; a backend that ended during the run is not counted (the
    pool keeps its connections, so few do)."""
    load_before = os.getloadavg()[0]
    pg0, cpu0 = backends_cpu(*pg), (cpu_seconds(server_pid), time.process_time())
    load = asyncio.run(run_load(port, requests, clients, rate, arrivals))
    cpu1, pg1 = (cpu_seconds(server_pid), time.process_time()), backends_cpu(*pg)
    per = {"app": (cpu1[0] - cpu0[0]) / len(requests) * 1000, "client": (cpu1[1] - cpu0[1]) / len(requests) * 1000,
           "postgres": sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items()) / len(requests) * 1000}
    ms = [x * 1000 for x in load.latencies]
    achieved = len(ms) / load.elapsed if load.elapsed > 0 else 0.0
    print(f"{title}: {len(ms)} answered in {load.elapsed:.2f} s = {achieved:.0f} requests/s"
          + (f" (offered {load.offered:.0f} requests/s, {arrivals} arrivals)" if rate > 0 else "")
          + f", {load.errors} not 201; load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
    if ms:
        print(f"  latency ms{' (from the due time)' if rate > 0 else ''}: p50 {statistics.median(ms):.1f}  "
              f"p95 {pct(ms, 95):.1f}  p99 {pct(ms, 99):.1f}  max {max(ms):.1f}", flush=True)
    print(f"  CPU a request: web app {per['app']:.2f} ms, its PostgreSQL backends {per['postgres']:.2f} ms, "
          f"this client {per['client']:.2f} ms (total {sum(per.values()):.2f} ms: 2 cores give at most "
          f"{2000 / sum(per.values()):.0f} requests/s)", flush=True)
    per["rate"], per["p95"] = achieved, (pct(ms, 95) if ms else float("inf"))
    return load, per


async def cancellation_lag(port: int, requests: list[bytes], installments: list[str], plain_url: str,
                           schema: str) -> list[float]:
    """For each payment in turn: the time from its 201 to its reminder read ``cancelled`` (another connection)."""
    lags: list[float] = []
    conn = Connection("127.0.0.1", port)
    with psycopg.connect(plain_url, autocommit=True, options=f"-csearch_path={schema}") as db:
        for data, installment in zip(requests, installments, strict=True):
            status, answer = await conn.request(data)
            answered = time.perf_counter()
            assert status == 201, answer.decode(errors="replace")
            while True:
                row = db.execute("SELECT status FROM contact_attempts WHERE installment_id = %s",
                                 (installment,)).fetchone()
                if row is not None and row[0] == "cancelled":
                    lags.append(time.perf_counter() - answered)
                    break
                if time.perf_counter() - answered > 10:
                    raise SystemExit(f"installment {installment}: the reminder was not cancelled within 10 s")
    conn.close()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL (a schema of its own is used)")
    parser.add_argument("--clients", type=int, default=50, help="client connections (default 50)")
    parser.add_argument("--rate", type=float, default=300,
                        help="open loop: requests/s offered by the clients together (default 300); "
                             "0: closed loop only")
    parser.add_argument("--arrivals", choices=("poisson", "fixed"), default="poisson",
                        help="open loop: Poisson arrivals (default) or evenly spaced")
    parser.add_argument("--requests", type=int, default=6000, help="timed payments (default 6000)")
    parser.add_argument("--closed-requests", type=int, default=3000,
                        help="payments of the closed-loop run for the top throughput (default 3000; 0: none)")
    parser.add_argument("--warmup", type=int, default=300, help="payments before timing (default 300)")
    parser.add_argument("--lag-samples", type=int, default=200, help="payments for the cancellation lag")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url must be a PostgreSQL URL")
    if args.rate < 0:
        raise SystemExit("--rate must be 0 (closed loop) or a positive number of requests/s")
    for name in ("clients", "requests", "web_workers"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("closed_requests", "warmup", "lag_samples"):
        if getattr(args, name) < 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be 0 or more")
    closed_count = args.closed_requests if args.rate > 0 else 0
    total = args.warmup + closed_count + args.requests + args.lag_samples
    plain = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"api_bench_{os.getpid()}"
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{sep}options=-csearch_path%3D{schema}"
    db = Database(url)
    proc = None
    try:
        t0 = time.perf_counter()
        upgrade(db.engine)
        seed(db, total)
        with db.session() as session:
            _info, key = create_key(session, "bench", ["payments:write"], AT)
        print(f"seeded {total} loans with a planned reminder each in {time.perf_counter() - t0:.1f} s", flush=True)
        port = free_port()
        pool = -(-args.clients // args.web_workers)  # a connection for each request a worker has in flight
        proc = start_server(f"{url}&application_name={schema}", port, args.web_workers, pool)
        print(f"web app: {args.web_workers} uvicorn worker(s) on 127.0.0.1:{port}, {pool} database connections "
              f"each; {args.clients} client connections (HTTP/1.1 keep-alive, asyncio streams)", flush=True)
        runs = iter(range(total))

        def take(count: int) -> list[bytes]:
            return requests_bytes(port, key, [next(runs) for _ in range(count)])

        asyncio.run(run_load(port, take(args.warmup), args.clients))
        tops: dict[str, float] = {}
        if closed_count:
            _load, tops = measured("closed loop (top throughput)", port, take(closed_count), args.clients, 0,
                                   args.arrivals, proc.pid, (plain, schema))
        title = f"open loop at {args.rate:g} requests/s" if args.rate > 0 else "closed loop"
        load, per = measured(f"POST /api/v1/payments, {title}", port, take(args.requests), args.clients,
                             args.rate, args.arrivals, proc.pid, (plain, schema))
        if args.rate > 0:
            kept_up = per["rate"] >= 0.95 * load.offered
            met = args.rate >= 300 and kept_up and per["p95"] < 50 and load.errors == 0
            print(f"  target p95 < 50 ms at >= 300 requests/s (open loop, {args.clients} connections): "
                  f"{'met' if met else 'NOT met'} (p95 {per['p95']:.1f} ms, {per['rate']:.0f} of "
                  f"{load.offered:.0f} requests/s answered a second)", flush=True)
        else:
            print(f"  closed loop: {args.clients} requests always in flight, so latency = {args.clients} / "
                  f"throughput (Little's law); the target is read in the open loop (--rate)", flush=True)
        if tops:
            print(f"  closed-loop top throughput beside it: {tops['rate']:.0f} requests/s", flush=True)
        lag_numbers = [next(runs) for _ in range(args.lag_samples)]
        lags = [x * 1000 for x in asyncio.run(cancellation_lag(
            port, requests_bytes(port, key, lag_numbers), [f"I{n:07d}" for n in lag_numbers], plain, schema))]
        if lags:
            print(f"from the 201 to the reminder seen cancelled ({len(lags)} payments): p50 "
                  f"{statistics.median(lags):.2f} ms, max {max(lags):.2f} ms (first read after the answer)",
                  flush=True)
        with db.sessions() as s:
            payments = s.scalar(select(func.count()).select_from(Payment))
            covered = s.scalar(select(func.count()).select_from(Installment)
                               .where(Installment.covered_minor >= Installment.amount_due_minor))
            cancelled = s.scalar(select(func.count()).select_from(ContactAttempt)
                                 .where(ContactAttempt.status == "cancelled"))
        ok = payments == covered == cancelled == total
        print(f"check: {payments} payments, {covered} installments covered, {cancelled} reminders cancelled "
              f"of {total}: {'ok' if ok else 'MISMATCH'}", flush=True)
        if not ok:
            raise SystemExit(1)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        db.dispose()
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
