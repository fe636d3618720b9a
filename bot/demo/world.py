"""The demo's world: one database, one clock, and the three servers the bot talks to.

* the bot's own webhooks app (:func:`bot.app.create_app`) served by uvicorn in
  a thread (:class:`bot.sandbox.server.ThreadedServer`) on a free local port: the
  public URL the sandbox signs its webhooks for;
* the Twilio sandbox (:class:`bot.sandbox.SandboxServer`) on the same
  :class:`~bot.clock.FixedClock` as the bot: the dispatcher sends SMS to it through
  the official twilio client, and it posts signed status callbacks and the
  simulated phones' texts to the bot's ``/twilio/sms`` and ``/twilio/status``;
* a mail server (:class:`bot.demo.mailbox.Mailbox`, aiosmtpd) that keeps what the
  email adapter sends.

Everything listens on 127.0.0.1 and nothing leaves the machine.  Settings are the
user's, with everything that points outward replaced (database, Twilio account and
API URL, SMTP server, public URL), so a configured production Twilio account is
never used by the demo.  Call audio (the bot's rendered prompts, the borrowers'
recordings) goes to ``DIR/media``; the console's cookies work over plain HTTP
(``console_secure_cookies=false``: the web app listens on 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.demo.mailbox import Mailbox
from bot.sandbox import Sandbox, SandboxConfig, SandboxServer, ThreadedServer

__all__ = ["DEMO_ACCOUNT_SID", "DEMO_AUTH_TOKEN", "DEMO_NUMBER", "World"]

DEMO_ACCOUNT_SID = "AC" + "d" * 32
DEMO_AUTH_TOKEN = "demo-sandbox-token"
DEMO_NUMBER = "+15005550006"


#: unit costs the demo reports with when the user's settings give none (minor units of USD)
DEMO_UNIT_COSTS: dict[str, Any] = {"cost_sms_segment_minor": 1, "cost_call_minute_minor": 2,
                                   "cost_email_minor": 0, "cost_currency": "USD"}


def demo_settings(config_file: str | None, database_url: str, **overrides: Any) -> Settings:
    """The user's settings with every outward-pointing value replaced by the demo's own."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "twilio_account_sid": DEMO_ACCOUNT_SID,
        "twilio_auth_token": DEMO_AUTH_TOKEN,
        "twilio_from_numbers": [DEMO_NUMBER],
        "smtp_host": "127.0.0.1",
        "smtp_username": None,
        "smtp_password": None,
        "smtp_starttls": False,
        "smtp_use_tls": False,
        # Provider rate limits are for real carriers; on a fixed clock they would
        # spread a day's texts over simulated seconds the demo does not step through.
        "rate_limits_enabled": False,
        # The console is served over plain HTTP on 127.0.0.1 (never do this in production).
        "console_secure_cookies": False,
    }
    values.update(overrides)
    settings = load_settings(config_file, **values)
    if not (settings.cost_sms_segment_minor or settings.cost_call_minute_minor or settings.cost_email_minor):
        # No unit costs configured: the demo's report shows cost against recovered with
        # round figures of its own (docs/demo.md) rather than $0.00 everywhere.
        settings = settings.model_copy(update=DEMO_UNIT_COSTS)
    return settings


