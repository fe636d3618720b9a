"""The webhooks' routes: Twilio SMS, status and voice, email unsubscribe, health (docs/webhooks.md).

One router per concern (:mod:`bot.web.twilio`, :mod:`bot.web.unsubscribe`,
:mod:`bot.web.health`, ...); :func:`include_webhooks` adds them to an app.  The app
itself, with the console and the REST API beside the webhooks, is built by the
composition root, :func:`bot.app.create_app`; this package imports neither.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from bot.web import health, paylinks, twilio, unsubscribe
from bot.web import media as media_routes
from bot.web import metrics as metrics_routes
from bot.web import voice as voice_routes

__all__ = ["ROUTERS", "include_webhooks"]

#: The webhooks' routers, in the order they are matched.
ROUTERS: tuple[APIRouter, ...] = (health.router, metrics_routes.router, twilio.router, unsubscribe.router,
                                  paylinks.router, voice_routes.router, media_routes.router)


def include_webhooks(app: FastAPI) -> None:
    """Add the webhooks' routes to ``app`` (whose ``state.bot`` is a :class:`~bot.http.context.WebContext`)."""
    for router in ROUTERS:
        app.include_router(router)
