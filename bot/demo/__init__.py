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

Voice calls (:class:`bot.demo.calls.VoiceCalls`) and the supervisor console
(:class:`bot.demo.console.DemoConsole`) plug in through
:mod:`bot.demo.extensions`; with ``serve`` the web app (and so the console)
stays up after the week until Ctrl-C.  Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
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
from bot.demo.calls import CallStyle, DialTimeCasting, VoiceCalls, call_behaviour
from bot.demo.console import DemoConsole
from bot.demo.extensions import DemoExtension
from bot.demo.personas import SHOWCASE_ROUND, Cast, CallShowcase, Kind, Reachable, cast, persona_for
from bot.demo.report import DayStats, notable_borrowers, notable_calls, print_days, promise_states, totals
from bot.demo.week import Week
from bot.demo.world import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, World
from bot.errors import UsageError
from bot.importer import import_files
from bot.ledger import OPEN
from bot.policy import Policy, load_policy
from bot.sample import write_portfolio

__all__ = ["DEFAULT_PORT", "Demo", "DemoExtension", "DemoOptions", "DemoResult", "default_extensions",
           "wait_for_interrupt"]

#: Where the web app (webhooks and console) listens when the demo keeps serving.
DEFAULT_PORT = 8000

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
    #: keep serving the web app (the console) after the week, until Ctrl-C
    serve: bool = False
    #: the web app's port on 127.0.0.1 (0: a free one); default DEFAULT_PORT when serving, else 0
    port: int | None = None
    #: the Twilio sandbox's and the mail server's ports on 127.0.0.1 (0: a free one)
    sandbox_port: int = 0
    smtp_port: int = 0

    @property
    def web_port(self) -> int:
        if self.port is not None:
            return self.port
        return DEFAULT_PORT if self.serve else 0


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
    #: ``bot report --from START --to START+days --by channel`` on the week, as JSON (printed as a table)
    effectiveness: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> DayStats:
        return totals(self.days)


