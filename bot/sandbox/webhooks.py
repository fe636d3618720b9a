"""Signed webhook requests from the sandbox to the bot, and nowhere else.

The sandbox must never be a way for traffic to leave the machine: every
URL it is asked to call is checked by :class:`WebhookPolicy` when it is
given (a REST parameter or a configured number) and again right before the
request goes out.  Only loopback hosts (``localhost``, ``127.0.0.0/8``,
``::1``) pass unless a host is listed explicitly in ``allowed_hosts``.
The HTTP client ignores proxy environment variables and never follows
redirects, so a loopback URL cannot bounce elsewhere.

Each attempt is kept in a bounded log (:class:`WebhookAttempt`) so tests
and the control API can see what was sent, signed and answered.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bot.sandbox.signing import SIGNATURE_HEADER, sign

log = logging.getLogger("bot.sandbox.webhooks")

#: Twilio's own timeouts for a webhook: connect 5 s, read 15 s.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
USER_AGENT = "TwilioProxy/1.1 (bot-sandbox)"


class WebhookRefused(Exception):
    """A webhook URL that is malformed or whose host is not allowed."""


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebhookPolicy:
    """Which hosts the sandbox may call: loopback, plus any listed explicitly."""

    allowed_hosts: frozenset[str] = frozenset()

    def check(self, url: str) -> None:
        """Raise :class:`WebhookRefused` unless *url* is an http(s) URL to an allowed host."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise WebhookRefused("not a valid URL") from None
        if parts.scheme not in {"http", "https"} or not host:
            raise WebhookRefused("not an absolute http(s) URL")
        if "_" in host:
            raise WebhookRefused("host names may not contain underscores")
        if not (is_loopback_host(host) or host.lower() in self.allowed_hosts):
            raise WebhookRefused(
                "host is not loopback; the sandbox only calls this machine (allow a host explicitly to change that)"
            )

    def allows(self, url: str) -> bool:
        try:
            self.check(url)
        except WebhookRefused:
            return False
        return True


def describe_url(url: str) -> str:
    """Host, port and path only: query strings may carry personal data, so logs leave them out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass
class WebhookAttempt:
    """One webhook the sandbox sent (or refused to send)."""

    kind: str  # "sms-status", "sms-inbound", "call-status", "call-twiml", "call-action", "call-play", "amd-status", ...
    sid: str
    url: str
    method: str
    params: list[tuple[str, str]]
    signature: str | None
    at: datetime
    status_code: int | None = None
    response_text: str = ""
    content_type: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sid": self.sid,
            "url": self.url,
            "method": self.method,
            "params": [list(p) for p in self.params],
            "signature": self.signature,
            "at": self.at.isoformat(),
            "status_code": self.status_code,
            "error": self.error,
        }


@dataclass
class WebhookSender:
    """Sends signed webhooks synchronously, one at a time per calling thread."""

    policy: WebhookPolicy = field(default_factory=WebhookPolicy)
    max_log: int = 5000
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    attempts: deque[WebhookAttempt] = field(init=False)

    def __post_init__(self) -> None:
        self.attempts = deque(maxlen=self.max_log)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                    follow_redirects=False,
                    trust_env=False,
                    headers={"User-Agent": USER_AGENT},
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def send(
        self,
        *,
        kind: str,
        sid: str,
        url: str,
        params: Sequence[tuple[str, str]],
        auth_token: str,
        at: datetime,
        method: str = "POST",
    ) -> WebhookAttempt:
        """Sign and send one webhook; never raises for HTTP or policy failures (they are recorded)."""
        method = method.upper()
        target = url
        body: list[tuple[str, str]] = list(params)
        if method == "GET":
            target = url + ("&" if "?" in url else "?") + urlencode(body)
            body = []
        attempt = WebhookAttempt(kind, sid, target, method, list(params), None, at)
        self.attempts.append(attempt)
        try:
            self.policy.check(target)
        except WebhookRefused as exc:
            attempt.error = f"refused: {exc}"
            log.warning("webhook %s for %s refused (%s): %s", kind, sid, describe_url(target), exc)
            return attempt
        attempt.signature = sign(auth_token, target, body)
        headers = {SIGNATURE_HEADER: attempt.signature, "I-Twilio-Idempotency-Token": uuid.uuid4().hex}
        try:
            if method == "GET":
                response = self._http().get(target, headers=headers)
            else:
                response = self._http().post(target, data=_form(body), headers=headers)
        except httpx.HTTPError as exc:
            attempt.error = type(exc).__name__
            log.info("webhook %s for %s to %s failed: %s", kind, sid, describe_url(target), type(exc).__name__)
            return attempt
        attempt.status_code = response.status_code
        attempt.response_text = response.text
        attempt.content_type = response.headers.get("content-type", "")
        log.info("webhook %s for %s to %s -> %d", kind, sid, describe_url(target), response.status_code)
        return attempt


    def fetch(
        self, *, kind: str, sid: str, url: str, auth_token: str, at: datetime, max_bytes: int
    ) -> tuple[WebhookAttempt, bytes | None]:
        """GET a media file (``<Play>``) the way Twilio does: signed, no redirects, size-limited.

        Returns the logged attempt and the body, or None when it could not be
        fetched (refused URL, connection error, body over *max_bytes*); a
        non-2xx answer returns its body too, and ``attempt.ok`` is False.
        """
        attempt = WebhookAttempt(kind, sid, url, "GET", [], None, at)
        self.attempts.append(attempt)
        try:
            self.policy.check(url)
        except WebhookRefused as exc:
            attempt.error = f"refused: {exc}"
            log.warning("media %s for %s refused (%s): %s", kind, sid, describe_url(url), exc)
            return attempt, None
        attempt.signature = sign(auth_token, url, [])
        headers = {SIGNATURE_HEADER: attempt.signature}
        try:
            with self._http().stream("GET", url, headers=headers) as response:
                attempt.status_code = response.status_code
                attempt.content_type = response.headers.get("content-type", "")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        attempt.error = f"larger than {max_bytes} bytes"
                        return attempt, None
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            attempt.error = type(exc).__name__
            log.info("media %s for %s from %s failed: %s", kind, sid, describe_url(url), type(exc).__name__)
            return attempt, None
        log.info("media %s for %s from %s -> %d", kind, sid, describe_url(url), attempt.status_code)
        return attempt, b"".join(chunks)


def _form(params: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx takes repeated form fields as lists; keep the order of first appearance."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    return grouped
