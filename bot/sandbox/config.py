"""The sandbox's configuration: accounts, numbers, phones, faults, timing.

One pydantic model serves the three ways to configure a sandbox: keyword
arguments from Python, JSON to ``POST /_sandbox/config``, and the YAML file
of ``bot sandbox --personas FILE``.  The defaults match the bot's own
defaults (``BOT_TWILIO_ACCOUNT_SID``, ``BOT_TWILIO_AUTH_TOKEN``,
``BOT_TWILIO_FROM_NUMBERS``) so an unconfigured bot talks to an
unconfigured sandbox.

Example personas file::

    accounts:
      - sid: AC00000000000000000000000000000000
        auth_token: sandbox-token
    numbers:
      - number: "+15005550006"
        sms_url: http://127.0.0.1:8000/twilio/sms
    phones:
      - number: "+15551230001"
        replies: [{text: "PAID", after: 120}]
        call:
          turns: [{digits: "1"}, {audio: clips/yes.wav}, {hangup: true}]
      - pattern: "+1555000*"
        line_type: landline
    faults:
      duplicate_callbacks: true
    latency: {latency_ms: 150, jitter_ms: 50, seed: 1}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import InputFileError
from bot.sandbox.faults import FaultSpec, LatencySpec
from bot.sandbox.phones import Persona, is_pattern

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-token"
DEFAULT_NUMBER = "+15005550006"

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")


def _e164(value: str) -> str:
    if not E164.match(value):
        raise ValueError("must be an E.164 number such as +15005550006")
    return value


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = Field(default=DEFAULT_AUTH_TOKEN, min_length=1)
    api_keys: dict[str, str] = Field(default_factory=dict)

    @field_validator("sid")
    @classmethod
    def _sid(cls, value: str) -> str:
        if not ACCOUNT_SID.match(value):
            raise ValueError("must be AC followed by 32 hex digits")
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not API_KEY_SID.match(key):
                raise ValueError("API key SIDs must be SK followed by 32 hex digits")
        return value


class NumberConfig(BaseModel):
    """A number the sandbox holds, and where it sends what arrives on it."""

    model_config = ConfigDict(extra="forbid")

    number: str
    account_sid: str | None = None  # default: the first account
    sms_url: str | None = None
    sms_method: Literal["GET", "POST"] = "POST"
    voice_url: str | None = None
    voice_method: Literal["GET", "POST"] = "POST"

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return _e164(value)


class PhoneConfig(Persona):
    """A persona for one number or a glob pattern of numbers."""

    number: str | None = None
    pattern: str | None = None

    @model_validator(mode="after")
    def _one_match(self) -> PhoneConfig:
        if (self.number is None) == (self.pattern is None):
            raise ValueError("give exactly one of number or pattern")
        if self.number is not None:
            _e164(self.number)
            if is_pattern(self.number):
                raise ValueError("number may not contain * ? [ (use pattern)")
        return self

    @property
    def match(self) -> str:
        return self.number or self.pattern or ""

    def persona(self) -> Persona:
        return Persona(**self.model_dump(exclude={"number", "pattern"}))


class TimingConfig(BaseModel):
    """Seconds between the steps the sandbox simulates."""

    model_config = ConfigDict(extra="forbid")

    sms_sent_after: float = Field(default=1.0, ge=0)
    sms_delivered_after: float = Field(default=2.0, ge=0)
    call_ring_after: float = Field(default=1.0, ge=0)


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[AccountConfig] = Field(default_factory=lambda: [AccountConfig()], min_length=1)
    numbers: list[NumberConfig] = Field(default_factory=lambda: [NumberConfig(number=DEFAULT_NUMBER)])
    phones: list[PhoneConfig] = Field(default_factory=list)
    faults: FaultSpec = Field(default_factory=FaultSpec)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    #: how long every REST request takes to answer (the provider's latency and its jitter)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    #: hosts other than loopback that webhooks may go to; empty keeps all traffic on this machine
    allowed_webhook_hosts: list[str] = Field(default_factory=list)
    #: answer STOP / START / HELP with Twilio-style confirmations, as Twilio's default opt-out handling does
    auto_replies: bool = True

    @model_validator(mode="after")
    def _numbers_have_accounts(self) -> SandboxConfig:
        sids = {account.sid for account in self.accounts}
        for index, number in enumerate(self.numbers):
            if number.account_sid is None:
                number.account_sid = self.accounts[0].sid
            elif number.account_sid not in sids:
                raise ValueError(f"numbers.{index}.account_sid is not one of the accounts")
        return self


def load_config_file(path: str | Path) -> SandboxConfig:
    """Read a personas file; errors name the file and the field (never a value)."""
    file = Path(path)
    try:
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{file}: cannot read it ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputFileError(f"{file}{where}: not valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputFileError(f"{file}: the top level must be a mapping")
    _resolve_audio_paths(data, file.parent)
    try:
        config = SandboxConfig.model_validate(data)
    except ValidationError as exc:
        raise InputFileError(f"{file}: {describe_errors(exc)}") from None
    for index, phone in enumerate(config.phones):
        for where, path in phone.call.audio_files():
            if not path.is_file():
                raise InputFileError(f"{file}: phones.{index}.{where}: no such file {path}")
    return config


def _resolve_audio_paths(data: dict[str, Any], base: Path) -> None:
    """Audio clips of persona turns are relative to the personas file's directory."""
    phones = data.get("phones")
    if not isinstance(phones, list):
        return
    for phone in phones:
        call = phone.get("call") if isinstance(phone, dict) else None
        turns = call.get("turns") if isinstance(call, dict) else None
        if not isinstance(turns, list):
            continue
        for turn in turns:
            if isinstance(turn, dict) and isinstance(turn.get("audio"), str) and not Path(turn["audio"]).is_absolute():
                turn["audio"] = str(base / turn["audio"])


def describe_errors(exc: ValidationError) -> str:
    """Pydantic errors as ``field.path: reason`` without echoing the input values."""
    parts = []
    for err in exc.errors():
        location = ".".join(str(p) for p in err["loc"]) or "document"
        parts.append(f"{location}: {err['msg']}")
    return "; ".join(parts)
