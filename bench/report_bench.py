"""Benchmark of the effectiveness report (``bot report``): a month by channel.

    python bench/report_bench.py [--installments 100000] [--months 12]
                                 [--database-url URL] [--by channel ...] [--console]

Data (not timed): a direct bulk insert of ``--installments`` installments, 12 per
borrower (one loan each, monthly, the last due in the reported month), over
``--months`` months of history in four zones and three currencies:

* 60 % paid two days before the due date, 30 % paid 1-40 days late, 10 % never (and
  then none of the loan's later installments either, so payments and ``covered_minor``
  agree with the ledger's oldest-first allocation);
* an email reminder at D-3 for half of them; an SMS at D+1 (arm A or B) for every
  installment still open then, delivered 90 %; a call at D+5 for those still open,
  conversation 30 %, connected 20 %, voicemail 30 %, failed 20 %, with a promise
  for half of the conversations;
* ``covered_minor`` set as the ledger would (paid in full or not at all).

Then, in a fresh child process, ``build_report`` for the last month grouped by
``--by`` (default channel) is timed (twice: cold and warm caches), with the child's
peak resident memory (``ru_maxrss``).  The target for 1,000,000 installments with a
year of history on PostgreSQL is under 10 s.

Default database: SQLite in a temp dir.  For PostgreSQL give a URL such as
``postgresql+psycopg://postgres@127.0.0.1:5432/test``: the script works in a schema
of its own (``report_bench_<pid>``) and drops it at the end; with ``--schema NAME``
it keeps that schema, and a later run with the same name reuses its data (drop it
yourself: ``DROP SCHEMA NAME CASCADE``).
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
from datetime import time as dtime
from pathlib import Path

CHUNK = 20_000
ZONES = (("America/New_York", "en-US", "USD", 10_000), ("America/Chicago", "en-US", "USD", 10_000),
         ("Asia/Seoul", "ko-KR", "KRW", 100_000), ("Asia/Shanghai", "zh-CN", "CNY", 1_000))
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installments", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12, help="months of history (installments per borrower)")
    parser.add_argument("--database-url", help="PostgreSQL base URL (default: SQLite in a temp dir)")
    parser.add_argument("--by", action="append", default=None, help="grouping (repeat; default channel)")
    parser.add_argument("--last-month", default="2026-11-01", help="first day of the reported month")
    parser.add_argument("--schema", help="PostgreSQL: work in this schema and keep it (data loaded once, reused)")
    parser.add_argument("--console", action="store_true",
                        help="also time the console's Effectiveness page (last 7 days of the month, by channel) "
                             "and the dashboard's promise card")
    parser.add_argument("--child", choices=("load", "report", "console"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        schema, load = None, True
        if args.database_url:
            schema = args.schema or f"report_bench_{os.getpid()}"
            url = f"{args.database_url}{'&' if '?' in args.database_url else '?'}options=-csearch_path%3D{schema}"
            load = _pg_schema(args.database_url, schema, create=True)
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        try:
            if load:
                subprocess.run([sys.executable, "-m", "bot", "--database-url", url, "init"], check=True,
                               stdout=subprocess.DEVNULL)
                started = time.perf_counter()
                counts = _child_run(url, "load", args)
                print(f"data: {counts['installments']:,} installments, {counts['payments']:,} payments, "
                      f"{counts['contacts']:,} contacts, {counts['promises']:,} promises over {args.months} "
                      f"months inserted in {time.perf_counter() - started:.1f} s "
                      f"({'PostgreSQL' if url.startswith('postgres') else 'SQLite'})")
            else:
                print(f"data: reused from schema {schema}")
            for name in ("cold", "warm"):
                r = _child_run(url, "report", args)
                print(f"report {args.last_month} + 1 month by {','.join(args.by or ['channel'])} ({name}): "
                      f"{r['seconds']:.2f} s, peak RSS {r['maxrss_mb']:.0f} MB, {r['groups']} groups, "
                      f"{r['contacts']:,} contacts, {r['payments']:,} payments")
            for name in ("cold", "warm") if args.console else ():
                r = _child_run(url, "console", args)
                print(f"console ({name}): Effectiveness page {r['from']} to {r['to']} by channel {r['page']:.2f} s, "
                      f"dashboard promise card {r['card']:.2f} s, peak RSS {r['maxrss_mb']:.0f} MB")
        finally:
            if schema and not args.schema:
                _pg_schema(args.database_url, schema, create=False)
    return 0


def _child_run(url: str, what: str, args: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--child", what, "--url", url, "--installments", str(args.installments),
            "--months", str(args.months), "--last-month", args.last_month]
    for by in args.by or ["channel"]:
        argv += ["--by", by]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pg_schema(url: str, schema: str, *, create: bool) -> bool:
    """Create (True) or drop the schema; False when it exists already (its data is reused)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        if not create:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return False
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
            return False
        conn.execute(f'CREATE SCHEMA "{schema}"')
        return True


