"""The composition root: the one place that builds the bot's ASGI app (docs/architecture.md).

``create_app(settings, db, clock)`` puts the settings, database and clock on
``app.state.bot`` (the :class:`~bot.http.context.WebContext` every route reads) and
mounts, side by side, the three surfaces that know nothing of each other:

* the webhooks (:mod:`bot.web`: Twilio SMS, status and voice callbacks, email
  unsubscribe, payment links, media, health and metrics; docs/webhooks.md),
* the supervisor console (:mod:`bot.console`, under ``/console``; docs/console.md),
* the REST API (:mod:`bot.api`, at ``/api/v1`` with its own OpenAPI document; docs/api.md).

It also builds the call flow (:func:`build_call_service`: the
:class:`~bot.voice.service.CallService` with the services it is given, the provider's
recording downloads among them) once in the lifespan, and again for a replaced context
(``app.state.call_service_factory``).

No OpenAPI/docs pages for the rest: those routes are not an API.  :func:`from_environment`
is the factory for running it under uvicorn on its own
(``uvicorn --factory bot.app:from_environment``); ``bot run``, ``bot demo``, the
benchmarks and the tests build it through :func:`create_app`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount

from bot.api.app import PREFIX as API_PREFIX
from bot.api.app import create_api
from bot.clock import Clock, SystemClock
from bot.config import Settings, load_settings
from bot.console import routes as console_routes
from bot.console.security import ConsoleHeadersMiddleware
from bot.db import Database
from bot.http.context import WebContext
from bot.policy import SurveySettings
from bot.privacy import install_log_filter
from bot.providers.twilio.client import RecordingDownloader
from bot.voice.service import CallService
from bot.voice.services import CallServices
from bot.web.app import include_webhooks
from bot.web.metrics import LatencyMiddleware
from bot.web.voice import set_service

__all__ = ["build_call_service", "create_app", "from_environment"]


def build_call_service(ctx: WebContext, **overrides: Any) -> CallService:
    """The call flow for ``ctx`` with its services: speech, prompts and recording storage for the
    settings, recordings downloaded through the provider's client.  ``overrides`` replace a
    service (:meth:`~bot.voice.services.CallServices.for_settings`: ``understand``, ``renderer``,
    ``speech_available``; tests)."""
    services = CallServices.for_settings(ctx.settings, recordings=RecordingDownloader(ctx.settings), **overrides)
    return CallService(ctx.settings, ctx.db, ctx.clock, services, survey=ctx.survey)


def create_app(settings: Settings, db: Database, clock: Clock | None = None, *,
               survey: SurveySettings | None = None, owns_database: bool = False) -> FastAPI:
    """The bot's app; ``survey`` is the policy's satisfaction survey (None: no survey is asked).

    ``owns_database``: the app's lifespan disposes ``db`` when the server shuts down (the
    caller keeps it otherwise, as ``bot run``, the demo and the tests do).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "voice_service", None) is None:
            set_service(app, app.state.bot, build_call_service(app.state.bot))
        try:
            yield
        finally:
            service = getattr(app.state, "voice_service", None)
            if service is not None:
                service.close()
                app.state.voice_service = None
            if owns_database:
                app.state.bot.db.dispose()

    app = FastAPI(title="lender-reminder-bot", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.bot = WebContext(settings=settings, db=db, clock=clock or SystemClock(), survey=survey)
    app.state.call_service_factory = build_call_service
    include_webhooks(app)
    app.include_router(console_routes.public_router)
    app.include_router(console_routes.router)
    # DOTALL: a path with an encoded newline under the prefix is still the API's (its JSON 404).
    # First in the list: an API request is matched without trying every page's route before it
    # (no other route is under the prefix).
    mount = Mount(API_PREFIX, create_api(app))
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    app.router.routes.insert(0, mount)
    app.add_middleware(ConsoleHeadersMiddleware)
    app.add_middleware(LatencyMiddleware)
    return app


def from_environment() -> FastAPI:
    """The app from the ``BOT_*`` settings, for ``uvicorn --factory bot.app:from_environment``.

    Installs the redacting log filter on the root logger, as the ``bot`` command does, and
    refuses to start on the settings ``bot run`` refuses (:func:`bot.production.check_startup`).
    The app owns its database: the lifespan disposes it at shutdown.
    """
    from bot.policy import load_policy
    from bot.production import check_startup

    install_log_filter()
    settings = load_settings()
    check_startup(settings)
    policy = load_policy(settings.policy_file, templates_dir=settings.templates_dir,
                         scripts_dir=settings.voice_scripts_dir)
    return create_app(settings, Database(settings.database_url, pool_size=settings.database_pool_size),
                      survey=policy.survey, owns_database=True)