@dataclass
class World:
    """Start with ``with World(...) as world:``; everything stops on exit, in reverse order."""

    directory: Path
    start: datetime
    config_file: str | None = None
    #: the port of the bot's web app (0: a free one)
    web_port: int = 0
    #: the ports of the Twilio sandbox and of the mail server (0: a free one)
    sandbox_port: int = 0
    smtp_port: int = 0
    clock: FixedClock = field(init=False)
    db: Database = field(init=False)
    settings: Settings = field(init=False)
    sandbox: Sandbox = field(init=False)
    sandbox_server: SandboxServer = field(init=False)
    web: ThreadedServer = field(init=False)
    app: Any = field(init=False)
    mailbox: Mailbox = field(init=False)
    loop: asyncio.Runner = field(init=False)
    #: the channels the dispatcher drives; the voice extension adds "voice" in its setup
    channel_names: tuple[str, ...] = ("sms", "email")
    channels: dict[str, Any] = field(init=False, default_factory=dict)
    #: the Korean answer clips (name -> WAV), when the voice extension made them
    clips: dict[str, Path] | None = None
    #: prints one step of the demo's progress (stderr); extensions announce their set-up with it
    progress: Callable[[str], None] = field(default=lambda text: None, repr=False)
    _stack: contextlib.ExitStack = field(init=False, default_factory=contextlib.ExitStack)

    @property
    def db_path(self) -> Path:
        return self.directory / "bot.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def media_dir(self) -> Path:
        """Call audio: ``prompts/`` (the bot's rendered prompts, a cache kept between runs) and
        ``recordings/`` (what the borrowers said, recreated)."""
        return self.directory / "media"

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` when the world stops (before the servers started until then stop)."""
        self._stack.callback(callback)

    def open_database(self) -> Database:
        """A fresh SQLite database at the current schema (an earlier demo's is removed)."""
        from bot.db.migrate import upgrade

        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in (self.db_path, self.db_path.with_name("bot.db-wal"), self.db_path.with_name("bot.db-shm")):
            stale.unlink(missing_ok=True)
        feed = self.directory / "feed"
        if feed.is_dir():  # an earlier run's payment files (only the demo's own names)
            for pattern in ("*-payments.csv*", "*-installments.csv*"):
                for old in feed.glob(pattern):
                    old.unlink()
        recordings = self.media_dir / "recordings"
        if recordings.is_dir():  # an earlier run's recordings, named by call sessions that are gone
            shutil.rmtree(recordings)
        self.db = Database(self.database_url)
        self._stack.callback(self.db.dispose)
        upgrade(self.db.engine)
        return self.db

    def __enter__(self) -> World:
        self.clock = FixedClock(self.start)
        return self

    def start_servers(self) -> None:
        """Mail server, Twilio sandbox and the bot's webhooks, wired to each other."""
        from bot.app import create_app
        from bot.http.context import WebContext

        stack = self._stack
        self.mailbox = stack.enter_context(Mailbox(port=self.smtp_port))
        sandbox = Sandbox(SandboxConfig.model_validate({
            "accounts": [{"sid": DEMO_ACCOUNT_SID, "auth_token": DEMO_AUTH_TOKEN}],
            "numbers": [{"number": DEMO_NUMBER}],
        }), clock=self.clock)
        self.sandbox = sandbox
        self.sandbox_server = stack.enter_context(SandboxServer(sandbox, port=self.sandbox_port))
        base = demo_settings(self.config_file, self.database_url, smtp_port=self.mailbox.port,
                             twilio_api_base_url=self.sandbox_server.base_url, media_dir=self.media_dir)
        app = create_app(base, self.db, self.clock)
        self.app = app
        self.web = stack.enter_context(ThreadedServer(app, port=self.web_port, health_path="/healthz"))
        # The public URL is known once the server has its port: Twilio (here the
        # sandbox) signs every webhook for it, and the bot checks against it.
        self.settings = demo_settings(self.config_file, self.database_url, smtp_port=self.mailbox.port,
                                      twilio_api_base_url=self.sandbox_server.base_url,
                                      public_base_url=self.web.base_url, media_dir=self.media_dir)
        app.state.bot = WebContext(settings=self.settings, db=self.db, clock=self.clock)
        # One answer to STOP / START / HELP: the sandbox's (Twilio's opt-out handling) only
        # when the settings leave the keywords to the provider, else the bot's.
        sandbox.config.auto_replies = self.settings.sms_keyword_replies == "provider"
        sandbox.add_number(DEMO_NUMBER, sms_url=self.web.url("/twilio/sms"))
        # One event loop for every dispatch pass of the run.
        self.loop = stack.enter_context(asyncio.Runner())

    def open_channels(self) -> None:
        """The adapters of :attr:`channel_names`, kept open for every dispatch pass of the run."""
        from bot.dispatch import build_channels

        built = build_channels(self.settings)
        self.channels = {name: built.pop(name) for name in self.channel_names if name in built}
        self._stack.callback(self._close_channels)
        self._close(built.values())  # adapters the demo does not drive yet

    def _close_channels(self) -> None:
        self._close(self.channels.values())

    def _close(self, channels: Iterable[Any]) -> None:
        async def close() -> None:
            for channel in channels:
                with contextlib.suppress(Exception):
                    await channel.aclose()

        self.loop.run(close())

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
