"""The console's pages, actions and API (docs/console.md).

Two routers, both of :class:`~bot.console.web.ConsoleRoute`:

* :data:`public_router` — what answers without a session: the ``/``
  redirect, the sign-in page and form, and the two static assets;
* :data:`router` — everything else, with :func:`~bot.console.web.current_user`
  and :func:`~bot.console.web.bounded_ids` as dependencies of the router itself, so a
  route added later cannot forget them.

Pages read with the ``viewer`` role; actions (POST) need ``supervisor`` and
check the CSRF token; the audit page needs ``admin``.  After an action the
browser is sent back to the page (303) with ``?done=<what>``.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.console import actions, queries, review
from bot.console import effectiveness as eff
from bot.console.review import ReviewRules
from bot.console.filters import (
    NO_GROUPING,
    REVEAL_FIELDS,
    EffectivenessFilters,
    InvalidInput,
    borrower_id as valid_borrower_id,
    choice,
    intent_value,
    iso_date,
    parse_audit_filters,
    parse_call_filters,
    parse_effectiveness_filters,
    parse_task_filters,
    text,
)
from bot.console.sessions import SignedIn, create_session, end_session, new_token, purge_expired, session_id_for
from bot.console.i18n import N_, Message, field_message
from bot.console.users import MAX_PASSWORD_LENGTH, UserError, authenticate, has_role, set_locale
from bot.console.web import (
    ConsoleRoute,
    PageError,
    bounded_ids,
    cookie_name,
    current_user,
    login_csrf_cookie,
    login_csrf_ok,
    read_form,
    read_plain_form,
    render,
    role,
    safe_next,
    signed_in,
)
from bot.db.types import is_row_id
from bot.domain import Intent, TaskKind
from bot.effectiveness import DIMENSIONS
from bot.http.context import WebContext, web_context

__all__ = ["public_router", "router"]

log = logging.getLogger(__name__)

public_router = APIRouter(route_class=ConsoleRoute)
router = APIRouter(route_class=ConsoleRoute, dependencies=[Depends(current_user), Depends(bounded_ids)])

STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
AUDIO_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
DONE = {"reviewed": N_("Marked as reviewed."), "note": N_("Note added."), "corrected": N_("Correction saved."),
        "escalated": N_("Escalated: a task is open."), "assigned": N_("Task assigned."),
        "closed": N_("Task closed."), "taken": N_("The call is assigned to you."),
        "released": N_("The call is assigned to nobody."),
        "empty": N_("Nothing left to review: the queue is empty (or every call in it is someone else's).")}

viewer = role("viewer")
supervisor = role("supervisor")
admin = role("admin")


def _ctx(request: Request) -> WebContext:
    return web_context(request)


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done") or "")


def _back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}", status_code=303)


# --- public: redirect, sign-in, static --------------------------------------------------------------


@public_router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=303)


@public_router.get("/console/static/{name}")
def static_asset(name: str, request: Request) -> Response:
    if name not in STATIC:
        raise PageError(404, N_("no such file"))
    path = Path(_ctx(request).settings.templates_dir) / "web" / "static" / name
    if not path.is_file():
        raise PageError(404, N_("no such file"))
    return FileResponse(path, media_type=STATIC[name])


def _login_page(request: Request, *, status: int = 200, message: str | None = None,
                name: str = "") -> HTMLResponse:
    settings = _ctx(request).settings
    token = request.cookies.get(login_csrf_cookie(settings)) or ""
    if not 20 <= len(token) <= 128 or not token.replace("-", "").replace("_", "").isalnum():
        token = new_token()
    response = render(request, "console/login.html.j2", user=None, status=status, login_csrf=token,
                      message=message, name=name, next=safe_next(request.query_params.get("next")))
    response.set_cookie(login_csrf_cookie(settings), token, max_age=3600, path="/",
                        secure=settings.console_secure_cookies, httponly=True, samesite="strict")
    return response


@public_router.get("/console/login")
async def login_page(request: Request) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_page(request)


def _sign_in(ctx: WebContext, name: str, password: str, client: str | None,
             previous: str | None) -> tuple[str | None, str]:
    settings = ctx.settings
    at = ctx.clock.now()
    with ctx.db.session() as session:
        result = authenticate(session, name, password, at=at, max_failed=settings.console_max_failed_logins,
                              lockout=timedelta(minutes=settings.console_lockout_minutes), client=client)
        if not result.ok:
            return None, result.reason
        assert result.user_id is not None
        if previous and len(previous) <= 128:  # a new sign-in always gets a new session (no fixation)
            end_session(session, session_id_for(previous))
        purge_expired(session, at, idle=timedelta(minutes=settings.console_idle_minutes))
        token = create_session(session, result.user_id, at=at,
                               lifetime=timedelta(hours=settings.console_session_hours))
    return token, "ok"


@public_router.post("/console/login")
async def login(request: Request) -> Response:
    ctx = _ctx(request)
    form = await read_plain_form(request)
    if not login_csrf_ok(request, form):
        raise PageError(403, N_("the sign-in form expired; reload the page and try again"))
    name = (form.get("name") or "").strip()[:64]
    password = form.get("password") or ""
    if not name or not password or len(password) > MAX_PASSWORD_LENGTH:
        return _login_page(request, status=400, message=Message(N_("Enter your user name and password.")), name=name)
    client = request.client.host if request.client else None
    previous = request.cookies.get(cookie_name(ctx.settings))
    token, reason = await run_in_threadpool(_sign_in, ctx, name, password, client, previous)
    if token is None:
        log.info("console sign-in refused (%s)", reason)
        # One message for every refusal: a wrong name, a wrong password and a lock look the same.
        return _login_page(request, status=401, name=name,
                           message=Message(N_("Sign-in refused: wrong user name or password, or the account is locked.")))
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(cookie_name(ctx.settings), token, max_age=int(ctx.settings.console_session_hours * 3600),
                        path="/", secure=ctx.settings.console_secure_cookies, httponly=True, samesite="strict")
    response.delete_cookie(login_csrf_cookie(ctx.settings), path="/", secure=ctx.settings.console_secure_cookies,
                           httponly=True, samesite="strict")
    return response


# --- session ------------------------------------------------------------------------------------------


def _sign_out(ctx: WebContext, user: SignedIn) -> None:
    from bot.console.audit import record

    with ctx.db.session() as session:
        end_session(session, user.session_id)
        record(session, ctx.clock.now(), actor=user.name, action="console.logout", subject_type="user",
               subject_id=user.name)


@router.post("/console/logout")
async def logout(request: Request, user: SignedIn = Depends(viewer)) -> Response:
    ctx = _ctx(request)
    await read_form(request, user)
    await run_in_threadpool(_sign_out, ctx, user)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(cookie_name(ctx.settings), path="/", secure=ctx.settings.console_secure_cookies,
                           httponly=True, samesite="strict")
    return response


def _set_own_locale(ctx: WebContext, user: SignedIn, locale: str) -> None:
    with ctx.db.session() as session:
        set_locale(session, user.name, locale, at=ctx.clock.now(), actor=user.name)


@router.post("/console/account/locale")
async def change_locale(request: Request, user: SignedIn = Depends(viewer)) -> Response:
    """A user changes their own console language (the header's form); back to the page it was sent from."""
    form = await read_form(request, user)
    try:
        await run_in_threadpool(_set_own_locale, _ctx(request), user, form.get("locale", ""))
    except UserError as exc:
        raise PageError(400, exc.args[0]) from None
    return RedirectResponse(safe_next(form.get("next")), status_code=303)


# --- dashboard -------------------------------------------------------------------------------------


def _today(ctx: WebContext) -> date:
    """The business day in ``BOT_DEFAULT_TIMEZONE`` (the dashboard's "today")."""
    return ctx.clock.now().astimezone(ZoneInfo(ctx.settings.default_timezone)).date()


def _dashboard(ctx: WebContext) -> dict[str, Any]:
    with ctx.db.session() as session:
        data = queries.dashboard(session, ctx.clock.now(), zone_name=ctx.settings.default_timezone,
                                 low_confidence=ctx.settings.console_low_confidence)
        data["promise_window"] = eff.promise_card(session, ctx.settings, _today(ctx))
    return data


@router.get("/console")
def dashboard_page(request: Request, user: SignedIn = Depends(viewer)) -> HTMLResponse:
    return render(request, "console/dashboard.html.j2", user=user, data=_dashboard(_ctx(request)))


@router.get("/console/api/dashboard")
def dashboard_api(request: Request, user: SignedIn = Depends(viewer)) -> JSONResponse:
    return JSONResponse(_dashboard(_ctx(request)))


# --- effectiveness --------------------------------------------------------------------------------


def _effectiveness_filters(ctx: WebContext, request: Request) -> EffectivenessFilters:
    return parse_effectiveness_filters(dict(request.query_params), _today(ctx), DIMENSIONS)


def _effectiveness(ctx: WebContext, filters: EffectivenessFilters) -> dict[str, Any]:
    s = ctx.settings
    policy, policy_error = None, None
    try:
        policy = queries.cached_policy(str(s.policy_file) if s.policy_file else None, str(s.templates_dir),
                                       str(s.voice_scripts_dir))
    except Exception as exc:  # the figures still show; the page says the experiment's status is missing
        policy_error = type(exc).__name__
        log.warning("effectiveness page: the policy could not be loaded (%s)", policy_error)
    with ctx.db.session() as session:
        data = eff.page(session, s, filters, policy=policy, today=_today(ctx))
    data["policy_error"] = policy_error
    return data


@router.get("/console/effectiveness")
def effectiveness_page(request: Request, user: SignedIn = Depends(viewer)) -> HTMLResponse:
    ctx = _ctx(request)
    options = [NO_GROUPING, *DIMENSIONS]
    try:
        filters = _effectiveness_filters(ctx, request)
    except InvalidInput as exc:
        params = request.query_params
        form = {k: (params.get(k) or "")[:32] for k in ("from", "to", "by")}
        return render(request, "console/effectiveness.html.j2", user=user, status=400,
                      error=field_message(exc.field, exc.message), form=form, options=options, data=None,
                      filters=None)
    return render(request, "console/effectiveness.html.j2", user=user, error=None, form=filters.form_values(),
                  options=options, data=_effectiveness(ctx, filters), filters=filters)


@router.get("/console/effectiveness.csv")
def effectiveness_csv(request: Request, user: SignedIn = Depends(viewer)) -> Response:
    from bot.effectiveness.output import to_csv

    ctx = _ctx(request)
    filters = _effectiveness_filters(ctx, request)
    with ctx.db.session() as session:
        report = eff.report_for(session, ctx.settings, filters)
    name = f"effectiveness_{filters.date_from}_{filters.date_to}_{filters.by}.csv"
    return Response(to_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/console/api/effectiveness")
def effectiveness_api(request: Request, user: SignedIn = Depends(viewer)) -> JSONResponse:
    ctx = _ctx(request)
    filters = _effectiveness_filters(ctx, request)
    with ctx.db.session() as session:
        return JSONResponse(eff.report_for(session, ctx.settings, filters))


# --- calls -----------------------------------------------------------------------------------------


def _rules(ctx: WebContext) -> ReviewRules:
    settings = ctx.settings
    return queries.review_rules(settings.console_low_confidence, settings.voice_scripts_dir,
                                settings.speech_accept_margin + settings.console_low_margin_band)


def _calls(ctx: WebContext, params: dict[str, str], zone: str) -> tuple[Any, queries.CallPage, list[str], list[str]]:
    with ctx.db.session() as session:
        outcomes = queries.call_outcomes(session)
        filters = parse_call_filters(params, outcomes)
        page = queries.list_calls(session, filters, zone_name=zone,
                                  low_confidence=ctx.settings.console_low_confidence,
                                  page_size=ctx.settings.console_page_size,
                                  default_timezone=ctx.settings.default_timezone, rules=_rules(ctx))
        return filters, page, outcomes, queries.call_locales(session)


@router.get("/console/calls")
def calls_page(request: Request, user: SignedIn = Depends(viewer)) -> HTMLResponse:
    ctx = _ctx(request)
    try:
        filters, page, outcomes, locales = _calls(ctx, dict(request.query_params),
                                                  queries.display_zone(user.timezone))
    except InvalidInput as exc:
        with ctx.db.session() as session:
            outcomes, locales = queries.call_outcomes(session), queries.call_locales(session)
        return render(request, "console/calls.html.j2", user=user, status=400, error=field_message(exc.field, exc.message),
                      form={k: "" for k in ("from", "to", "outcome", "intent", "flagged", "low", "locale",
                                            "reviewed", "queue")},
                      page=None, filters=None, outcomes=outcomes, locales=locales,
                      intents=[i.value for i in Intent], done=None)
    return render(request, "console/calls.html.j2", user=user, error=None, form=filters.form_values(), page=page,
                  filters=filters, outcomes=outcomes, locales=locales, intents=[i.value for i in Intent],
                  done=_done(request))


@router.get("/console/api/calls")
def calls_api(request: Request, user: SignedIn = Depends(viewer)) -> JSONResponse:
    zone = queries.display_zone(user.timezone)
    filters, page, _, _ = _calls(_ctx(request), dict(request.query_params), zone)
    items = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in item.items()} for item in page.items]
    return JSONResponse({"filters": filters.form_values(), "page": page.page, "pages": page.pages,
                         "total": page.total, "answered": page.answered, "zone": zone,
                         "items": items})


