"""``/p/{code}``: a short payment link, recorded and redirected to the lender's page.

The code names a contact attempt and carries an HMAC of it (bot.paylinks), so
nothing was written when the message was composed.  A click:

* on a genuine code, while the link is live (``payment_link_ttl_days`` after the
  attempt was planned) and the installment is still owed: recorded (an audit event
  ``payment_link.clicked`` on the borrower, shown on the console's timeline and
  counted in reports) and redirected (302) to the lender's URL with the signed token;
* on an installment already paid: a page that says so, no redirect (nothing to pay);
* on an expired link: 410 and a page with the lender's phone number;
* on anything else: 404.  Nothing about the borrower or the debt is ever shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot.config import Settings
from bot.db import Database
from bot.db.models import AuditEvent, Borrower, ContactAttempt, Installment
from bot.events import emit
from bot.http.context import web_context
from bot.paylinks import decode_code, lender_url, link_ttl
from bot.web.pages import PAGE_HEADERS, page

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()

ACTION = "payment_link.clicked"


@dataclass(frozen=True, slots=True)
class _Texts:
    lang: str
    title: str
    paid: str
    expired: str  # {lender_phone}
    invalid: str
    button: str = ""  # these pages have no form


_TEXTS = {
    "en": _Texts("en", "Payment", "Thank you: there is nothing to pay on this link any more.",
                 "This payment link has expired. To pay, call {lender_phone}.",
                 "This payment link is not valid."),
    "zh": _Texts("zh-CN", "还款", "谢谢：此链接已无需还款。", "此还款链接已过期。如需还款，请致电 {lender_phone}。",
                 "此还款链接无效。"),
    "ko": _Texts("ko-KR", "납부", "감사합니다. 이 링크로 납부하실 금액이 없습니다.",
                 "이 납부 링크는 만료되었습니다. 납부하시려면 {lender_phone}(으)로 전화해 주세요.",
                 "유효하지 않은 납부 링크입니다."),
}


def _page(status: int, locale: str | None, message: str, **values: str) -> HTMLResponse:
    texts = _TEXTS.get((locale or "en").split("-")[0].lower(), _TEXTS["en"])
    return HTMLResponse(page(texts, getattr(texts, message), **values), status_code=status, headers=PAGE_HEADERS)


@dataclass(frozen=True, slots=True)
class _Click:
    outcome: str  # redirect | paid | expired | unknown
    locale: str | None = None
    url: str | None = None


def _click(db: Database, settings: Settings, attempt_id: int, now: datetime) -> _Click:
    with db.session() as session:
        row = session.execute(
            select(ContactAttempt.borrower_id, ContactAttempt.installment_id, ContactAttempt.loan_id,
                   ContactAttempt.created_at, Borrower.locale, Installment.covered_minor,
                   Installment.amount_due_minor)
            .join(Borrower, Borrower.id == ContactAttempt.borrower_id)
            .join(Installment, Installment.id == ContactAttempt.installment_id)
            .where(ContactAttempt.id == attempt_id)
        ).first()
        if row is None or not settings.payment_url_template:
            return _Click("unknown")
        borrower_id, installment_id, loan_id, created_at, locale, covered, due = row
        if now >= created_at + link_ttl(settings):
            outcome = "expired"
        elif covered >= due:
            outcome = "paid"
        else:
            outcome = "redirect"
        session.add(AuditEvent(at=now, actor="borrower", action=ACTION, subject_type="borrower",
                               subject_id=borrower_id,
                               detail={"attempt_id": attempt_id, "installment_id": installment_id,
                                       "outcome": outcome}))
        emit(session, "payment_link.clicked", borrower_id=borrower_id, at=now,
             data={"attempt_id": attempt_id, "installment_id": installment_id, "loan_id": loan_id,
                   "outcome": outcome, "clicked_at": now.isoformat().replace("+00:00", "Z")})
        if outcome != "redirect":
            return _Click(outcome, locale)
        return _Click("redirect", locale, lender_url(settings, installment_id=installment_id, loan_id=loan_id or "",
                                                     attempt_id=attempt_id, issued_at=created_at))


@router.get("/p/{code}")
async def payment_link(code: str, request: Request) -> Response:
    ctx = web_context(request)
    attempt_id = decode_code(ctx.settings.payment_link_secret, code)
    if attempt_id is None:
        return _page(404, None, "invalid")
    click = await run_in_threadpool(_click, ctx.db, ctx.settings, attempt_id, ctx.clock.now())
    log.info("payment link of attempt %s: %s", attempt_id, click.outcome)
    if click.outcome == "redirect" and click.url:
        return RedirectResponse(click.url, status_code=302, headers={"Cache-Control": "no-store",
                                                                    "Referrer-Policy": "no-referrer"})
    if click.outcome == "expired":
        return _page(410, click.locale, "expired", lender_phone=ctx.settings.lender_phone)
    if click.outcome == "paid":
        return _page(200, click.locale, "paid")
    return _page(404, None, "invalid")
