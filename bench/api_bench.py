"""Benchmark of ``POST /api/v1/payments`` under concurrent clients, on PostgreSQL.

    python bench/api_bench.py [--database-url URL] [--clients 50] [--requests 6000]
                              [--web-workers 2] [--warmup 300] [--lag-samples 200]

Data (not timed): ``--requests + --warmup + --lag-samples`` borrowers, each with one
loan, one overdue installment of $100.00 and one planned SMS reminder about it (what
a payment must cancel), written straight into a schema of its own
(``api_bench_<pid>``, dropped at the end), and an API key with ``payments:write``.

The bot's web app runs as it does in production: ``uvicorn --factory
bot.app:from_environment`` in its own processes (``--web-workers``), with its
access log off, on 127.0.0.1, each keeping a database connection open for every
request it has in flight (``BOT_DATABASE_POOL_SIZE`` = clients / workers).  The client is httpx with ``--clients`` requests in
flight at once, each paying one loan in full.

Timed:

1. **throughput and latency**: after ``--warmup`` requests (not counted), ``--requests``
   payments by ``--clients`` concurrent clients: requests per second, and latency
   p50/p95/p99/max as the client sees it (connect, TLS-less HTTP, the app, the
   transaction that writes the payment, settles the loan and cancels the reminder), and
   the CPU time the web app's processes and the client spent a request (from /proc);
2. **from the 201 to the cancellation**: ``--lag-samples`` payments one after another;
   right after each 201 the reminder's status is read from the database (a separate
   connection) until it is ``cancelled``: the time from the 201 to seeing it.  The
   cancellation is in the payment's own transaction, so it should be there at once.

It then checks every paid installment is covered and every reminder cancelled with
the reason ``paid``, and that each payment exists once.  Target on the 2-core
reference machine: p95 < 50 ms at >= 300 requests/s with 50 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
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


async def run_load(base: str, key: str, numbers: range, clients: int) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in numbers:
        queue.put_nowait(n)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                try:
                    response = await client.post("/api/v1/payments", json=body(n))
                except httpx.TransportError as exc:  # counted, and shown: the server dropped the connection
                    errors += 1
                    print(f"  request {n}: {type(exc).__name__}", file=sys.stderr, flush=True)
                    continue
                latencies.append(time.perf_counter() - start)
                if response.status_code != 201:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def cancellation_lag(base: str, key: str, numbers: range, plain_url: str, schema: str) -> list[float]:
    lags: list[float] = []
    with psycopg.connect(plain_url, autocommit=True, options=f"-csearch_path={schema}") as conn, \
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for n in numbers:
            response = client.post("/api/v1/payments", json=body(n))
            answered = time.perf_counter()
            assert response.status_code == 201, response.text
            while True:
                status = conn.execute("SELECT status FROM contact_attempts WHERE installment_id = %s",
                                      (f"I{n:07d}",)).fetchone()[0]
                if status == "cancelled":
                    lags.append(time.perf_counter() - answered)
                    break
                if time.perf_counter() - answered > 10:
                    raise SystemExit(f"payment {n}: the reminder was not cancelled within 10 s")
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL (a schema of its own is used)")
    parser.add_argument("--clients", type=int, default=50, help="requests in flight at once (default 50)")
    parser.add_argument("--requests", type=int, default=6000, help="timed payments (default 6000)")
    parser.add_argument("--warmup", type=int, default=300, help="payments before timing (default 300)")
    parser.add_argument("--lag-samples", type=int, default=200, help="payments for the cancellation lag")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url must be a PostgreSQL URL")
    total = args.warmup + args.requests + args.lag_samples
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
        proc = start_server(url, port, args.web_workers, pool)
        base = f"http://127.0.0.1:{port}"
        print(f"web app: {args.web_workers} uvicorn worker(s) on {base}, {pool} database connections each; "
              f"{args.clients} clients", flush=True)
        asyncio.run(run_load(base, key, range(0, args.warmup), args.clients))
        server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
        latencies, elapsed, errors = asyncio.run(
            run_load(base, key, range(args.warmup, args.warmup + args.requests), args.clients))
        server_cpu, client_cpu = cpu_seconds(proc.pid) - server_cpu, time.process_time() - client_cpu
        ms = [x * 1000 for x in latencies]
        rate = len(latencies) / elapsed
        print(f"POST /api/v1/payments: {len(latencies)} requests in {elapsed:.2f} s = {rate:.0f} requests/s, "
              f"{errors} not 201", flush=True)
        print(f"  latency ms: p50 {statistics.median(ms):.1f}  p95 {pct(ms, 95):.1f}  p99 {pct(ms, 99):.1f}  "
              f"max {max(ms):.1f}", flush=True)
        print(f"  CPU a request (less changed by other load than the rates): web app "
              f"{server_cpu / args.requests * 1000:.2f} ms, this client {client_cpu / args.requests * 1000:.2f} ms",
              flush=True)
        verdict = "met" if pct(ms, 95) < 50 and rate >= 300 else "NOT met"
        print(f"  target p95 < 50 ms at >= 300 requests/s: {verdict}", flush=True)
        lag_from = args.warmup + args.requests
        lags = [x * 1000 for x in cancellation_lag(base, key, range(lag_from, lag_from + args.lag_samples),
                                                  plain, schema)]
        print(f"from the 201 to the reminder seen cancelled ({len(lags)} payments): p50 {statistics.median(lags):.2f} "
              f"ms, max {max(lags):.2f} ms (first read after the answer)", flush=True)
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
