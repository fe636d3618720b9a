"""``/metrics`` (Prometheus), ``/readyz`` and the latency of every webhook and API route.

``/metrics`` answers only with ``metrics_enabled``; with ``metrics_token`` set it wants
``Authorization: Bearer <token>`` (compared in constant time), else 401.  ``/readyz`` is
200 when the database answers, its schema is at the migrations' head and, in a process
that runs the scheduler, a planning or dispatch pass ran within three intervals; 503
with what is wrong otherwise (docs/operations.md "Monitoring").
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.db import Database
from bot.db.migrate import current_revision, head_revision
from bot.http.context import web_context
from bot.metrics import CONTENT_TYPE_LATEST, HEARTBEAT, exposition, observe_webhook

__all__ = ["LatencyMiddleware", "router"]

log = logging.getLogger(__name__)
router = APIRouter()

#: Routes whose latency is measured (by their template, never the URL with its query).
_TIMED_PREFIXES = ("/twilio/", "/api/", "/unsubscribe/", "/p/")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    ctx = web_context(request)
    settings = ctx.settings
    if not settings.metrics_enabled:
        return JSONResponse({"error": "metrics are off (setting metrics_enabled)"}, status_code=404)
    if settings.metrics_token:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.metrics_token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse({"error": "a bearer token is required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
    body = await run_in_threadpool(exposition, ctx.db, ctx.clock)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def _schema_state(db: Database) -> str:
    current = current_revision(db.engine)
    return "ok" if current == head_revision() else f"at {current or 'nothing'}, head is {head_revision()}"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ctx = web_context(request)
    now = ctx.clock.now()
    body: dict[str, Any] = {}
    try:
        body["schema"] = await run_in_threadpool(_schema_state, ctx.db)
        body["database"] = "ok"
    except Exception as exc:
        log.error("readiness: database unavailable (%s)", type(exc).__name__)
        body["database"], body["schema"] = "error", "unknown"
    body.update(HEARTBEAT.to_json(now))
    ready = body["database"] == "ok" and body["schema"] == "ok" and body["scheduler"] != "stale"
    body["status"] = "ready" if ready else "not ready"
    return JSONResponse(body, status_code=200 if ready else 503)


class LatencyMiddleware:
    """Times each request to a webhook or API route, labelled by the route's template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(_TIMED_PREFIXES):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            observe_webhook(template, status, time.perf_counter() - start)
