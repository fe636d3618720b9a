"""``bot run``: the scheduler and the web app in one process, and the start-up template checks.

* in-process (:func:`bot.scheduler.service.serve` on a FixedClock): ``/healthz``
  answers over real HTTP while a planning job is running, and stopping waits
  for that job while the web server stops first;
* the real command in a subprocess, stopped with SIGTERM; SIGINT (Ctrl-C) in-process;
* a taken port, ``--stop-after``;
* a broken templates directory (``BOT_TEMPLATES_DIR``) stops ``bot run``,
  ``bot tick`` and ``bot check`` at start with exit status 2, naming each file
  and its problem.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.clock import FixedClock, SystemClock
from bot.config import load_settings
from bot.db import Database
from bot.db.models import ContactAttempt
from bot.policy import load_policy
from bot.scheduler.planner import PlanReport
from bot.scheduler.service import PlannerService, WebServer, build_scheduler, listen_socket, serve
from builders import add_borrower, add_loan

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # Saturday 10:00 in New York
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
CLOSED = "http://127.0.0.1:9"  # nothing listens: no test may reach a real provider


def planned(db: Database) -> list[tuple[str | None, str]]:
    with db.sessions() as s:
        return [(a.step, a.status) for a in s.scalars(select(ContactAttempt).order_by(ContactAttempt.id))]


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


# --- in-process: the service's loop ------------------------------------------------------------------


class HeldService(PlannerService):
    """The real planning job, held at its start until the test releases it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.running = threading.Event()
        self.release = threading.Event()
        self.events: list[str] = []

    def plan_job(self) -> PlanReport:
        self.running.set()
        assert self.release.wait(30), "never released"
        report = super().plan_job()
        self.events.append("plan job done")
        return report


def test_health_answers_while_a_plan_job_runs_and_stopping_waits_for_it(db: Database) -> None:
    add_borrower(db, "B1")
    add_loan(db, "B1", "L1", [("I1", date(2026, 11, 27))])  # D+1 in New York: the SMS step
    clock = FixedClock(AT)
    settings = load_settings(database_url=db.url, twilio_api_base_url=CLOSED)
    service = HeldService(db=db, clock=clock, policy=load_policy(), dispatchers=[])
    scheduler = build_scheduler(service, plan_interval=3600, dispatch_interval=3600)
    web = WebServer(create_app(settings, db, clock), listen_socket("127.0.0.1", 0))
    port = web.port

    def release_once_the_web_server_stopped() -> None:
        assert service.stopping.wait(30)
        deadline = time.monotonic() + 30
        while not refuses(port):  # readiness: the web server closes its socket first
            assert time.monotonic() < deadline
            time.sleep(0.01)
        service.events.append("web server stopped")
        service.release.set()

    async def main() -> None:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(serve(scheduler, web=web, stop=stop, stopping=service.stopping,
                                         on_started=started.set, signals=()))
        await asyncio.wait_for(started.wait(), 30)
        assert await asyncio.to_thread(service.running.wait, 30)  # the plan job has started and is held
        async with httpx.AsyncClient(base_url=web.url, trust_env=False, timeout=10) as client:
            response = await client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}
        assert not service.release.is_set() and planned(db) == []  # answered while the job was running
        releaser = threading.Thread(target=release_once_the_web_server_stopped)
        releaser.start()
        stop.set()
        await asyncio.wait_for(task, 60)
        service.events.append("serve returned")
        releaser.join()

    asyncio.run(main())
    assert service.events == ["web server stopped", "plan job done", "serve returned"]
    assert planned(db) == [("main:D+1:sms", "planned")]  # the running pass finished its work
    assert not scheduler.running and refuses(port)


def test_a_web_server_that_cannot_start_stops_the_service(sqlite_db: Database) -> None:
    class Broken:  # an ASGI app whose lifespan start-up fails: uvicorn exits
        async def __call__(self, scope: dict, receive: object, send: object) -> None:
            if scope["type"] == "lifespan":
                await receive()  # type: ignore[operator]
                await send({"type": "lifespan.startup.failed", "message": "no"})  # type: ignore[operator]

    service = PlannerService(db=sqlite_db, clock=FixedClock(AT), policy=load_policy(), dispatchers=[])
    scheduler = build_scheduler(service, plan_interval=3600, dispatch_interval=3600)
    web = WebServer(Broken(), listen_socket("127.0.0.1", 0))
    from bot.scheduler.service import ServiceError

    with pytest.raises(ServiceError, match="could not start"):
        asyncio.run(serve(scheduler, web=web, signals=()))
    assert not scheduler.running


