"""Benchmark of ``bot import`` on a large portfolio.

    python bench/import_bench.py [--rows 1000000] [--database-url URL] [--reimport]

Generates the CSV files in a temp dir (not timed): borrowers and loans first,
then about ``--rows`` installment rows (9 per loan, one loan per borrower).
It uses ``bot.sample.write_portfolio`` when that module exists, else a small
generator of its own.  Then it runs ``bot import`` as child processes:
borrowers + loans (timed), installments (timed), and with ``--reimport`` the
installments file again (nothing changes; timed).

Figures per import: wall time and rows/s; the child's CPU time (user +
system, from ``os.wait4``) and rows per CPU-second, which stays meaningful on
a machine busy with other work; and memory: the peak resident set size
(``ru_maxrss`` from ``os.wait4``) of the child process, i.e. the whole
interpreter, SQLAlchemy and the importer, not just the importer's objects.

The default database is SQLite in the temp dir.  For PostgreSQL pass a URL
whose ``search_path`` names a schema, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_import``;
the schema is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

INSTALLMENTS_PER_LOAN = 9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="installment rows (default 1,000,000)")
    parser.add_argument("--database-url", help="default: SQLite in the temp dir")
    parser.add_argument("--reimport", action="store_true", help="also time a second, unchanged import")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite:///{work / 'bench.db'}"
        schema = _schema_of(url)
        borrowers = max(1, round(args.rows / INSTALLMENTS_PER_LOAN))
        started = time.perf_counter()
        files = _generate(work, borrowers, args.seed)
        rows = _count_rows(files["installments"])
        print(f"generated {borrowers:,} borrowers, {rows:,} installment rows in "
              f"{time.perf_counter() - started:.1f} s ({_source()})", flush=True)
        if schema:
            _pg_schema(url, schema, create=True)
        try:
            _init(url)
            people = _count_rows(files["borrowers"]) + _count_rows(files["loans"])
            run = _run_import(url, files["borrowers"], files["loans"])
            print(f"borrowers + loans: {run.rate(people)}", flush=True)
            run = _run_import(url, files["installments"])
            print(f"installments: {run.rate(rows)}", flush=True)
            if args.reimport:
                run = _run_import(url, files["installments"])
                print(f"installments again (nothing changes): {run.rate(rows)}", flush=True)
        finally:
            if schema:
                _pg_schema(url, schema, create=False)
    return 0


# --- data ----------------------------------------------------------------------


def _source() -> str:
    return "bot.sample" if importlib.util.find_spec("bot.sample") else "the bench's own generator"


def _generate(directory: Path, borrowers: int, seed: int) -> dict[str, Path]:
    if importlib.util.find_spec("bot.sample"):
        from bot.sample import write_portfolio  # type: ignore[import-not-found]

        return dict(write_portfolio(directory, borrowers=borrowers, seed=seed))
    return _own_portfolio(directory, borrowers, seed)


def _own_portfolio(directory: Path, borrowers: int, seed: int) -> dict[str, Path]:
    """Borrowers, one loan each, nine monthly installments per loan."""
    rng = random.Random(seed)
    areas = (212, 312, 415, 617, 713, 305, 206, 404)
    zones = ("America/New_York", "America/Chicago", "America/Los_Angeles")
    paths = {kind: directory / f"{kind}.csv" for kind in ("borrowers", "loans", "installments")}
    with (
        paths["borrowers"].open("w", newline="", encoding="utf-8") as bf,
        paths["loans"].open("w", newline="", encoding="utf-8") as lf,
        paths["installments"].open("w", newline="", encoding="utf-8") as inf,
    ):
        b, ln, ins = csv.writer(bf), csv.writer(lf), csv.writer(inf)
        b.writerow(["borrower_id", "full_name", "phone", "email", "locale", "timezone", "region",
                    "country", "consent_sms", "consent_voice", "consent_email"])
        ln.writerow(["loan_id", "borrower_id", "product", "principal", "currency", "opened_on"])
        ins.writerow(["installment_id", "loan_id", "due_date", "amount_due", "amount_paid"])
        start = date(2025, 1, 1)
        for n in range(1, borrowers + 1):
            bid, lid = f"B{n:07d}", f"L{n:07d}"
            phone = f"({rng.choice(areas)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
            b.writerow([bid, f"Person {n}", phone, f"person{n}@example.com", "en-US",
                        rng.choice(zones), "NY", "US", "yes", "yes", "no"])
            principal = rng.randint(500, 20000)
            opened = start + timedelta(days=rng.randint(0, 300))
            ln.writerow([lid, bid, "personal", f"{principal}.00", "USD", opened.isoformat()])
            due = round(principal / INSTALLMENTS_PER_LOAN, 2)
            for k in range(INSTALLMENTS_PER_LOAN):
                day = opened + timedelta(days=30 * (k + 1))
                paid = f"{due:.2f}" if k < 3 else ""
                ins.writerow([f"{lid}-{k + 1}", lid, day.isoformat(), f"{due:.2f}", paid])
    return paths


def _count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh) - 1


# --- running ---------------------------------------------------------------------


def _init(url: str) -> None:
    subprocess.run([sys.executable, "-m", "bot", "--database-url", url, "init"], check=True,
                   stderr=subprocess.DEVNULL)


@dataclass
class Run:
    """One ``bot import`` child process."""

    seconds: float  # wall time
    cpu: float  # user + system CPU time of the child
    peak_kib: int  # ru_maxrss of the child

    def rate(self, rows: int) -> str:
        return (
            f"{rows:,} rows in {self.seconds:.1f} s = {rows / self.seconds:,.0f} rows/s "
            f"(CPU {self.cpu:.1f} s = {rows / self.cpu:,.0f} rows per CPU-second); "
            f"peak RSS {self.peak_kib / 1024:,.0f} MB"
        )


def _run_import(url: str, *files: Path) -> Run:
    """Run ``bot import`` in a child process and measure it."""
    argv = [sys.executable, "-m", "bot", "--database-url", url, "import", "--json", *map(str, files)]
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        sys.stderr.write(errors.decode(errors="replace"))
        raise SystemExit(f"bot import exited with status {child.returncode}")
    if child.returncode == 1:
        rejected = errors.count(b"\n")
        print(f"  (some rows were rejected: {rejected} lines on stderr)")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def _schema_of(url: str) -> str | None:
    if not url.startswith("postgres"):
        return None
    options = parse_qs(urlsplit(url).query).get("options", [""])[0]
    for part in options.split():
        if part.startswith("-csearch_path="):
            return part.split("=", 1)[1].split(",")[0]
    raise SystemExit("--database-url: give the schema to use, e.g. ?options=-csearch_path%3Dbench_import")


def _pg_schema(url: str, schema: str, *, create: bool) -> None:
    from sqlalchemy import create_engine, text

    base = url.split("?", 1)[0]
    engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        if create:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
