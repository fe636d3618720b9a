"""The README's demo: a simulated week through the real planner, dispatcher, sandbox, SMTP and webhooks.

* a short run (3 days, 50 borrowers, seed 22: Korean borrowers among the first called) through
  the :class:`bot.demo.Demo` API with the calls and the console on, serving at the end, and a
  test extension that looks at the Twilio sandbox and the mail server before they stop: every
  message and call they received is one the dispatcher recorded as sent, an opt-out is followed
  by nothing but its one confirmation, promises (by text and by phone, on the keypad and spoken
  in Korean) and a dispute task are stored, payments arrive through the import, a voicemail says
  only the lender's name and number, nothing personal is printed; and, while the demo serves,
  the console signed in as the demo user shows the demo's calls, masked;
* ``bot demo`` itself: options, steps, tables, masking, the same output twice, a port in use;
* the cast: the showcase rounds, and every reply text means to the bot what its behaviour says.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import os
import quopri
import re
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import phonenumbers
import pytest
from rich.console import Console
from sqlalchemy import func, select

from bot.compliance.zones import resolve_zones
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import (
    Borrower,
    CallSession,
    CallTurn,
    Consent,
    ContactAttempt,
    InboundMessage,
    Payment,
    Promise,
    Task,
)
from bot.demo import Demo, DemoExtension, DemoOptions, DemoResult
from bot.demo.calls import CLIP_TEXTS, CallStyle, VoiceCalls, call_behaviour, korean_clips
from bot.demo.console import DEMO_USER, LOGIN_FILE, DemoConsole, demo_password
from bot.demo.personas import (
    CALL_SHOWCASE_ROUND,
    KINDS_WITH_REPLIES,
    SHOWCASE_ROUND,
    SPOKEN_SHOWCASE_ROUND,
    Cast,
    CallShowcase,
    Kind,
    Reachable,
    cast,
    reply_text,
)
from bot.demo.world import World
from bot.effectiveness.output import money, to_table
from bot.messages import make_unsubscribe_token
from bot.nlu import classify
from bot.policy import load_policy
from bot.privacy import mask_name, mask_phone

START = date(2026, 11, 28)  # a Saturday: Sunday rest days (UK, Korea) fall inside the run
SEED = 22  # with 50 borrowers: two Korean borrowers are among the first called
_CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class Recorder(DemoExtension):
    """Looks at the servers at the end of the run, while they are still up, and at the console
    while the demo serves it."""

    name = "recorder"

    def __init__(self) -> None:
        self.sms: list[Any] = []
        self.mail: list[Any] = []
        self.calls: list[Any] = []
        self.ticks: list[datetime] = []
        self.set_up = False
        self.pages: dict[str, httpx.Response] = {}
        self.anonymous: httpx.Response | None = None
        self.base_url = ""
        self.ports: dict[str, Any] = {}

    def setup(self, world: World) -> None:
        self.set_up = world.web.base_url.startswith("http://127.0.0.1:")
        self.ports = {"sandbox": world.sandbox_server.port, "smtp": world.mailbox.port,
                      "twilio_api_base_url": world.settings.twilio_api_base_url,
                      "smtp_port": world.settings.smtp_port}

    def after_dispatch(self, world: World, at: datetime) -> dict[str, int]:
        self.ticks.append(at)
        return {"recorder": 1}

    def closing_lines(self, world: World) -> list[str]:
        self.sms = world.sandbox.messages()
        self.mail = world.mailbox.mail()
        self.calls = [world.sandbox.call(c.sid) for c in world.sandbox.calls()]
        return ["closing line from an extension"]

    def visit_console(self, world: World) -> None:
        """The demo's ``wait``: sign in through the form as a person would, open the pages."""
        self.base_url = world.web.base_url
        password = demo_password(world.directory / LOGIN_FILE)
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=30) as anonymous:
            self.anonymous = anonymous.get("/console/calls")
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=30) as client:
            page = client.get("/console/login")
            token = _CSRF_RE.search(page.text)
            assert token, "the sign-in page has no CSRF field"
            self.pages["login"] = client.post("/console/login", data={
                "csrf": token.group(1), "name": DEMO_USER, "password": password, "next": "/console"})
            week = {"from": START.isoformat(), "to": (START + timedelta(days=3)).isoformat(), "by": "channel"}
            self.pages["effectiveness"] = client.get("/console/effectiveness", params=week)
            self.pages["effectiveness_api"] = client.get("/console/api/effectiveness", params=week)
            for name, path in (("dashboard", "/console"), ("calls", "/console/calls"),
                               ("api", "/console/api/calls")):
                self.pages[name] = client.get(path)
            first = re.search(r'href="(/console/calls/\d+)"', self.pages["calls"].text)
            assert first, "the calls list links no call"
            self.pages["call"] = client.get(first.group(1))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Recorder, str, Path]:
    directory = tmp_path_factory.mktemp("demo") / "demo"
    out, err = io.StringIO(), io.StringIO()
    recorder = Recorder()
    sandbox_port, smtp_port = free_ports(2)
    demo = Demo(DemoOptions(directory=directory, borrowers=50, days=3, seed=SEED, start=START, serve=True, port=0,
                            sandbox_port=sandbox_port, smtp_port=smtp_port),
                out=Console(file=out, width=100), err=Console(file=err, width=100),
                extensions=[VoiceCalls(), DemoConsole(serving=True), recorder], wait=recorder.visit_console)
    result = demo.run()
    # The sandbox and the mail server took the ports they were given, and the bot used them.
    assert recorder.ports == {"sandbox": sandbox_port, "smtp": smtp_port, "smtp_port": smtp_port,
                              "twilio_api_base_url": f"http://127.0.0.1:{sandbox_port}"}
    return result, recorder, out.getvalue() + err.getvalue(), directory


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (all held at once, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


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
    assert by_channel == Counter({"sms": total.sent("sms"), "email": total.sent("email"),
                                  "voice": total.sent("voice")})
    assert {sid for channel, sid, _to in sent if channel == "sms"} == {m.sid for m in outbound}
    # Calls: what the sandbox was asked to dial is what the dispatcher recorded as placed.
    assert total.sent("voice") >= 5
    assert len(recorder.calls) == total.at_sandbox_calls == total.calls["placed"] == total.sent("voice")
    assert Counter((sid, to) for channel, sid, to in sent if channel == "voice") == \
        Counter((c.sid, c.to) for c in recorder.calls)
    assert total.calls["person"] + total.calls["voicemail"] + total.calls["unanswered"] == total.calls["placed"]
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
    by_text = [p for p in promises if p.source == "sms"]
    assert by_text and {p.source for p in promises} == {"sms", "voice"}
    assert disputes
    assert intents["promise_to_pay"] == len(by_text) and intents["dispute"] >= 1 and intents["opt_out"] >= 1
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
    assert result.closing[-1] == "closing line from an extension"
    assert "recorder" in output  # its column in the day table


def _calls(directory: Path) -> tuple[list[CallSession], dict[int, list[CallTurn]], list[Promise]]:
    db = _db(directory)
    try:
        with db.sessions() as s:
            calls = list(s.scalars(select(CallSession).where(CallSession.call_sid.is_not(None))
                                   .order_by(CallSession.id)))
            turns: dict[int, list[CallTurn]] = {}
            for turn in s.scalars(select(CallTurn).order_by(CallTurn.session_id, CallTurn.seq)):
                turns.setdefault(turn.session_id, []).append(turn)
            promises = list(s.scalars(select(Promise).where(Promise.source == "voice")))
    finally:
        db.dispose()
    return calls, turns, promises


def test_the_phones_answer_calls_with_keys_and_spoken_korean(short_run: Any) -> None:
    result, _recorder, output, directory = short_run
    calls, turns, promises = _calls(directory)
    answered = [c for c in calls if c.answered_at is not None and c.answered_by == "human"]
    assert {c.outcome for c in answered} >= {"promise", "opt_out", "wrong_party"}
    # Promises taken on the phone are stored like any other, and each call that made one says so.
    assert promises and {p.borrower_id for p in promises} == {c.borrower_id for c in calls if c.outcome == "promise"}
    keypad_promises = [c for c in answered if c.outcome == "promise"
                       and {t.source for t in turns[c.id] if t.speaker == "borrower"} == {"dtmf"}]
    assert keypad_promises and all(c.locale != "ko-KR" and not c.speech for c in keypad_promises)
    # Korean borrowers speak: their answers reach the bot as recordings, recognised by Vosk.
    korean = [c for c in answered if c.locale == "ko-KR"]
    assert korean and all(c.speech for c in korean)
    spoken = [t for c in korean for t in turns[c.id] if t.speaker == "borrower" and t.source == "speech"]
    # A spoken answer is acted on only when it clears the speech acceptance (docs/speech.md,
    # "Acceptance"); one that does not is stored as "other" with confidence 0, and the key the
    # borrower presses after it carries the call.
    accept = load_settings(None).speech_accept_confidence
    assert spoken and all((t.intent != "other" and (t.confidence or 0) >= accept)
                          or (t.intent == "other" and not t.confidence) for t in spoken)
    assert all(t.audio_ref and (directory / "media" / t.audio_ref).is_file() for t in spoken)
    # The day table counts them.
    total = result.total
    assert total.calls["outcome:promise"] == len([c for c in answered if c.outcome == "promise"])
    assert total.calls["speech"] == len([t for ts in turns.values() for t in ts
                                         if t.speaker == "borrower" and t.source == "speech"])
    assert "The calls (D+3, D+7)" in output and "spoken (Korean clips" in output
    # The phones, clips included (relative to the folder), as a personas file the sandbox loads.
    from bot.sandbox.config import load_config_file

    phones = load_config_file(directory / "personas.yaml").phones
    clips = [t.audio for p in phones for t in p.persona().call.turns if t.audio is not None]
    assert clips and all(c.is_file() and c.parent == (directory / "clips").resolve() for c in clips)


def test_a_voicemail_says_only_the_lenders_name_and_number(short_run: Any) -> None:
    _result, recorder, _output, directory = short_run
    from bot.config import load_settings
    from bot.scripts import CallContext, Say, load_script, start
    from bot.speech.tts import PromptRenderer
    from bot.voice.service import spoken_number

    calls, turns, _promises = _calls(directory)
    settings = load_settings(None)
    machines = [c for c in calls if (c.answered_by or "").startswith("machine")]
    assert machines
    by_sid = {c.sid: c for c in recorder.calls}
    keys = PromptRenderer(directory / "keys-only")  # the cache key of a text; nothing is rendered
    for call in machines:
        # What the script says to a machine, whatever the borrower's data (none of it is used).
        context = CallContext(lender_name=settings.lender_name, party_initials="Q. Z.", amount_text="$9,876.54",
                              due_date_text="February 29", callback_number_text=spoken_number(settings.lender_phone),
                              speech_available=False, today=date(2026, 11, 30))
        _state, actions = start(load_script(call.script, call.locale), context, answered_by="machine")
        [message] = [a.text for a in actions if isinstance(a, Say)]
        assert settings.lender_name in message and "Q. Z." not in message and "9,876" not in message
        [played] = by_sid[call.call_sid].spoken  # the sandbox heard one prompt, on the voicemail
        assert played.kind == "play" and played.on_voicemail and played.valid_wav
        name = urlsplit(played.url).path.rsplit("/", 1)[-1]
        assert name == f"{keys.key(message, call.locale)}.wav"
        prompt = directory / "media" / "prompts" / name
        assert hashlib.sha256(prompt.read_bytes()).hexdigest() == played.sha256
        assert [t.node for t in turns[call.id]] == ["voicemail"] and call.outcome == "voicemail"


def test_the_console_shows_the_demos_calls_masked(short_run: Any) -> None:
    result, recorder, output, directory = short_run
    pages = recorder.pages
    assert recorder.anonymous is not None and recorder.anonymous.status_code == 303  # signed out: to the form
    assert pages["login"].status_code == 303 and pages["login"].headers["location"] == "/console"
    for name in ("dashboard", "calls", "call", "api"):
        assert pages[name].status_code == 200, name
    calls, _turns, _promises = _calls(directory)
    listed = [int(n) for n in re.findall(r'href="/console/calls/(\d+)"', pages["calls"].text)]
    assert sorted(set(listed)) == [c.id for c in calls]  # every call of the demo, one page
    db = _db(directory)
    try:
        with db.sessions() as s:
            names = {c.id: s.scalar(select(Borrower.full_name).where(Borrower.id == c.borrower_id)) for c in calls}
            numbers = {c.id: s.scalar(select(ContactAttempt.address).where(ContactAttempt.id == c.attempt_id))
                       for c in calls}
    finally:
        db.dispose()
    for call_id, name in names.items():  # the list: who was called, masked
        assert name and mask_name(name) in pages["calls"].text and name not in pages["calls"].text
    opened = int(pages["call"].url.path.rsplit("/", 1)[-1])  # the call page: the number it dialled, masked
    assert mask_phone(numbers[opened]) in pages["call"].text
    text = pages["calls"].text + pages["call"].text + pages["api"].text
    _assert_masked(text, directory)
    # The closing lines gave the address and the login that worked.
    password = demo_password(directory / LOGIN_FILE)
    assert f"{recorder.base_url}/console " in output and f"user {DEMO_USER}, password {password}" in output
    assert (directory / LOGIN_FILE).stat().st_mode & 0o777 == 0o600


def test_the_demo_ends_with_the_weeks_effectiveness_report_and_the_console_shows_it(short_run: Any) -> None:
    result, recorder, output, _directory = short_run
    report = result.effectiveness
    assert (report["from"], report["to"], report["by"]) == ("2026-11-28", "2026-12-01", ["channel"])
    # Printed last (after the summary and the console's lines), as `bot report --format table` prints it.
    stdout = output.split("demo 1: ")[0]  # the output is stdout, then stderr
    title = "The week's effectiveness (bot report --from 2026-11-28 --to 2026-12-01 --by channel"
    assert title in stdout and stdout.index(title) > stdout.index("Summary")
    assert to_table(report) in stdout
    assert stdout.rstrip().endswith(f"{recorder.base_url}/console/effectiveness?from=2026-11-28&to=2026-12-01"
                                    "&by=channel")
    totals = report["totals"]
    assert totals["contacts"] > 10 and totals["promises"] >= 1 and totals["payments"] >= 1
    # No unit costs configured: the demo prices its own contacts (1 cent a segment, 2 a call minute).
    assert totals["cost_minor"] > 0 and totals["cost_currency"] == "USD"
    # The console's page for the same days: the report's JSON, and every group's figures on the page.
    assert recorder.pages["effectiveness_api"].json() == report
    page = recorder.pages["effectiveness"]
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-group="([^"]*)">(.*?)</tr>', page.text, re.S))
    assert len(rows) == len(report["groups"])
    for group in report["groups"]:
        m = group["metrics"]
        cells = dict(re.findall(r'data-metric="([a-z_]+)">([^<]*)<',
                                rows[f"channel={group['key']['channel']} currency={group['key']['currency']}"]))
        assert [cells[k].strip() for k in ("contacts", "reached", "promises", "kept", "broken", "payments")] == \
            [str(m[k]) for k in ("contacts", "reached", "promises", "kept", "broken", "payments")]
        assert cells["recovered_minor"] == money(m["recovered_minor"], m["currency"])
    funnel = dict(re.findall(r'<tr data-stage="([a-z_]+)">.*?data-metric="[a-z_]+">(\d+)<', page.text))
    assert funnel == {k: str(totals[k]) for k in ("contacts", "reached", "right_party_contacts", "promises", "kept",
                                                    "payments")}
    _assert_masked(page.text, _directory)


