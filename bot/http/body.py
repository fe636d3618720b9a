"""Reading a request's body within limits.

:func:`read_body` refuses (413) a body over a limit without reading it all (the
webhooks, the unsubscribe page and the console's forms use it).
"""

from __future__ import annotations

from starlette.requests import Request

from bot.errors import WebhookRejected

__all__ = ["MAX_BODY_BYTES", "read_body"]

#: The default limit: a provider's largest webhook (an MMS with ten media URLs) is a few kilobytes.
MAX_BODY_BYTES = 64 * 1024


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