def _call(ctx: WebContext, call_id: int, zone: str) -> dict[str, Any]:
    with ctx.db.session() as session:
        call = queries.load_call(session, call_id, zone_name=zone,
                                 low_confidence=ctx.settings.console_low_confidence,
                                 default_timezone=ctx.settings.default_timezone, rules=_rules(ctx))
    if call is None:
        raise PageError(404, Message(N_("no call %(id)s"), id=call_id))
    return call


def _call_response(request: Request, user: SignedIn, call_id: int, *, status: int = 200,
                   form_error: dict[str, Any] | None = None) -> HTMLResponse:
    call = _call(_ctx(request), call_id, queries.display_zone(user.timezone))
    return render(request, "console/call.html.j2", user=user, status=status, call=call,
                  done=_done(request), intents=[i.value for i in Intent], form_error=form_error,
                  escalation_kinds=[k.value for k in actions.ESCALATION_KINDS])


@router.get("/console/calls/{call_id:int}")
def call_page(call_id: int, request: Request, user: SignedIn = Depends(viewer)) -> HTMLResponse:
    return _call_response(request, user, call_id)


def _in_session(ctx: WebContext, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with ctx.db.session() as session:
        return fn(session, *args, **kwargs)


@router.post("/console/calls/{call_id:int}/review")
async def review_call(call_id: int, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    await read_form(request, user)
    await run_in_threadpool(_in_session, ctx, actions.mark_reviewed, call_id, actor=user.name, at=ctx.clock.now())
    return _back(f"/console/calls/{call_id}", "reviewed")


@router.post("/console/calls/next")
async def next_call(request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    """The most urgent call in the review queue that is nobody's (assigned to me now) or mine."""
    ctx = _ctx(request)
    await read_form(request, user)
    call_id = await run_in_threadpool(_in_session, ctx, review.claim_next, _rules(ctx), me=user.name,
                                      at=ctx.clock.now())
    if call_id is None:
        return RedirectResponse("/console/calls?queue=1&done=empty", status_code=303)
    return RedirectResponse(f"/console/calls/{call_id}", status_code=303)


@router.post("/console/calls/{call_id:int}/assign")
async def assign_call(call_id: int, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    form = await read_form(request, user)
    raw = choice((form.get("assignee") or "").strip(), "assignee", ("me", "none"))
    if raw is None:
        raise InvalidInput("assignee", N_("is required (me or none)"))
    await run_in_threadpool(_in_session, ctx, actions.assign_call, call_id, user.name if raw == "me" else None,
                            actor=user.name, at=ctx.clock.now())
    back = form.get("return") or ""
    target = "/console/calls?queue=1" if back == "queue" else f"/console/calls/{call_id}"
    return RedirectResponse(target + ("&" if "?" in target else "?") + ("done=taken" if raw == "me" else
                                                                        "done=released"), status_code=303)


@router.post("/console/calls/{call_id:int}/notes")
async def note_call(call_id: int, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    form = await read_form(request, user)
    note = text(form.get("text"), "text")
    await run_in_threadpool(_in_session, ctx, actions.add_note, "call", str(call_id), note, actor=user.name,
                            at=ctx.clock.now())
    return _back(f"/console/calls/{call_id}", "note")


@router.post("/console/calls/{call_id:int}/turns/{turn_id:int}/correct")
async def correct_turn(call_id: int, turn_id: int, request: Request,
                       user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    form = await read_form(request, user)
    raw_date = (form.get("promise_date") or "").strip()
    try:
        intent = intent_value((form.get("intent") or "").strip())
        if intent is None:
            # Never a default: a correction saved without a choice would opt the borrower out, or worse.
            raise InvalidInput("intent", N_("choose what the borrower meant before saving"))
        promise_date = iso_date(raw_date, "promise_date")
        await run_in_threadpool(_in_session, ctx, actions.correct_turn, call_id, turn_id, Intent(intent),
                                promise_date, actor=user.name, at=ctx.clock.now(),
                                default_timezone=ctx.settings.default_timezone)
    except (InvalidInput, actions.ActionError) as exc:
        if isinstance(exc, actions.ActionError) and exc.status != 400:
            raise
        field = exc.field if isinstance(exc, InvalidInput) else exc.field or "intent"
        message = exc.message if isinstance(exc, InvalidInput) else exc.detail
        # The call page again, nothing saved, the message beside the field of that turn's form.
        return await run_in_threadpool(
            lambda: _call_response(request, user, call_id, status=400, form_error={
                "turn": turn_id, "field": field if field in ("intent", "promise_date") else "intent",
                "message": message, "intent": form.get("intent") or "", "promise_date": raw_date[:10]}))
    return _back(f"/console/calls/{call_id}", "corrected")


@router.post("/console/calls/{call_id:int}/escalate")
async def escalate_call(call_id: int, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    form = await read_form(request, user)
    kind = choice((form.get("kind") or "review").strip(), "kind", [k.value for k in actions.ESCALATION_KINDS])
    assert kind is not None
    await run_in_threadpool(_in_session, ctx, actions.escalate_call, call_id, TaskKind(kind), actor=user.name,
                            at=ctx.clock.now())
    return _back(f"/console/calls/{call_id}", "escalated")


def _media_path(ctx: WebContext, ref: str | None) -> Path:
    """A stored audio file: only under ``media_dir`` (resolved), of a known type, present."""
    if not ref:
        raise PageError(404, N_("no recording"))
    root = Path(ctx.settings.media_dir).expanduser().resolve()
    path = (root / ref).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() not in AUDIO_TYPES or not path.is_file():
        raise PageError(404, N_("the audio file is not available"))
    return path


def _media(ctx: WebContext, turn_id: int, user: SignedIn, first_request: bool) -> Path:
    from bot.console.audit import record

    with ctx.db.session() as session:
        found = queries.turn_audio(session, turn_id)
        if found is None:
            raise PageError(404, N_("no audio for this turn"))
        audio_ref, speaker, call_id = found
        path = _media_path(ctx, audio_ref)
        if speaker != "bot":
            # A recording of the borrower is personal data as it stands (nothing masked in it).
            if not has_role(user.role, "supervisor"):
                raise PageError(403, N_("recordings of the borrower need the supervisor role"))
            if first_request:
                record(session, ctx.clock.now(), actor=user.name, action="call.recording_played",
                       subject_type="call", subject_id=call_id, detail={"turn_id": turn_id})
    return path


async def _audio(request: Request, user: SignedIn, find: Any, row_id: int) -> Response:
    """An audio file found by ``find(ctx, row_id, user, first_request)``, with range requests; the
    first request of a playback (no range, or from byte 0) is the one that is audited."""
    range_header = request.headers.get("range", "")
    first = not range_header or range_header.replace(" ", "").startswith("bytes=0-")
    path = await run_in_threadpool(find, _ctx(request), row_id, user, first)
    return FileResponse(path, media_type=AUDIO_TYPES[path.suffix.lower()])


@router.get("/console/media/turns/{turn_id:int}")
async def turn_media(turn_id: int, request: Request, user: SignedIn = Depends(viewer)) -> Response:
    return await _audio(request, user, _media, turn_id)


def _call_media(ctx: WebContext, call_id: int, user: SignedIn, first_request: bool) -> Path:
    from bot.console.audit import record

    if not has_role(user.role, "supervisor"):  # the borrower is on it: personal data as it stands
        raise PageError(403, N_("recordings of the borrower need the supervisor role"))
    with ctx.db.session() as session:
        path = _media_path(ctx, queries.call_recording(session, call_id))
        if first_request:
            record(session, ctx.clock.now(), actor=user.name, action="call.recording_played",
                   subject_type="call", subject_id=call_id, detail={"whole_call": True})
    return path


@router.get("/console/media/calls/{call_id:int}")
async def call_media(call_id: int, request: Request, user: SignedIn = Depends(viewer)) -> Response:
    """The whole call's dual-channel recording (supervisors and admins), with range requests."""
    return await _audio(request, user, _call_media, call_id)


# --- borrowers -------------------------------------------------------------------------------------


def _borrower(ctx: WebContext, borrower_id: str, zone: str) -> tuple[dict[str, Any], dict[str, Any]]:
    s = ctx.settings
    now = ctx.clock.now()
    with ctx.db.sessions() as session:  # read only: closing the session rolls back whatever explain() touched
        page = queries.borrower_page(session, borrower_id, now, default_timezone=s.default_timezone,
                                     zone_name=zone)
        if page is None:
            raise PageError(404, N_("no such borrower"))
        why = queries.why_not_today(session, borrower_id, now, default_timezone=s.default_timezone,
                                    policy_file=s.policy_file, templates_dir=s.templates_dir,
                                    compliance_file=s.compliance_file, scripts_dir=s.voice_scripts_dir)
    return page, why


def _borrower_response(request: Request, user: SignedIn, borrower_id: str, *,
                       revealed: dict[str, str] | None = None) -> HTMLResponse:
    page, why = _borrower(_ctx(request), borrower_id, queries.display_zone(user.timezone))
    return render(request, "console/borrower.html.j2", user=user, b=page, why=why, revealed=revealed,
                  done=_done(request), reveal_fields=REVEAL_FIELDS)


@router.get("/console/borrowers/{borrower_id}")
def borrower_page(borrower_id: str, request: Request, user: SignedIn = Depends(viewer)) -> HTMLResponse:
    borrower_id = valid_borrower_id(borrower_id)
    revealed = None
    reveal_id = request.query_params.get("revealed") or ""
    if reveal_id:
        if not reveal_id.isdigit() or not is_row_id(int(reveal_id)):
            raise InvalidInput("revealed", N_("is not a reveal"))
        ctx = _ctx(request)
        shown = _in_session(ctx, actions.show_revealed, borrower_id, int(reveal_id), actor=user.name,
                            at=ctx.clock.now())
        # A reload (or anybody else's link) finds the reveal already shown: masked, with a note.
        revealed = {"field": shown[0], "value": shown[1]} if shown else {"field": "", "value": ""}
    return _borrower_response(request, user, borrower_id, revealed=revealed)


@router.post("/console/borrowers/{borrower_id}/reveal")
async def reveal(borrower_id: str, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    borrower_id = valid_borrower_id(borrower_id)
    form = await read_form(request, user)
    field = choice((form.get("field") or "").strip(), "field", REVEAL_FIELDS)
    if field is None:
        raise InvalidInput("field", N_("is required"))
    reason = text(form.get("reason"), "reason", minimum=5, maximum=500)
    # The audit row is committed (the session block ends) before the value is put on any page;
    # then Post/Redirect/Get: the value is on the GET that follows, once, so a reload of the
    # result neither posts the reveal again nor shows the value again.
    reveal_id = await run_in_threadpool(_in_session, ctx, actions.reveal_field, borrower_id, field, reason,
                                        actor=user.name, at=ctx.clock.now())
    log.info("console reveal of %s for borrower %s by %s", field, borrower_id, user.name)
    return RedirectResponse(f"/console/borrowers/{borrower_id}?revealed={reveal_id}", status_code=303)


@router.post("/console/borrowers/{borrower_id}/notes")
async def note_borrower(borrower_id: str, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    borrower_id = valid_borrower_id(borrower_id)
    form = await read_form(request, user)
    note = text(form.get("text"), "text")
    await run_in_threadpool(_in_session, ctx, actions.add_note, "borrower", borrower_id, note, actor=user.name,
                            at=ctx.clock.now())
    return _back(f"/console/borrowers/{borrower_id}", "note")


# --- tasks -----------------------------------------------------------------------------------------


@router.get("/console/tasks")
def tasks_page(request: Request, user: SignedIn = Depends(viewer)) -> HTMLResponse:
    ctx = _ctx(request)
    filters = parse_task_filters(dict(request.query_params))
    with ctx.db.session() as session:
        page = queries.list_tasks(session, filters, me=user.name, zone_name=queries.display_zone(user.timezone),
                                  page_size=ctx.settings.console_page_size)
        assignees = queries.users_for_assignment(session)
    return render(request, "console/tasks.html.j2", user=user, page=page, filters=filters,
                  form=filters.form_values(), kinds=[k.value for k in TaskKind], assignees=assignees,
                  done=_done(request))


def _return_to(form: Any) -> str:
    target = form.get("return") or ""
    return target if target.startswith("/console/tasks") and safe_next(target) == target else "/console/tasks"


@router.post("/console/tasks/{task_id:int}/assign")
async def assign_task(task_id: int, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    form = await read_form(request, user)
    raw = (form.get("assignee") or "").strip()
    assignee = None if raw in ("", "none") else (user.name if raw == "me" else raw)
    await run_in_threadpool(_in_session, ctx, actions.assign_task, task_id, assignee, actor=user.name,
                            at=ctx.clock.now())
    target = _return_to(form)
    return RedirectResponse(target + ("&" if "?" in target else "?") + "done=assigned", status_code=303)


@router.post("/console/tasks/{task_id:int}/close")
async def close_task(task_id: int, request: Request, user: SignedIn = Depends(supervisor)) -> Response:
    ctx = _ctx(request)
    form = await read_form(request, user)
    note = text(form.get("note"), "note")
    await run_in_threadpool(_in_session, ctx, actions.close_task, task_id, note, actor=user.name,
                            at=ctx.clock.now(), survey=ctx.survey)
    target = _return_to(form)
    return RedirectResponse(target + ("&" if "?" in target else "?") + "done=closed", status_code=303)


# --- audit -----------------------------------------------------------------------------------------


@router.get("/console/audit")
def audit_page(request: Request, user: SignedIn = Depends(admin)) -> HTMLResponse:
    ctx = _ctx(request)
    filters = parse_audit_filters(dict(request.query_params))
    with ctx.db.session() as session:
        page = queries.list_audit(session, filters, zone_name=queries.display_zone(user.timezone),
                                  page_size=ctx.settings.console_page_size)
    return render(request, "console/audit.html.j2", user=user, page=page, filters=filters,
                  form=filters.form_values())