class Demo:
    """``extensions``: default :func:`default_extensions`.  ``wait(world)`` keeps the servers up at
    the end when ``options.serve`` (default :func:`wait_for_interrupt`: until Ctrl-C or SIGTERM)."""

    def __init__(self, options: DemoOptions, *, out: Console, err: Console,
                 extensions: Sequence[DemoExtension] | None = None,
                 wait: Callable[[World], None] | None = None) -> None:
        self.options = options
        self.out = out
        self.err = err
        self.extensions = list(extensions) if extensions is not None else default_extensions(options)
        self.wait = wait or wait_for_interrupt
        self._step = 0
        self._borrowers: dict[str, Reachable] = {}
        self._personas: dict[str, dict[str, Any]] = {}  # number -> its entry in DIR/personas.yaml

    def step(self, text: str) -> None:
        self._step += 1
        self.err.print(f"[bold]demo {self._step}:[/bold] ", end="")
        self.err.print(text, markup=False)

    def _progress(self, text: str) -> None:
        """A step, or (indented text) a detail of the last one."""
        if text.startswith(" "):
            self.err.print(text, markup=False, highlight=False)
        else:
            self.step(text)

    def run(self, *, show_portfolio: Callable[[Session, date], None] | None = None) -> DemoResult:
        """The whole demo; ``show_portfolio(session, day)`` prints the imported portfolio (the CLI's summary)."""
        began = _time.perf_counter()
        opts = self.options
        start_day = opts.start or SystemClock().now().date()
        ports = {"--port": opts.web_port, "--sandbox-port": opts.sandbox_port, "--smtp-port": opts.smtp_port}
        _check_ports(ports)
        with World(opts.directory, datetime.combine(start_day, time(0), UTC), opts.config_file,
                   web_port=opts.web_port, sandbox_port=opts.sandbox_port, smtp_port=opts.smtp_port) as world:
            world.progress = self._progress
            self._prepare(world, start_day, show_portfolio)
            self.step("start the bot's webhooks, the Twilio sandbox and a mail server (127.0.0.1 only)")
            world.start_servers()
            policy = load_policy(opts.policy_file or world.settings.policy_file,
                                 templates_dir=world.settings.templates_dir,
                                 scripts_dir=world.settings.voice_scripts_dir)
            compliance = (load_compliance_config(world.settings.compliance_file)
                          if world.settings.compliance_file else None)
            for extension in self.extensions:
                extension.setup(world)
            self.step("cast the borrowers: what each one does when the bot writes or calls")
            the_cast, phones, emails = self._cast(world, policy, start_day)
            world.open_channels()
            if "voice" in world.channels:
                self._dial_time_casting(world, the_cast, phones)

            self.step(f"simulate {_plural(opts.days, 'day')} from {start_day.isoformat()}")
            week = Week(world, policy, compliance, the_cast, phones, emails, extensions=self.extensions)
            days = self._simulate(week, start_day)
            self._write_personas()
            result = DemoResult(opts.directory, world.database_url, start_day, days, the_cast,
                                timings=dict(week.seconds))
            self.out.print()
            print_days(self.out, days, sorted({k for d in days for k in d.extra}), calls="voice" in world.channels)
            with world.db.sessions() as session:
                self._print_summary(result, session, world)
            for extension in self.extensions:
                result.closing.extend(extension.closing_lines(world))
            for line in result.closing:
                self.out.print(line, markup=False, soft_wrap=True)
            result.effectiveness = self._print_effectiveness(world, start_day)
            result.seconds = _time.perf_counter() - began
            phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(result.timings.items())
                               if seconds >= 0.05)
            self.err.print(f"demo finished in {result.seconds:.1f} s (the week: {phases})", markup=False)
            if opts.serve:
                self.err.print(f"serving the bot's web app at {world.web.base_url} until Ctrl-C", markup=False)
                self.out.file.flush()
                self.wait(world)
                self.err.print("stopped serving", markup=False)
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
        self._borrowers = borrowers = _reachable(world.db)
        the_cast = cast(list(borrowers.values()), policy, start_day, opts.days, opts.seed)
        for borrower_id in sorted(the_cast.kinds):
            b = borrowers[borrower_id]
            if b.phone:
                self._put_phone(world, the_cast, b, the_cast.call_day.get(borrower_id, start_day))
        self._write_personas()
        self._print_cast(the_cast)
        phones, emails = _address_book(world.db)
        return the_cast, phones, emails

    def _put_phone(self, world: World, the_cast: Cast, b: Reachable, call_day: date, *, texts: bool = True) -> None:
        """The borrower's persona on their number: replies as their kind says (unless not ``texts``),
        answers calls as their call style says (a keypad promise types a day counted from ``call_day``)."""
        assert b.phone is not None
        kind = the_cast.kinds[b.borrower_id]
        call = call_behaviour(the_cast.calls.get(b.borrower_id, CallStyle.NO_ANSWER), b.locale, call_day,
                              soon=kind is Kind.PROMISE_BROKEN, clips=world.clips)
        persona = persona_for(kind, b.locale, the_cast.reply_after[b.borrower_id], call, texts=texts)
        world.sandbox.add_phone(b.phone, persona)
        entry = persona.model_dump(mode="json", exclude_defaults=True)
        for turn in (entry.get("call") or {}).get("turns") or []:
            if turn.get("audio"):  # the personas file's clips are relative to its folder
                turn["audio"] = _relative(Path(turn["audio"]), self.options.directory)
        self._personas[b.phone] = {"number": b.phone, **entry}

    def _write_personas(self) -> None:
        _write_personas(self.options.directory / "personas.yaml", [self._personas[n] for n in sorted(self._personas)])

    def _dial_time_casting(self, world: World, the_cast: Cast, phones: dict[str, list[str]]) -> None:
        """Wrap the voice adapter: just before each call the borrower's phone is set up again, for the
        call showcase round (the first calls placed), a keypad promise counted from today, and no
        text back after the call (the call was their answer)."""
        showcase = CallShowcase(the_cast)

        def before_dial(attempt_id: int, number: str) -> None:
            ids = phones.get(number, [])
            if len(ids) != 1:  # a number shared by several borrowers keeps its persona
                return
            b = self._borrowers[ids[0]]
            dealt = showcase.deal(b.borrower_id, b.locale)
            if dealt is not None:
                the_cast.kinds[b.borrower_id], the_cast.calls[b.borrower_id] = dealt
            # Their answer is the call: they do not text back to what follows it (a confirmation).
            self._put_phone(world, the_cast, b, world.clock.now().date(), texts=False)

        world.channels["voice"] = DialTimeCasting(world.channels["voice"], before_dial)

    def _simulate(self, week: Week, start_day: date) -> list[DayStats]:
        days: list[DayStats] = []
        try:
            with _quiet_adapters():
                for n in range(self.options.days):
                    day = start_day + timedelta(days=n)
                    stats = week.run_day(day)
                    days.append(stats)
                    calls = f", {_plural(stats.calls['placed'], 'call')}" if "voice" in week.world.channels else ""
                    self.err.print(f"  day {n + 1}/{self.options.days} {day.isoformat()}: "
                                   f"{stats.sent('sms')} SMS, {stats.sent('email')} emails{calls}, "
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
        if "voice" in world.channels:
            self._print_calls(total, world)
        if total.voice_waiting and "voice" not in world.channels:
            out.print(f"  voice: {_plural(total.voice_waiting, 'call step')} (D+3, D+7) planned; they wait for the "
                      "voice channel, which the demo does not drive yet.", markup=False)
        elif total.voice_waiting:
            out.print(f"  calls: {_plural(total.voice_waiting, 'call step')} planned and not dialled that day "
                      "(outside the borrower's calling hours, or held back by the rules at dial time).",
                      markup=False)

        rows = notable_borrowers(session, result.cast, list(SHOWCASE_ROUND))
        if rows:
            out.print()
            out.print("A few borrowers to look at (the first of each behaviour the bot contacted)", markup=False)
            for borrower_id, kind, recorded in rows:
                out.print(f"  {borrower_id}  {kind.label}: {recorded}", markup=False)

        calls = notable_calls(session) if "voice" in world.channels else []
        if calls:
            out.print()
            out.print("A few calls to look at (the first of each way a call went; in the console: "
                      "/console/calls/<call>)", markup=False)
            for call_id, borrower_id, locale, how in calls:
                out.print(f"  call {call_id:<4} {borrower_id}  {locale}  {how}", markup=False)

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

    def _print_effectiveness(self, world: World, start_day: date) -> dict[str, Any]:
        """The last thing printed: ``bot report`` for the simulated days by channel (docs/metrics.md),
        and where the console's Effectiveness page shows the same figures."""
        from bot.effectiveness import build_report
        from bot.effectiveness.configured import costs_from, window_from
        from bot.effectiveness.output import to_table

        end = start_day + timedelta(days=self.options.days)
        with world.db.sessions() as session:
            report = build_report(session, window_from(world.settings, start_day, end), ["channel"],
                                  costs_from(world.settings))
        out = self.out
        out.print()
        out.print(f"The week's effectiveness (bot report --from {start_day} --to {end} --by channel; "
                  "borrower-local days)", style="bold", markup=False, soft_wrap=True)
        out.print(to_table(report), markup=False, highlight=False, soft_wrap=True, end="")
        page = f"/console/effectiveness?from={start_day}&to={end}&by=channel"
        where = (f"{world.web.base_url}{page}" if self.options.serve
                 else f"{page} (while `bot demo` serves the console)")
        out.print(f"The same figures in the supervisor console: {where}", markup=False, soft_wrap=True)
        return report

    def _print_calls(self, total: DayStats, world: World) -> None:
        calls = total.calls
        out = self.out
        placed = calls["placed"]
        out.print(f"  {_plural(total.at_sandbox_calls, 'call')} reached the Twilio sandbox "
                  f"{'=' if total.at_sandbox_calls == placed else '≠'} {placed} placed by the dispatcher: "
                  f"{calls['person']} answered by a person, {calls['voicemail']} by an answering machine (the "
                  f"voicemail gives only the lender's name and number), {calls['unanswered']} not answered "
                  "(no answer, busy, failed).", markup=False)
        if calls["speech"] or calls["keys"]:
            spoken = ("" if world.clips else " (espeak-ng missing: no spoken answers)")
            out.print(f"  the borrowers' answers on the phone: {calls['speech']} spoken (Korean clips, recognised "
                      f"by the bot's Vosk model), {calls['keys']} on the keypad{spoken}.", markup=False)
        outcomes = [(k.removeprefix("outcome:"), n) for k, n in sorted(calls.items()) if k.startswith("outcome:")]
        if outcomes:
            out.print("  calls a person answered, by outcome: " + ", ".join(f"{k} {n}" for k, n in outcomes),
                      markup=False)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@contextlib.contextmanager
def _quiet_adapters() -> Iterator[None]:
    """Keep the adapters' per-message warnings (refused numbers...) and the prompt renderer's
    retried glitches off the screen during the week: the summary reports what matters.  Errors
    still show; with ``bot -v`` everything is shown."""
    if logging.getLogger().getEffectiveLevel() < logging.WARNING:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("bot.channels", "bot.speech")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def default_extensions(options: DemoOptions) -> list[DemoExtension]:
    """The extensions ``bot demo`` runs with: the calls, then the console (add yours here)."""
    return [VoiceCalls(), DemoConsole(serving=options.serve)]


def _check_ports(ports: dict[str, int]) -> None:
    """Fail before anything starts when a chosen port (option name -> port; 0: a free one,
    not checked) is taken or given twice (exit status 2)."""
    from bot.sandbox.server import ServerError, bind_socket

    chosen = [(option, port) for option, port in ports.items() if port]
    for i, (option, port) in enumerate(chosen):
        for other, same in chosen[:i]:
            if same == port:
                raise UsageError(f"{option}: port {port} is also given to {other}; choose another port, "
                                 "or 0 for a free one")
        try:
            bind_socket("127.0.0.1", port).close()
        except ServerError as exc:
            raise UsageError(f"{option}: {exc}; choose another port, or 0 for a free one") from None


def wait_for_interrupt(world: World) -> None:
    """Keep the servers up until Ctrl-C (SIGINT) or SIGTERM."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _reachable(db: Database) -> dict[str, Reachable]:
    """Every borrower with what casting needs: locale, number, SMS consent, outstanding due dates."""
    with db.sessions() as session:
        borrowers = session.execute(select(Borrower.id, Borrower.locale, Borrower.phone_e164)
                                    .order_by(Borrower.id)).all()
        sms_ok = {b for b, in session.execute(select(Consent.borrower_id).where(
            Consent.channel == "sms", Consent.granted.is_(True), Consent.opted_out_at.is_(None)))}
        voice_ok = {b for b, in session.execute(select(Consent.borrower_id).where(
            Consent.channel == "voice", Consent.granted.is_(True), Consent.opted_out_at.is_(None)))}
        dues: dict[str, list[date]] = {}
        for borrower_id, due in session.execute(
                select(Loan.borrower_id, Installment.due_date).join(Installment, Installment.loan_id == Loan.id)
                .where(OPEN)):
            dues.setdefault(borrower_id, []).append(due)
    return {b: Reachable(b, locale, phone, bool(phone) and b in sms_ok, tuple(sorted(dues.get(b, ()))),
                         voice=bool(phone) and b in voice_ok)
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
