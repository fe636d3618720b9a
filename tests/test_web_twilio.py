"""The Twilio webhooks over real HTTP (uvicorn in a thread), on SQLite and PostgreSQL.

Signatures are made with twilio's own ``RequestValidator.compute_signature``
for the configured public URL (``https://bot.example.com``, as behind a
proxy), never for the local URL the request really goes to.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db import Database
from bot.db.models import Consent, ContactAttempt, InboundMessage
from bot.dispatch.delivery import apply_status, lower_statuses
from test_web_support import (
    EMAIL,
    OUR_NUMBER,
    PHONE,
    PUBLIC,
    WebHarness,
    add_account,
    counts,
    harness,  # noqa: F401 - fixture
    new_sid,
    sign,
    wait_for_lock_wait,
    web,  # noqa: F401 - fixture
)

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@pytest.fixture
def borrower(db: Database) -> str:
    with db.session() as session:
        add_account(session, "B1")
    return "B1"


def attempt(db: Database, *, provider_id: str | None = None, status: str = "sent") -> int:
    with db.session() as session:
        row = ContactAttempt(dedupe_key=f"k:{new_sid()}", borrower_id="B1", channel="sms", source="planner",
                             status=status, template="reminder_due", address=PHONE, occurred_at=AT,
                             provider_id=provider_id, tries=1, sent_at=AT, created_at=AT, updated_at=AT)
        session.add(row)
        session.flush()
        return row.id


def stored(db: Database, attempt_id: int) -> tuple[str | None, str | None, str | None, str | None]:
    with db.session() as session:
        row = session.get(ContactAttempt, attempt_id)
        assert row is not None
        return row.provider_status, row.outcome, row.last_error, row.provider_id


# --- signatures ---------------------------------------------------------------------------------


def test_signed_inbound_sms_is_accepted(web: WebHarness, db: Database, borrower: str) -> None:
    response = web.inbound("I will pay on Friday")
    assert response.status_code == 200, response.text
    assert response.text == EMPTY and response.headers["content-type"].startswith("application/xml")
    with db.session() as session:
        message = session.scalar(select(InboundMessage))
    assert message is not None and message.intent == "promise_to_pay" and message.borrower_id == "B1"
    assert message.received_at == AT  # the app's clock, not the wall clock


def test_the_webhook_queues_the_policy_s_survey(web: WebHarness, db: Database, borrower: str) -> None:
    import dataclasses

    from bot.db.models import Survey
    from bot.policy import SurveySettings

    web.app.state.bot = dataclasses.replace(web.app.state.bot, survey=SurveySettings(after=frozenset({"promise"})))
    assert web.inbound("I will pay on Friday").status_code == 200
    with db.session() as session:
        assert [(s.trigger, s.channel) for s in session.scalars(select(Survey))] == [("promise", "sms")]


def _params(body: str = "STOP") -> dict[str, str]:
    return {"MessageSid": new_sid(), "From": PHONE, "To": OUR_NUMBER, "Body": body}


FORGERIES = ["unsigned", "empty", "wrong_token", "altered_body", "added_param", "other_path", "local_url",
             "other_query"]


def _forge(web: WebHarness, forgery: str) -> tuple[dict[str, str], dict[str, str]]:
    """(form, headers) of a request that is *almost* a genuine signed webhook."""
    params = _params()
    url = PUBLIC + "/twilio/sms"
    headers = {"X-Twilio-Signature": sign(url, params)}
    sent = dict(params)
    if forgery == "unsigned":
        headers = {}
    elif forgery == "empty":
        headers = {"X-Twilio-Signature": ""}
    elif forgery == "wrong_token":
        headers = {"X-Twilio-Signature": sign(url, params, token="not-the-token")}
    elif forgery == "altered_body":
        sent["Body"] = "I will pay tomorrow"
    elif forgery == "added_param":
        sent["Extra"] = "1"
    elif forgery == "other_path":
        headers = {"X-Twilio-Signature": sign(PUBLIC + "/twilio/status", params)}
    elif forgery == "local_url":  # signed for the address it really reaches, not the public one
        headers = {"X-Twilio-Signature": sign(web.server.base_url + "/twilio/sms", params)}
    elif forgery == "other_query":
        headers = {"X-Twilio-Signature": sign(url + "?x=1", params)}
    return sent, headers


def test_forged_webhooks_are_refused_and_nothing_is_stored(web: WebHarness, db: Database, borrower: str) -> None:
    assert web.client is not None
    before = counts(db)
    for forgery in FORGERIES:
        sent, headers = _forge(web, forgery)
        response = web.client.post("/twilio/sms", data=sent, headers=headers)
        assert response.status_code == 403, forgery
        assert "X-Twilio-Signature" in response.text, forgery
    assert counts(db) == before
    # the same request, genuinely signed, is accepted
    params = _params()
    assert web.post_signed("/twilio/sms", params).status_code == 200


def test_status_callback_signature_covers_the_query_string(web: WebHarness, db: Database, borrower: str) -> None:
    assert web.client is not None
    attempt_id = attempt(db, provider_id="SM" + "1" * 32)
    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
    signature = sign(f"{PUBLIC}/twilio/status?attempt={attempt_id}", params)
    forged = web.client.post(f"/twilio/status?attempt={attempt_id + 1}", data=params,
                             headers={"X-Twilio-Signature": signature})
    assert forged.status_code == 403
    ok = web.client.post(f"/twilio/status?attempt={attempt_id}", data=params, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 204
    assert stored(db, attempt_id)[0] == "delivered"


@pytest.mark.parametrize("base", ["https://bot.example.com", "https://example.org/bot", "http://10.0.0.5:8443"])
def test_signature_is_checked_against_the_configured_public_url(web: WebHarness, db: Database, borrower: str,
                                                                base: str) -> None:
    web.configure(public_base_url=base)
    params = _params("HELP")
    assert web.post_signed("/twilio/sms", params, signed_url=base + "/twilio/sms").status_code == 200
    other = _params("HELP")
    assert web.post_signed("/twilio/sms", other, signed_url=PUBLIC + "/elsewhere/twilio/sms").status_code == 403


def test_port_variants_are_accepted_as_twilio_s_validator_does(web: WebHarness, db: Database, borrower: str) -> None:
    params = _params("HELP")
    assert web.post_signed("/twilio/sms", params, signed_url="https://bot.example.com:443/twilio/sms").status_code == 200


def test_oversized_and_non_form_bodies_are_refused(web: WebHarness, db: Database, borrower: str) -> None:
    assert web.client is not None
    before = counts(db)
    big = web.client.post("/twilio/sms", content=b"Body=" + b"x" * 70_000,
                          headers={"X-Twilio-Signature": "x", "Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    as_json = web.client.post("/twilio/sms", json={"Body": "STOP"}, headers={"X-Twilio-Signature": "x"})
    assert as_json.status_code == 415
    assert counts(db) == before


# --- bad requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("drop", "message"), [
    (("MessageSid",), "missing parameter(s): MessageSid"),
    (("From", "Body"), "missing parameter(s): From, Body"),
    (("To",), "missing parameter(s): To"),
])
def test_inbound_without_required_fields_is_a_400(web: WebHarness, db: Database, borrower: str,
                                                  drop: tuple[str, ...], message: str) -> None:
    params = {k: v for k, v in _params().items() if k not in drop}
    before = counts(db)
    response = web.post_signed("/twilio/sms", params)
    assert (response.status_code, response.text) == (400, message)
    assert counts(db) == before


def test_malformed_values_are_a_400(web: WebHarness, db: Database, borrower: str) -> None:
    before = counts(db)
    bad_sid = web.post_signed("/twilio/sms", _params() | {"MessageSid": "SM<script>"})
    assert (bad_sid.status_code, bad_sid.text) == (400, "MessageSid is malformed")
    empty_from = web.post_signed("/twilio/sms", _params() | {"From": " "})
    assert (empty_from.status_code, empty_from.text) == (400, "From is empty or too long")
    long_body = web.post_signed("/twilio/sms", _params() | {"Body": "x" * 5000})
    assert long_body.status_code == 400
    assert counts(db) == before


def test_empty_body_is_a_message(web: WebHarness, db: Database, borrower: str) -> None:
    """An MMS without text has an empty Body: stored, classified ``other``."""
    assert web.inbound("", NumMedia="1").status_code == 200
    with db.session() as session:
        assert session.scalar(select(InboundMessage.intent)) == "other"


BAD_STATUS_CALLBACKS = [
    ("?attempt=abc", {"MessageSid": "SM" + "2" * 32, "MessageStatus": "sent"}, "attempt must be a positive integer"),
    ("?attempt=0", {"MessageSid": "SM" + "2" * 32, "MessageStatus": "sent"}, "attempt must be a positive integer"),
    # beyond the INTEGER key (PostgreSQL: "integer out of range", once a 500)
    (f"?attempt={2**31}", {"MessageSid": "SM" + "2" * 32, "MessageStatus": "sent"},
     "attempt must be a positive integer"),
    ("?attempt=999999", {"MessageSid": "SM" + "2" * 32, "MessageStatus": "sent"}, "no attempt 999999"),
    ("", {"MessageSid": "SM" + "3" * 32, "MessageStatus": "sent"}, "no attempt for this MessageSid"),
    ("", {"MessageStatus": "sent"}, "missing parameter(s): MessageSid"),
    ("", {"MessageSid": "SM" + "2" * 32}, "missing parameter(s): MessageStatus"),
    ("", {"MessageSid": "SM" + "2" * 32, "MessageStatus": "failed", "ErrorCode": "3x"}, "ErrorCode is not a number"),
]


def test_bad_status_callbacks_are_a_400(web: WebHarness, db: Database, borrower: str) -> None:
    attempt_id = attempt(db, provider_id="SM" + "2" * 32)
    before = counts(db)
    for query, params, message in BAD_STATUS_CALLBACKS:
        response = web.post_signed("/twilio/status" + query, params)
        assert (response.status_code, response.text) == (400, message), (query, params)
    assert counts(db) == before
    assert stored(db, attempt_id)[0] is None


def test_callback_for_an_attempt_of_another_message_is_a_400(web: WebHarness, db: Database, borrower: str) -> None:
    attempt_id = attempt(db, provider_id="SM" + "4" * 32)
    response = web.status("SM" + "5" * 32, "delivered", attempt=attempt_id)
    assert response.status_code == 400 and "another message" in response.text
    assert stored(db, attempt_id)[0] is None


# --- status ordering -----------------------------------------------------------------------------


STATUS_CASES = [
    # callbacks in arrival order -> stored provider_status, outcome
    (["queued", "sent", "delivered"], "delivered", "delivered"),
    (["delivered", "sent", "queued"], "delivered", "delivered"),  # fully reversed
    (["queued", "delivered", "sent"], "delivered", "delivered"),  # a late sent
    (["queued", "queued", "sent", "sent", "delivered", "delivered"], "delivered", "delivered"),  # duplicates
    (["sent", "queued"], "sent", None),
    (["queued", "sending", "sent"], "sent", None),
    (["sent", "sending"], "sent", None),
    (["queued", "failed", "sent"], "failed", "failed"),
    (["undelivered", "delivered"], "undelivered", "failed"),  # final is final
    (["failed", "undelivered"], "failed", "failed"),
    (["delivered", "failed"], "delivered", "delivered"),
    (["delivered", "read", "delivered"], "read", "delivered"),
    (["failed", "read"], "failed", "failed"),
    (["sent", "mystery", "delivered"], "delivered", "delivered"),  # unknown statuses are ignored
]


def test_status_never_moves_backwards(web: WebHarness, db: Database, borrower: str) -> None:
    """Every sequence of :data:`STATUS_CASES`, each on an attempt of its own, through the webhook."""
    for sequence, final, outcome in STATUS_CASES:
        sid = new_sid()
        attempt_id = attempt(db, provider_id=sid)
        for status in sequence:
            error = "30003" if status in ("failed", "undelivered") else None
            assert web.status(sid, status, error=error).status_code == 204
        provider_status, stored_outcome, last_error, _ = stored(db, attempt_id)
        assert (provider_status, stored_outcome) == (final, outcome), sequence
        assert last_error == ("30003" if final in ("failed", "undelivered") else None), sequence


def test_lower_statuses() -> None:
    assert lower_statuses("queued") == frozenset()
    assert lower_statuses("sent") == {"accepted", "scheduled", "queued", "sending"}
    assert "delivered" not in lower_statuses("failed") and "failed" not in lower_statuses("delivered")
    assert "delivered" in lower_statuses("read") and "failed" not in lower_statuses("read")


def test_callback_can_arrive_before_the_dispatcher_records_the_sid(web: WebHarness, db: Database,
                                                                    borrower: str) -> None:
    attempt_id = attempt(db, provider_id=None, status="sending")
    sid = new_sid()
    assert web.status(sid, "queued", attempt=attempt_id).status_code == 204
    assert stored(db, attempt_id) == ("queued", None, None, sid)
    assert web.status(sid, "delivered").status_code == 204  # now found by MessageSid alone
    assert stored(db, attempt_id)[0] == "delivered"


def test_error_21610_records_the_opt_out(web: WebHarness, db: Database, borrower: str) -> None:
    sid = new_sid()
    attempt_id = attempt(db, provider_id=sid)
    assert web.status(sid, "failed", error="21610").status_code == 204
    assert stored(db, attempt_id)[:3] == ("failed", "failed", "21610")
    with db.session() as session:
        row = session.scalar(select(Consent).where(Consent.channel == "sms", Consent.address == PHONE))
    assert row is not None and row.opted_out_at == AT and row.opt_out_source == "carrier_21610"
    # a duplicate is harmless
    assert web.status(sid, "failed", error="21610").status_code == 204


def test_concurrent_callbacks_cannot_move_the_status_backwards(db: Database, borrower: str) -> None:
    """``delivered`` holds the row (uncommitted) while a late ``sent`` arrives in another thread."""
    sid = new_sid()
    attempt_id = attempt(db, provider_id=sid)
    with Session(db.engine) as first:
        with first.begin():
            assert apply_status(first, message_sid=sid, status="delivered", error_code=None, attempt_id=None,
                                at=AT).applied

            def late() -> None:
                with db.session() as session:
                    apply_status(session, message_sid=sid, status="sent", error_code=None, attempt_id=None, at=AT)

            second = threading.Thread(target=late)
            second.start()
            if db.dialect == "postgresql":
                wait_for_lock_wait(db)
        second.join(timeout=30)
    assert not second.is_alive()
    assert stored(db, attempt_id)[:2] == ("delivered", "delivered")


def test_concurrent_forward_callbacks_keep_the_highest(db: Database, borrower: str) -> None:
    """``sent`` holds the row while ``delivered`` waits: delivered wins after the commit."""
    sid = new_sid()
    attempt_id = attempt(db, provider_id=sid)
    with Session(db.engine) as first:
        with first.begin():
            apply_status(first, message_sid=sid, status="sent", error_code=None, attempt_id=None, at=AT)
            result: dict[str, bool] = {}

            def later() -> None:
                with db.session() as session:
                    result["applied"] = apply_status(session, message_sid=sid, status="delivered", error_code=None,
                                                     attempt_id=None, at=AT).applied

            second = threading.Thread(target=later)
            second.start()
            if db.dialect == "postgresql":
                wait_for_lock_wait(db)
        second.join(timeout=30)
    assert result == {"applied": True}
    assert stored(db, attempt_id)[:2] == ("delivered", "delivered")


# --- answers, idempotency, privacy --------------------------------------------------------------------------


def test_duplicate_webhook_is_answered_but_changes_nothing(web: WebHarness, db: Database, borrower: str) -> None:
    sid = new_sid()
    assert web.inbound("STOP", sid=sid).status_code == 200
    before = counts(db)
    assert web.inbound("STOP", sid=sid).status_code == 200
    assert counts(db) == before
    with db.session() as session:
        assert session.scalars(select(ContactAttempt.template)).all() == ["reply_opt_out"]


def test_unknown_number_stop_and_help_are_answered_in_twiml(web: WebHarness, db: Database) -> None:
    stranger = "+13105550000"
    stop = web.inbound("STOP", from_=stranger)
    assert stop.status_code == 200 and "<Message>" in stop.text
    again = web.inbound("STOP", from_=stranger)
    assert again.text == EMPTY
    help_ = web.inbound("HELP", from_=stranger)
    assert "<Message>" in help_.text and web.settings.lender_phone in help_.text
    other = web.inbound("I will pay tomorrow", from_=stranger)
    assert other.text == EMPTY
    with db.session() as session:
        assert session.scalars(select(InboundMessage.borrower_id)).all() == [None] * 4


def test_healthz(web: WebHarness) -> None:
    assert web.client is not None
    response = web.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_no_personal_data_in_logs_or_responses(web: WebHarness, db: Database, borrower: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    body = "I lost my job, call me at 212-555-0100, card 4111 1111 1111 1111"
    caplog.set_level(logging.DEBUG)
    responses = [
        web.inbound(body),
        web.inbound("STOP"),
        web.inbound(body, from_="+13105550000"),
        web.post_signed("/twilio/sms", {"MessageSid": "bad sid", "From": PHONE, "To": OUR_NUMBER, "Body": body}),
        web.post_signed("/twilio/sms", {"MessageSid": new_sid(), "From": PHONE, "To": OUR_NUMBER, "Body": body},
                        token="forged"),
    ]
    text = caplog.text + "".join(r.text for r in responses)
    for secret in (PHONE, PHONE[1:], "2125551234", "+13105550000", "212-555-0100", "4111", "lost my job", EMAIL):
        assert secret not in text
    assert "1234" in caplog.text  # the masked number is logged: +1 ***-***-1234
