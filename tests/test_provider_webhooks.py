"""Twilio's webhooks as neutral events (bot.providers.twilio.webhooks), without HTTP.

Each request kind becomes one event of bot.channels.events; each bad request is refused
with 400 naming the field; a missing or wrong signature with 403, before anything else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from bot.channels.events import (
    AudioRef,
    CallAnswered,
    CallHeard,
    CallProgress,
    DeliveryUpdate,
    InboundText,
    RecordingReady,
)
from bot.errors import WebhookRejected
from bot.providers.twilio import webhooks
from bot.providers.twilio.webhooks import (
    FORM_TYPE,
    SIGNATURE_HEADER,
    call_answered,
    call_heard,
    call_progress,
    delivery_update,
    inbound_text,
    recording_ready,
    require_signature,
    verified_form,
)

TOKEN = "test-auth-token-0123456789"
URL = "https://bot.example/twilio/voice/input?attempt=7&turn=1"
AT = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
CALL = "CA" + "0f" * 16
MESSAGE = "SM" + "1" * 32
RECORDING = "RE" + "2" * 32


def signed(params: dict[str, str], url: str = URL, token: str = TOKEN) -> tuple[str, bytes]:
    return RequestValidator(token).compute_signature(url, params), urlencode(params).encode("ascii")


def form(params: dict[str, str]) -> webhooks.Form:
    signature, body = signed(params)
    return verified_form(TOKEN, URL, signature, FORM_TYPE, body)


# --- the signature ----------------------------------------------------------------------------


def test_a_signed_form_is_read() -> None:
    signature, body = signed({"CallSid": CALL, "Digits": "1"})
    assert dict(verified_form(TOKEN, URL, signature, f"{FORM_TYPE}; charset=utf-8", body)) == {
        "CallSid": CALL, "Digits": "1"}


@pytest.mark.parametrize(("change", "status", "message"), [
    ({"token": "another-token-0123456789"}, 403, f"invalid {SIGNATURE_HEADER} for the configured public URL"),
    ({"url": URL + "0"}, 403, f"invalid {SIGNATURE_HEADER} for the configured public URL"),
    ({"body": b"CallSid=CA1&Digits=2"}, 403, f"invalid {SIGNATURE_HEADER} for the configured public URL"),
    ({"content_type": "application/json"}, 415, f"expected a {FORM_TYPE} body"),
    ({"body": b"CallSid=\xff"}, 400, "malformed form body"),
])
def test_a_forged_or_unreadable_request_is_refused(change: dict[str, object], status: int, message: str) -> None:
    signature, body = signed({"CallSid": CALL}, url=str(change.get("url", URL)),
                             token=str(change.get("token", TOKEN)))
    with pytest.raises(WebhookRejected) as refused:
        verified_form(TOKEN, URL, signature, str(change.get("content_type", FORM_TYPE)),
                      change.get("body", body))  # type: ignore[arg-type]
    assert (refused.value.status, refused.value.message) == (status, message)


def test_a_missing_signature_is_refused_before_the_body() -> None:
    with pytest.raises(WebhookRejected) as refused:
        require_signature({"content-type": FORM_TYPE})
    assert (refused.value.status, refused.value.message) == (403, f"missing {SIGNATURE_HEADER} header")
    assert require_signature({SIGNATURE_HEADER: "abc"}) == "abc"


# --- each event -------------------------------------------------------------------------------


def test_an_inbound_message() -> None:
    event = inbound_text(form({"MessageSid": MESSAGE, "From": " +12125550100 ", "To": "+15005550006",
                               "Body": "I paid", "AccountSid": "AC" + "0" * 32}), {}, at=AT)
    assert event == InboundText(MESSAGE, "+12125550100", "+15005550006", "I paid", AT)


def test_a_delivery_update_with_its_error_meaning() -> None:
    assert delivery_update(form({"MessageSid": MESSAGE, "MessageStatus": "Delivered"}), {}) == DeliveryUpdate(
        MESSAGE, "delivered")
    assert delivery_update(form({"MessageSid": MESSAGE, "SmsStatus": "failed", "ErrorCode": "21610"}),
                           {"attempt": "12"}) == DeliveryUpdate(MESSAGE, "failed", "21610", "opt_out", 12)
    assert delivery_update(form({"MessageSid": MESSAGE, "MessageStatus": "undelivered", "ErrorCode": "30003"}),
                           {}).error_effect is None


def test_an_answered_call_says_who_answered() -> None:
    query = {"attempt": "7"}
    assert call_answered(form({"CallSid": CALL, "CallStatus": "in-progress", "AnsweredBy": "human"}), query) == \
        CallAnswered(7, CALL, "person", "human", "in-progress", 0.0)
    machine = call_answered(form({"CallSid": CALL, "AnsweredBy": "Machine_End_Beep",
                                  "MachineDetectionDuration": "3250"}), query)
    assert (machine.answered_by, machine.answered_by_detail, machine.detection_s) == ("machine",
                                                                                      "machine_end_beep", 3.25)
    assert call_answered(form({"CallSid": CALL, "AnsweredBy": "fax"}), query).answered_by == "fax"
    assert call_answered(form({"CallSid": CALL}), query) == CallAnswered(7, CALL)


@pytest.mark.parametrize(("params", "query", "expected"), [
    ({"Digits": "15#"}, {}, CallHeard(7, CALL, 1, digits="15#")),
    ({"Digits": "hangup"}, {}, CallHeard(7, CALL, 1)),
    ({}, {"silence": "1"}, CallHeard(7, CALL, 1)),
    ({"RecordingSid": RECORDING, "RecordingUrl": "https://api/r", "RecordingDuration": "0"}, {},
     CallHeard(7, CALL, 1)),
    ({"RecordingSid": RECORDING, "RecordingUrl": "https://api/r", "RecordingDuration": "4"}, {},
     CallHeard(7, CALL, 1, audio=AudioRef(RECORDING, "https://api/r", 4.0))),
    ({"RecordingSid": RECORDING, "RecordingUrl": "https://api/r"}, {},
     CallHeard(7, CALL, 1, audio=AudioRef(RECORDING, "https://api/r"))),
])
def test_what_a_call_heard(params: dict[str, str], query: dict[str, str], expected: CallHeard) -> None:
    event = call_heard(form({"CallSid": CALL, **params}), {"attempt": "7", "turn": "1", **query})
    assert event == expected
    assert event.silence == (expected.digits is None and expected.audio is None)


def test_call_progress_and_the_recording() -> None:
    query = {"attempt": "7"}
    assert call_progress(form({"CallSid": CALL, "CallStatus": "Completed", "CallDuration": "42",
                               "AnsweredBy": "machine_start"}), query) == CallProgress(7, CALL, "completed", 42.0,
                                                                                       "machine_start")
    assert call_progress(form({"CallSid": CALL, "CallStatus": "ringing"}), query) == CallProgress(7, CALL, "ringing")
    ready = recording_ready(form({"CallSid": CALL, "RecordingSid": RECORDING, "RecordingUrl": "https://api/r",
                                  "RecordingStatus": "completed",
                                  "RecordingStartTime": "Tue, 01 Dec 2026 00:29:58 +0000"}), query)
    assert ready == RecordingReady(7, CALL, AudioRef(RECORDING, "https://api/r"), "completed",
                                   datetime(2026, 12, 1, 0, 29, 58, tzinfo=UTC))
    assert recording_ready(form({"CallSid": CALL, "RecordingSid": RECORDING, "RecordingUrl": "u",
                                 "RecordingStartTime": "yesterday"}), query).started_at is None


# --- each bad request: 400 naming the field ------------------------------------------------------

SMS = {"MessageSid": MESSAGE, "From": "+12125550100", "To": "+15005550006", "Body": "hi"}
VOICE = {"CallSid": CALL}


@pytest.mark.parametrize(("parse", "params", "query", "message"), [
    (inbound_text, {"From": "+1", "Body": "x"}, {}, "missing parameter(s): MessageSid, To"),
    (inbound_text, {**SMS, "MessageSid": "SM/../x"}, {}, "MessageSid is malformed"),
    (inbound_text, {**SMS, "From": " "}, {}, "From is empty or too long"),
    (inbound_text, {**SMS, "To": "+1" * 200}, {}, "To is empty or too long"),
    (inbound_text, {**SMS, "Body": "x" * 4097}, {}, "Body is longer than 4096 characters"),
    (delivery_update, {"MessageSid": MESSAGE}, {}, "missing parameter(s): MessageStatus"),
    (delivery_update, {"MessageStatus": "sent"}, {}, "missing parameter(s): MessageSid"),
    (delivery_update, {"MessageSid": "S", "MessageStatus": "sent"}, {}, "MessageSid is malformed"),
    (delivery_update, {"MessageSid": MESSAGE, "MessageStatus": "sent", "ErrorCode": "x1"}, {},
     "ErrorCode is not a number"),
    (delivery_update, {"MessageSid": MESSAGE, "MessageStatus": "sent"}, {"attempt": "0"},
     "attempt must be a positive integer"),
    (call_answered, VOICE, {}, "attempt must be a positive integer"),
    (call_answered, VOICE, {"attempt": "-3"}, "attempt must be a positive integer"),
    (call_answered, {}, {"attempt": "7"}, "CallSid is missing or malformed"),
    (call_answered, {"CallSid": "CA123"}, {"attempt": "7"}, "CallSid is missing or malformed"),
    (call_heard, VOICE, {"attempt": "7"}, "turn must be a positive integer"),
    (call_heard, VOICE, {"attempt": "7", "turn": "10000"}, "turn must be a positive integer"),
    (call_heard, {**VOICE, "RecordingUrl": "https://api/r"}, {"attempt": "7", "turn": "1"},
     "RecordingSid is missing or malformed"),
    (call_heard, {**VOICE, "Digits": "1a"}, {"attempt": "7", "turn": "1"}, "Digits is malformed"),
    (call_heard, {**VOICE, "Digits": "1" * 33}, {"attempt": "7", "turn": "1"}, "Digits is malformed"),
    (recording_ready, {**VOICE, "RecordingSid": "XX" + "2" * 32, "RecordingUrl": "u"}, {"attempt": "7"},
     "RecordingSid is missing or malformed"),
    (recording_ready, {**VOICE, "RecordingSid": RECORDING}, {"attempt": "7"}, "missing parameter(s): RecordingUrl"),
    (call_progress, VOICE, {"attempt": "7"}, "missing parameter(s): CallStatus"),
    (call_progress, {**VOICE, "CallStatus": "completed", "CallDuration": "1.5"}, {"attempt": "7"},
     "CallDuration is not a number"),
])
def test_a_bad_request_is_refused_naming_the_field(parse: object, params: dict[str, str], query: dict[str, str],
                                                   message: str) -> None:
    extra = {"at": AT} if parse is inbound_text else {}
    with pytest.raises(WebhookRejected) as refused:
        parse(form(params), query, **extra)  # type: ignore[operator]
    assert (refused.value.status, refused.value.message) == (400, message)
