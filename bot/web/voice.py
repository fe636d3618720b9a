"""``/twilio/voice/answer``, ``/input``, ``/status`` and ``/recording`` (docs/voice.md).

Each route verifies ``X-Twilio-Signature`` against the configured public URL
first (:mod:`bot.web.signature`: 403 when missing or wrong, before any
parameter is looked at), checks its parameters (400 naming what is missing or
malformed), then hands the work to :class:`bot.voice.service.CallService`
(database in a worker thread, recognition in a pool of its own).  The answer
and input routes return TwiML; the status route 204.

The call service is built per app context (settings, database, clock) and kept
on ``app.state``; a test or the ``bot run`` service that replaces the context
gets a new one.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.db.types import is_row_id
from bot.errors import DatabaseUnavailable
from bot.voice.service import CallMismatch, CallService, UnknownCall
from bot.web.context import WebContext, unavailable, web_context
from bot.web.signature import WebhookRejected, read_signed_form

__all__ = ["router", "service_for"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/voice")

_CALL_SID_RE = re.compile(r"^CA[0-9a-fA-F]{32}$")
_RECORDING_SID_RE = re.compile(r"^[A-Za-z0-9]{2,64}$")
TWIML_TYPE = "application/xml"
_service_lock = threading.Lock()
T = TypeVar("T")


def service_for(request: Request) -> CallService:
    """The app's call service for its current context (settings, database, clock)."""
    ctx = web_context(request)
    state = request.app.state
    with _service_lock:
        current: Any = getattr(state, "voice_service", None)
        if current is None or getattr(current, "context", None) is not ctx:
            if current is not None:
                current.close()
            current = CallService(ctx.settings, ctx.db, ctx.clock, survey=ctx.survey)
            current.context = ctx  # type: ignore[attr-defined]
            state.voice_service = current
        return current


def set_service(app: Any, ctx: WebContext, service: CallService) -> None:
    """Use ``service`` for ``ctx`` (tests inject recognisers and renderers this way)."""
    with _service_lock:
        old = getattr(app.state, "voice_service", None)
        if old is not None and old is not service:
            old.close()
        service.context = ctx  # type: ignore[attr-defined]
        app.state.voice_service = service


def _refuse(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status)


def _attempt(request: Request) -> int | None:
    raw = request.query_params.get("attempt")
    if raw is None or not raw.isdigit() or not is_row_id(int(raw)):
        return None
    return int(raw)


def _call_sid(form: ImmutableMultiDict[str, str]) -> str | None:
    sid = form.get("CallSid")
    return sid if sid and _CALL_SID_RE.match(sid) else None


class _Refused(Exception):
    """A webhook refused before the service sees it: the response to send."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def _call_webhook(request: Request) -> tuple[ImmutableMultiDict[str, str], int, str]:
    """What every voice route checks first: the signature (403), then ``attempt`` and
    ``CallSid`` (400).  Returns (form, attempt id, call SID) or raises :class:`_Refused`."""
    ctx = web_context(request)
    try:
        form = await read_signed_form(request, ctx.settings)
    except WebhookRejected as exc:
        log.warning("voice webhook %s refused: %s", request.url.path, exc.message)
        raise _Refused(_refuse(exc.status, exc.message)) from None
    attempt_id = _attempt(request)
    if attempt_id is None:
        raise _Refused(_refuse(400, "attempt must be a positive integer"))
    sid = _call_sid(form)
    if sid is None:
        raise _Refused(_refuse(400, "CallSid is missing or malformed"))
    return form, attempt_id, sid


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


@router.post("/answer")
async def voice_answer(request: Request) -> Response:
    """The call was answered: the script's first step (or the voicemail, or a polite end)."""
    try:
        form, attempt_id, sid = await _call_webhook(request)
        twiml = await _serve("answer", sid, service_for(request).answer(attempt_id, form))
    except _Refused as refused:
        return refused.response
    return Response(twiml, media_type=TWIML_TYPE)


@router.post("/input")
async def voice_input(request: Request) -> Response:
    """The answer to one prompt: ``Digits``, a recording (``RecordingUrl``) or silence (``silence=1``)."""
    try:
        form, attempt_id, sid = await _call_webhook(request)
        raw_turn = request.query_params.get("turn", "")
        if not raw_turn.isdigit() or not 0 < int(raw_turn) < 10_000:
            return _refuse(400, "turn must be a positive integer")
        recording_sid = form.get("RecordingSid")
        if form.get("RecordingUrl") and (not recording_sid or not _RECORDING_SID_RE.match(recording_sid)):
            return _refuse(400, "RecordingSid is missing or malformed")
        digits = form.get("Digits") or ""
        if len(digits) > 32 or (digits != "hangup" and any(ch not in "0123456789*#" for ch in digits)):
            return _refuse(400, "Digits is malformed")
        silence = request.query_params.get("silence") == "1"
        twiml = await _serve("input", sid, service_for(request).input(attempt_id, int(raw_turn), form,
                                                                       silence=silence))
    except _Refused as refused:
        return refused.response
    return Response(twiml, media_type=TWIML_TYPE)


@router.post("/recording")
async def voice_recording(request: Request) -> Response:
    """The whole call's dual-channel recording is ready (``RecordingStatusCallback``): fetch and keep it."""
    try:
        form, attempt_id, sid = await _call_webhook(request)
        recording_sid = form.get("RecordingSid") or ""
        if not _RECORDING_SID_RE.match(recording_sid) or not recording_sid.startswith("RE"):
            return _refuse(400, "RecordingSid is missing or malformed")
        if not form.get("RecordingUrl"):
            return _refuse(400, "missing parameter(s): RecordingUrl")
        kept = await _serve("recording", sid, service_for(request).recording(attempt_id, form))
    except _Refused as refused:
        return refused.response
    log.debug("voice recording %s for attempt %s: %s", sid, attempt_id, "kept" if kept else "ignored")
    return Response(status_code=204)


@router.post("/status")
async def voice_status(request: Request) -> Response:
    """A call progress callback (initiated, ringing, answered, completed and the other final statuses)."""
    try:
        form, attempt_id, sid = await _call_webhook(request)
        if not form.get("CallStatus"):
            return _refuse(400, "missing parameter(s): CallStatus")
        duration = form.get("CallDuration")
        if duration and not duration.isdigit():
            return _refuse(400, "CallDuration is not a number")
        applied = await _serve("status", sid, service_for(request).status(attempt_id, form))
    except _Refused as refused:
        return refused.response
    log.debug("voice status %s for attempt %s: %s", sid, attempt_id, "applied" if applied else "ignored")
    return Response(status_code=204)
