"""The URLs of a call: Twilio's webhooks and the prompts it plays (docs/voice.md).

Pure functions (no database, no I/O), shared by the voice adapter (which gives
Twilio the answer and status URLs when it dials), the call service (which puts
the input and prompt URLs in its TwiML) and the web routes (which check them).

* ``{public}/twilio/voice/answer?attempt=<id>``: the call was answered;
* ``{public}/twilio/voice/input?attempt=<id>&turn=<n>``: the answer to prompt
  ``n`` (a recording, keys, or ``&silence=1`` when nothing was said);
* ``{public}/twilio/voice/status?attempt=<id>``: call progress;
* ``{public}/twilio/voice/recording?attempt=<id>``: the whole call's recording is ready.

A call is keyed by its contact attempt: ``call_sessions.attempt_id`` is unique,
and the id exists before the call does, so the session row can be written in
the same transaction that marks the attempt ``sending`` and a webhook that
overtakes the dispatcher's own record still finds it.

Prompt URLs (``/media/prompts/<sha>.wav?exp=<unix>&sig=<hmac>``) are signed
and expire: a prompt can carry personal data (initials, an amount, a date), so
knowing or guessing its content hash is not enough to fetch it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

__all__ = [
    "PROMPT_RE",
    "answer_url",
    "input_url",
    "prompt_path",
    "prompt_signature",
    "recording_url",
    "signed_prompt_url",
    "status_url",
    "verify_prompt",
]

PROMPT_RE = re.compile(r"^[0-9a-f]{16,64}$")


def _base(public_base_url: str) -> str:
    return public_base_url.rstrip("/")


def answer_url(public_base_url: str, attempt_id: int) -> str:
    return f"{_base(public_base_url)}/twilio/voice/answer?attempt={attempt_id}"


def status_url(public_base_url: str, attempt_id: int) -> str:
    return f"{_base(public_base_url)}/twilio/voice/status?attempt={attempt_id}"


def recording_url(public_base_url: str, attempt_id: int) -> str:
    """Where Twilio posts the whole call's recording when it is ready (``RecordingStatusCallback``)."""
    return f"{_base(public_base_url)}/twilio/voice/recording?attempt={attempt_id}"


def input_url(public_base_url: str, attempt_id: int, turn: int, *, silence: bool = False) -> str:
    return (f"{_base(public_base_url)}/twilio/voice/input?attempt={attempt_id}&turn={turn}"
            + ("&silence=1" if silence else ""))


def prompt_path(sha: str) -> str:
    return f"/media/prompts/{sha}.wav"


def prompt_signature(secret: str, sha: str, expires: int) -> str:
    """HMAC-SHA256 of ``<sha>:<expires>`` keyed with the media secret (hex, 32 characters kept)."""
    mac = hmac.new(secret.encode("utf-8"), f"prompt:{sha}:{expires}".encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:32]


def signed_prompt_url(public_base_url: str, secret: str, sha: str, *, now: datetime, ttl_seconds: int) -> str:
    """The URL Twilio fetches a prompt from, valid for ``ttl_seconds``.

    The expiry is rounded up to a multiple of a minute so that the TwiML of a
    retried webhook (same instant, same prompts) is byte-for-byte the same.
    """
    expires = int(now.timestamp()) + ttl_seconds
    expires += -expires % 60
    signature = prompt_signature(secret, sha, expires)
    return f"{_base(public_base_url)}{prompt_path(sha)}?exp={expires}&sig={signature}"


def verify_prompt(secret: str, sha: str, expires: str | None, signature: str | None, *, now: datetime) -> str | None:
    """None when the prompt URL is valid now, else why not (for the log; the client gets a plain 404)."""
    if not PROMPT_RE.match(sha):
        return "malformed prompt name"
    if not expires or not signature or not expires.isdigit() or len(expires) > 12:
        return "unsigned prompt URL"
    if not hmac.compare_digest(prompt_signature(secret, sha, int(expires)), signature):
        return "bad prompt URL signature"
    if int(expires) < now.timestamp():
        return "expired prompt URL"
    return None
