"""Benchmark of the dispatcher: SMS through the in-process Twilio sandbox, email through aiosmtpd.

    python bench/dispatch_bench.py [--sms 2000] [--emails 2000] [--database-url URL]
                                   [--baseline 300] [--profile] [--smtp-in-process]

Data (not timed): ``--sms`` borrowers with an installment due in three days (the
policy's D-3 SMS) and ``--emails`` with one due today (the D0 email), all with
consent, planned by the real planner at a fixed instant (Saturday 10:00 in New
York, inside contact hours).  Rate limits are off: this measures the dispatcher,
not the provider's limits.

Timed, each on its own:

1. ``dispatch``: one dispatch pass with only the SMS adapter (the real
   :class:`~bot.channels.sms.SmsChannel`, async twilio client, against
   :class:`~bot.sandbox.SandboxServer` running in this process), then one with
   only the email adapter (the real :class:`~bot.channels.email.EmailChannel`
   against an aiosmtpd server in a child process, as a relay is never inside the
   bot; ``--smtp-in-process`` runs it in this process instead).  Everything a real
   pass does is in the figure: claims with leases, the send-time compliance check,
   composing (Jinja2 + Babel), ``sending`` marks, the sends, the recording;
2. ``plain loop``: the official twilio client's ``messages.create`` one message
   after another (``--baseline`` messages), and ``smtplib`` sending one message
   after another over one connection: no database, no checks.

It prints messages per second for each and the ratio dispatcher / plain loop, and
checks that the sandbox and the SMTP server received exactly one message per
attempt.  Targets on the 2-core reference machine: 300 SMS/s and 200 emails/s.

Default database: SQLite in a temp dir.  For PostgreSQL give a URL such as
``postgresql+psycopg://postgres@127.0.0.1:5432/test``: a schema
``dispatch_bench_<pid>`` is created and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402

from bot.clock import FixedClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import Borrower, Consent, ContactAttempt, Installment, Loan  # noqa: E402

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # Saturday 10:00 in New York
SENDER = "+15005550006"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sms", type=int, default=2000, help="SMS attempts (default 2000)")
    parser.add_argument("--emails", type=int, default=2000, help="email attempts (default 2000)")
    parser.add_argument("--baseline", type=int, default=300, help="messages per plain loop (default 300)")
    parser.add_argument("--database-url", help="PostgreSQL base URL (default: SQLite in a temp dir)")
    parser.add_argument("--profile", action="store_true", help="profile the dispatch passes (cProfile)")
    parser.add_argument("--smtp-in-process", action="store_true",
                        help="run aiosmtpd in this process (default: a child process, as a real relay would be)")
    parser.add_argument("--email-pool", type=int, default=None,
                        help="SMTP sessions of the email adapter (default: the adapter's default)")
    parser.add_argument("--smtp-server", nargs=2, metavar=("PORT", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smtp_server:
        return smtp_server(int(args.smtp_server[0]), Path(args.smtp_server[1]))

    from bot.sandbox import Sandbox, SandboxServer

    with database(args.database_url) as db, SandboxServer(Sandbox(clock=FixedClock(AT))) as server, \
            smtp_sink(args.smtp_in_process) as smtp:
        settings = load_settings(
            database_url=db.url, twilio_api_base_url=server.base_url, twilio_from_numbers=[SENDER],
            smtp_port=smtp.port, rate_limits_enabled=False, public_base_url="http://127.0.0.1:9",
        )
        started = time.perf_counter()
        seed(db, args.sms, args.emails)
        planned = plan(db)
        print(f"data: {args.sms} SMS + {args.emails} email attempts planned in {time.perf_counter() - started:.1f} s "
              f"({planned}) on {db.dialect}")

        sms_rate = run_pass(db, settings, "sms", args.sms, args.profile)
        sent = count_sandbox(server)
        email_rate = run_pass(db, settings, "email", args.emails, args.profile, pool=args.email_pool)
        received = sum(smtp.received().values())
        duplicates = sum(n - 1 for n in smtp.message_ids().values() if n > 1)
        print(f"check: sandbox holds {sent} messages for {args.sms} SMS attempts; "
              f"SMTP server received {received} for {args.emails} emails ({duplicates} duplicate Message-IDs)")

        sms_plain = plain_twilio(server, args.baseline)
        email_plain = plain_smtplib(smtp.port, args.baseline)
        print()
        print(f"{'':8} {'dispatcher':>14} {'plain loop':>14} {'ratio':>7} {'target':>8}")
        print(f"{'SMS':8} {sms_rate:>10.0f} /s {sms_plain:>10.0f} /s {sms_rate / sms_plain:>6.1f}x {'300/s':>8}")
        print(f"{'email':8} {email_rate:>10.0f} /s {email_plain:>10.0f} /s {email_rate / email_plain:>6.1f}x "
              f"{'200/s':>8}")
        ok = sent == args.sms and received == args.emails and duplicates == 0
        return 0 if ok else 1


# --- the SMTP server -------------------------------------------------------------------------


class _ChildSink:
    """aiosmtpd in a child process: each accepted message appends "To Message-ID" to a log file."""

    def __init__(self, port: int, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.port, self.log, self.process = port, log, process

    def _lines(self) -> list[list[str]]:
        return [line.split() for line in self.log.read_text().splitlines() if line.strip()]

    def received(self) -> Counter[str]:
        return Counter(parts[0] for parts in self._lines())

    def message_ids(self) -> Counter[str]:
        return Counter(parts[1] for parts in self._lines())


@contextmanager
def smtp_sink(in_process: bool) -> Iterator[Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dispatch_support import SmtpSink, free_port

    if in_process:
        with SmtpSink() as sink:
            yield sink
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-smtp-") as tmp:
        log = Path(tmp) / "received.log"
        log.touch()
        process = subprocess.Popen([sys.executable, __file__, "--smtp-server", str(port), str(log)])
        try:
            deadline = time.monotonic() + 15
            while True:  # readiness, not a fixed wait
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the SMTP server did not start") from None
                    time.sleep(0.05)
            yield _ChildSink(port, log, process)
        finally:
            process.terminate()
            process.wait(timeout=10)


def smtp_server(port: int, log: Path) -> int:
    """The child: aiosmtpd until terminated, logging each message's recipient and Message-ID."""
    import signal
    import threading

    from aiosmtpd.controller import Controller

    out = log.open("a", buffering=1)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message_id = "-"
            for line in envelope.content.split(b"\r\n"):
                if not line:
                    break
                if line[:11].lower() == b"message-id:":
                    message_id = line[11:].strip().decode()
            for rcpt in envelope.rcpt_tos:
                out.write(f"{rcpt} {message_id}\n")
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