def test_the_output_is_masked(short_run: Any) -> None:
    _result, _recorder, output, directory = short_run
    _assert_masked(output, directory)
    for step in ("create the database", "sample portfolio", "import it", "cast the borrowers", "simulate 3 days",
                 "Korean answer clips", "console user", "What the bot sent", "What the borrowers texted back",
                 "The calls", "What followed", "Summary", "calls reached the Twilio sandbox"):
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
    first = run_bot(*args, "--no-serve")
    assert first.exit_code == 0, first.output
    for step in ("create the database", "import it", "portfolio summary", "start the bot's webhooks",
                 "simulate 2 days from 2026-12-02", "demo finished in"):
        assert step in first.stderr
    for text in ("What the bot sent", "Wed 12-02", "Thu 12-03", "total", "reached the Twilio sandbox",
                 "The calls", "bot.db", "why B", f"user {DEMO_USER}, password ",
                 "Effectiveness 2026-12-02 to 2026-12-04 (exclusive), by channel", "TOTAL"):
        assert text in first.stdout
    assert first.stdout.rstrip().endswith("/console/effectiveness?from=2026-12-02&to=2026-12-04&by=channel "
                                          "(while `bot demo` serves the console)")
    assert "serving" not in first.stderr and "/console " not in first.stdout
    _assert_masked(first.output, tmp_path / "d")
    # Captured output (not a terminal): no serving by default either, and the same output again
    # (the console's password is kept in the folder).
    second = run_bot(*args)
    assert second.exit_code == 0
    assert first.stdout == second.stdout


