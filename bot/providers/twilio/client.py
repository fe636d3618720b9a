"""The one place twilio clients (and the HTTP clients speaking Twilio's API) are built.

* :func:`async_client` -- sends and calls: the official client on an async HTTP
  transport of ours (:class:`_AioHttpClient`, an aiohttp session created on the
  running loop, bounded by ``concurrency`` connections).  Why: the ``twilio``
  client is synchronous by default (``requests``), and a thread per in-flight
  request costs more CPU than the request itself (docs/channels.md, "Throughput").
* :func:`lookup_client` -- crash and status lookups (bot.providers.twilio.lookup):
  the synchronous client, run in a worker thread.
* :class:`RecordingDownloader` -- recording downloads (the call flow's recording
  source): HTTP Basic auth with the account's credentials, no redirects, only from
  the configured API host.
* :func:`valid_signature` -- an ``X-Twilio-Signature`` check (bot.providers.twilio.webhooks).

All point at ``twilio_api_base_url`` when it is set (the local sandbox).  The
twilio client logs every request at INFO (URLs with query strings, which for
list calls hold phone numbers): its records go to loggers of ours kept at WARNING.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels.events import AudioRef

__all__ = ["CONNECT_TIMEOUT", "RECORDING_LIMIT", "Client", "RecordingDownloader", "async_client", "lookup_client",
           "valid_signature"]

CONNECT_TIMEOUT = 5.0
RECORDING_LIMIT = 16 * 1024 * 1024  # a 10-minute 8 kHz 16-bit recording is about 10 MB

_send_log = logging.getLogger("bot.channels.sms.twilio_http")
_send_log.setLevel(logging.WARNING)
_lookup_log = logging.getLogger("bot.dispatch.twilio_http")
_lookup_log.setLevel(logging.WARNING)


class _AioHttpClient(AsyncHttpClient):
    """The twilio client's async HTTP transport, on an aiohttp session of ours.

    Like twilio's ``AsyncTwilioHttpClient`` (same ``request`` contract), but the
    session is created by the adapter inside the running loop with its limits
    and timeout, Basic auth is sent as a header (aiohttp deprecates its
    ``BasicAuth`` helper, which twilio's client still uses), and nothing is
    logged.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(_send_log, True, None)
        self.session = session

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, timeout: float | None = None,
                      allow_redirects: bool = False) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            credentials = f"{auth[0]}:{auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        request_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
        async with self.session.request(method.upper(), url, params=params, data=data, headers=headers,
                                        allow_redirects=allow_redirects,
                                        **({"timeout": request_timeout} if request_timeout else {})) as answer:
            return Response(answer.status, await answer.text(), answer.headers)


def _client(settings: Any, http: Any) -> Client:
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
    if settings.twilio_api_base_url:
        client.api.base_url = settings.twilio_api_base_url.rstrip("/")
    return client


def async_client(settings: Any, *, concurrency: int, timeout: float) -> tuple[Client, aiohttp.ClientSession]:
    """A client for sends and calls on our aiohttp transport (call it inside the running loop),
    and the session to close when the loop is done."""
    http = _AioHttpClient(aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=timeout, connect=CONNECT_TIMEOUT),
    ))
    return _client(settings, http), http.session


def lookup_client(settings: Any, *, timeout: float) -> Client:
    """A synchronous client for lookups (run in a worker thread)."""
    return _client(settings, TwilioHttpClient(timeout=timeout, logger=_lookup_log))


class RecordingDownloader:
    """Recording downloads with the account's credentials (one ``httpx.Client``, built on first use)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._http: Any = None
        self._lock = threading.Lock()

    def fetch(self, audio: AudioRef) -> bytes:
        """GET the recording as WAV, only from the configured Twilio API host, at most
        :data:`RECORDING_LIMIT` bytes."""
        url = audio.location + ".wav"
        allowed = urlsplit(self.settings.twilio_api_base_url or "https://api.twilio.com")
        target = urlsplit(url)
        if (target.scheme, target.netloc) != (allowed.scheme, allowed.netloc):
            raise PermissionError("RecordingUrl is not on the configured Twilio API host")
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    trust_env=False, timeout=httpx.Timeout(15.0, connect=CONNECT_TIMEOUT), follow_redirects=False,
                    auth=(self.settings.twilio_account_sid, self.settings.twilio_auth_token))
            client = self._http
        response = client.get(url)
        response.raise_for_status()
        if len(response.content) > RECORDING_LIMIT:
            raise ValueError("recording larger than the limit")
        return bytes(response.content)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None


def valid_signature(auth_token: str, url: str, params: Mapping[str, Any], signature: str) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` and the form ``params``
    (twilio's ``RequestValidator``: it also accepts the URL with and without the default port)."""
    return bool(RequestValidator(auth_token).validate(url, params, signature))
