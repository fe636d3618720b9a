"""What every route needs: settings, database and clock, kept on ``app.state.bot``.

Routes read it per request (:func:`web_context`), so a test or the ``bot run``
service can replace the settings of a running app (the public URL is often
known only once the server has a port).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from bot.clock import Clock
from bot.config import Settings
from bot.db import Database

__all__ = ["WebContext", "web_context"]


@dataclass(frozen=True, slots=True)
class WebContext:
    settings: Settings
    db: Database
    clock: Clock


def web_context(request: Request) -> WebContext:
    context = request.app.state.bot
    assert isinstance(context, WebContext)
    return context
