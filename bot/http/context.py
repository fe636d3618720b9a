"""What every route needs: settings, database and clock, kept on ``app.state.bot``.

Routes read it per request (:func:`web_context`), so a test or the ``bot run``
service can replace the settings of a running app (the public URL is often
known only once the server has a port).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from bot.clock import Clock
from bot.config import Settings
from bot.db import Database
from bot.policy import SurveySettings

__all__ = ["RETRY_AFTER_SECONDS", "WebContext", "unavailable", "web_context"]

#: What a webhook answers in ``Retry-After`` when the database stayed unreachable.
RETRY_AFTER_SECONDS = 30


@dataclass(frozen=True, slots=True)
class WebContext:
    settings: Settings
    db: Database
    clock: Clock
    survey: SurveySettings | None = None  # the policy's satisfaction survey (None: off)


def web_context(request: Request) -> WebContext:
    context = request.app.state.bot
    assert isinstance(context, WebContext)
    return context


def unavailable() -> PlainTextResponse:
    """503 with ``Retry-After``: the database stayed unreachable and nothing was stored, so the
    sender should try again (Twilio does for the webhooks it retries, docs/webhooks.md)."""
    return PlainTextResponse("database unavailable, try again later", status_code=503,
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
