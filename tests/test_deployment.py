"""docker-compose.yml, the Dockerfile and .env.example, checked structurally (no Docker engine here):
services, health checks, volumes, the image's user, and every BOT_* name a real setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings
from bot.production import SECRETS

ROOT = Path(__file__).resolve().parent.parent
BOT_SERVICES = ("init", "bot", "worker")
#: Variables that are not settings of their own but are read by name (docs/configuration.md)
SPECIAL = re.compile(r"^BOT_(CONFIG_FILE|VOSK_MODEL_[A-Z_]+)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.lstrip("# ").split("=", 1) for line in lines if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line)]
    return dict(pairs)  # type: ignore[arg-type]


def is_setting(name: str) -> bool:
    return name[4:].lower() in Settings.model_fields or bool(SPECIAL.match(name))


def test_services_and_their_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "mailpit", "init", "bot", "worker"}
    assert services["bot"]["command"] == ["run"]  # web app and scheduler
    assert services["worker"]["command"] == ["run", "--no-web"]
    assert services["init"]["command"] == ["init"] and services["init"]["restart"] == "no"
    assert services["db"]["image"].startswith("postgres:")
    for name in ("bot", "worker"):
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["init"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["BOT_DATABASE_URL"].startswith("postgresql+psycopg://bot:")
        assert services[name]["environment"]["BOT_DATABASE_URL"].endswith("@db:5432/bot")
    # the web port is published on loopback only (a TLS proxy goes in front)
    assert services["bot"]["ports"] == ["127.0.0.1:8000:8000"] and "ports" not in services["worker"]


def test_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("db", "mailpit", "bot", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["bot"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    from bot.web.metrics import router  # the route the check asks exists

    assert "/readyz" in {route.path for route in router.routes}


def test_media_is_a_named_volume_shared_by_the_workers(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) == {"pgdata", "media"}
    for name in BOT_SERVICES:
        service = compose["services"][name]
        assert "media:/data" in service["volumes"]
        assert service["environment"]["BOT_MEDIA_DIR"].startswith("/data/")
        assert service["environment"]["BOT_SPEECH_CACHE_DIR"].startswith("/data/")


def test_every_bot_variable_is_a_setting(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\b(BOT_[A-Z0-9_]+)\b(?!\*)", text))  # not BOT_SMTP_*: a family in a comment
    names |= {n for n in env_example() if n.startswith("BOT_")}
    dockerfile = (ROOT / "Dockerfile").read_text()
    names |= set(re.findall(r"\b(BOT_[A-Z0-9_]+)=", dockerfile))
    assert names and sorted(n for n in names if not is_setting(n)) == []


def test_production_secrets_come_from_env(compose: dict[str, Any]) -> None:
    environment = compose["services"]["bot"]["environment"]
    assert environment["BOT_ENVIRONMENT"] == "production"
    example = env_example()
    required = [*(f"BOT_{s.upper()}" for s in SECRETS), "BOT_TWILIO_AUTH_TOKEN", "BOT_TWILIO_ACCOUNT_SID",
                "BOT_TWILIO_FROM_NUMBERS", "BOT_PUBLIC_BASE_URL", "BOT_METRICS_TOKEN"]
    for name in required:
        assert environment[name] == f"${{{name}:?set {name} in .env}}" or environment[name].startswith(
            f"${{{name}:?"), name  # compose refuses to start without it
        assert name in example, name
    assert "POSTGRES_PASSWORD" in example and ":?" in compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    # no secret is written into the file itself
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text and "dev-only" not in text and "sandbox-token" not in text
    # every bot service shares the same environment and reads .env for the other settings
    for name in BOT_SERVICES:
        assert compose["services"][name]["environment"] == environment
        assert compose["services"][name]["env_file"] == [{"path": ".env", "required": False}]


def test_image_runs_as_a_user_with_a_writable_data_directory() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    user = users[-1].split(":")[0]
    text = "\n".join(lines)
    assert "useradd" in text and f"chown -R {user}:{user} /data" in text
    assert 'VOLUME ["/data"]' in text
    assert "BOT_MEDIA_DIR=/data/media" in text
    assert lines.index(next(line for line in lines if line.startswith("USER "))) > lines.index(
        next(line for line in lines if "pip install" in line))  # installed as root, run as the user