def _child(args: argparse.Namespace) -> int:
    from bot.db import Database

    db = Database(args.url)
    try:
        result = {"load": _load, "report": _report, "console": _console}[args.child](db, args)
    finally:
        db.dispose()
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


def _report(db: object, args: argparse.Namespace) -> dict:
    from bot.effectiveness import Costs, Window, build_report

    start = date.fromisoformat(args.last_month)
    end = (start + timedelta(days=32)).replace(day=1)
    window = Window(start, end, "America/New_York")
    began = time.perf_counter()
    with db.session() as session:  # type: ignore[attr-defined]
        report = build_report(session, window, args.by or ["channel"], Costs(5, 10, 1, "USD"))
    seconds = time.perf_counter() - began
    totals = report["totals"]
    return {"seconds": seconds, "groups": len(report["groups"]), "contacts": totals["contacts"],
            "payments": totals["payments"]}


def _console(db: object, args: argparse.Namespace) -> dict:
    """The console's Effectiveness page (its data: report, funnel, trend) for the month's last
    seven days by channel, and the dashboard's promise card for the same days."""
    from bot.config import load_settings
    from bot.console import effectiveness
    from bot.console.filters import EffectivenessFilters, default_report_window

    last = (date.fromisoformat(args.last_month) + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    start, end = default_report_window(last)
    settings = load_settings(None, default_timezone="America/New_York")
    began = time.perf_counter()
    with db.session() as session:  # type: ignore[attr-defined]
        effectiveness.page(session, settings, EffectivenessFilters(start, end, "channel"), policy=None, today=last)
    page = time.perf_counter() - began
    began = time.perf_counter()
    with db.session() as session:  # type: ignore[attr-defined]
        effectiveness.promise_card(session, settings, last)
    return {"from": start.isoformat(), "to": end.isoformat(), "page": page, "card": time.perf_counter() - began}


def _months_before(day: date, n: int) -> date:
    month = day.year * 12 + day.month - 1 - n
    return date(month // 12, month % 12 + 1, 1)


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, dtime(hour), UTC)


def _load(db: object, args: argparse.Namespace) -> dict:
    from sqlalchemy import insert

    from bot.db.models import (
        Borrower,
        ContactAttempt,
        Installment,
        Loan,
        Payment,
        Promise,
    )

    rng = random.Random(7)
    last = date.fromisoformat(args.last_month)
    first_month = _months_before(last, args.months - 1)
    n_borrowers = max(1, args.installments // args.months)
    rows: dict[str, list[dict]] = {k: [] for k in ("b", "l", "i", "p", "c", "pr")}
    counts = dict.fromkeys(("installments", "payments", "contacts", "promises"), 0)
    tables = {"b": Borrower, "l": Loan, "i": Installment, "p": Payment, "c": ContactAttempt, "pr": Promise}

    def flush(force: bool = False) -> None:
        with db.session() as s:  # type: ignore[attr-defined]
            for key in ("b", "l", "i", "p", "c", "pr"):
                if rows[key] and (force or len(rows[key]) >= CHUNK or key in ("b", "l")):
                    s.execute(insert(tables[key]), rows[key])
                    rows[key] = []

    for b in range(n_borrowers):
        zone, locale, currency, amount = ZONES[b % len(ZONES)]
        bid, lid = f"B{b:07d}", f"L{b:07d}"
        arm = "A" if rng.random() < 0.5 else "B"
        rows["b"].append({"id": bid, "full_name": "Bench Person", "phone_e164": f"+1555{b:07d}", "email": None,
                          "locale": locale, "timezone": zone, "region": None, "country": "US",
                          "created_at": T0, "updated_at": T0})
        rows["l"].append({"id": lid, "borrower_id": bid, "product": "bench", "principal_minor": amount * args.months,
                          "currency": currency, "opened_on": _months_before(first_month, 1),
                          "paid_stated_minor": None, "paid_stated_at": None, "credit_minor": 0,
                          "created_at": T0, "updated_at": T0})
        defaulted = False
        for k in range(args.months):
            m = _months_before(last, args.months - 1 - k)
            due = m.replace(day=1 + b % 28)
            iid = f"I{b:07d}{k:02d}"
            luck = rng.random() if not defaulted else 1.0  # after a missed installment nothing more is paid
            defaulted = defaulted or luck >= 0.9
            paid_day = due - timedelta(days=2) if luck < 0.6 else (
                due + timedelta(days=rng.randint(1, 40)) if luck < 0.9 else None)
            paid = paid_day is not None and paid_day < last + timedelta(days=31)
            rows["i"].append({"id": iid, "loan_id": lid, "due_date": due, "amount_due_minor": amount,
                              "amount_paid_minor": 0, "covered_minor": amount if paid else 0,
                              "created_at": T0, "updated_at": T0})
            counts["installments"] += 1
            if paid:
                rows["p"].append({"id": f"P{iid}", "loan_id": lid, "paid_at": _at(paid_day, 15),  # type: ignore[arg-type]
                                  "amount_minor": amount, "created_at": T0, "updated_at": T0})
                counts["payments"] += 1

            def contact(day: date, channel: str, step: str, outcome: str, hour: int,
                        ids: tuple[str, str, str, str] = (bid, lid, iid, arm)) -> None:
                instant = _at(day, hour)
                rows["c"].append({"dedupe_key": f"c{counts['contacts']}", "borrower_id": ids[0],
                                  "loan_id": ids[1], "installment_id": ids[2], "channel": channel,
                                  "source": "planner", "status": "sent", "outcome": outcome,
                                  "step": f"{ids[3]}:{step}:{channel}", "occurred_at": instant, "sent_at": instant,
                                  "tries": 1, "created_at": instant, "updated_at": instant})
                counts["contacts"] += 1

            if rng.random() < 0.5:
                contact(due - timedelta(days=3), "email", "D-3", "delivered", 14)
            if paid_day is None or paid_day > due + timedelta(days=1):
                contact(due + timedelta(days=1), "sms", "D+1", "delivered" if rng.random() < 0.9 else "failed", 15)
            if paid_day is None or paid_day > due + timedelta(days=5):
                r = rng.random()
                outcome = "conversation" if r < 0.3 else "connected" if r < 0.5 else "voicemail" if r < 0.8 else "failed"
                contact(due + timedelta(days=5), "voice", "D+5", outcome, 16)
                if outcome == "conversation" and rng.random() < 0.5:
                    kept = paid_day is not None and paid_day <= due + timedelta(days=12)
                    rows["pr"].append({"borrower_id": bid, "loan_id": lid, "promised_date": due + timedelta(days=12),
                                       "amount_minor": amount, "status": "kept" if kept else "broken",
                                       "source": "voice", "created_at": _at(due + timedelta(days=5), 16),
                                       "resolved_at": _at(due + timedelta(days=13), 5)})
                    counts["promises"] += 1
        if len(rows["i"]) >= CHUNK:
            flush()
    flush(force=True)
    with db.session() as s:  # type: ignore[attr-defined]
        if s.bind.dialect.name == "postgresql":
            from sqlalchemy import text

            s.execute(text("ANALYZE"))
    return counts


if __name__ == "__main__":
    sys.exit(main())
