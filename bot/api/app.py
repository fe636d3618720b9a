"""The REST API as an ASGI app, mounted at ``/api/v1`` in the bot's web app (docs/api.md)."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from bot import __version__
from bot.api import attempts, borrowers, errors, portfolio, webhooks
from bot.api.docs_page import render

__all__ = ["PREFIX", "create_api"]

PREFIX = "/api/v1"

DESCRIPTION = (
    "The lender's systems feed the bot its portfolio (borrowers, loans, installments, payments), read where "
    "a borrower stands and whether the bot may contact them, follow what the bot did, and record opt-outs "
    "and holds. Authenticate with `Authorization: Bearer KEY` (`bot apikey create`). Errors are "
    '`{"error": {"code", "message", "field"}}`. POSTs honour an `Idempotency-Key` header (24 hours).'
)


def create_api(parent: FastAPI | None = None) -> FastAPI:
    """The API app; it reads the bot's context from ``parent`` (the app it is mounted in)."""
    api = FastAPI(
        title="lender-reminder-bot API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": PREFIX}],
    )
    api.state.parent = parent
    errors.install(api)
    api.include_router(portfolio.router)
    api.include_router(borrowers.router)
    api.include_router(attempts.router)
    api.include_router(webhooks.router)

    @api.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(render(request.app.openapi()))

    @api.get("/", include_in_schema=False)
    def index() -> JSONResponse:
        return JSONResponse({"openapi": f"{PREFIX}/openapi.json", "docs": f"{PREFIX}/docs"})

    return api
