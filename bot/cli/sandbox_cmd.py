"""``bot sandbox``: run the local Twilio-compatible sandbox in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from bot.cli.common import App, err_console, pass_app
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.sandbox.config import SandboxConfig


class _Stop(Exception):
    """Raised by the SIGTERM handler once uvicorn has shut down, to leave like Ctrl-C does."""


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8099, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option(
    "--personas",
    "personas_file",
    type=click.Path(dir_okay=False),
    help="YAML file with accounts, numbers, phones (personas), faults and timing; see docs/sandbox.md.",
)
@click.option("--account-sid", help="Account SID to accept (default: BOT_TWILIO_ACCOUNT_SID).")
@click.option("--auth-token", help="Auth token to accept (default: BOT_TWILIO_AUTH_TOKEN).")
@click.option("--sms-url", help="Inbound SMS webhook for every number that has none configured.")
@click.option("--voice-url", help="Voice webhook for every number that has none configured.")
@click.option(
    "--allow-webhook-host",
    "allowed_hosts",
    multiple=True,
    help="A non-loopback host webhooks may go to (repeatable). Without it nothing leaves this machine.",
)
@click.option("--latency-ms", type=click.FloatRange(0, 60_000), default=None,
              help="Milliseconds every REST request takes to answer, as Twilio's 100-300 ms (default 0).")
@click.option("--jitter-ms", type=click.FloatRange(0, 60_000), default=None,
              help="Up to this many milliseconds more or less per request, uniformly drawn (default 0).")
@click.option("--latency-seed", type=int, default=None, help="Seed of the jitter draws (default 0: repeatable).")
@pass_app
def sandbox(
    app: App,
    host: str,
    port: int,
    personas_file: str | None,
    account_sid: str | None,
    auth_token: str | None,
    sms_url: str | None,
    voice_url: str | None,
    allowed_hosts: tuple[str, ...],
    latency_ms: float | None,
    jitter_ms: float | None,
    latency_seed: int | None,
) -> int:
    """Run the local Twilio sandbox until Ctrl-C.

    The official twilio client and the bot talk to it as to Twilio once
    their base URL points at it (BOT_TWILIO_API_BASE_URL). Phones,
    personas and faults come from --personas FILE or the /_sandbox/
    control API; time runs in real time.
    """
    import uvicorn

    from bot.sandbox.app import create_app
    from bot.sandbox.config import SandboxConfig, load_config_file
    from bot.sandbox.sandbox import Sandbox
    from bot.sandbox.server import bind_socket, url_host, uvicorn_config
    from bot.sandbox.webhooks import is_loopback_host

    config = load_config_file(personas_file) if personas_file else SandboxConfig()
    config = _with_overrides(app, config, account_sid, auth_token, sms_url, voice_url, allowed_hosts)
    config = _with_latency(config, latency_ms, jitter_ms, latency_seed)
    if not is_loopback_host(host):
        err_console.print(
            f"[yellow]warning:[/yellow] listening on {host}: other machines can reach the sandbox "
            "(its control API needs the account credentials)"
        )
    sb = Sandbox(config, realtime=True)
    asgi = create_app(sb)
    sock = bind_socket(host, port)
    actual_port = sock.getsockname()[1]
    base_url = f"http://{url_host(host)}:{actual_port}"
    account = config.accounts[0]
    click.echo(f"Twilio sandbox listening on {base_url}")
    click.echo(f"  account SID : {account.sid}")
    click.echo(f"  auth token  : {account.auth_token}")
    click.echo(f"  numbers     : {', '.join(n.number for n in config.numbers) or '(none)'}")
    if config.latency.latency_ms or config.latency.jitter_ms:
        click.echo(f"  latency     : {config.latency.latency_ms:g} ms +/- {config.latency.jitter_ms:g} ms "
                   f"per REST request (seed {config.latency.seed})")
    click.echo("  twilio client: client.api.base_url = " + repr(base_url))
    click.echo(f"  bot settings: BOT_TWILIO_API_BASE_URL={base_url}")
    click.echo(f"  control API : {base_url}/_sandbox/state (HTTP Basic with the account SID and token)")
    sys.stdout.flush()

    server = uvicorn.Server(uvicorn_config(asgi, log_level="info" if app_verbose() else "warning"))
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_stop)
    sb.start()
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        sb.close()
        sock.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    err_console.print("sandbox stopped")
    return 0


def app_verbose() -> bool:
    import logging

    return logging.getLogger().getEffectiveLevel() <= logging.INFO


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def _with_latency(config: SandboxConfig, latency_ms: float | None, jitter_ms: float | None,
                  seed: int | None) -> SandboxConfig:
    """The options override the personas file's ``latency`` field by field."""
    given = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "seed": seed}
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes:
        return config
    return config.model_copy(update={"latency": config.latency.model_copy(update=changes)})


def _with_overrides(
    app: App,
    config: SandboxConfig,
    account_sid: str | None,
    auth_token: str | None,
    sms_url: str | None,
    voice_url: str | None,
    allowed_hosts: tuple[str, ...],
) -> SandboxConfig:
    """Fill in what the personas file leaves out from the bot's settings, then apply the options.

    Without ``accounts`` in the file the sandbox accepts the bot's own
    BOT_TWILIO_ACCOUNT_SID / BOT_TWILIO_AUTH_TOKEN, and without ``numbers``
    it holds BOT_TWILIO_FROM_NUMBERS, so an unconfigured bot and sandbox agree.
    """
    from pydantic import ValidationError

    from bot.sandbox.config import SandboxConfig, describe_errors

    data = config.model_dump()
    given = config.model_fields_set
    if "accounts" not in given:
        data["accounts"] = [{"sid": app.settings.twilio_account_sid, "auth_token": app.settings.twilio_auth_token}]
    first = data["accounts"][0]
    old_sid = first["sid"]
    first["sid"] = account_sid or first["sid"]
    first["auth_token"] = auth_token or first["auth_token"]
    if "numbers" not in given:
        data["numbers"] = [{"number": number} for number in app.settings.twilio_from_numbers]
    for number in data["numbers"]:
        if number.get("account_sid") in (None, old_sid):
            number["account_sid"] = first["sid"]
        number["sms_url"] = number.get("sms_url") or sms_url
        number["voice_url"] = number.get("voice_url") or voice_url
    data["allowed_webhook_hosts"] = sorted({*data["allowed_webhook_hosts"], *(h.lower() for h in allowed_hosts)})
    try:
        return SandboxConfig.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"sandbox options: {describe_errors(exc)}") from None


COMMANDS = [sandbox]
