"""Reading a Twilio webhook only once its ``X-Twilio-Signature`` is proven.

Twilio signs the URL *it was configured with* (scheme, host, port, path,
query string) followed by the sorted form parameters.  Behind a reverse proxy
or a tunnel that URL is not the one the request arrives at, so the bot
rebuilds it from the configured ``public_base_url`` plus the path the app was
asked for (without any ``root_path`` the server adds) and the raw query
string.  :func:`bot.providers.twilio.client.valid_signature` (twilio's
``RequestValidator``) then checks it (it also
accepts the URL with and without the default port, as Twilio's own libraries do).

Order of checks: a missing signature is refused (403) before the body is
read; an oversized body (413) or a non-form body (415) before it is parsed; a
wrong signature (403) before any parameter is looked at.  Nothing is stored
before all of this passed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from bot.config import Settings
from bot.providers.twilio.client import valid_signature

__all__ = ["MAX_BODY_BYTES", "SIGNATURE_HEADER", "WebhookRejected", "public_url", "read_signed_form"]

SIGNATURE_HEADER = "X-Twilio-Signature"
#: Twilio's largest webhook (an MMS with ten media URLs) is a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 200
FORM_TYPE = "application/x-www-form-urlencoded"


class WebhookRejected(Exception):
    """A request refused before it was processed: HTTP status and a message naming what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def public_url(settings: Settings, request: Request) -> str:
    """The URL Twilio was configured with for this request: public base + app path + raw query."""
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


async def read_signed_form(request: Request, settings: Settings) -> ImmutableMultiDict[str, str]:
    """The form parameters of a webhook whose Twilio signature is valid; :class:`WebhookRejected` otherwise."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected(403, f"missing {SIGNATURE_HEADER} header")
    body = await read_body(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and content_type != FORM_TYPE:
        raise WebhookRejected(415, f"expected a {FORM_TYPE} body")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, "malformed form body") from None
    params = ImmutableMultiDict(pairs)
    if not valid_signature(settings.twilio_auth_token, public_url(settings, request), params, signature):
        raise WebhookRejected(403, f"invalid {SIGNATURE_HEADER} for the configured public URL")
    return params
