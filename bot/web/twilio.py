"""``/twilio/sms`` (inbound messages) and ``/twilio/status`` (message status callbacks).

Thin routes: the provider (bot.providers.twilio.webhooks, through
:func:`bot.web.body.signed_event`) verifies ``X-Twilio-Signature`` against the
configured public URL and turns the form into a neutral event
(:class:`~bot.channels.events.InboundText`, :class:`~bot.channels.events.DeliveryUpdate`;
403, or 400 naming what is missing or malformed, nothing stored); the route hands
the event to the core in a thread (the database layer is synchronous) and answers
at once: classification takes about a millisecond and the transaction a few, far
inside Twilio's 15 s.

Inbound messages are answered with empty TwiML: answers are queued as
attempts that the dispatcher sends under the rules (docs/webhooks.md).  Only a
STOP or HELP from a number that belongs to no borrower is answered in the
TwiML itself, since there is no borrower to queue an attempt for.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.channels.events import InboundText
from bot.config import Settings
from bot.db import Database
from bot.db.retry import retried
from bot.dispatch.delivery import AttemptMismatch, StatusUpdate, UnknownMessage, apply_status
from bot.errors import DatabaseUnavailable, WebhookRejected
from bot.http.context import unavailable, web_context
from bot.policy import SurveySettings
from bot.privacy import mask_phone
from bot.providers.twilio import webhooks
from bot.providers.twilio.twiml import TWIML_TYPE, reply
from bot.rendering import get_renderer
from bot.replies import InboundOptions, InboundOutcome, process_inbound_sms
from bot.web.body import signed_event

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio")


def _refuse(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=status)


def _fallback_text(template: str, settings: Settings) -> str:
    if template == "reply_opt_out":
        return f"{settings.lender_name}: you are unsubscribed and will get no more texts. Reply START to resubscribe."
    return (f"{settings.lender_name}: for help call {settings.lender_phone} or write to {settings.lender_email}. "
            "Reply STOP to opt out.")


def _direct_answer(template: str, locale: str, settings: Settings) -> str:
    """The text of a TwiML answer to a number we do not know (no name, nothing about a debt)."""
    context = {"lender_name": settings.lender_name, "lender_phone": settings.lender_phone,
               "lender_email": settings.lender_email, "first_name": "", "locale": locale, "promise_date": None}
    try:
        return get_renderer(str(settings.templates_dir)).render_sms(template, locale, context)
    except Exception as exc:  # a missing or broken template must not leave STOP/HELP unanswered
        log.warning("template %s for %s unavailable (%s): built-in text used", template, locale, type(exc).__name__)
        return _fallback_text(template, settings)


#: Tries again of a webhook's transaction after a lost connection (0.5 s, then 1 s apart), then 503.
OUTAGE_TRIES = 2


def _process(db: Database, text: InboundText, settings: Settings,
             survey: SurveySettings | None = None) -> tuple[InboundOutcome, str | None]:
    options = InboundOptions(default_timezone=settings.default_timezone, default_country=settings.default_country,
                             keyword_replies=settings.sms_keyword_replies, survey=survey)
    outcome = retried(lambda: process_inbound_sms(db, text, options),
                      what="inbound sms webhook", outage_tries=OUTAGE_TRIES)
    answer = _direct_answer(outcome.direct_reply, outcome.locale, settings) if outcome.direct_reply else None
    return outcome, answer


@router.post("/sms")
async def inbound_sms(request: Request) -> Response:
    """An SMS to one of our numbers."""
    ctx = web_context(request)
    try:
        text = await signed_event(request, ctx.settings, webhooks.inbound_text, at=ctx.clock.now())
    except WebhookRejected as exc:
        log.warning("inbound sms webhook refused: %s", exc.message)
        return _refuse(exc.status, exc.message)
    sid, from_ = text.message_id, text.sender
    try:
        outcome, answer = await run_in_threadpool(_process, ctx.db, text, ctx.settings, ctx.survey)
    except DatabaseUnavailable as exc:
        log.error("inbound sms %s not stored: %s", sid, exc)
        return unavailable()
    except Exception as exc:  # log the kind only: database errors carry the parameters (numbers, text)
        log.error("inbound sms %s from %s: processing failed (%s)", sid, mask_phone(from_), type(exc).__name__)
        return _refuse(500, "internal error")
    if outcome.duplicate:
        log.info("inbound sms %s: already processed, ignored", sid)
    return Response(reply(answer), media_type=TWIML_TYPE)


def _status(db: Database, **kwargs: object) -> StatusUpdate:
    return retried(lambda: _status_tx(db, **kwargs), what="status callback", outage_tries=OUTAGE_TRIES)


def _status_tx(db: Database, **kwargs: object) -> StatusUpdate:
    with db.session() as session:
        return apply_status(session, **kwargs)  # type: ignore[arg-type]


@router.post("/status")
async def status_callback(request: Request) -> Response:
    """A message status callback (``?attempt=<id>`` when the dispatcher set it)."""
    ctx = web_context(request)
    try:
        update = await signed_event(request, ctx.settings, webhooks.delivery_update)
    except WebhookRejected as exc:
        log.warning("status callback refused: %s", exc.message)
        return _refuse(exc.status, exc.message)
    sid = update.message_id
    try:
        result = await run_in_threadpool(_status, ctx.db, message_sid=sid, status=update.status,
                                         error_code=update.error_code, attempt_id=update.attempt_id,
                                         at=ctx.clock.now())
    except (UnknownMessage, AttemptMismatch) as exc:
        log.warning("status callback %s refused: %s", sid, exc)
        return _refuse(400, str(exc))
    except IntegrityError:
        log.warning("status callback %s refused: MessageSid already belongs to another attempt", sid)
        return _refuse(400, "MessageSid already belongs to another attempt")
    except DatabaseUnavailable as exc:
        log.error("status callback %s not stored: %s", sid, exc)
        return unavailable()
    except Exception as exc:
        log.error("status callback %s: processing failed (%s)", sid, type(exc).__name__)
        return _refuse(500, "internal error")
    log.debug("status callback %s: attempt %s %s (%s)", sid, result.attempt_id, result.status,
              "applied" if result.applied else "ignored")
    return Response(status_code=204)