def test_bot_demo_at_debug_logs_no_body_name_address_or_token(tmp_path: Path) -> None:
    """``bot -vv demo`` in a process of its own, as a person runs it: everything it writes to stdout
    and stderr (the log lines too) is searched for every borrower's name, phone number, email address
    and unsubscribe token, also inside base64 and quoted-printable text (email parts, header words)."""
    directory = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_") or k.startswith("BOT_TEST_")}
    env["COLUMNS"] = "250"
    process = subprocess.run(
        [sys.executable, "-m", "bot", "-vv", "demo", "--dir", str(directory), "--borrowers", "30", "--days", "1",
         "--seed", "3", "--at", "2026-12-02T15:00:00Z", "--no-serve"],
        cwd=tmp_path, env=env, capture_output=True, timeout=300, check=False)
    output = process.stdout.decode() + process.stderr.decode()
    assert process.returncode == 0, output[-3000:]
    assert " DEBUG bot." in output and " INFO bot.channels.email: email attempt=" in output  # -vv, emails sent
    with _db(directory).session() as session:
        emailed = session.scalar(select(func.count()).select_from(ContactAttempt).where(
            ContactAttempt.channel == "email", ContactAttempt.source != "import", ContactAttempt.status == "sent"))
    assert emailed, "the run sent no email: nothing to look for"
    views = _decoded_views(output)
    secret = Settings.model_fields["unsubscribe_secret"].default
    assert not re.search(r"unsubscribe/[A-Za-z0-9_-]{20,}", "\n".join(views))
    with (directory / "borrowers.csv").open(encoding="utf-8") as fh:
        people = list(csv.DictReader(fh))
    assert {p["country"] for p in people} >= {"US", "CN", "KR"}
    for person in people:
        number = phonenumbers.parse(person["phone"], person["country"])
        leaks = [person["full_name"], person["phone"], str(number.national_number),
                 *(phonenumbers.format_number(number, kind) for kind in (
                     phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                     phonenumbers.PhoneNumberFormat.NATIONAL))]
        leaks += [part for part in person["full_name"].split() if len(part) > 2 and part.isalpha()]
        if person["email"]:
            leaks += [person["email"], person["email"].split("@")[0],
                      *(make_unsubscribe_token(secret, person["borrower_id"], address)
                        for address in {person["email"], person["email"].lower()})]
        for view in views:
            for leak in leaks:
                assert leak not in view, f"{person['borrower_id']}: personal data or a token in the output"


