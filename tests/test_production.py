"""Start-up checks: Twilio settings in every mode, development secrets refused in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.production import production_problems, twilio_problems

REAL_SID = "AC" + "0123456789abcdef" * 2
PRODUCTION = {
    "BOT_ENVIRONMENT": "production",
    "BOT_UNSUBSCRIBE_SECRET": "u" * 32,
    "BOT_MEDIA_URL_SECRET": "m" * 32,
    "BOT_PAYMENT_LINK_SECRET": "p" * 40,
    "BOT_TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
    "BOT_TWILIO_ACCOUNT_SID": REAL_SID,
    "BOT_PUBLIC_BASE_URL": "https://bot.example.com",
}
DEV_NAMES = ["BOT_UNSUBSCRIBE_SECRET", "BOT_MEDIA_URL_SECRET", "BOT_PAYMENT_LINK_SECRET", "BOT_TWILIO_AUTH_TOKEN",
             "BOT_TWILIO_ACCOUNT_SID", "BOT_TWILIO_API_BASE_URL", "BOT_PUBLIC_BASE_URL"]


def test_development_defaults_pass_in_development() -> None:
    settings = load_settings()
    assert settings.environment == "development"
    assert twilio_problems(settings) == [] and production_problems(settings) == []


def test_every_development_default_is_named_in_production() -> None:
    settings = load_settings(environment="production", twilio_api_base_url="http://127.0.0.1:8099")
    problems = production_problems(settings)
    assert [p.split(":")[0] for p in problems] == DEV_NAMES
    # a secret's value is never printed
    assert not any("dev-only" in p or "sandbox-token" in p or "127.0.0.1" in p for p in problems)


def test_production_settings_pass() -> None:
    settings = load_settings(**{k[4:].lower(): v for k, v in PRODUCTION.items()})
    assert production_problems(settings) == [] and twilio_problems(settings) == []
    edge = settings.model_copy(update={"twilio_api_base_url": "https://api.dublin.ie1.twilio.com"})
    assert production_problems(edge) == []
    for url in ("https://twilio.com.evil.example", "http://api.twilio.com"):
        assert production_problems(settings.model_copy(update={"twilio_api_base_url": url}))


@pytest.mark.parametrize(("sid", "ok"), [
    (REAL_SID, True), ("AC" + "0" * 32, True), ("AC" + "A" * 32, False), ("ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", False),
    ("AC123", False), ("SK" + "0" * 32, False), ("", False)])
def test_account_sid_shape(sid: str, ok: bool) -> None:
    problems = twilio_problems(load_settings(twilio_account_sid=sid))
    assert (problems == []) is ok
    if not ok:
        assert problems[0].startswith("BOT_TWILIO_ACCOUNT_SID: not a Twilio account SID")


@pytest.mark.parametrize(("numbers", "bad"), [
    (["+15005550006", "+8613800138000"], []), (["15005550099"], [1]), (["+1 500 555 0006"], [1]),
    (["+15005550006", "+1555"], [2]), (["+99912345678"], [1]), ([], [])])
def test_from_numbers_are_e164(numbers: list[str], bad: list[int]) -> None:
    problems = twilio_problems(load_settings(twilio_from_numbers=numbers))
    assert problems == [f"BOT_TWILIO_FROM_NUMBERS: number {i} is not a valid phone number in E.164 form "
                        "(+ country code and number, no spaces: +15005550006)" for i in bad]
    assert not any(numbers[i - 1] in p for i in bad for p in problems)  # the numbers themselves are not shown


def test_run_refuses_development_secrets_in_production(run_bot, db_url: str) -> None:  # type: ignore[no-untyped-def]
    result = run_bot("run", "--once", db_url=db_url,
                     env={"BOT_ENVIRONMENT": "production", "BOT_TWILIO_API_BASE_URL": "http://127.0.0.1:8099"})
    assert result.exit_code == 2, result.output
    assert "refusing to start in production" in result.stderr
    for name in DEV_NAMES:
        assert f"{name}:" in result.stderr
    assert "planned at" not in result.stderr  # nothing ran


def test_run_starts_in_production_with_its_own_secrets(run_bot, db_url: str) -> None:  # type: ignore[no-untyped-def]
    result = run_bot("run", "--once", "--at", "2026-11-28T15:00:00Z", db_url=db_url, env=PRODUCTION)
    assert result.exit_code == 0, result.output
    assert "planned at 2026-11-28T15:00:00+00:00" in result.stderr


def test_tick_refuses_a_bad_sender_number_in_any_mode(run_bot, db_url: str) -> None:  # type: ignore[no-untyped-def]
    result = run_bot("tick", "--at", "2026-11-28T15:00:00Z", db_url=db_url,
                     env={"BOT_TWILIO_FROM_NUMBERS": "+15005550006,5005550007"})
    assert result.exit_code == 2
    assert "BOT_TWILIO_FROM_NUMBERS: number 2 is not a valid phone number in E.164 form" in result.stderr


def test_the_web_factory_refuses_development_secrets_in_production(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    from bot.errors import ConfigError
    from bot.app import from_environment

    monkeypatch.setenv("BOT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.setenv("BOT_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="BOT_UNSUBSCRIBE_SECRET: still the development default"):
        from_environment()  # `uvicorn --factory bot.app:from_environment` does not start either
