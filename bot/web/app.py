"""The bot's ASGI application: Twilio webhooks, email unsubscribe, health (docs/webhooks.md).

``create_app(settings, db, clock)`` builds a FastAPI app from routers, one
module per concern (:mod:`bot.web.twilio`, :mod:`bot.web.unsubscribe`,
:mod:`bot.web.health`), the supervisor console's, and the REST API
mounted at ``/api/v1`` (:mod:`bot.api`, with its own OpenAPI document).  No
OpenAPI/docs pages for the rest: those routes are not an API.  :func:`from_environment`
is the factory for running it under uvicorn on its own.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.routing import Mount

from bot.api.app import PREFIX as API_PREFIX
from bot.api.app import create_api
from bot.clock import Clock, SystemClock
from bot.config import Settings, load_settings
from bot.console import routes as console_routes
from bot.console.security import ConsoleHeadersMiddleware
from bot.db import Database
from bot.privacy import install_log_filter
from bot.web import health, paylinks, twilio, unsubscribe
from bot.web import media as media_routes
from bot.web import metrics as metrics_routes
from bot.web import voice as voice_routes
from bot.policy import SurveySettings
from bot.web.context import WebContext

__all__ = ["create_app", "from_environment"]


def create_app(settings: Settings, db: Database, clock: Clock | None = None, *,
               survey: SurveySettings | None = None) -> FastAPI:
    """The web app; ``survey`` is the policy's satisfaction survey (None: no survey is asked)."""
    app = FastAPI(title="lender-reminder-bot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.bot = WebContext(settings=settings, db=db, clock=clock or SystemClock(), survey=survey)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    app.include_router(twilio.router)
    app.include_router(unsubscribe.router)
    app.include_router(paylinks.router)
    app.include_router(voice_routes.router)
    app.include_router(media_routes.router)
    app.include_router(console_routes.public_router)
    app.include_router(console_routes.router)
    # DOTALL: a path with an encoded newline under the prefix is still the API's (its JSON 404)
    mount = Mount(API_PREFIX, create_api(app))
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    app.router.routes.append(mount)
    app.add_middleware(ConsoleHeadersMiddleware)
    app.add_middleware(metrics_routes.LatencyMiddleware)
    return app


def from_environment() -> FastAPI:
    """The app from the ``BOT_*`` settings, for ``uvicorn --factory bot.web.app:from_environment``.

    Installs the redacting log filter on the root logger, as the ``bot`` command does, and
    refuses to start on the settings ``bot run`` refuses (:func:`bot.production.check_startup`).
    """
    from bot.policy import load_policy
    from bot.production import check_startup

    install_log_filter()
    settings = load_settings()
    check_startup(settings)
    policy = load_policy(settings.policy_file, templates_dir=settings.templates_dir,
                         scripts_dir=settings.voice_scripts_dir)
    return create_app(settings, Database(settings.database_url), survey=policy.survey)
