"""``/unsubscribe/{token}``: the email unsubscribe link and RFC 8058 one-click POST.

* ``GET`` shows a confirmation page with a button and changes nothing: mail
  security scanners and link previewers follow every link in an email, and
  must not unsubscribe anybody.
* ``POST`` with the body ``List-Unsubscribe=One-Click`` (what mail providers
  send for the ``List-Unsubscribe-Post`` header, and what the page's button
  sends) records the opt-out of that email address, and nothing else: SMS and
  calls are untouched.

The token (``bot.messages.make_unsubscribe_token``, an HMAC keyed with the
``unsubscribe_secret`` setting) carries the borrower id and the address the
email went to; the opt-out is recorded for that address, so it survives the
borrower changing their email.  Pages are in the borrower's language.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.config import Settings
from bot.db import Database
from bot.db.models import Borrower, InboundMessage
from bot.domain import Channel, Intent
from bot.errors import WebhookRejected
from bot.http.body import read_body
from bot.http.context import web_context
from bot.messages import read_unsubscribe_token
from bot.privacy import mask_email
from bot.replies import record_opt_out
from bot.web.pages import PAGE_HEADERS, page, texts_for

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()

SOURCE = "unsubscribe"
MAX_TOKEN_LENGTH = 2048
ONE_CLICK = ("List-Unsubscribe", "One-Click")


def _decode(settings: Settings, token: str) -> tuple[str, str] | None:
    """(borrower id, address) of a genuine token; None for anything else."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return read_unsubscribe_token(settings.unsubscribe_secret, token)


def _html(status: int, locale: str | None, message: str, *, form: bool = False, **values: str) -> HTMLResponse:
    text = texts_for(locale)
    return HTMLResponse(page(text, getattr(text, message), form=form, **values), status_code=status,
                        headers=PAGE_HEADERS)


def _borrower_locale(db: Database, borrower_id: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(Borrower.locale).where(Borrower.id == borrower_id))


def _unsubscribe(db: Database, settings: Settings, borrower_id: str, address: str, at: datetime) -> str | None:
    """Record the email opt-out; the borrower's locale (None: the borrower no longer exists)."""
    with db.session() as session:
        locale = session.scalar(select(Borrower.locale).where(Borrower.id == borrower_id))
        if locale is None:
            return None
        if record_opt_out(session, borrower_id, Channel.EMAIL.value, address, SOURCE, at):
            session.add(InboundMessage(
                provider_id=None, channel=Channel.EMAIL.value, borrower_id=borrower_id, from_address=address,
                to_address=settings.smtp_from, body_redacted="=".join(ONE_CLICK), intent=Intent.OPT_OUT.value,
                promise_date=None, confidence=1.0, matched="list_unsubscribe.one_click", received_at=at,
                handled_at=at,
            ))
        return locale


@router.get("/unsubscribe/{token}")
async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """The confirmation page; never unsubscribes by itself."""
    ctx = web_context(request)
    decoded = _decode(ctx.settings, token)
    if decoded is None:
        return _html(404, None, "invalid", lender_email=ctx.settings.lender_email)
    borrower_id, address = decoded
    locale = await run_in_threadpool(_borrower_locale, ctx.db, borrower_id)
    return _html(200, locale, "confirm", form=True, lender=ctx.settings.lender_name, email=mask_email(address))


@router.post("/unsubscribe/{token}")
async def unsubscribe_one_click(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click (also the page's button): records the email opt-out."""
    ctx = web_context(request)
    decoded = _decode(ctx.settings, token)
    if decoded is None:
        return _html(404, None, "invalid", lender_email=ctx.settings.lender_email)
    borrower_id, address = decoded
    try:
        await read_body(request)
        form = await request.form(max_files=0, max_fields=20)
    except WebhookRejected as exc:
        return _html(exc.status, None, "bad_request")
    except Exception:  # malformed multipart or urlencoded body
        return _html(400, None, "bad_request")
    if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
        return _html(400, None, "bad_request")
    locale = await run_in_threadpool(_unsubscribe, ctx.db, ctx.settings, borrower_id, address, ctx.clock.now())
    log.info("email unsubscribe for borrower %s (%s)", borrower_id, mask_email(address))
    return _html(200, locale, "done", lender=ctx.settings.lender_name, email=mask_email(address))