# --- data ------------------------------------------------------------------------------------


@contextmanager
def database(base_url: str | None) -> Iterator[Database]:
    if base_url is None:
        with tempfile.TemporaryDirectory(prefix="dispatch-bench-") as tmp:
            db = Database(f"sqlite:///{tmp}/bench.db")
            upgrade(db.engine)
            try:
                yield db
            finally:
                db.dispose()
        return
    import psycopg

    schema = f"dispatch_bench_{os.getpid()}"
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base_url else "?"
    db = Database(f"{base_url}{sep}options=-csearch_path%3D{schema}")
    try:
        upgrade(db.engine)
        yield db
    finally:
        db.dispose()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def seed(db: Database, sms: int, emails: int, *, at: datetime = AT, today: date | None = None) -> None:
    """Borrowers with consent and one installment each: due in 3 days (SMS) or today (email),
    created at ``at``; ``today`` is the borrowers' calendar day (default ``at``'s UTC date)."""
    borrowers, consents, loans, installments = [], [], [], []
    today = today or at.date()
    for n in range(sms + emails):
        bid = f"B{n:06d}"
        phone, email = f"+1212{n:07d}", f"borrower{n}@example.com"
        borrowers.append({"id": bid, "full_name": f"Borrower {n}", "phone_e164": phone, "email": email,
                          "locale": "en-US", "timezone": None, "region": "NY", "country": "US",
                          "created_at": at, "updated_at": at})
        for channel, address in (("sms", phone), ("email", email)):
            consents.append({"borrower_id": bid, "channel": channel, "address": address, "granted": True,
                             "updated_at": at})
        loans.append({"id": f"L{n:06d}", "borrower_id": bid, "product": "personal", "principal_minor": 100_000,
                      "currency": "USD", "opened_on": date(2026, 1, 1), "created_at": at, "updated_at": at})
        due = today + timedelta(days=3) if n < sms else today
        installments.append({"id": f"I{n:06d}", "loan_id": f"L{n:06d}", "due_date": due,
                             "amount_due_minor": 12_345, "amount_paid_minor": 0, "created_at": at, "updated_at": at})
    with db.session() as s:
        for model, rows in ((Borrower, borrowers), (Consent, consents), (Loan, loans), (Installment, installments)):
            s.execute(insert(model), rows)


