"""``/twilio/voice/answer``, ``/input``, ``/status`` and ``/recording`` (docs/voice.md).

Thin routes: the provider (bot.providers.twilio.webhooks, through
:func:`bot.web.body.signed_event`) verifies ``X-Twilio-Signature`` against the
configured public URL (403 when missing or wrong, before any parameter is looked
at) and turns the request into a neutral event (400 naming what is missing or
malformed); the route hands it to :class:`bot.voice.service.CallService` (database
in a worker thread, recognition in the speech service's pool) and renders the
answer: the answer and input routes return the step as TwiML
(bot.providers.twilio.twiml), the status and recording routes 204.

The call service is built by the composition root (``app.state.call_service_factory``,
:func:`bot.app.build_call_service`) for the app's context (settings, database, clock)
and kept on ``app.state``; a test or the ``bot run`` service that replaces the context
gets a new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.errors import DatabaseUnavailable, WebhookRejected
from bot.http.context import WebContext, unavailable, web_context
from bot.providers.twilio import webhooks
from bot.providers.twilio.twiml import TWIML_TYPE, render
from bot.voice.service import CallMismatch, CallService, UnknownCall
from bot.web.body import signed_event

__all__ = ["router", "service_for", "set_service"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/voice")

_service_lock = threading.Lock()
T = TypeVar("T")


def service_for(request: Request) -> CallService:
    """The app's call service for its current context (settings, database, clock)."""
    ctx = web_context(request)
    state = request.app.state
    with _service_lock:
        current: Any = getattr(state, "voice_service", None)
        if current is None or getattr(current, "context", None) is not ctx:
            factory: Callable[[WebContext], CallService] = state.call_service_factory
            current = factory(ctx)
            _install(state, ctx, current)
        return current


def set_service(app: Any, ctx: WebContext, service: CallService) -> None:
    """Use ``service`` for ``ctx`` (the composition root's lifespan, and tests that inject
    recognisers and renderers)."""
    with _service_lock:
        _install(app.state, ctx, service)


def _install(state: Any, ctx: WebContext, service: CallService) -> None:
    """``service`` becomes the app's call service for ``ctx``; the one it replaces is closed
    (the caller holds ``_service_lock``)."""
    old = getattr(state, "voice_service", None)
    if old is not None and old is not service:
        old.close()
    service.context = ctx  # type: ignore[attr-defined]
    state.voice_service = service


def _refuse(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status)


class _Refused(Exception):
    """A webhook refused before or by the service: the response to send."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def _event(request: Request, parse: Callable[[webhooks.Form, Mapping[str, str]], T]) -> T:
    """The request's event (the provider checks the signature, then the parameters), or :class:`_Refused`."""
    try:
        return await signed_event(request, web_context(request).settings, parse)
    except WebhookRejected as exc:
        log.warning("voice webhook %s refused: %s", request.url.path, exc.message)
        raise _Refused(_refuse(exc.status, exc.message)) from None


async def _serve(what: str, sid: str, work: Awaitable[T]) -> T:
    """Run the call service's ``work``; its refusals become 400, a database that stayed
    unreachable 503 (nothing was stored: the provider may send the webhook again), anything
    else 500 (logged by kind only: database errors carry parameters)."""
    try:
        return await work
    except (UnknownCall, CallMismatch) as exc:
        log.warning("voice %s %s refused: %s", what, sid, exc)
        raise _Refused(_refuse(400, str(exc))) from None
    except DatabaseUnavailable as exc:
        log.error("voice %s %s not stored: %s", what, sid, exc)
        raise _Refused(unavailable()) from None
    except Exception as exc:
        log.error("voice %s %s failed (%s)", what, sid, type(exc).__name__)
        raise _Refused(_refuse(500, "internal error")) from None


async def _handled(request: Request, what: str, parse: Callable[..., Any],
                   serve: Callable[[CallService, Any], Awaitable[T]]) -> tuple[Any, T] | Response:
    """The webhook's event (``parse``: the provider's parser) and what the call flow made of it
    (``serve``: a :class:`CallService` method), or the refusal's response."""
    try:
        event = await _event(request, parse)
        return event, await _serve(what, event.call_id, serve(service_for(request), event))
    except _Refused as refused:
        return refused.response


async def _plan(request: Request, what: str, parse: Callable[..., Any],
                serve: Callable[[CallService, Any], Awaitable[Any]]) -> Response:
    """A webhook answered with the call's next step, as TwiML."""
    handled = await _handled(request, what, parse, serve)
    if isinstance(handled, Response):
        return handled
    return Response(render(handled[1]), media_type=TWIML_TYPE)


async def _noted(request: Request, what: str, parse: Callable[..., Any],
                 serve: Callable[[CallService, Any], Awaitable[bool]], done: str) -> Response:
    """A callback the call flow takes note of (204); ``done`` says what a True result means."""
    handled = await _handled(request, what, parse, serve)
    if isinstance(handled, Response):
        return handled
    event, result = handled
    log.debug("voice %s %s for attempt %s: %s", what, event.call_id, event.attempt_id,
              done if result else "ignored")
    return Response(status_code=204)


@router.post("/answer")
async def voice_answer(request: Request) -> Response:
    """The call was answered: the script's first step (or the voicemail, or a polite end)."""
    return await _plan(request, "answer", webhooks.call_answered, CallService.answer)


@router.post("/input")
async def voice_input(request: Request) -> Response:
    """The answer to one prompt: keys, a recording, or silence."""
    return await _plan(request, "input", webhooks.call_heard, CallService.input)


@router.post("/recording")
async def voice_recording(request: Request) -> Response:
    """The whole call's dual-channel recording is ready: fetch and keep it."""
    return await _noted(request, "recording", webhooks.recording_ready, CallService.recording, "kept")


@router.post("/status")
async def voice_status(request: Request) -> Response:
    """A call progress callback (initiated, ringing, answered, completed and the other final statuses)."""
    return await _noted(request, "status", webhooks.call_progress, CallService.status, "applied")
