"""Payment links: the signed token, the short code, the links in messages, and ``/p/{code}``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db import Database
from bot.db.models import AuditEvent, ContactAttempt, Installment, Payment
from bot.ledger import settle_loans
from bot.messages import compose, sms_segments
from bot.paylinks import decode_code, make_code, make_token, read_token
from bot.rendering import Renderer
from test_web_support import PHONE, WebHarness, add_account, harness, web  # noqa: F401 - fixtures

SECRET = "a-test-payment-link-secret-of-32-bytes"
T0 = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
TEMPLATE = "https://pay.example.com/checkout/{token}"


# --- token and code ---------------------------------------------------------------------


def _token(**kw: object) -> str:
    args = {"installment_id": "I1", "loan_id": "L1", "attempt_id": 7, "issued_at": T0, "ttl": timedelta(days=30)}
    args.update(kw)
    return make_token(SECRET, **args)  # type: ignore[arg-type]


def test_a_token_names_the_installment_and_expires_by_the_given_clock() -> None:
    token = _token()
    claim = read_token(SECRET, token, now=T0 + timedelta(days=29))
    assert claim is not None and (claim.installment_id, claim.loan_id, claim.attempt_id) == ("I1", "L1", 7)
    assert claim.expires_at == T0 + timedelta(days=30)
    assert read_token(SECRET, token, now=T0 + timedelta(days=30)) is None
    # A lender verifies it with any JWT library: HS256, audience "payment"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="payment",
                        options={"verify_exp": False})
    assert claims["sub"] == "I1" and claims["iss"] == "lender-reminder-bot"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
    lambda t: t.split(".")[0] + "." + t.split(".")[1][:-1] + "." + t.split(".")[2],  # payload changed
    lambda t: "",
    lambda t: "not.a.token",
    lambda t: jwt.encode({"sub": "I1"}, SECRET, algorithm="HS256"),  # no expiry, no audience
    lambda t: jwt.encode({"sub": "I1", "aud": "payment", "iss": "lender-reminder-bot", "exp": 2**40, "iat": 0,
                          "loan": "L1", "att": 1}, "another-secret-of-enough-length-32b", algorithm="HS256"),
])
def test_anything_but_a_genuine_token_reads_as_none(mangle) -> None:
    assert read_token(SECRET, mangle(_token()), now=T0) is None


def test_short_codes_round_trip_and_refuse_forgeries() -> None:
    for attempt_id in (1, 255, 256, 70_000, 2**40):
        code = make_code(SECRET, attempt_id)
        assert len(code) <= 20 and decode_code(SECRET, code) == attempt_id
        assert decode_code("another-secret-of-enough-length-32b", code) is None
    code = make_code(SECRET, 12)
    forged = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert decode_code(SECRET, forged) is None
    for junk in ("", "abc", "%%%%", "A" * 40, make_code(SECRET, 12) + "x"):
        assert decode_code(SECRET, junk) is None


# --- in messages ------------------------------------------------------------------------


@pytest.fixture
def attempt(db: Database) -> ContactAttempt:
    add_borrower_to(db)
    with db.session() as s:
        row = ContactAttempt(dedupe_key="plan:I1:main:1:sms", borrower_id="B1", loan_id="B1-L1",
                             installment_id="B1-L1-I1", channel="sms", source="planner", status="planned",
                             template="reminder_overdue", address=PHONE, next_attempt_at=T0,
                             created_at=T0, updated_at=T0)
        s.add(row)
        s.flush()
        s.expunge(row)
    return row


def add_borrower_to(db: Database) -> None:
    with db.session() as s:
        add_account(s, "B1", amount=20_000)


def _compose(db: Database, web: WebHarness, attempt: ContactAttempt, at: datetime, **settings: object):
    web.configure(payment_url_template=TEMPLATE, payment_link_secret=SECRET, **settings)
    with db.session() as s:
        return compose(s, attempt, web.settings, renderer=Renderer(web.settings.templates_dir), at=at)


def test_reminders_carry_a_deterministic_signed_link(db: Database, web: WebHarness,
                                                      attempt: ContactAttempt) -> None:
    first = _compose(db, web, attempt, T0)
    again = _compose(db, web, attempt, T0 + timedelta(hours=5))  # composed again later: the same text
    assert first.body == again.body
    url = next(w for w in first.body.split() if w.startswith("https://pay.example.com/checkout/"))
    claim = read_token(SECRET, url.rsplit("/", 1)[1], now=T0 + timedelta(days=1))
    assert claim is not None and claim.installment_id == "B1-L1-I1" and claim.attempt_id == attempt.id


def test_short_links_keep_the_message_shorter(db: Database, web: WebHarness, attempt: ContactAttempt) -> None:
    long = _compose(db, web, attempt, T0)
    short = _compose(db, web, attempt, T0, payment_short_links=True)
    code = make_code(SECRET, attempt.id)
    assert f"{web.settings.public_base_url}/p/{code}" in short.body
    assert sms_segments(short.body).segments < sms_segments(long.body).segments


def test_without_a_template_reminders_have_no_link(db: Database, web: WebHarness,
                                                    attempt: ContactAttempt) -> None:
    with db.session() as s:
        body = compose(s, attempt, web.settings, renderer=Renderer(web.settings.templates_dir), at=T0).body
    assert "http" not in body and "Pay online" not in body


# --- /p/{code} ---------------------------------------------------------------------------


def _clicks(db: Database) -> list[dict]:
    with db.sessions() as s:
        return [e.detail for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "payment_link.clicked"))]


def test_a_click_is_recorded_and_redirected(db: Database, web: WebHarness, attempt: ContactAttempt,
                                             clock: FixedClock) -> None:
    web.configure(payment_url_template=TEMPLATE, payment_link_secret=SECRET, payment_short_links=True)
    assert web.client is not None
    code = make_code(SECRET, attempt.id)
    response = web.client.get(f"/p/{code}", follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://pay.example.com/checkout/")
    assert read_token(SECRET, location.rsplit("/", 1)[1], now=clock.now()).installment_id == "B1-L1-I1"
    assert _clicks(db) == [{"attempt_id": attempt.id, "installment_id": "B1-L1-I1", "outcome": "redirect"}]


def test_a_paid_installment_or_an_expired_link_is_not_redirected(db: Database, web: WebHarness,
                                                                 attempt: ContactAttempt, clock: FixedClock) -> None:
    web.configure(payment_url_template=TEMPLATE, payment_link_secret=SECRET, payment_short_links=True,
                  payment_link_ttl_days=10)
    assert web.client is not None
    code = make_code(SECRET, attempt.id)
    clock.set(T0 + timedelta(days=10))
    expired = web.client.get(f"/p/{code}", follow_redirects=False)
    assert expired.status_code == 410 and "expired" in expired.text and web.settings.lender_phone in expired.text
    clock.set(T0 + timedelta(days=1))
    with db.session() as s:
        s.add(Payment(id="P1", loan_id="B1-L1", paid_at=clock.now(), amount_minor=20_000, created_at=clock.now(),
                      updated_at=clock.now()))
        s.flush()
        settle_loans(s, ["B1-L1"], at=clock.now())
    paid = web.client.get(f"/p/{code}", follow_redirects=False)
    assert paid.status_code == 200 and "nothing to pay" in paid.text and "location" not in paid.headers
    assert [c["outcome"] for c in _clicks(db)] == ["expired", "paid"]
    for bad in ("nope", make_code("another-secret-of-enough-length-32b", attempt.id), make_code(SECRET, 999_999)):
        assert web.client.get(f"/p/{bad}", follow_redirects=False).status_code == 404
    with db.sessions() as s:
        assert s.get(Installment, "B1-L1-I1").covered_minor == 20_000


def test_a_click_is_an_event_for_the_lender(db: Database, web: WebHarness, attempt: ContactAttempt) -> None:
    from bot.db.models import OutboxEvent
    from bot.events import EVENT_TYPES
    from bot.events.subscriptions import add_subscription

    web.configure(payment_url_template=TEMPLATE, payment_link_secret=SECRET, payment_short_links=True)
    with db.session() as s:
        add_subscription(s, "http://127.0.0.1:9/hooks", EVENT_TYPES, pii=False, at=T0)
    assert web.client is not None
    assert web.client.get(f"/p/{make_code(SECRET, attempt.id)}", follow_redirects=False).status_code == 302
    with db.sessions() as s:
        [(kind, borrower, data)] = s.execute(select(OutboxEvent.type, OutboxEvent.borrower_id, OutboxEvent.data)).all()
    assert (kind, borrower) == ("payment_link.clicked", "B1")
    assert data["attempt_id"] == attempt.id and data["outcome"] == "redirect" and data["installment_id"] == "B1-L1-I1"


@pytest.mark.parametrize(("template", "message"), [
    ("pay.example.com/{token}", "must start with http:// or https://"),
    ("https://pay.example.com/checkout", "must hold {token} once"),
    ("https://pay.example.com/{token}/{token}", "must hold {token} once"),
])
def test_a_payment_url_template_without_its_token_is_refused(run_bot, template: str, message: str) -> None:
    result = run_bot("init", env={"BOT_PAYMENT_URL_TEMPLATE": template})
    assert result.exit_code == 2
    assert "BOT_PAYMENT_URL_TEMPLATE" in result.output.upper() or "payment_url_template" in result.output
    assert message in result.output
