"""Security headers on every console response (pages, API, media, errors, redirects).

A pure ASGI middleware (added in :func:`bot.app.create_app`), so that no
response under ``/console`` (nor the ``/`` redirect) can go out without them,
whatever produced it: a page, a redirect to the sign-in page, FastAPI's own
error responses, the media route.  The webhooks are not touched.

* ``Content-Security-Policy``: only the bot's own scripts, styles and media;
  no inline script or style anywhere in the console; no framing; forms post
  only to the bot itself;
* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer`` (URLs carry borrower ids);
* ``Cache-Control: no-store`` on everything but the static assets: pages hold
  personal data and revealed values must not stay in a cache.

An exception nobody handled would otherwise become Starlette's bare 500, written
by the server-error middleware that sits outside this one.  So this middleware
answers it first (a plain ``500 Internal Server Error`` with the same headers) and
then lets the exception go on, to be logged; Starlette sends nothing more for a
response already started.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONSOLE_PREFIX", "CSP", "ConsoleHeadersMiddleware", "SECURITY_HEADERS", "is_console_path"]

CONSOLE_PREFIX = "/console"
STATIC_PREFIX = "/console/static/"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _app_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


def is_console_path(path: str) -> bool:
    return path == "/" or path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


class ConsoleHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(_app_path(scope)):
            await self.app(scope, receive, send)
            return
        static = _app_path(scope).startswith(STATIC_PREFIX)

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if static and message.get("status", 200) < 400:
                    headers["Cache-Control"] = "no-cache"  # revalidated, never personal
                else:
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                await send_with_headers({"type": "http.response.start", "status": 500,
                                         "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                                     (b"content-length", b"21")]})
                await send_with_headers({"type": "http.response.body", "body": b"Internal Server Error"})
            raise
