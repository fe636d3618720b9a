"""Reading a request's body within limits, and a provider's webhook as a neutral event.

:func:`read_body` refuses (413) a body over a limit without reading it all (the
webhooks, the unsubscribe page and the console's forms use it).  :func:`signed_event`
is what every provider webhook route does first: the provider's signature header
(403 when missing, before the body is read), the body (413), then the provider
(bot.providers.twilio.webhooks) verifies the signature against :func:`public_url`
and turns the form into one event of :mod:`bot.channels.events` (415, 400 naming
the field, 403).

Twilio signs the URL *it was configured with* (scheme, host, port, path, query
string).  Behind a reverse proxy or a tunnel that URL is not the one the request
arrives at, so the bot rebuilds it from the configured ``public_base_url`` plus the
path the app was asked for (without any ``root_path`` the server adds) and the raw
query string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request

from bot.config import Settings
from bot.errors import WebhookRejected
from bot.providers.twilio import webhooks

__all__ = ["MAX_BODY_BYTES", "public_url", "read_body", "signed_event"]

#: Twilio's largest webhook (an MMS with ten media URLs) is a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
E = TypeVar("E")


def public_url(settings: Settings, request: Request) -> str:
    """The URL the provider was configured with for this request: public base + app path + raw query."""
    path = request.scope.get("path", "/")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    query = request.scope.get("query_string", b"").decode("latin-1")
    return settings.public_base_url + path + (f"?{query}" if query else "")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) anything over ``limit`` without reading it all.

    ``Request.body()`` would read a chunked body of any size into memory first.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise WebhookRejected(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise WebhookRejected(413, f"request body larger than {limit} bytes")
    # Keep it where Starlette's own Request.body() does, so request.form() can still parse it.
    request._body = bytes(body)
    return request._body


async def signed_event(request: Request, settings: Settings,
                       parse: Callable[[webhooks.Form, Mapping[str, str]], E], **extra: Any) -> E:
    """The provider's event for this webhook (``parse(form, query, **extra)``) once its signature is
    proven; :class:`~bot.errors.WebhookRejected` (403, 413, 415, 400) otherwise."""
    signature = webhooks.require_signature(request.headers)
    body = await read_body(request)
    form = webhooks.verified_form(settings.twilio_auth_token, public_url(settings, request), signature,
                                  request.headers.get("content-type", ""), body)
    return parse(form, request.query_params, **extra)
