"""Shared pieces of the ``bot`` command: application context, options, output."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from bot.clock import Clock, FixedClock, SystemClock
from bot.config import Settings, load_settings
from bot.db import Database
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
            self._db = Database(self.settings.database_url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None


pass_app = click.make_pass_decorator(App)

# Messages for people go to stderr; stdout carries results (tables, JSON).
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False, soft_wrap=True)


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * verbosity
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
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
