"""A provider's webhook as a neutral event.

:func:`signed_event` is what every provider webhook route does first: the provider's
signature header (403 when missing, before the body is read), the body within its limit
(413, :func:`bot.http.body.read_body`), then the provider (bot.providers.twilio.webhooks)
verifies the signature against :func:`public_url` and turns the form into one event of
:mod:`bot.channels.events` (415, 400 naming the field, 403).

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
from bot.http.body import read_body
from bot.providers.twilio import webhooks

__all__ = ["public_url", "signed_event"]

E = TypeVar("E")


def public_url(settings: Settings, request: Request) -> str:
    """The URL the provider was configured with for this request: public base + app path + raw query."""
    path = request.scope.get("path", "/")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    query = request.scope.get("query_string", b"").decode("latin-1")
    return settings.public_base_url + path + (f"?{query}" if query else "")


async def signed_event(request: Request, settings: Settings,
                       parse: Callable[[webhooks.Form, Mapping[str, str]], E], **extra: Any) -> E:
    """The provider's event for this webhook (``parse(form, query, **extra)``) once its signature is
    proven; :class:`~bot.errors.WebhookRejected` (403, 413, 415, 400) otherwise."""
    signature = webhooks.require_signature(request.headers)
    body = await read_body(request)
    form = webhooks.verified_form(settings.twilio_auth_token, public_url(settings, request), signature,
                                  request.headers.get("content-type", ""), body)
    return parse(form, request.query_params, **extra)