# --- the command ----------------------------------------------------------------------------------------


def _read_until(process: subprocess.Popen[bytes], pattern: str, deadline: float) -> str:
    """stderr of ``process`` until a line matches ``pattern`` (readiness, bounded)."""
    assert process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    seen = b""
    while not re.search(pattern.encode(), seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0 and process.poll() is None, seen.decode(errors="replace")
        if selector.select(remaining):
            chunk = os.read(process.stderr.fileno(), 4096)
            seen += chunk
    selector.close()
    return seen.decode()


@pytest.fixture
def sqlite_db(_sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """One SQLite database for the tests whose subject is the process, not the database."""
    path = tmp_path / "run.db"
    shutil.copyfile(_sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    try:
        yield db
    finally:
        db.dispose()


def test_sigint_stops_the_service_like_ctrl_c(sqlite_db: Database) -> None:
    service = PlannerService(db=sqlite_db, clock=FixedClock(AT), policy=load_policy(), dispatchers=[])
    scheduler = build_scheduler(service, plan_interval=3600, dispatch_interval=3600)
    settings = load_settings(database_url=sqlite_db.url)
    web = WebServer(create_app(settings, sqlite_db, service.clock), listen_socket("127.0.0.1", 0))
    port = web.port

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await serve(scheduler, web=web, stopping=service.stopping,
                    on_started=lambda: loop.call_soon(signal.raise_signal, signal.SIGINT))

    asyncio.run(asyncio.wait_for(main(), 60))
    assert service.stopping.is_set() and not scheduler.running and refuses(port)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works as before


def test_bot_run_serves_plans_and_stops_cleanly_on_sigterm(sqlite_db: Database, tmp_path: Path) -> None:
    db = sqlite_db
    today = SystemClock().now().astimezone(ZoneInfo("America/New_York")).date()
    add_borrower(db, "B1")
    add_loan(db, "B1", "L1", [("I1", today - timedelta(days=1))])  # the D+1 SMS, whatever the hour
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_") or k.startswith("BOT_TEST_")}
    env.update(BOT_TWILIO_API_BASE_URL=CLOSED, BOT_SMTP_PORT="9")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--database-url", db.url, "run", "--port", "0",
         "--plan-interval", "3600", "--dispatch-interval", "3600"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        banner = _read_until(process, r"scheduler running", deadline)
        url = re.search(r"web app on (http://127\.0\.0\.1:\d+)", banner)
        assert url is not None, banner
        assert "Twilio webhooks at http://127.0.0.1:8000/twilio/sms" in banner
        response = httpx.get(url.group(1) + "/healthz", trust_env=False, timeout=10)
        assert response.status_code == 200 and response.json()["database"] == "ok"
        while not planned(db):  # the planning job runs at start
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        [(step, status)] = planned(db)
        assert step == "main:D+1:sms" and status in ("planned", "deferred")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    text = banner + err.decode()
    assert process.returncode == 0, text
    assert "bot stopped" in text and "Traceback" not in text and "ERROR" not in text
    assert refuses(int(url.group(1).rsplit(":", 1)[1]))


def test_stop_after(run_bot, sqlite_db: Database) -> None:
    result = run_bot("run", "--port", "0", "--stop-after", "0.2", "--plan-interval", "3600",
                     "--dispatch-interval", "3600", db_url=sqlite_db.url, env={"BOT_TWILIO_API_BASE_URL": CLOSED})
    assert result.exit_code == 0, result.output
    assert re.search(r"web app on http://127\.0\.0\.1:\d+ \(health: ", result.stderr)
    assert "bot stopped" in result.stderr


def test_a_taken_port_is_a_usage_error(run_bot, sqlite_db: Database) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_bot("run", "--port", str(port), db_url=sqlite_db.url)
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_web_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (load_settings().web_host, load_settings().web_port) == ("127.0.0.1", 8000)
    monkeypatch.setenv("BOT_WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("BOT_WEB_PORT", "8080")
    assert (load_settings().web_host, load_settings().web_port) == ("0.0.0.0", 8080)


# --- templates are checked at start ---------------------------------------------------------------------


@pytest.fixture
def broken_templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates with four problems the policy loader cannot see."""
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATES, root)
    # a reply template with a variable replies do not have
    (root / "sms/en-US/reply_paid.txt.j2").write_text("{{ lender_name }}: thanks {{ borrower_ssn }}.\n")
    # a reminder SMS far over the segment limit
    (root / "sms/en-US/reminder_overdue.txt.j2").write_text(
        "{{ lender_name }}: " + "your payment is late. " * 40 + "Reply STOP to opt out.\n")
    # a reminder SMS without the opt-out instruction
    (root / "sms/zh-CN/reminder_upcoming.txt.j2").write_text("【{{ lender_name }}】请按时还款。\n")
    # an email whose text part does not show the unsubscribe link
    text = root / "email/ko-KR/reminder_due.txt.j2"
    text.write_text("\n".join(text.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    return root


EXPECTED = [
    ("templates/sms/en-US/reply_paid.txt.j2:1: undefined variable", "borrower_ssn"),
    ("templates/sms/en-US/reminder_overdue.txt.j2: template 'reminder_overdue' for locale en-US:",
     "exceed sms_max_segments=4"),
    ("templates/sms/zh-CN/reminder_upcoming.txt.j2:1: template 'reminder_upcoming' for locale zh-CN:", "opt-out"),
    ("templates/email/ko-KR/reminder_due.txt.j2: template 'reminder_due' for locale ko-KR:", "unsubscribe"),
]


@pytest.mark.parametrize("command", [
    ["tick", "--at", AT.isoformat()],
    ["run", "--port", "0", "--stop-after", "5"],
    ["run", "--once", "--at", AT.isoformat()],
    ["check", "B1", "--channel", "sms", "--at", AT.isoformat()],
])
def test_a_broken_template_stops_the_command_at_start(run_bot, sqlite_db: Database, broken_templates: Path,
                                                      command: list[str]) -> None:
    add_borrower(sqlite_db, "B1")
    add_loan(sqlite_db, "B1", "L1", [("I1", date(2026, 11, 27))])
    result = run_bot(*command, db_url=sqlite_db.url, env={"BOT_TEMPLATES_DIR": str(broken_templates),
                                                    "BOT_TWILIO_API_BASE_URL": CLOSED})
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.split())  # the terminal may wrap long lines
    problems = re.split(r" (?=templates/)", text)
    assert str(broken_templates) in text.replace(" ", "")
    for where, what in EXPECTED:
        assert any(p.startswith(where) and what in p for p in problems), (where, result.stderr)
    assert "web app on" not in result.stderr  # nothing started
    with sqlite_db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ContactAttempt)) == 0  # nothing planned or sent


def test_the_shipped_templates_pass(run_bot, sqlite_db: Database) -> None:
    result = run_bot("tick", "--at", AT.isoformat(), "--no-plan", db_url=sqlite_db.url,
                     env={"BOT_TWILIO_API_BASE_URL": CLOSED})
    assert result.exit_code == 0, result.output
    assert "RFC 8058" not in result.stderr  # the default public URL is this machine's


@pytest.mark.parametrize("command", [["tick", "--at", AT.isoformat(), "--no-plan"],
                                     ["run", "--once", "--at", AT.isoformat()]])
def test_an_http_public_url_off_this_machine_is_warned_about_at_start(run_bot, sqlite_db: Database,
                                                                      command: list[str]) -> None:
    env = {"BOT_TWILIO_API_BASE_URL": CLOSED, "BOT_PUBLIC_BASE_URL": "http://bot.example.com"}
    result = run_bot(*command, db_url=sqlite_db.url, env=env)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "warning: public_base_url is http://" in text and "RFC 8058" in text
    env["BOT_PUBLIC_BASE_URL"] = "https://bot.example.com"
    assert "RFC 8058" not in run_bot(*command, db_url=sqlite_db.url, env=env).stderr
