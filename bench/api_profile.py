"""One ``POST /api/v1/payments`` measured in-process, on PostgreSQL: statements and CPU time.

    python bench/api_profile.py [--database-url URL] [--requests 500] [--profile N]

The figures the load of the machine does not change: the SQL statements one payment
runs (counted by a SQLAlchemy ``before_cursor_execute`` listener, listed once) and
the CPU time of this process per request (``time.process_time``, the app and the
in-process client, no network).  The app is the bot's web app (``create_app``), the
client httpx over its ASGI transport; the data is api_bench.py's (one loan with an
overdue installment and a planned reminder per payment) in a schema of its own,
dropped at the end.  ``--profile N`` prints the N costliest functions (CPU) of a cProfile
run of 100 more payments, which also gives the Python function calls a request makes
(the app's thread-pool hop is made inline, so the handler is in the profile).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_bench import AT, DEFAULT_URL, body, seed  # noqa: E402
from bot.api.keys import create_key  # noqa: E402
from bot.app import create_app  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402


PROFILED = 100


def inline_thread_pool() -> None:
    """Run FastAPI's sync endpoints and dependencies on the event loop's thread (cProfile sees one thread)."""
    import fastapi.dependencies.utils
    import fastapi.routing

    async def inline(func, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return func(*args, **kwargs)

    fastapi.routing.run_in_threadpool = inline  # type: ignore[assignment]
    fastapi.dependencies.utils.run_in_threadpool = inline  # type: ignore[assignment]


async def post_all(app, key: str, numbers: range) -> None:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        for n in numbers:
            response = await client.post("/api/v1/payments", json=body(n))
            assert response.status_code == 201, response.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL (a schema of its own is used)")
    parser.add_argument("--requests", type=int, default=500, help="timed payments (default 500)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N costliest functions")
    args = parser.parse_args()
    plain = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"api_profile_{os.getpid()}"
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.database_url else "?"
    db = Database(f"{args.database_url}{sep}options=-csearch_path%3D{schema}")
    warm = 50
    try:
        upgrade(db.engine)
        seed(db, warm + 1 + args.requests + PROFILED)
        with db.session() as session:
            _info, key = create_key(session, "profile", ["payments:write"], AT)
        settings = Settings(database_url=db.url, public_base_url="http://test")
        app = create_app(settings, db, SystemClock())
        inline_thread_pool()
        asyncio.run(post_all(app, key, range(warm)))

        statements: Counter[str] = Counter()

        def count(_conn, _cursor, statement, _params, _context, _many) -> None:  # noqa: ANN001
            statements[" ".join(statement.split())[:150]] += 1

        event.listen(db.engine, "before_cursor_execute", count)
        asyncio.run(post_all(app, key, range(warm, warm + 1)))
        event.remove(db.engine, "before_cursor_execute", count)
        print(f"SQL statements for one payment: {sum(statements.values())}")
        for text, times in statements.items():
            print(f"  {times} x {text}")

        numbers = range(warm + 1, warm + 1 + args.requests)
        cpu, wall = time.process_time(), time.perf_counter()
        asyncio.run(post_all(app, key, numbers))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.requests} payments one after another: CPU {cpu / args.requests * 1000:.2f} ms a request "
              f"(this process: the app and the in-process client), wall {wall / args.requests * 1000:.2f} ms")
        # Python function calls: the same on a loaded machine as on an idle one
        profiled = range(warm + 1 + args.requests, warm + 1 + args.requests + PROFILED)
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
        profiler.enable()
        asyncio.run(post_all(app, key, profiled))
        profiler.disable()
        stats = pstats.Stats(profiler)
        print(f"Python function calls a request: {stats.total_calls // PROFILED}")  # type: ignore[attr-defined]
        if args.profile:
            stats.sort_stats("tottime").print_stats(args.profile)
            stats.dump_stats("/tmp/apiperf/last.prof")
    finally:
        db.dispose()
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
