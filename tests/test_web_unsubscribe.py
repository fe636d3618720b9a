"""``/unsubscribe/{token}`` over real HTTP: GET only shows, POST one-click records the email opt-out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.compliance import check
from bot.compliance.loader import load_context
from bot.db import Database
from bot.db.models import Consent, InboundMessage
from bot.domain import Channel
from bot.messages import make_unsubscribe_token
from test_web_support import (
    EMAIL,
    PHONE,
    WebHarness,
    add_account,
    counts,
    harness,  # noqa: F401 - fixture
    web,  # noqa: F401 - fixture
)

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def token(web: WebHarness, db: Database) -> str:
    with db.session() as session:
        add_account(session, "B1")
    return make_unsubscribe_token(web.settings.unsubscribe_secret, "B1", EMAIL)


def email_consent(db: Database, address: str = EMAIL) -> Consent | None:
    with db.session() as session:
        return session.scalar(select(Consent).where(Consent.channel == "email", Consent.address == address))


def reasons(db: Database, channel: Channel) -> tuple[str, ...]:
    with db.session() as session:
        ctx = load_context(session, "B1", at=AT)
    return check(ctx.subject, channel, AT, ctx.history, ctx.state, loan_id=ctx.loan_id).reasons


def test_get_shows_a_form_and_unsubscribes_nobody(web: WebHarness, db: Database, token: str) -> None:
    assert web.client is not None
    before = counts(db)
    for _ in range(3):  # a mail scanner may follow the link several times
        page = web.client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
    assert '<form method="post">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert "j***@example.com" in page.text and EMAIL not in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert counts(db) == before
    assert email_consent(db).opted_out_at is None  # type: ignore[union-attr]


def test_one_click_post_records_the_email_opt_out_only(web: WebHarness, db: Database, token: str) -> None:
    assert web.client is not None
    response = web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert response.status_code == 200 and "unsubscribed" in response.text
    row = email_consent(db)
    assert row is not None and row.opted_out_at == AT and row.opt_out_source == "unsubscribe"
    assert "opted_out" in reasons(db, Channel.EMAIL)
    assert reasons(db, Channel.SMS) == () and reasons(db, Channel.VOICE) == ()
    with db.session() as session:
        messages = session.execute(select(InboundMessage.channel, InboundMessage.intent,
                                          InboundMessage.borrower_id)).all()
    assert messages == [("email", "opt_out", "B1")]
    # a second click is answered the same and records nothing new
    assert web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 200
    with db.session() as session:
        assert len(session.scalars(select(InboundMessage.id)).all()) == 1


def test_one_click_as_multipart(web: WebHarness, db: Database, token: str) -> None:
    """RFC 8058 allows multipart/form-data too."""
    assert web.client is not None
    response = web.client.post(f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert email_consent(db).opted_out_at == AT  # type: ignore[union-attr]


def test_the_opt_out_stays_with_the_address_of_the_link(web: WebHarness, db: Database) -> None:
    """An old address's link opts out the old address, not the borrower's new one."""
    assert web.client is not None
    with db.session() as session:
        add_account(session, "B1")
    old = make_unsubscribe_token(web.settings.unsubscribe_secret, "B1", "old@example.com")
    assert web.client.post(f"/unsubscribe/{old}", data=ONE_CLICK).status_code == 200
    assert email_consent(db, "old@example.com").opted_out_at == AT  # type: ignore[union-attr]
    assert email_consent(db).opted_out_at is None  # type: ignore[union-attr]
    assert reasons(db, Channel.EMAIL) == ()


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "yes"}, {"unsubscribe": "One-Click"}])
def test_post_without_one_click_is_a_400(web: WebHarness, db: Database, token: str, body: dict[str, str]) -> None:
    assert web.client is not None
    before = counts(db)
    assert web.client.post(f"/unsubscribe/{token}", data=body).status_code == 400
    assert counts(db) == before


def test_bad_tokens_are_a_404(web: WebHarness, db: Database, token: str) -> None:
    assert web.client is not None
    before = counts(db)
    other_secret = make_unsubscribe_token("another-secret-of-16+", "B1", EMAIL)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in ("nonsense", other_secret, flipped, "x" * 3000):
        assert web.client.get(f"/unsubscribe/{bad}").status_code == 404
        response = web.client.post(f"/unsubscribe/{bad}", data=ONE_CLICK)
        assert response.status_code == 404 and "not valid" in response.text
    assert counts(db) == before


@pytest.mark.parametrize(("locale", "words"), [("zh-CN", ["退订", 'lang="zh-CN"']),
                                                ("ko-KR", ["수신 거부", 'lang="ko-KR"']),
                                                ("fr-FR", ["Unsubscribe", 'lang="en"'])])
def test_pages_are_in_the_borrower_s_language(web: WebHarness, db: Database, locale: str, words: list[str]) -> None:
    assert web.client is not None
    with db.session() as session:
        add_account(session, "B1", locale=locale)
    token = make_unsubscribe_token(web.settings.unsubscribe_secret, "B1", EMAIL)
    for response in (web.client.get(f"/unsubscribe/{token}"), web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK)):
        assert response.status_code == 200
        for word in words:
            assert word in response.text


def test_link_of_a_deleted_borrower_records_nothing(web: WebHarness, db: Database) -> None:
    assert web.client is not None
    token = make_unsubscribe_token(web.settings.unsubscribe_secret, "GONE", EMAIL)
    before = counts(db)
    assert web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 200
    assert counts(db) == before


def test_values_on_the_page_are_escaped(web: WebHarness, db: Database) -> None:
    assert web.client is not None
    web.configure(lender_name="<b>Evil & Co</b>")
    with db.session() as session:
        add_account(session, "B1")
    token = make_unsubscribe_token(web.settings.unsubscribe_secret, "B1", EMAIL)
    page = web.client.get(f"/unsubscribe/{token}").text
    assert "<b>Evil" not in page and "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in page
    assert PHONE not in page


def test_no_site_can_frame_the_pages(web: WebHarness, db: Database, token: str) -> None:
    """The confirmation page, the answer to the click and the error pages refuse framing
    (clickjacking the button would unsubscribe a borrower who did not mean to)."""
    assert web.client is not None
    for response in (web.client.get(f"/unsubscribe/{token}"), web.client.post(f"/unsubscribe/{token}", data={}),
                     web.client.get("/unsubscribe/not-a-token"), web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK)):
        csp = [part.strip() for part in response.headers["content-security-policy"].split(";")]
        assert "frame-ancestors 'none'" in csp, response.status_code
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
