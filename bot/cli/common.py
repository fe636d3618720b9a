"""Shared pieces of the ``bot`` command: application context, options, output."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from bot.clock import Clock, FixedClock, SystemClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.errors import UsageError
from bot.privacy import install_log_filter, quiet_libraries

log = logging.getLogger("bot.cli")


@dataclass
class App:
    """What every command needs, built lazily so ``--help`` needs no database."""

    config_file: str | None = None
    database_url: str | None = None
    clock: Clock = field(default_factory=SystemClock)
    _settings: Settings | None = None
    _db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            overrides: dict[str, Any] = {}
            if self.database_url:
                overrides["database_url"] = self.database_url
            self._settings = load_settings(self.config_file, **overrides)
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.database_url, pool_size=self.settings.database_pool_size)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None


pass_app = click.make_pass_decorator(App)

# Messages for people go to stderr; stdout carries results (tables, JSON).
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False, soft_wrap=True)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and,
    for an error with one, ``exception`` (the traceback).  The redacting filter has already
    masked the message and the traceback when this runs (bot.privacy)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text or record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(data, ensure_ascii=False)


LOG_FORMATS = ("text", "json")


def configure_logging(verbosity: int, log_format: str | None = None) -> None:
    """Logs to stderr at WARNING (-v INFO, -vv DEBUG), as text or JSON lines (``--log-format``,
    else ``BOT_LOG_FORMAT``), masked in every format."""
    level = logging.WARNING - 10 * verbosity
    root = logging.getLogger()
    chosen = (log_format or os.environ.get("BOT_LOG_FORMAT") or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise UsageError(f"BOT_LOG_FORMAT / --log-format: {chosen!r} is not one of {', '.join(LOG_FORMATS)}")
    formatter = JsonFormatter() if chosen == "json" else \
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    elif chosen == "json":  # a handler set up earlier in this process (an embedding program)
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setFormatter(formatter)
    root.setLevel(max(level, logging.DEBUG))
    install_log_filter(root)
    quiet_libraries(root)  # -v is for the bot's own loggers: libraries log message bodies and tokens


def parse_instant(value: str, *, param: str = "--at") -> datetime:
    """An ISO 8601 instant with an offset (``Z`` allowed)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date-time such as 2026-11-28T09:30:00-05:00",
            param_hint=param,
        ) from None
    if instant.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no UTC offset; add one, e.g. {value}Z or {value}-05:00",
            param_hint=param,
        )
    return instant.astimezone(UTC)


class InstantType(click.ParamType):
    name = "ISO8601"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        hint = param.opts[0] if param and param.opts else "--at"
        return parse_instant(value, param=hint)


INSTANT = InstantType()


def clock_for(app: App, at: datetime | None) -> Clock:
    return FixedClock(at) if at is not None else app.clock


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
