"""Start-up checks of the settings that only running tells apart (docs/operations.md, "Production").

* :func:`twilio_problems`, in every mode: the account SID's shape (``AC`` + 32 hex digits) and
  every sender number in E.164 (parsed and validated with ``phonenumbers``), so a typo stops
  ``bot run``/``bot tick`` at start instead of failing every send.
* :func:`production_problems`, with ``environment = "production"``: the development defaults
  that must never serve borrowers: the ``dev-only-*`` keys (anyone with the source could sign
  unsubscribe, prompt and payment links), the sandbox's token and placeholder account, a
  Twilio API URL that is not Twilio's, an ``http://`` public URL, insecure console cookies.

Each problem is one line that names the setting (its ``BOT_*`` variable), never its value.
:func:`check_startup` raises one :class:`~bot.errors.ConfigError` with all of them (exit status 2).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from bot.errors import ConfigError

__all__ = ["check_startup", "production_problems", "twilio_problems"]

ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-f]{32}$")
SANDBOX_TOKEN = "sandbox-token"
PLACEHOLDER_SIDS = frozenset({"AC" + "0" * 32})
DEV_SECRET_PREFIX = "dev-only-"
SECRETS = ("unsubscribe_secret", "media_url_secret", "payment_link_secret")
TWILIO_API_DOMAIN = ".twilio.com"


def _var(name: str) -> str:
    return f"BOT_{name.upper()}"


def twilio_problems(settings: Any) -> list[str]:
    """The Twilio settings' shape: account SID and sender numbers."""
    problems = []
    if not ACCOUNT_SID_RE.fullmatch(settings.twilio_account_sid or ""):
        problems.append(f"{_var('twilio_account_sid')}: not a Twilio account SID "
                        "(AC followed by 32 lower-case hexadecimal digits, as the Twilio console shows it)")
    for index, number in enumerate(settings.twilio_from_numbers, start=1):
        try:
            parsed = phonenumbers.parse(number, None)
            ok = (phonenumbers.is_valid_number(parsed)
                  and phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number)
        except phonenumbers.NumberParseException:
            ok = False
        if not ok:
            problems.append(f"{_var('twilio_from_numbers')}: number {index} is not a valid phone number in E.164 "
                            "form (+ country code and number, no spaces: +15005550006)")
    return problems


def production_problems(settings: Any) -> list[str]:
    """What a production service must not run with (empty in development)."""
    if settings.environment != "production":
        return []
    problems = []
    for name in SECRETS:
        if str(getattr(settings, name)).startswith(DEV_SECRET_PREFIX):
            problems.append(f"{_var(name)}: still the development default; set a random secret of your own "
                            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if settings.twilio_auth_token == SANDBOX_TOKEN:
        problems.append(f"{_var('twilio_auth_token')}: the sandbox's token; set the account's auth token")
    if settings.twilio_account_sid in PLACEHOLDER_SIDS:
        problems.append(f"{_var('twilio_account_sid')}: the sandbox's placeholder account; set the Twilio account SID")
    base = settings.twilio_api_base_url
    if base is not None:
        parts = urlsplit(base)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not (host == TWILIO_API_DOMAIN[1:] or host.endswith(TWILIO_API_DOMAIN)):
            problems.append(f"{_var('twilio_api_base_url')}: points at a sandbox, not at Twilio; unset it "
                            "(or give an https://*.twilio.com edge)")
    if not settings.public_base_url.startswith("https://"):
        problems.append(f"{_var('public_base_url')}: http://; Twilio and borrowers must reach the bot over "
                        "https:// (webhook signatures, unsubscribe and payment links)")
    if not settings.console_secure_cookies:
        problems.append(f"{_var('console_secure_cookies')}: false; the console's session cookie would travel "
                        "without TLS")
    return problems


def check_startup(settings: Any) -> None:
    """Raise :class:`ConfigError` listing every problem (one line each) of the settings."""
    problems = twilio_problems(settings) + production_problems(settings)
    if problems:
        mode = " in production" if settings.environment == "production" else ""
        raise ConfigError(f"refusing to start{mode}:\n  " + "\n  ".join(problems))