def plan(db: Database) -> dict[str, int]:
    from bot.policy import load_policy
    from bot.scheduler.planner import plan as run_plan

    with db.sessions() as s:
        report = run_plan(s, AT, policy=load_policy(), limit=0)
    return dict(report.by_channel)


# --- timed passes ------------------------------------------------------------------------------


def run_pass(db: Database, settings: object, channel: str, expected: int, profile: bool,
             pool: int | None = None) -> float:
    # What a pass imports lazily (compose, the reply effects the voice session rows use) is
    # imported once by a running service, not per pass: import it before the clock starts.
    import bot.messages  # noqa: F401
    import bot.replies  # noqa: F401
    from bot.dispatch import DispatchOptions, dispatch_once

    if channel == "sms":
        from bot.channels.sms import SmsChannel

        adapter = SmsChannel(settings)  # type: ignore[arg-type]
    else:
        from bot.channels.email import EmailChannel

        adapter = EmailChannel(settings, **({"pool_size": pool} if pool else {}))  # type: ignore[arg-type]

    async def go() -> object:
        try:
            return await dispatch_once(db, settings, clock=FixedClock(AT), channels={channel: adapter},
                                       options=DispatchOptions.from_settings(settings, worker_id="bench"))
        finally:
            await adapter.aclose()

    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    report = asyncio.run(go())
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    sent = report.total("sent")  # type: ignore[attr-defined]
    with db.sessions() as s:
        recorded = s.scalar(select(func.count()).select_from(ContactAttempt).where(
            ContactAttempt.channel == channel, ContactAttempt.status == "sent"))
    print(f"dispatch {channel}: {sent} sent ({recorded} recorded) in {elapsed:.2f} s = {sent / elapsed:.0f}/s; "
          f"{report.to_json()['totals']}")  # type: ignore[attr-defined]
    if sent != expected or recorded != expected:
        print(f"  !! expected {expected}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return sent / elapsed


def count_sandbox(server: object) -> int:
    return len(server.sandbox.messages())  # type: ignore[attr-defined]


def plain_twilio(server: object, n: int) -> float:
    """The official client, one message after another."""
    client = server.twilio_client()  # type: ignore[attr-defined]
    started = time.perf_counter()
    for i in range(n):
        client.messages.create(to=f"+1313{i:07d}", from_=SENDER, body=f"Plain loop message {i}. Reply STOP to opt out.",
                               status_callback="http://127.0.0.1:9/twilio/status")
    rate = n / (time.perf_counter() - started)
    print(f"plain twilio loop: {n} in {n / rate:.2f} s = {rate:.0f}/s")
    return rate


def plain_smtplib(port: int, n: int) -> float:
    """smtplib over one connection, one message after another (multipart like the adapter's)."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(n):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "reminders@example.com", f"plain{i}@example.com", "Hi"
            message.set_content(f"Plain loop message {i}.")
            message.add_alternative(f"<p>Plain loop message {i}.</p>", subtype="html")
            smtp.send_message(message)
    rate = n / (time.perf_counter() - started)
    print(f"plain smtplib loop: {n} in {n / rate:.2f} s = {rate:.0f}/s")
    return rate


if __name__ == "__main__":
    raise SystemExit(main())
