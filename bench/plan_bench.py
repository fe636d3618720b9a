"""Benchmark of the planner (``bot plan``) on about a million installments.

    python bench/plan_bench.py [--installments 100000] [--source sample|dense]
                               [--database-url URL] [--profile] [--at ISO] [--single | --incremental]

Data (not timed, loaded by child processes):

* ``--source sample`` (default): ``bot.sample.write_portfolio`` writes a realistic
  portfolio of about ``--installments`` installments (about 9 per borrower, most of
  them paid or not due yet) and ``bot import`` loads it.  Only the installments
  whose due date is inside the policy's window (about one in ten) are planned.
* ``--source dense``: a direct bulk insert in which *every* installment is
  outstanding and inside the window (offsets D-3 .. D+22, two loans per borrower),
  so ``plan()`` really plans about a million installments.  The stress case.

Then, each in a fresh child process so the figures are its own:

1. a bare SQL scan: the planner's SELECT (same columns, join, filter and order),
   every row fetched in chunks and dropped;
2. ``plan()`` at a fixed instant (default 2026-11-28T15:00:00Z), recording every
   planned / deferred / blocked attempt and hand-off task, committed;
3. ``plan()`` again (the idempotent re-plan of the same day).

``--incremental`` runs instead, on SQLite *and* PostgreSQL (``--database-url``,
default the local test server) in the same run: the bare scan, a full pass, a full
pass again, an incremental pass after 1 % of the borrowers changed (an update of
their row: the triggers mark them dirty), and an incremental pass with nothing
changed; it prints full/scan and incremental/full ratios against the targets
(full <= 4x the scan, the 1 % pass <= 10 % of a full pass).

It prints the time, rows/s, the child's peak resident memory (``ru_maxrss``,
the whole interpreter) and the plan/scan ratio.  ``--profile`` runs the first
plan under cProfile and prints the top functions.

Default database: SQLite in a temp dir.  For PostgreSQL give a URL such as
``postgresql+psycopg://postgres@127.0.0.1:5432/test``: the script creates a
dedicated schema ``plan_bench_<pid>``, points ``search_path`` at it
(``options=-csearch_path%3D...``) and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

DEFAULT_AT = "2026-11-28T15:00:00+00:00"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHUNK = 10_000


# --- orchestration -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installments", type=int, default=100_000, help="default 100,000; 1000000 for the full size")
    parser.add_argument("--source", choices=("sample", "dense"), default="sample")
    parser.add_argument("--database-url", help="PostgreSQL base URL (default: SQLite in a temp dir)")
    parser.add_argument("--at", default=DEFAULT_AT, help=f"planning instant (default {DEFAULT_AT})")
    parser.add_argument("--profile", action="store_true", help="profile the first plan() with cProfile")
    parser.add_argument("--single", action="store_true", help="one plan() only, no re-plan (big dense runs)")
    parser.add_argument("--incremental", action="store_true",
                        help="full vs incremental passes on SQLite and PostgreSQL in the same run")
    parser.add_argument("--child", choices=("load-dense", "scan", "plan", "plan-full", "sequence"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if args.incremental:
        status = 0
        for database_url in (None, args.database_url or DEFAULT_PG):
            status |= _in_database(args, database_url)
        return status
    return _in_database(args, args.database_url)


def _in_database(args: argparse.Namespace, database_url: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as tmp:
        work = Path(tmp)
        schema = None
        if database_url:
            schema = f"plan_bench_{os.getpid()}"
            url = _with_schema(database_url, schema)
            _pg_schema(database_url, schema, create=True)
        else:
            url = f"sqlite:///{work / 'bench.db'}"
        try:
            return _run(args, url, work)
        finally:
            if schema:
                _pg_schema(database_url, schema, create=False)


def _run(args: argparse.Namespace, url: str, work: Path) -> int:
    at = datetime.fromisoformat(args.at).astimezone(UTC)
    _bot(url, "init")
    started = time.perf_counter()
    if args.source == "sample":
        from bot.sample import write_portfolio

        borrowers = max(1, round(args.installments / 9.13))
        files = write_portfolio(work / "csv", borrowers=borrowers, seed=1, as_of=at.date())
        generated = time.perf_counter() - started
        _bot(url, "import", *(str(files[k]) for k in ("borrowers", "loans", "installments", "payments", "contacts")),
             check_exit=(0, 1))
        print(f"data: bot.sample ({borrowers:,} borrowers) generated in {generated:.1f} s, "
              f"bot import in {time.perf_counter() - started - generated:.1f} s")
    else:
        _child_run(url, "load-dense", args)
        print(f"data: dense direct insert in {time.perf_counter() - started:.1f} s")
    counts = _counts(url, at)
    print(f"database: {counts['installments']:,} installments, {counts['outstanding_in_window']:,} outstanding "
          f"in the planning window ({_dialect(url)})")

    if args.incremental:
        return _incremental(url, args)
    scan = _child_run(url, "scan", args)
    first = _child_run(url, "plan", args, profile=args.profile)
    second = _child_run(url, "plan", args) if not args.single else None
    rows = scan["rows"]
    print()
    print(f"bare SQL scan : {scan['seconds']:7.2f} s  {rows / scan['seconds']:>10,.0f} rows/s  "
          f"peak {scan['maxrss_mb']:6.0f} MB  ({rows:,} rows)")
    for name, r in (("plan (first)", first), ("plan (again)", second))[:2 if second else 1]:
        print(f"{name:14}: {r['seconds']:7.2f} s  {r['selected'] / r['seconds']:>10,.0f} rows/s  "
              f"peak {r['maxrss_mb']:6.0f} MB  ratio to scan {r['seconds'] / scan['seconds']:5.1f}x")
        print(f"{'':16}{r['selected']:,} selected, {r['batches']} batches, statuses {r['by_status']}, "
              f"{r['tasks_created']:,} tasks created")
    if args.source == "dense":
        seconds = first["seconds"]
        print(f"dense target <= 60 s: {'met' if seconds <= 60 else f'NOT met, {seconds - 60:.0f} s over'} "
              f"({first['selected'] / seconds:,.0f} installments/s; 60 s needs "
              f"{first['selected'] / 60:,.0f}/s)")
    if first.get("profile"):
        print()
        print(first["profile"])
    return 0


def _incremental(url: str, args: argparse.Namespace) -> int:
    scan = _child_run(url, "scan", args)
    first = _child_run(url, "plan-full", args, profile=args.profile)
    seq = _child_run(url, "sequence", args)  # one process, as under ``bot run``
    print()
    print(f"bare SQL scan             : {scan['seconds']:7.2f} s  ({scan['rows']:,} rows)")
    for name, r in (("full pass, new process", first), ("full pass, warm", seq["full"]),
                    (f"1% changed ({seq['touched']:,} b.)", seq["changed"]), ("nothing changed", seq["nothing"])):
        print(f"{name:26}: {r['seconds']:7.2f} s  {r['selected']:,} installments, {r['batches']} batches")
    print(f"{'':28}peak memory {seq['maxrss_mb']:.0f} MB")
    ratio = seq["full"]["seconds"] / scan["seconds"]
    share = seq["changed"]["seconds"] / seq["full"]["seconds"]
    print(f"full pass / bare scan     : {ratio:5.1f}x  (target <= 4x: {'met' if ratio <= 4 else 'NOT met'})")
    print(f"1 % changed / full pass   : {share:6.1%}  (target <= 10 %: {'met' if share <= 0.10 else 'NOT met'})")
    print(f"nothing changed / full    : {seq['nothing']['seconds'] / seq['full']['seconds']:6.1%}  "
          f"({seq['nothing']['selected']} installments planned)")
    return 0


def _sequence(url: str, at: datetime) -> dict:
    """In one process: a full pass (warms the process up), a full pass, 1 % of the borrowers
    changed, an incremental pass, an incremental pass with nothing changed."""
    _plan(url, at, profile=False, mode=False)
    full = _plan(url, at + timedelta(minutes=5), profile=False, mode=False)
    touched = _touch(url, at + timedelta(minutes=6))
    changed = _plan(url, at + timedelta(minutes=10), profile=False, mode=True)
    nothing = _plan(url, at + timedelta(minutes=15), profile=False, mode=True)
    return {"full": full, "touched": touched["borrowers"], "changed": changed, "nothing": nothing}


def _bot(url: str, *args: str, check_exit: tuple[int, ...] = (0,)) -> None:
    proc = subprocess.run([sys.executable, "-m", "bot", "--database-url", url, *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode not in check_exit:
        raise SystemExit(f"bot {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def _child_run(url: str, what: str, args: argparse.Namespace, *, profile: bool = False) -> dict:
    argv = [sys.executable, __file__, "--child", what, "--url", url, "--at", args.at,
            "--installments", str(args.installments)]
    if profile:
        argv.append("--profile")
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def _pg_schema(url: str, schema: str, *, create: bool) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        if create:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        else:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _dialect(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgres") else "SQLite"


def _counts(url: str, at: datetime) -> dict[str, int]:
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.db.models import Installment
    from bot.policy import load_policy
    from bot.scheduler.planner import selection

    db = Database(url)
    try:
        with db.sessions() as s:
            total = s.scalar(select(func.count()).select_from(Installment))
            window = s.scalar(select(func.count()).select_from(selection(load_policy(), at).order_by(None).subquery()))
    finally:
        db.dispose()
    return {"installments": int(total or 0), "outstanding_in_window": int(window or 0)}


# --- children ------------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> int:
    at = datetime.fromisoformat(args.at).astimezone(UTC)
    if args.child == "load-dense":
        _load_dense(args.url, args.installments, at)
        return 0
    if args.child == "scan":
        result = _scan(args.url, at)
    elif args.child == "sequence":
        result = _sequence(args.url, at)
    else:
        result = _plan(args.url, at, profile=args.profile,
                       mode=False)
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


def _scan(url: str, at: datetime) -> dict:
    from bot.db import Database
    from bot.policy import load_policy
    from bot.scheduler.planner import fetch_all_hint, selection

    db = Database(url)
    stmt = selection(load_policy(), at)
    rows = 0
    try:
        with db.sessions() as s:
            started = time.perf_counter()
            fetch_all_hint(s.connection())  # the same query plan as the planner's
            result = s.execute(stmt.execution_options(yield_per=5000))
            for chunk in result.partitions():
                rows += len(chunk)
            seconds = time.perf_counter() - started
    finally:
        db.dispose()
    return {"rows": rows, "seconds": seconds}


def _touch(url: str, at: datetime) -> dict:
    """Change 1 % of the borrowers (an update of their row, as an import would)."""
    from sqlalchemy import select, update

    from bot.db import Database
    from bot.db.models import Borrower

    db = Database(url)
    try:
        with db.session() as s:
            ids = s.scalars(select(Borrower.id).order_by(Borrower.id)).all()
            chosen = random.Random(2).sample(list(ids), max(1, len(ids) // 100))
            for start in range(0, len(chosen), 1000):
                s.execute(update(Borrower).where(Borrower.id.in_(chosen[start:start + 1000])).values(updated_at=at))
    finally:
        db.dispose()
    return {"borrowers": len(chosen)}


def _plan(url: str, at: datetime, *, profile: bool, mode: bool | None = None) -> dict:
    from bot.db import Database
    from bot.policy import load_policy
    from bot.scheduler.contexts import default_loader
    from bot.scheduler.planner import default_check, history_since, plan

    policy = load_policy()
    # What a long-running ``bot run`` pays once per process, not per pass: the compliance
    # engine's modules and its default configuration (about 0.4 s).
    default_check(), default_loader(), history_since(at, policy)
    db = Database(url)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    try:
        with db.sessions() as s:
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            report = plan(s, at, policy=policy, limit=0, incremental_pass=bool(mode))
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - started
    finally:
        db.dispose()
    result = {"seconds": seconds, "selected": report.selected, "batches": report.batches,
              "by_status": dict(report.by_status), "tasks_created": report.tasks_created}
    if profiler:
        import io
        import pstats

        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(22)
        result["profile"] = out.getvalue()
    return result


def _load_dense(url: str, installments: int, at: datetime) -> None:
    """Every installment outstanding and due inside the window; two loans per borrower."""
    from sqlalchemy import insert

    from bot.db import Database
    from bot.db.models import Borrower, ContactAttempt, Consent, Installment, Loan

    rng = random.Random(1)
    today = at.date()
    borrowers = max(1, installments // 2)
    states = [("NY", "America/New_York", "+1212"), ("IL", "America/Chicago", "+1312"),
              ("CA", "America/Los_Angeles", "+1415"), ("AZ", "America/Phoenix", "+1602")]
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            for start in range(0, borrowers, CHUNK):
                b_rows, c_rows, l_rows, i_rows, h_rows = [], [], [], [], []
                for n in range(start, min(start + CHUNK, borrowers)):
                    bid = f"B{n:07d}"
                    if n % 10 == 9:
                        country, region, tz, phone, locale = "CN", "GD", None, f"+86138{n:08d}", "zh-CN"
                    else:
                        region, tz, prefix = states[n % len(states)]
                        country, locale, phone = "US", "en-US", f"{prefix}555{n % 10_000:04d}"
                        tz = tz if n % 3 == 0 else None
                    email = f"b{n}@example.com"
                    b_rows.append({"id": bid, "full_name": "Sample Person", "phone_e164": phone, "email": email,
                                   "locale": locale, "timezone": tz, "region": region, "country": country,
                                   "cease_communication_at": None, "created_at": at, "updated_at": at})
                    for channel in ("sms", "voice", "email"):
                        c_rows.append({"borrower_id": bid, "channel": channel,
                                       "address": email if channel == "email" else phone, "granted": True,
                                       "opted_out_at": at - timedelta(days=3) if (n % 50 == 0 and channel == "sms")
                                       else None, "opt_out_source": None, "address_flag": None,
                                       "updated_at": at})
                    for k in range(2):
                        lid = f"L{n:07d}{k}"
                        l_rows.append({"id": lid, "borrower_id": bid, "product": "personal",
                                       "principal_minor": 100_000, "currency": "CNY" if country == "CN" else "USD",
                                       "opened_on": date(2026, 1, 1), "created_at": at, "updated_at": at})
                        offset = rng.randint(-3, 22)
                        paid = rng.choice((0, 0, 0, 5_000))  # a statement and no payments: covered = paid
                        i_rows.append({"id": f"I{n:07d}{k}", "loan_id": lid, "due_date": today - timedelta(days=offset),
                                       "amount_due_minor": 20_000, "amount_paid_minor": paid, "covered_minor": paid,
                                       "created_at": at, "updated_at": at})
                    if n % 7 == 0:
                        h_rows.append({"dedupe_key": f"hist:{n}", "borrower_id": bid, "loan_id": f"L{n:07d}0",
                                       "installment_id": None, "channel": "voice", "source": "import",
                                       "status": "done", "outcome": "voicemail",
                                       "occurred_at": at - timedelta(days=1 + n % 5), "created_at": at,
                                       "updated_at": at})
                conn.execute(insert(Borrower), b_rows)
                conn.execute(insert(Consent), c_rows)
                conn.execute(insert(Loan), l_rows)
                conn.execute(insert(Installment), i_rows)
                if h_rows:
                    conn.execute(insert(ContactAttempt), h_rows)
        if db.dialect == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
        else:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        db.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
