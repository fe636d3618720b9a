"""``GET /media/prompts/<sha>.wav``: the prompt WAVs the bot's TwiML plays (docs/voice.md).

A prompt can carry personal data (the borrower's initials, an amount, a date),
so it is served only under a signed, expiring URL
(``?exp=<unix time>&sig=<HMAC-SHA256>``, keyed with ``media_url_secret``, made
by :func:`bot.voice.urls.signed_prompt_url`); the content hash alone, which
anyone who can guess the text could compute, is not enough.  Anything wrong
(no or bad signature, expired, unknown hash) is the same plain 404, so the
route does not tell which prompts exist.  Responses are ``private``, never
stored by shared caches, and carry no referrer.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from bot.http.context import web_context
from bot.voice.media import prompt_file
from bot.voice.urls import verify_prompt

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/media")


@router.get("/prompts/{name}")
async def prompt(request: Request, name: str) -> Response:
    ctx = web_context(request)
    sha = name.removesuffix(".wav") if name.endswith(".wav") else ""
    problem = verify_prompt(ctx.settings.media_url_secret, sha, request.query_params.get("exp"),
                            request.query_params.get("sig"), now=ctx.clock.now())
    path = prompt_file(ctx.settings, sha) if problem is None else None
    if path is None:
        log.info("prompt request refused: %s", problem or "no such prompt")
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type="audio/wav", headers={
        "Cache-Control": f"private, max-age={ctx.settings.media_url_ttl_seconds}",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    })
