"""``GET /healthz``: the process answers and the database takes a query."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.db import Database
from bot.http.context import web_context

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()


def _ping(db: Database) -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(_ping, web_context(request).db)
    except Exception as exc:
        log.error("health check: database unavailable (%s)", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
