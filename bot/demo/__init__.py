"""The demo: a simulated week of the whole bot on a local SQLite database (docs/demo.md).

``bot demo`` (and ``./bootstrap.sh demo``) runs :class:`Demo`:

1. a fresh ``DIR/bot.db`` and a reproducible sample portfolio, imported
   (:mod:`bot.sample`, :mod:`bot.importer`);
2. the world (:mod:`bot.demo.world`): the bot's webhooks app, the Twilio sandbox
   and a mail server, all on 127.0.0.1 and one manual clock;
3. the cast (:mod:`bot.demo.personas`): what each borrower does when written to,
   as sandbox personas on their numbers;
4. the week (:mod:`bot.demo.week`): each day the real planner and dispatcher at a
   few instants, the phones' replies reaching the bot's webhooks, payments
   arriving through the lender's payment feed;
5. the report (:mod:`bot.demo.report`): per day what the bot sent and what the
   borrowers did, counts only, then where to look.

Voice calls and the supervisor console plug in through
:mod:`bot.demo.extensions`.  Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import logging
import time as _time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import SystemClock
from bot.compliance import load_compliance_config
from bot.db import Database
from bot.db.models import Borrower, Consent, Installment, Loan
from bot.demo.extensions import DEFAULT_EXTENSIONS, DemoExtension
from bot.demo.personas import SHOWCASE_ROUND, Cast, Kind, Reachable, cast, persona_for
from bot.demo.report import DayStats, notable_borrowers, print_days, promise_states, totals
from bot.demo.week import Week
from bot.demo.world import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, World
from bot.importer import import_files
from bot.policy import Policy, load_policy
from bot.sample import write_portfolio

__all__ = ["Demo", "DemoExtension", "DemoOptions", "DemoResult"]

#: Twilio and SMTP codes the summary names.
FAILURE_NAMES = {
    "21211": "invalid number",
    "21614": "landline, no SMS",
    "21610": "the carrier had already confirmed the STOP",
    "30003": "undelivered, phone unreachable",
}


@dataclass(frozen=True)
class DemoOptions:
    directory: Path = Path("demo")
    borrowers: int = 300
    days: int = 7
    seed: int = 7
    start: date | None = None   # first simulated day (UTC); default today
    config_file: str | None = None
    policy_file: Path | None = None


@dataclass
class DemoResult:
    directory: Path
    database_url: str
    start: date
    days: list[DayStats]
    cast: Cast
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the week
    closing: list[str] = field(default_factory=list)

    @property
    def total(self) -> DayStats:
        return totals(self.days)


class Demo:
    def __init__(self, options: DemoOptions, *, out: Console, err: Console,
                 extensions: Sequence[DemoExtension] | None = None) -> None:
        self.options = options
        self.out = out
        self.err = err
        self.extensions = list(extensions) if extensions is not None else [cls() for cls in DEFAULT_EXTENSIONS]
        self._step = 0

    def step(self, text: str) -> None:
        self._step += 1
        self.err.print(f"[bold]demo {self._step}:[/bold] ", end="")
        self.err.print(text, markup=False)

    def run(self, *, show_portfolio: Callable[[Session, date], None] | None = None) -> DemoResult:
        """The whole demo; ``show_portfolio(session, day)`` prints the imported portfolio (the CLI's summary)."""
        began = _time.perf_counter()
        opts = self.options
        start_day = opts.start or SystemClock().now().date()
        with World(opts.directory, datetime.combine(start_day, time(0), UTC), opts.config_file) as world:
            self._prepare(world, start_day, show_portfolio)
            self.step("start the bot's webhooks, the Twilio sandbox and a mail server (127.0.0.1 only)")
            world.start_servers()
            policy = load_policy(opts.policy_file or world.settings.policy_file,
                                 templates_dir=world.settings.templates_dir)
            compliance = (load_compliance_config(world.settings.compliance_file)
                          if world.settings.compliance_file else None)
            self.step("cast the borrowers: what each one does when the bot writes")
            the_cast, phones, emails = self._cast(world, policy, start_day)
            for extension in self.extensions:
                extension.setup(world)
            world.open_channels()

            self.step(f"simulate {_plural(opts.days, 'day')} from {start_day.isoformat()}")
            week = Week(world, policy, compliance, the_cast, phones, emails, extensions=self.extensions)
            days = self._simulate(week, start_day)
            result = DemoResult(opts.directory, world.database_url, start_day, days, the_cast,
                                timings=dict(week.seconds))
            self.out.print()
            print_days(self.out, days, sorted({k for d in days for k in d.extra}))
            with world.db.sessions() as session:
                self._print_summary(result, session, world)
            for extension in self.extensions:
                result.closing.extend(extension.closing_lines(world))
        result.seconds = _time.perf_counter() - began
        return result

    def _prepare(self, world: World, start_day: date,
                 show_portfolio: Callable[[Session, date], None] | None) -> None:
        """A fresh database with the sample portfolio imported."""
        opts = self.options
        self.step(f"create the database {world.db_path}")
        db = world.open_database()
        self.step(f"write a sample portfolio of {opts.borrowers} borrowers (seed {opts.seed}) to {opts.directory}/")
        files = write_portfolio(opts.directory, borrowers=opts.borrowers, seed=opts.seed, as_of=start_day,
                                progress=opts.borrowers >= 5_000)
        self.step("import it")
        reports = import_files(db, [files[k] for k in ("borrowers", "loans", "installments", "payments", "contacts")],
                               clock=world.clock)
        for r in reports:
            self.out.print(f"  {r.kind.value:<13} {r.accepted:>8,} rows accepted, {len(r.rejected)} rejected",
                           markup=False)
        if show_portfolio is not None:
            self.step("portfolio summary")
            with db.sessions() as session:
                show_portfolio(session, start_day)

    def _cast(self, world: World, policy: Policy, start_day: date
              ) -> tuple[Cast, dict[str, list[str]], dict[str, list[str]]]:
        """Deal the behaviours, put the personas on the sandbox's phones (and in DIR/personas.yaml)."""
        opts = self.options
        borrowers = _reachable(world.db)
        the_cast = cast(list(borrowers.values()), policy, start_day, opts.days, opts.seed)
        personas = []
        for borrower_id, kind in sorted(the_cast.kinds.items()):
            b = borrowers[borrower_id]
            if b.phone:
                persona = persona_for(kind, b.locale, the_cast.reply_after[borrower_id])
                world.sandbox.add_phone(b.phone, persona)
                personas.append({"number": b.phone, **persona.model_dump(exclude_defaults=True)})
        _write_personas(opts.directory / "personas.yaml", personas)
        self._print_cast(the_cast)
        phones, emails = _address_book(world.db)
        return the_cast, phones, emails

    def _simulate(self, week: Week, start_day: date) -> list[DayStats]:
        days: list[DayStats] = []
        try:
            with _quiet_adapters():
                for n in range(self.options.days):
                    day = start_day + timedelta(days=n)
                    stats = week.run_day(day)
                    days.append(stats)
                    self.err.print(f"  day {n + 1}/{self.options.days} {day.isoformat()}: "
                                   f"{stats.sent('sms')} SMS, {stats.sent('email')} emails, "
                                   f"{sum(stats.replies.values())} replies", markup=False, highlight=False)
        finally:
            week.close()
        return days

    # --- output -----------------------------------------------------------------------

    def _print_cast(self, the_cast: Cast) -> None:
        counts: dict[Kind, int] = {}
        for kind in the_cast.kinds.values():
            counts[kind] = counts.get(kind, 0) + 1
        table = Table(title="The borrowers' behaviour (sandbox personas on their numbers)", title_justify="left")
        table.add_column("behaviour")
        table.add_column("borrowers", justify="right")
        for kind in Kind:
            if counts.get(kind):
                table.add_row(kind.label, str(counts[kind]))
        self.out.print(table)

    def _print_summary(self, result: DemoResult, session: Session, world: World) -> None:
        total = result.total
        out = self.out
        sms, email = total.sent("sms"), total.sent("email")
        out.print()
        out.print("Summary", style="bold")
        same = "=" if total.at_sandbox == sms else "≠"
        out.print(f"  {total.at_sandbox} SMS reached the Twilio sandbox {same} {sms} sent by the dispatcher; "
                  f"{_plural(total.at_mailbox, 'email')} reached the mail server "
                  f"{'=' if total.at_mailbox == email else '≠'} {email} sent.", markup=False)
        failures = [f"{FAILURE_NAMES.get(code, code)} ({code}) {n}" for code, n in sorted(total.failed.items())]
        if total.undelivered:
            failures.append(f"undelivered after sending {total.undelivered}")
        if failures:
            out.print("  failed: " + "; ".join(failures), markup=False)
        held: dict[str, int] = {}
        for (_channel, outcome), n in sorted(total.dispatch.items()):
            if outcome in ("deferred", "blocked", "cancelled"):
                held[outcome] = held.get(outcome, 0) + n
        if held:
            out.print("  held back at send time (re-checked against the rules): "
                      + ", ".join(f"{k} {v}" for k, v in held.items()), markup=False)
        states = promise_states(session)
        out.print(f"  promises: {total.promises['made']} made, {states.get('kept', 0)} kept, "
                  f"{states.get('broken', 0)} broken, {states.get('pending', 0)} still pending, "
                  f"{states.get('cancelled', 0)} replaced by a newer one", markup=False)
        if total.tasks:
            out.print("  tasks opened for people: " + ", ".join(f"{k} {v}" for k, v in sorted(total.tasks.items())),
                      markup=False)
        if total.opt_outs:
            out.print("  opt-outs: " + ", ".join(f"{k} {v}" for k, v in sorted(total.opt_outs.items())),
                      markup=False)
        if total.voice_waiting and "voice" not in world.channels:
            out.print(f"  voice: {_plural(total.voice_waiting, 'call step')} (D+3, D+7) planned; they wait for the "
                      "voice channel, which the demo does not drive yet.", markup=False)
        elif total.voice_waiting:
            out.print(f"  voice: {_plural(total.voice_waiting, 'call step')} still waiting at the end of their day.",
                      markup=False)

        rows = notable_borrowers(session, result.cast, list(SHOWCASE_ROUND))
        if rows:
            out.print()
            out.print("A few borrowers to look at (the first of each behaviour the bot wrote to)", markup=False)
            for borrower_id, kind, recorded in rows:
                out.print(f"  {borrower_id}  {kind.label}: {recorded}", markup=False)

        url = result.database_url
        out.print()
        out.print(f"The data is in {world.db_path} (SQLite). Look at it with (masked unless --reveal, which is "
                  "audited):", markup=False)
        example = rows[0][0] if rows else "B0000001"
        for command in ("summary", f"show {example}", f"why {example}", "plan --dry-run"):
            out.print(f"  .venv/bin/bot --database-url {url} {command}", markup=False)
        out.print(f"The lender's payment feed the demo imported is in {result.directory / 'feed'}/, the phones' "
                  f"personas in {result.directory / 'personas.yaml'} (for `bot sandbox --personas`).",
                  markup=False)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@contextlib.contextmanager
def _quiet_adapters() -> Iterator[None]:
    """Keep the adapters' per-message warnings (refused numbers...) off the screen during the
    week: the summary reports them.  With ``bot -v`` they are shown."""
    adapters = logging.getLogger("bot.channels")
    if logging.getLogger().getEffectiveLevel() < logging.WARNING:
        yield
        return
    previous = adapters.level
    adapters.setLevel(logging.ERROR)
    try:
        yield
    finally:
        adapters.setLevel(previous)


def _reachable(db: Database) -> dict[str, Reachable]:
    """Every borrower with what casting needs: locale, number, SMS consent, outstanding due dates."""
    with db.sessions() as session:
        borrowers = session.execute(select(Borrower.id, Borrower.locale, Borrower.phone_e164)
                                    .order_by(Borrower.id)).all()
        sms_ok = {b for b, in session.execute(select(Consent.borrower_id).where(
            Consent.channel == "sms", Consent.granted.is_(True), Consent.opted_out_at.is_(None)))}
        dues: dict[str, list[date]] = {}
        for borrower_id, due in session.execute(
                select(Loan.borrower_id, Installment.due_date).join(Installment, Installment.loan_id == Loan.id)
                .where(Installment.amount_paid_minor < Installment.amount_due_minor)):
            dues.setdefault(borrower_id, []).append(due)
    return {b: Reachable(b, locale, phone, bool(phone) and b in sms_ok, tuple(sorted(dues.get(b, ()))))
            for b, locale, phone in borrowers}


def _address_book(db: Database) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    phones: dict[str, list[str]] = {}
    emails: dict[str, list[str]] = {}
    with db.sessions() as session:
        for borrower_id, phone, email in session.execute(
                select(Borrower.id, Borrower.phone_e164, Borrower.email).order_by(Borrower.id)):
            if phone:
                phones.setdefault(phone, []).append(borrower_id)
            if email:
                emails.setdefault(email.lower(), []).append(borrower_id)
    return phones, emails


def _write_personas(path: Path, phones: list[dict[str, Any]]) -> None:
    document = {
        "accounts": [{"sid": DEMO_ACCOUNT_SID, "auth_token": DEMO_AUTH_TOKEN}],
        "phones": phones,
    }
    path.write_text("# The demo's simulated phones (bot demo); personal data: keep it local.\n"
                    + yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
