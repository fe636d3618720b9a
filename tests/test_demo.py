"""The README's demo: a simulated week through the real planner, dispatcher, sandbox, SMTP and webhooks.

* a short run (3 days, 60 borrowers) through the :class:`bot.demo.Demo` API, with a test
  extension (the hook voice and the console will use) that looks at the Twilio sandbox
  and the mail server before they stop: every message they received is one the
  dispatcher recorded as sent, an opt-out is followed by nothing but its one
  confirmation, promises and a dispute task are stored, payments arrive through the
  import, and nothing personal is printed;
* ``bot demo`` itself: options, steps, tables, masking, and the same output twice;
* the cast: the showcase round goes to the first borrowers texted, and every reply
  text means to the bot what its behaviour says.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import func, select

from bot.db import Database
from bot.compliance.zones import resolve_zones
from bot.db.models import Borrower, Consent, ContactAttempt, InboundMessage, Payment, Promise, Task
from bot.demo import Demo, DemoExtension, DemoOptions, DemoResult
from bot.demo.personas import KINDS_WITH_REPLIES, SHOWCASE_ROUND, Kind, Reachable, cast, reply_text
from bot.demo.world import World
from bot.nlu import classify
from bot.policy import load_policy

START = date(2026, 11, 28)  # a Saturday: Sunday rest days (UK, Korea) fall inside the run


class Recorder(DemoExtension):
    """Looks at the servers at the end of the run, while they are still up."""

    name = "recorder"

    def __init__(self) -> None:
        self.sms: list[Any] = []
        self.mail: list[Any] = []
        self.ticks: list[datetime] = []
        self.set_up = False

    def setup(self, world: World) -> None:
        self.set_up = world.web.base_url.startswith("http://127.0.0.1:")

    def after_dispatch(self, world: World, at: datetime) -> dict[str, int]:
        self.ticks.append(at)
        return {"recorder": 1}

    def closing_lines(self, world: World) -> list[str]:
        self.sms = world.sandbox.messages()
        self.mail = world.mailbox.mail()
        return ["closing line from an extension"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Recorder, str, Path]:
    directory = tmp_path_factory.mktemp("demo") / "demo"
    out, err = io.StringIO(), io.StringIO()
    recorder = Recorder()
    demo = Demo(DemoOptions(directory=directory, borrowers=60, days=3, seed=7, start=START),
                out=Console(file=out, width=100), err=Console(file=err, width=100), extensions=[recorder])
    result = demo.run()
    return result, recorder, out.getvalue() + err.getvalue(), directory


def _db(directory: Path) -> Database:
    return Database(f"sqlite:///{directory / 'bot.db'}")


def test_what_reached_the_sandbox_and_the_mail_server_is_what_the_dispatcher_sent(short_run: Any) -> None:
    result, recorder, _output, directory = short_run
    total = result.total
    outbound = [m for m in recorder.sms if m.direction == "outbound-api"]
    assert total.sent("sms") > 10 and total.sent("email") > 0
    assert len(outbound) == total.at_sandbox == total.sent("sms")
    assert len(recorder.mail) == total.at_mailbox == total.sent("email")
    db = _db(directory)
    try:
        with db.sessions() as s:
            sent = s.execute(select(ContactAttempt.channel, ContactAttempt.provider_id, ContactAttempt.address)
                             .where(ContactAttempt.status == "sent")).all()
    finally:
        db.dispose()
    by_channel = Counter(channel for channel, _sid, _to in sent)
    assert by_channel == Counter({"sms": total.sent("sms"), "email": total.sent("email")})
    assert {sid for channel, sid, _to in sent if channel == "sms"} == {m.sid for m in outbound}
    assert Counter(to.lower() for channel, _sid, to in sent if channel == "email") == \
        Counter(r for mail in recorder.mail for r in mail.recipients)
    # Status callbacks reached the bot: deliveries recorded, undeliverable phones too.
    assert total.delivered == sum(1 for m in outbound if m.status == "delivered")
    assert total.undelivered == sum(1 for m in outbound if m.status in ("undelivered", "failed"))


def test_an_opt_out_stops_everything_but_its_one_confirmation(short_run: Any) -> None:
    result, recorder, _output, directory = short_run
    db = _db(directory)
    try:
        with db.sessions() as s:
            opted = s.execute(select(Consent.address, Consent.opted_out_at)
                              .where(Consent.channel == "sms", Consent.opted_out_at.is_not(None))).all()
            templates = dict(s.execute(select(ContactAttempt.provider_id, ContactAttempt.template)
                                       .where(ContactAttempt.provider_id.is_not(None))).all())
    finally:
        db.dispose()
    assert opted and result.total.opt_outs["sms"] == len(opted)
    for phone, at in opted:
        after = [m for m in recorder.sms if m.to == phone and m.direction == "outbound-api" and m.date_created > at]
        assert [templates[m.sid] for m in after] in ([], ["reply_opt_out"])


def test_replies_become_promises_tasks_and_payments(short_run: Any) -> None:
    result, _recorder, _output, directory = short_run
    db = _db(directory)
    try:
        with db.sessions() as s:
            promises = s.scalars(select(Promise)).all()
            disputes = s.scalars(select(Task).where(Task.kind == "dispute", Task.status == "open")).all()
            intents = Counter(s.scalars(select(InboundMessage.intent).where(InboundMessage.channel == "sms")))
            payments = s.scalar(select(func.count()).where(Payment.id.like("DEMO-P%")))
            broken = s.scalar(select(func.count()).where(Promise.status == "broken"))
    finally:
        db.dispose()
    assert promises and all(p.source == "sms" for p in promises)
    assert disputes
    assert intents["promise_to_pay"] == len(promises) and intents["dispute"] >= 1 and intents["opt_out"] >= 1
    assert payments and payments == result.total.payments  # through the import, as a lender's feed
    assert (directory / "feed").is_dir()
    assert broken == result.total.promises["broken"] >= 1  # "tomorrow", and nothing paid
    assert sum(result.total.replies.values()) == sum(intents.values())


def test_every_reminder_went_out_in_the_borrowers_local_hours(short_run: Any) -> None:
    _result, _recorder, _output, directory = short_run
    db = _db(directory)
    try:
        with db.sessions() as s:
            rows = s.execute(select(ContactAttempt.sent_at, Borrower)
                             .join(Borrower, Borrower.id == ContactAttempt.borrower_id)
                             .where(ContactAttempt.status == "sent", ContactAttempt.source == "planner")).all()
    finally:
        db.dispose()
    assert rows
    hours: Counter[int] = Counter()
    for sent_at, b in rows:
        zones = resolve_zones(b.country, b.region, b.timezone, b.phone_e164, "America/New_York")
        local = sent_at.astimezone(zones.primary)
        end = 22 if b.country == "CN" else 20 if b.country == "KR" else 21
        assert 8 <= local.hour < end, (b.id, local.isoformat())
        assert not (b.country in ("GB", "KR") and local.isoweekday() == 7)  # their rest day
        hours[local.hour] += 1
    assert len(hours) >= 3  # the ticks reach the borrowers at different local hours


def test_the_extension_hook_runs_at_every_dispatch_and_closes_the_demo(short_run: Any) -> None:
    result, recorder, output, _directory = short_run
    assert recorder.set_up
    assert len(recorder.ticks) == 3 * 6 and recorder.ticks == sorted(recorder.ticks)
    assert result.total.extra["recorder"] == 18
    assert result.closing == ["closing line from an extension"]
    assert "recorder" in output  # its column in the day table


def test_the_output_is_masked(short_run: Any) -> None:
    _result, _recorder, output, directory = short_run
    _assert_masked(output, directory)
    for step in ("create the database", "sample portfolio", "import it", "cast the borrowers", "simulate 3 days",
                 "What the bot sent", "What the borrowers texted back", "What followed", "Summary"):
        assert step in output


def _assert_masked(output: str, directory: Path) -> None:
    squeezed = output.replace("-", "").replace(" ", "")
    with (directory / "borrowers.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            assert row["full_name"] not in output
            if row["email"]:
                assert row["email"] not in output
            digits = "".join(ch for ch in row["phone"] if ch.isdigit())
            assert digits[-10:] not in squeezed


# --- bot demo ------------------------------------------------------------------------------


def test_bot_demo_runs_and_repeats_itself(run_bot: Any, tmp_path: Path) -> None:
    args = ("demo", "--dir", str(tmp_path / "d"), "--borrowers", "30", "--days", "2", "--seed", "3",
            "--at", "2026-12-02T15:00:00Z")
    first = run_bot(*args)
    assert first.exit_code == 0, first.output
    for step in ("create the database", "import it", "portfolio summary", "start the bot's webhooks",
                 "simulate 2 days from 2026-12-02", "demo finished in"):
        assert step in first.stderr
    for text in ("What the bot sent", "Wed 12-02", "Thu 12-03", "total", "reached the Twilio sandbox",
                 "bot.db", "why B"):
        assert text in first.stdout
    _assert_masked(first.output, tmp_path / "d")
    second = run_bot(*args)
    assert second.exit_code == 0
    assert first.stdout == second.stdout


def test_bot_demo_refuses_bad_options(run_bot: Any, tmp_path: Path) -> None:
    result = run_bot("demo", "--dir", str(tmp_path / "d"), "--days", "0")
    assert result.exit_code == 2 and "--days" in result.output
    assert not (tmp_path / "d").exists()


# --- the cast ------------------------------------------------------------------------------


def test_the_showcase_round_goes_to_the_first_borrowers_texted() -> None:
    policy = load_policy()
    borrowers = [
        Reachable(f"B{n}", "en-US", f"+1212555{n:04d}", True, (date(2026, 12, 1 + n),)) for n in range(12)
    ] + [Reachable("B99", "en-US", "+12125559999", False, (date(2026, 12, 1),))]  # no SMS consent
    first = cast(borrowers, policy, date(2026, 11, 28), 7, seed=1)
    again = cast(borrowers, policy, date(2026, 11, 28), 7, seed=1)
    assert first == again
    # B0's D-3 text is current on 11-28, B1's on 11-29 ... B6's on 12-04: dealt in that order.
    assert [first.kinds[f"B{n}"] for n in range(7)] == list(SHOWCASE_ROUND[:7])
    assert set(first.kinds) == {b.borrower_id for b in borrowers}
    assert all(60 <= first.reply_after[b] <= 1200 for b in first.reply_after)


@pytest.mark.parametrize("locale", ["en-US", "en-GB", "zh-CN", "ko-KR"])
def test_every_reply_means_what_its_behaviour_says(locale: str) -> None:
    expected = {Kind.PAYS: "paid", Kind.PROMISE_KEPT: "promise_to_pay", Kind.PROMISE_BROKEN: "promise_to_pay",
                Kind.OPT_OUT: "opt_out", Kind.DISPUTE: "dispute", Kind.HARDSHIP: "hardship"}
    assert set(expected) == KINDS_WITH_REPLIES
    today = datetime(2026, 11, 30, tzinfo=UTC).date()
    for kind, intent in expected.items():
        text = reply_text(kind, locale)
        assert text is not None
        found = classify(text, locale=locale, today=today)
        assert found.intent == intent, (kind, locale)
        if intent == "promise_to_pay":
            assert found.promise_date is not None and found.promise_date > today
