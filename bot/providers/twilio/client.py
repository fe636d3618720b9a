"""The one place twilio clients (and the HTTP clients speaking Twilio's API) are built.

* :func:`async_client` -- sends and calls: the official client on an async HTTP
  transport of ours (:class:`_AioHttpClient`, an aiohttp session created on the
  running loop, bounded by ``concurrency`` connections).  Why: the ``twilio``
  client is synchronous by default (``requests``), and a thread per in-flight
  request costs more CPU than the request itself (docs/channels.md, "Throughput").
* :func:`lookup_client` -- crash and status lookups (bot.providers.twilio.lookup):
  the synchronous client, run in a worker thread.
* :func:`recording_client` -- recording downloads: HTTP Basic auth with the
  account's credentials, no redirects.
* :func:`valid_signature` -- an ``X-Twilio-Signature`` check (bot.web.signature).

All point at ``twilio_api_base_url`` when it is set (the local sandbox).  The
twilio client logs every request at INFO (URLs with query strings, which for
list calls hold phone numbers): its records go to loggers of ours kept at WARNING.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

__all__ = ["CONNECT_TIMEOUT", "Client", "async_client", "lookup_client", "recording_client", "valid_signature"]

CONNECT_TIMEOUT = 5.0

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


def recording_client(settings: Any) -> Any:
    """An ``httpx.Client`` for downloading recordings with the account's credentials."""
    import httpx

    return httpx.Client(trust_env=False, timeout=httpx.Timeout(15.0, connect=CONNECT_TIMEOUT),
                        auth=(settings.twilio_account_sid, settings.twilio_auth_token), follow_redirects=False)


def valid_signature(auth_token: str, url: str, params: Mapping[str, Any], signature: str) -> bool:
    """Whether ``signature`` is Twilio's for ``url`` and the form ``params``
    (twilio's ``RequestValidator``: it also accepts the URL with and without the default port)."""
    return bool(RequestValidator(auth_token).validate(url, params, signature))
