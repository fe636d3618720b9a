"""Payment links: a signed token naming an installment, the lender's URL, short links.

With the setting ``payment_url_template`` (e.g. ``https://pay.example.com/{token}``)
every reminder gets ``{{ payment_url }}``: the template with ``{token}`` replaced by
a **token** the lender's payment page verifies:

* a JWT (RFC 7519) signed with HS256 and the setting ``payment_link_secret``, so any
  stack verifies it with its own JWT library (docs/api.md "Payment links");
* claims: ``iss`` ``"lender-reminder-bot"``, ``aud`` ``"payment"``, ``sub`` the
  installment id, ``loan`` the loan id, ``att`` the contact attempt id, ``iat`` and
  ``exp`` (``payment_link_ttl_days`` after the attempt was created);
* deterministic for one attempt (its creation instant, not the sending one), so a
  message composed again after a crash is the same text.

With ``payment_short_links`` the message carries ``{public_base_url}/p/{code}``
instead: ``code`` names the attempt and carries an HMAC of it (no database row is
written when composing), and the bot's ``/p/{code}`` records the click and redirects
(302) to the long URL.  A short link keeps an SMS in one segment where a 200-character
URL would not.  An expired link, or one whose installment is paid, is not redirected:
the page says so and gives the lender's phone number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

__all__ = ["ISSUER", "AUDIENCE", "PaymentClaim", "decode_code", "lender_url", "link_ttl", "make_code", "make_token",
           "payment_url", "read_token", "short_url"]

ISSUER = "lender-reminder-bot"
AUDIENCE = "payment"
_ALGORITHM = "HS256"
_CODE_MAC_BYTES = 6  # 48 bits: guessing one live code takes ~10^14 tries


@dataclass(frozen=True, slots=True)
class PaymentClaim:
    """What a valid token says."""

    installment_id: str
    loan_id: str
    attempt_id: int
    issued_at: datetime
    expires_at: datetime


def make_token(secret: str, *, installment_id: str, loan_id: str, attempt_id: int, issued_at: datetime,
               ttl: timedelta) -> str:
    """The signed token for one attempt's installment (see the module docstring)."""
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": installment_id,
        "loan": loan_id,
        "att": attempt_id,
        "iat": int(issued_at.timestamp()),
        "exp": int((issued_at + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def read_token(secret: str, token: str, *, now: datetime) -> PaymentClaim | None:
    """The claim of a valid, unexpired token at ``now``; None for anything else (never raises)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "sub", "loan", "att"]},
        )
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
        issued = datetime.fromtimestamp(int(claims["iat"]), tz=now.tzinfo)
        if now >= expires:  # the injectable clock decides, not the machine's
            return None
        return PaymentClaim(str(claims["sub"]), str(claims["loan"]), int(claims["att"]), issued, expires)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError):
        return None


def payment_url(template: str, token: str) -> str:
    """The lender's URL for this token (``{token}`` in the template replaced)."""
    return template.replace("{token}", token)


def link_ttl(settings: Any) -> timedelta:
    """How long a link works after its attempt was created (``payment_link_ttl_days``)."""
    return timedelta(days=settings.payment_link_ttl_days)


def lender_url(settings: Any, *, installment_id: str, loan_id: str, attempt_id: int, issued_at: datetime) -> str:
    """The lender's payment page for one attempt's installment: the message's long link, and
    where a short link redirects (the same token, issued as of the attempt's creation)."""
    token = make_token(settings.payment_link_secret, installment_id=installment_id, loan_id=loan_id,
                       attempt_id=attempt_id, issued_at=issued_at, ttl=link_ttl(settings))
    return payment_url(settings.payment_url_template, token)


def _mac(secret: str, attempt_id: int) -> bytes:
    key = hmac.new(secret.encode(), b"bot/paylink/v1/code", hashlib.sha256).digest()
    return hmac.new(key, str(attempt_id).encode(), hashlib.sha256).digest()[:_CODE_MAC_BYTES]


def make_code(secret: str, attempt_id: int) -> str:
    """A short, unguessable code naming one attempt: base64url(attempt id as 8 bytes + MAC), trimmed."""
    raw = attempt_id.to_bytes(8, "big").lstrip(b"\0") or b"\0"
    return base64.urlsafe_b64encode(bytes([len(raw)]) + raw + _mac(secret, attempt_id)).decode().rstrip("=")


def decode_code(secret: str, code: str) -> int | None:
    """The attempt id a code names, or None when it is not one of ours (constant-time MAC check)."""
    if not 4 <= len(code) <= 32:
        return None
    try:
        data = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (ValueError, TypeError):
        return None
    if not data or data[0] < 1 or data[0] > 8 or len(data) != 1 + data[0] + _CODE_MAC_BYTES:
        return None
    attempt_id = int.from_bytes(data[1:1 + data[0]], "big")
    if not hmac.compare_digest(data[1 + data[0]:], _mac(secret, attempt_id)):
        return None
    return attempt_id


def short_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/p/{code}"
