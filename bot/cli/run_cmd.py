"""``bot run``: the service (scheduler and web app in one process), and the start-up checks
that ``bot run``, ``bot tick`` and ``bot check`` share."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from bot.cli.common import INSTANT, App, clock_for, err_console, pass_app
from bot.cli.plan_cmd import _POLICY_OPTION, _compliance_config, _policy
from bot.errors import UsageError
from bot.metrics import HEARTBEAT

if TYPE_CHECKING:
    from bot.policy import Policy

log = logging.getLogger(__name__)


def checked_policy(app: App, policy_file: Path | None) -> Policy:
    """The treatment policy, and every message template the bot may send checked with it.

    ``load_policy`` renders the policy's templates; this adds the message rules
    (reply templates, SMS segment limit and opt-out instruction, the email's
    unsubscribe link: :func:`bot.messages.validate_templates`), so a broken template
    stops the command at start (exit status 2, each problem named with its file)
    rather than failing every message at send time.  The Twilio settings' shape, and in
    production every development default, are checked first (:func:`bot.production.check_startup`).
    A public URL that is ``http://``
    on a host other than this machine is warned about (no TLS, no RFC 8058 one-click).
    """
    from bot.messages import public_url_warnings, validate_templates
    from bot.production import check_startup
    from bot.rendering import get_renderer

    check_startup(app.settings)  # Twilio settings' shape; in production, no development secrets (exit 2)
    policy = _policy(app, policy_file)
    validate_templates(get_renderer(str(app.settings.templates_dir)), policy=policy, settings=app.settings)
    for warning in public_url_warnings(app.settings.public_base_url):
        log.warning("%s", warning)
        err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    return policy


def _public_url(url: str) -> str:
    """The public URL without user, password, query or fragment (it is printed)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@click.command("run")
@click.option("--plan-interval", type=click.IntRange(min=10), default=None,
              help="Seconds between planning passes (default: the plan_interval_seconds setting, 300).")
@click.option("--dispatch-interval", type=click.IntRange(min=1), default=60, show_default=True,
              help="Seconds between dispatch runs.")
@click.option("--host", default=None,
              help="Address the web app listens on (default: the web_host setting, 127.0.0.1).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None,
              help="Port of the web app (default: the web_port setting, 8000; 0: any free port).")
@click.option("--no-web", is_flag=True, help="Run the scheduler only (another process serves the web app).")
@click.option("--stop-after", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop by itself after this many seconds (smoke tests, demos).")
@click.option("--once", is_flag=True, help="Run one planning pass and one dispatch run, then exit (no web app).")
@click.option("--at", type=INSTANT, help="With --once: the instant to plan at (ISO 8601 with offset).")
@_POLICY_OPTION
@pass_app
def run_cmd(app: App, plan_interval: int | None, dispatch_interval: int, host: str | None, port: int | None,
            no_web: bool, stop_after: float | None, once: bool, at: datetime | None,
            policy_file: Path | None) -> None:
    """Run the service: plan every few minutes, dispatch what is due, and serve the
    web app (Twilio webhooks, unsubscribe links, health) in the same process.

    Point Twilio at {public URL}/twilio/sms.  Every message template is checked
    first (exit status 2 on a problem).  Stops gracefully on Ctrl-C or SIGTERM: the
    web server finishes its requests, a dispatch pass its batch, a planning pass its
    work.
    """
    from bot.scheduler.service import PlannerService, WebServer, build_scheduler, listen_socket, serve

    if at is not None and not once:
        raise UsageError("--at only makes sense with --once (the scheduler runs on the real clock)")
    settings = app.settings
    policy = checked_policy(app, policy_file)
    service = PlannerService(db=app.db, clock=clock_for(app, at), policy=policy,
                             default_timezone=settings.default_timezone,
                             compliance_config=_compliance_config(app), settings=settings,
                             simulated=at is not None)
    if once:
        report = service.plan_job()
        service.dispatch_job()
        service.prune_job()
        service.retention_job()
        service.webhook_job()
        err_console.print(f"planned at {report.at.isoformat()}: {dict(report.by_status) or 'nothing'}")
        return
    interval = plan_interval or settings.plan_interval_seconds
    scheduler = build_scheduler(service, plan_interval=interval, dispatch_interval=dispatch_interval)
    HEARTBEAT.expect(max(interval, dispatch_interval), app.clock.now())
    web = None
    if not no_web:
        from bot.app import create_app

        sock = listen_socket(host if host is not None else settings.web_host,
                             port if port is not None else settings.web_port)
        web = WebServer(create_app(settings, app.db, app.clock, survey=policy.survey), sock)

    def started() -> None:
        if web is not None:
            err_console.print(f"web app on {web.url} (health: {web.url}/healthz); Twilio webhooks at "
                              f"{_public_url(settings.public_base_url)}/twilio/sms", markup=False, soft_wrap=True)
        err_console.print(f"scheduler running: planning every {interval} s, dispatch every {dispatch_interval} s"
                          + ("" if web is not None else " (no web app)") + "; Ctrl-C to stop",
                          markup=False, soft_wrap=True)

    asyncio.run(serve(scheduler, web=web, stopping=service.stopping, stop_after=stop_after, on_started=started))
    err_console.print("bot stopped")


COMMANDS = [run_cmd]