def _decoded_views(text: str) -> list[str]:
    """The text, and what its base64 runs (each, and all in a row) and quoted-printable escapes decode to."""
    chunks: list[bytes] = []
    for run in re.findall(r"[A-Za-z0-9+/]{16,}={0,2}", text):
        if len(run) % 4 == 0:
            try:
                chunks.append(base64.b64decode(run, validate=True))
            except binascii.Error:
                continue
    decoded = [chunk.decode("utf-8", "replace") for chunk in chunks]
    return [text, "".join(decoded), b"".join(chunks).decode("utf-8", "replace"),
            quopri.decodestring(text.encode()).decode("utf-8", "replace")]


def test_bot_demo_refuses_bad_options(run_bot: Any, tmp_path: Path) -> None:
    result = run_bot("demo", "--dir", str(tmp_path / "d"), "--days", "0")
    assert result.exit_code == 2 and "--days" in result.output
    assert not (tmp_path / "d").exists()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_bot("demo", "--dir", str(tmp_path / "d"), "--serve", "--port", str(port))
        assert result.exit_code == 2 and "--port" in result.output and str(port) in result.output
        for option in ("--sandbox-port", "--smtp-port"):
            result = run_bot("demo", "--dir", str(tmp_path / "d"), "--no-serve", option, str(port))
            assert result.exit_code == 2 and option in result.output and str(port) in result.output
    [free] = free_ports(1)
    result = run_bot("demo", "--dir", str(tmp_path / "d"), "--no-serve", "--sandbox-port", str(free),
                     "--smtp-port", str(free))
    assert result.exit_code == 2 and "--smtp-port" in result.output and "--sandbox-port" in result.output
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


