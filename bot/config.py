"""Settings, read from ``BOT_*`` environment variables and an optional TOML file.

Precedence, highest first: environment variables, the file named by
``BOT_CONFIG_FILE`` (or ``bot --config FILE``), built-in defaults.
Every setting is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///bot.db"
# templates/ sits beside the package in a checkout; an installed bot (the Docker
# image) sets BOT_TEMPLATES_DIR.
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOT_", extra="forbid", frozen=True)

    # Storage
    database_url: str = DEFAULT_DATABASE_URL

    # Lender identity (used in templates, HELP answers, voice scripts)
    lender_name: str = "Example Lending"
    lender_phone: str = "+18005550100"
    lender_email: str = "support@example.com"

    # Twilio (or the local sandbox)
    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = "sandbox-token"
    twilio_from_numbers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["+15005550006"])
    twilio_api_base_url: str | None = None  # None: Twilio itself
    sms_max_segments: int = Field(default=4, ge=1, le=10)  # longer SMS are refused (docs/channels.md)

    # SMTP
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_from: str = "reminders@example.com"
    # Key of the email unsubscribe tokens (docs/channels.md); set your own in production.
    unsubscribe_secret: str = Field(default="dev-only-unsubscribe-secret", min_length=16)

    # Webhooks and console
    public_base_url: str = "http://127.0.0.1:8000"

    # Message templates (templates/sms, templates/email, templates/web)
    templates_dir: Path = DEFAULT_TEMPLATES_DIR

    # Treatment policy and scheduler (docs/policy.md, docs/scheduler.md)
    policy_file: Path | None = None  # None: the policy shipped as bot/policy.yaml
    plan_interval_seconds: int = Field(default=300, ge=10, le=86_400)

    # Dispatcher: rate limits (per second, shared by all workers), retries, leases (docs/dispatch.md)
    rate_limits_enabled: bool = True
    sms_rate_per_number: float = Field(default=1.0, gt=0)
    sms_rate_per_account: float = Field(default=100.0, gt=0)
    calls_per_second: float = Field(default=1.0, gt=0)
    email_rate: float = Field(default=20.0, gt=0)
    dispatch_batch_size: int = Field(default=500, ge=1, le=10_000)
    dispatch_concurrency: int = Field(default=32, ge=1, le=1_000)
    dispatch_lease_seconds: int = Field(default=300, ge=30, le=86_400)
    dispatch_max_tries: int = Field(default=5, ge=1, le=100)
    dispatch_backoff_base_seconds: float = Field(default=30.0, gt=0)
    dispatch_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    dispatch_max_age_hours: float = Field(default=24.0, gt=0)
    dispatch_reply_max_age_hours: float = Field(default=72.0, gt=0)

    # Time
    default_timezone: str = "America/New_York"
    default_country: str = "US"

    # Compliance rule overrides, YAML or TOML (docs/compliance.md); None: built-in rules
    compliance_file: Path | None = None

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("templates_dir")
    @classmethod
    def _templates_exist(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"templates directory {value} does not exist")
        return value

    @field_validator("twilio_from_numbers", mode="before")
    @classmethod
    def _split_numbers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str) -> str:
        if len(value) != 2 or not value.isalpha():
            raise ValueError("must be a two-letter ISO 3166 country code")
        return value.upper()


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path}: {exc}") from None
    table = data.get("bot", data)
    if not isinstance(table, dict):
        raise ConfigError(f"configuration file {path}: [bot] must be a table")
    return table


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising :class:`ConfigError` that names the bad setting."""
    file_name = config_file or os.environ.get("BOT_CONFIG_FILE")
    values: dict[str, Any] = {}
    if file_name:
        values.update(_read_file(Path(file_name)))
    # Environment variables override the file: pydantic-settings gives init
    # arguments priority, so drop file values that the environment also sets.
    for key in list(values):
        if f"BOT_{key.upper()}" in os.environ:
            del values[key]
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            where = f"BOT_{name.upper()}"
            if file_name and name in values:
                where = f"{name} in {file_name}"
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
