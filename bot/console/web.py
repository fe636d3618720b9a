"""FastAPI plumbing of the console: templates, the signed-in user, forms, errors, cookies.

* :class:`ConsoleRoute` turns the console's own exceptions into answers: no
  session → ``303`` to the sign-in page (``401`` JSON under ``/console/api``);
  :class:`PageError`, :class:`~bot.console.filters.InvalidInput` and
  :class:`~bot.console.actions.ActionError` → an HTML error page (JSON for the API)
  with the status and a message that names the field, never the value.
* :func:`current_user` is a dependency of the whole protected router, so no
  console route can answer without a session; :func:`role` narrows it;
  :func:`bounded_ids`, also on the router, answers 404 to a path id no row can have.
* :func:`read_form` reads a POST body (64 KB at most, urlencoded only),
  refuses cross-site requests and checks the session's CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.config import Settings
from bot.console import charts
from bot.console.actions import ActionError
from bot.console.filters import InvalidInput
from bot.console.i18n import DEFAULT_LOCALE, LOCALE_NAMES, LOCALES, N_, Message, field_message, formats, translations
from bot.console.queries import display_zone
from bot.console.sessions import LOGIN_CSRF_COOKIE, SignedIn, csrf_matches, load_session
from bot.console.users import has_role
from bot.db import Database
from bot.db.types import is_row_id
from bot.errors import WebhookRejected
from bot.http.body import read_body
from bot.http.context import web_context

__all__ = [
    "ConsoleRoute",
    "PageError",
    "SignInRequired",
    "bounded_ids",
    "cookie_name",
    "current_user",
    "environment",
    "read_form",
    "render",
    "role",
    "safe_next",
    "user_locale",
]

API_PREFIX = "/console/api/"
LOGIN_PATH = "/console/login"
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"
_NEXT_RE = re.compile(r"^/console(?:/[A-Za-z0-9_./-]*)?(?:\?[A-Za-z0-9_.=&%+-]*)?$")


class SignInRequired(Exception):
    """No valid session."""


class PageError(Exception):
    """An answer other than the page: HTTP status and a message (English in JSON, the reader's language on a page)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message if isinstance(message, Message) else Message(message)


def cookie_name(settings: Settings, base: str = "console") -> str:
    """``__Host-`` names when cookies are Secure: the browser then refuses them without
    Secure, with a Domain or with a Path other than ``/``, so no sibling host can plant one."""
    return f"__Host-{base}" if settings.console_secure_cookies else base


def login_csrf_cookie(settings: Settings) -> str:
    return cookie_name(settings, LOGIN_CSRF_COOKIE)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path of this site, never another site."""
    if value and _NEXT_RE.match(value) and "//" not in value and ".." not in value and len(value) < 512:
        return value
    return "/console"


# --- templates ----------------------------------------------------------------------------------


def _clock(seconds: float | None) -> str:
    """A position in a recording as m:ss (the same in every language)."""
    if seconds is None:
        return ""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@lru_cache(maxsize=8)
def environment(templates_dir: str, locale: str = DEFAULT_LOCALE) -> jinja2.Environment:
    """The console's Jinja2 environment in one language: autoescaping everywhere, undefined
    variables are errors, ``_()`` / ``{% trans %}`` from that language's catalog, and the
    filters (``when``, ``day``, ``confidence``, ``rate``, ``money``, ...) formatting as it writes.

    One environment a language, built once: a request never changes an environment, so
    two users in two languages can be served at the same time without seeing each other's."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(templates_dir) / "web")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    fmt = formats(locale)
    gettext = translations(locale).gettext
    env.filters.update(when=fmt.when, day=fmt.day, confidence=fmt.confidence, margin=fmt.margin, rate=fmt.rate, number=fmt.number,
                       clock=_clock, intent=fmt.intent_label, code=fmt.code, codes=fmt.codes, message=fmt.message,
                       short_day=fmt.short_day, labels=lambda pairs: [(gettext(k), v) for k, v in pairs])
    env.globals.update(bar_chart=charts.bar_chart, meter=charts.meter, funnel=charts.funnel, pct=fmt.pct,
                       money=fmt.money, intent_label=fmt.intent_label, code=fmt.code, lang=locale,
                       locale_names=LOCALE_NAMES)
    return env


def user_locale(request: Request, user: SignedIn | None) -> str:
    """The language of a page: the user's own, else the setting ``console_default_locale``."""
    if user is not None and user.locale in LOCALES:
        return user.locale
    return web_context(request).settings.console_default_locale


def render(request: Request, template: str, *, user: SignedIn | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    settings = web_context(request).settings
    page = environment(str(settings.templates_dir), user_locale(request, user)).get_template(template).render(
        user=user,
        csrf=user.csrf if user else "",
        can_act=bool(user and has_role(user.role, "supervisor")),
        can_audit=bool(user and has_role(user.role, "admin")),
        path=request.url.path,
        display_zone=display_zone(user.timezone if user else None),
        **context,
    )
    return HTMLResponse(page, status_code=status)


def error_response(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({"detail": message}, status_code=status)
    user = getattr(request.state, "console_user", None)
    return render(request, "console/error.html.j2", user=user, status=status, status_code=status, message=message)


# --- routes and users -----------------------------------------------------------------------------


class ConsoleRoute(APIRoute):
    """Every console route: the console's exceptions become answers (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except SignInRequired:
                if request.url.path.startswith(API_PREFIX):
                    return JSONResponse({"detail": "sign in required"}, status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                location = LOGIN_PATH
                if request.method == "GET" and safe_next(target) != "/console":
                    location += "?next=" + quote(safe_next(target), safe="/")
                return RedirectResponse(location, status_code=303)
            except PageError as exc:
                return error_response(request, exc.status, exc.message)
            except InvalidInput as exc:
                return error_response(request, 400, field_message(exc.field, exc.message))
            except ActionError as exc:
                return error_response(request, exc.status, exc.message)

        return handler


def _load(db: Database, token: str | None, at: datetime, idle_minutes: int) -> SignedIn | None:
    with db.session() as session:
        return load_session(session, token, at=at, idle=timedelta(minutes=idle_minutes))


async def signed_in(request: Request) -> SignedIn | None:
    """The request's session, or None; looked up once per request."""
    if hasattr(request.state, "console_user"):
        return request.state.console_user  # type: ignore[no-any-return]
    ctx = web_context(request)
    token = request.cookies.get(cookie_name(ctx.settings))
    user = None
    if token:
        user = await run_in_threadpool(_load, ctx.db, token, ctx.clock.now(), ctx.settings.console_idle_minutes)
    request.state.console_user = user
    return user


def bounded_ids(request: Request) -> None:
    """A dependency of the protected router: an id in the path (``{call_id:int}``,
    ``{turn_id:int}``, ``{task_id:int}``) that no row can have (0, or above
    :data:`~bot.db.types.MAX_ROW_ID`) is a 404 before any query; the database driver
    would otherwise fail on it (PostgreSQL: integer out of range; SQLite, from 2^63:
    ``OverflowError``)."""
    for value in request.path_params.values():
        if isinstance(value, int) and not is_row_id(value):
            raise PageError(404, N_("no such id"))


async def current_user(request: Request) -> SignedIn:
    user = await signed_in(request)
    if user is None:
        raise SignInRequired()
    return user


def role(needed: str) -> Callable[..., Awaitable[SignedIn]]:
    """A dependency: the signed-in user, who must have at least the role ``needed`` (403 otherwise)."""

    async def dependency(user: SignedIn = Depends(current_user)) -> SignedIn:
        if not has_role(user.role, needed):
            raise PageError(403, Message(N_("this needs the %(role)s role"), role=needed))
        return user

    return dependency


async def read_plain_form(request: Request) -> ImmutableMultiDict[str, str]:
    """A urlencoded POST body, size- and field-limited; refuses cross-site posts."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise PageError(403, N_("cross-site form posts are refused"))
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except WebhookRejected as exc:
        raise PageError(exc.status, exc.message) from None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and content_type != FORM_TYPE:
        raise PageError(415, Message(N_("expected a %(type)s body"), type=FORM_TYPE))
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, N_("malformed form body")) from None
    return ImmutableMultiDict(pairs)


async def read_form(request: Request, user: SignedIn) -> ImmutableMultiDict[str, str]:
    """The posted form of a signed-in user, after the CSRF check (403 without the right token)."""
    form = await read_plain_form(request)
    if not csrf_matches(user.csrf, form.get("csrf")):
        raise PageError(403, N_("the form's CSRF token is missing or wrong; reload the page and try again"))
    return form


def login_csrf_ok(request: Request, form: ImmutableMultiDict[str, str]) -> bool:
    """The sign-in form's double-submit check: the hidden field equals the cookie."""
    settings = web_context(request).settings
    return csrf_matches(request.cookies.get(login_csrf_cookie(settings)), form.get("csrf"))