def test_the_call_showcase_is_dealt_to_the_first_borrowers_called() -> None:
    kinds = {f"B{n}": Kind.SILENT for n in range(20)} | {"T": Kind.PAYS, "L": Kind.LANDLINE}
    showcase = CallShowcase(Cast(kinds, {}, {}, {}, frozenset({"T"})))
    assert showcase.deal("T", "en-US") is None  # the texting showcase keeps its story
    assert showcase.deal("L", "en-US") is None  # a landline stays a landline
    dealt = [showcase.deal("B0", "en-US"), showcase.deal("B1", "ko-KR"), showcase.deal("B0", "ko-KR")]
    assert dealt == [CALL_SHOWCASE_ROUND[0], SPOKEN_SHOWCASE_ROUND[0], None]  # once per borrower
    rest = [showcase.deal(f"B{n}", "ko-KR" if n < 4 else "en-US") for n in range(2, 20)]
    assert rest[:2] == list(SPOKEN_SHOWCASE_ROUND[1:])
    assert [r for r in rest[2:] if r is not None] == list(CALL_SHOWCASE_ROUND[1:])


def test_call_behaviours_keys_or_spoken_korean_clips_made_once(tmp_path: Path) -> None:
    from bot.speech.audio import read_wav

    clips, made = korean_clips(tmp_path / "clips")
    assert clips is not None and made == len(CLIP_TEXTS)
    for path in clips.values():
        pcm = read_wav(path)
        assert pcm.rate == 8000 and pcm.samples.ndim == 1 and 0.2 < pcm.duration_s < 5
    again, made_again = korean_clips(tmp_path / "clips")
    assert again == clips and made_again == 0  # the cache
    keypad = call_behaviour(CallStyle.PROMISE, "en-US", date(2026, 11, 28))
    assert [t.digits for t in keypad.turns] == ["1", "1#", "1"]  # yes, the 1st (three days on), yes
    spoken = call_behaviour(CallStyle.PROMISE, "ko-KR", date(2026, 11, 28), clips=clips)
    assert [t.audio for t in spoken.turns[:3]] == [clips["yes"], clips["monday"], clips["yes"]]
    assert call_behaviour(CallStyle.PROMISE, "ko-KR", date(2026, 11, 28)).turns == keypad.turns  # no clips: keys
    assert call_behaviour(CallStyle.VOICEMAIL, "ko-KR", None, clips=clips).answer == "machine"
    assert call_behaviour(CallStyle.OPT_OUT, "zh-CN", None).turns[0].digits == "9"


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


def test_demo_unit_costs_apply_only_when_none_is_configured(tmp_path: Path) -> None:
    from bot.demo.world import DEMO_UNIT_COSTS, demo_settings

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    own = demo_settings(None, url)
    assert (own.cost_sms_segment_minor, own.cost_call_minute_minor, own.cost_email_minor) == (
        DEMO_UNIT_COSTS["cost_sms_segment_minor"], DEMO_UNIT_COSTS["cost_call_minute_minor"],
        DEMO_UNIT_COSTS["cost_email_minor"])
    config = tmp_path / "bot.toml"
    config.write_text('cost_email_minor = 3\ncost_currency = "EUR"\n', encoding="utf-8")
    theirs = demo_settings(str(config), url)
    assert (theirs.cost_sms_segment_minor, theirs.cost_call_minute_minor, theirs.cost_email_minor,
            theirs.cost_currency) == (0, 0, 3, "EUR")
