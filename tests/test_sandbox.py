"""The local Twilio sandbox, SMS side, through real HTTP and the official twilio client."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.sandbox import Persona, Sandbox, SandboxConfig, SandboxError, SandboxServer, spec
from bot.sandbox.config import AccountConfig, NumberConfig
from bot.sandbox.faults import Latency, LatencySpec
from bot.sandbox.recorder import WebhookRecorder
from bot.sandbox.segments import count_segments
from bot.sandbox.signing import sign
from bot.sandbox.webhooks import WebhookPolicy, WebhookRefused

SID = "AC" + "0" * 32
TOKEN = "sandbox-token"
OTHER_SID = "AC" + "1" * 32
OTHER_TOKEN = "other-token"
API_KEY, API_SECRET = "SK" + "2" * 32, "key-secret"
NUMBER = "+15005550006"
SECOND_NUMBER = "+15005550007"
OTHER_ACCOUNT_NUMBER = "+15005550008"
PHONE = "+15551230001"
PHONE_2 = "+15551230002"


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        accounts=[AccountConfig(sid=SID, auth_token=TOKEN, api_keys={API_KEY: API_SECRET}), AccountConfig(sid=OTHER_SID, auth_token=OTHER_TOKEN)],
        numbers=[
            NumberConfig(number=NUMBER),
            NumberConfig(number=SECOND_NUMBER),
            NumberConfig(number=OTHER_ACCOUNT_NUMBER, account_sid=OTHER_SID),
        ],
    )
    with SandboxServer(Sandbox(config)) as srv:
        yield srv


@pytest.fixture
def sb(server: SandboxServer, recorder: WebhookRecorder) -> Iterator[Sandbox]:
    server.sandbox.reset()
    recorder.clear()
    yield server.sandbox


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Client:
    return server.twilio_client()


@pytest.fixture(scope="module")
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, auth=(SID, TOKEN), trust_env=False) as raw:
        yield raw


def validate(path: str, method: str, status: int, payload: Any) -> None:
    """Assert *payload* is what the OpenAPI spec says this operation returns."""
    spec.response_validator(path, method, status).validate(payload)


def statuses(recorder: WebhookRecorder, path: str = "/status") -> list[str]:
    return [r.form["MessageStatus"] for r in recorder.requests(path)]


def assert_signed(request: Any, token: str = TOKEN) -> None:
    validator = RequestValidator(token)
    assert request.signature, "webhook without X-Twilio-Signature"
    assert validator.validate(request.url, request.form, request.signature), request.url


# --- the client talks to the sandbox --------------------------------------------------


def test_create_message_answers_like_twilio(sb: Sandbox, client: Client, http: httpx.Client) -> None:
    message = client.messages.create(to=PHONE, from_=NUMBER, body="Your payment of $120 is due")
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.num_segments == "1" and message.num_media == "0"
    assert message.direction == "outbound-api"
    assert message.price is None and message.api_version == "2010-04-01"
    assert message.uri == f"/2010-04-01/Accounts/{SID}/Messages/{message.sid}.json"

    raw = http.post(f"/2010-04-01/Accounts/{SID}/Messages.json", data={"To": PHONE, "From": NUMBER, "Body": "hi"})
    assert raw.status_code == 201
    payload = raw.json()
    validate(spec.MESSAGES, "POST", 201, payload)
    schema_fields = set(spec.resolve(spec.operation(spec.MESSAGES, "POST").responses[201])["properties"])
    assert set(payload) == schema_fields
    assert isinstance(payload["num_segments"], str) and isinstance(payload["num_media"], str)
    assert parsedate_to_datetime(payload["date_created"]) == sb.now()
    assert payload["date_created"].endswith("+0000")
    assert payload["subresource_uris"]["media"].endswith(f"/Messages/{payload['sid']}/Media.json")


def test_fetch_and_list_with_filters_and_paging(sb: Sandbox, client: Client, http: httpx.Client) -> None:
    to_phone = [client.messages.create(to=PHONE, from_=NUMBER, body=f"m{i}").sid for i in range(5)]
    client.messages.create(to=PHONE_2, from_=NUMBER, body="other")
    fetched = client.messages(to_phone[0]).fetch()
    assert fetched.body == "m0" and fetched.to == PHONE

    listed = client.messages.list(to=PHONE, page_size=2)
    assert [m.sid for m in listed] == list(reversed(to_phone))  # newest first, across three pages
    assert len(client.messages.list(from_=NUMBER)) == 6
    assert client.messages.list(to=PHONE, limit=3, page_size=2)[-1].sid == to_phone[2]

    first_page = http.get(f"/2010-04-01/Accounts/{SID}/Messages.json", params={"To": PHONE, "PageSize": 2})
    payload = first_page.json()
    validate(spec.MESSAGES, "GET", 200, payload)
    assert payload["page"] == 0 and payload["page_size"] == 2 and payload["start"] == 0 and payload["end"] == 1
    assert payload["previous_page_uri"] is None and "PageToken=" in payload["next_page_uri"]
    second = http.get(payload["next_page_uri"]).json()
    assert second["page"] == 1 and second["start"] == 2
    assert [m["sid"] for m in second["messages"]] == [to_phone[2], to_phone[1]]
    assert "PageToken=PB" in second["previous_page_uri"]
    back = http.get(second["previous_page_uri"]).json()
    assert [m["sid"] for m in back["messages"]] == [to_phone[4], to_phone[3]]

    # DateSent: nothing is sent until the clock moves.
    today = sb.now().date()
    assert client.messages.list(date_sent=today) == []
    sb.advance(5)
    assert len(client.messages.list(date_sent=today)) == 6
    assert len(client.messages.list(date_sent_after=sb.now())) == 0
    assert len(client.messages.list(date_sent_before=sb.now())) == 6


def test_list_date_filters() -> None:
    """The DateSent / DateCreated / StartTime / EndTime filters of every list endpoint."""
    from bot.sandbox.errors import TwilioApiError
    from bot.sandbox.params import date_filters, date_matches

    at = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    day = date(2026, 11, 28)
    assert date_matches(at, "DateSent", day) and not date_matches(at, "DateSent", date(2026, 11, 27))
    assert date_matches(at, "StartTime", datetime(2026, 11, 28, 1, 0, tzinfo=UTC))  # a date-time: the same day
    assert date_matches(at, "DateCreated<", day) and date_matches(at, "DateCreated>", day)  # days: inclusive
    assert date_matches(at, "EndTime<", at) and not date_matches(at, "EndTime<", at - timedelta(seconds=1))
    assert date_matches(at, "EndTime>", at) and not date_matches(at, "EndTime>", at + timedelta(seconds=1))
    assert not date_matches(None, "StartTime>", day)  # a call not started matches nothing
    query = {"DateSent<": ["2026-11-28"], "DateSent>": ["2026-11-27T10:00:00Z"], "To": ["+1"]}
    assert date_filters(query, ("DateSent", "DateSent<", "DateSent>")) == [
        ("DateSent<", day), ("DateSent>", datetime(2026, 11, 27, 10, 0, tzinfo=UTC))]
    with pytest.raises(TwilioApiError, match="Invalid parameter StartTime>: not a date"):
        date_filters({"StartTime>": ["soon"]}, ("StartTime", "StartTime>"))


def test_fetch_of_another_accounts_message_is_not_found(sb: Sandbox, client: Client, server: SandboxServer) -> None:
    other = server.twilio_client(OTHER_SID, OTHER_TOKEN)
    sid = other.messages.create(to=PHONE, from_=OTHER_ACCOUNT_NUMBER, body="x").sid
    with pytest.raises(TwilioRestException) as info:
        client.messages(sid).fetch()
    assert (info.value.status, info.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=PHONE, from_=OTHER_ACCOUNT_NUMBER, body="x")
    assert (info.value.status, info.value.code) == (400, 21606)


# --- errors ----------------------------------------------------------------------------


ERROR_CASES: list[tuple[str, dict[str, Any], dict[str, Any], int, int]] = [
    ("missing To", {}, {"to": "", "from_": NUMBER, "body": "x"}, 400, 21604),
    ("missing From", {}, {"to": PHONE, "body": "x"}, 400, 21603),
    ("missing Body", {}, {"to": PHONE, "from_": NUMBER}, 400, 21602),
    ("empty Body", {}, {"to": PHONE, "from_": NUMBER, "body": ""}, 400, 21602),
    ("Body over 1600", {}, {"to": PHONE, "from_": NUMBER, "body": "x" * 1601}, 400, 21617),
    ("malformed To", {}, {"to": "555-1234", "from_": NUMBER, "body": "x"}, 400, 21211),
    ("invalid number persona", {"line_type": "invalid"}, {"to": PHONE, "from_": NUMBER, "body": "x"}, 400, 21211),
    ("landline", {"line_type": "landline"}, {"to": PHONE, "from_": NUMBER, "body": "x"}, 400, 21614),
    ("opted out", {"opted_out": True}, {"to": PHONE, "from_": NUMBER, "body": "x"}, 400, 21610),
    ("From not ours", {}, {"to": PHONE, "from_": "+15005559999", "body": "x"}, 400, 21606),
    ("malformed From", {}, {"to": PHONE, "from_": "not-a-number", "body": "x"}, 400, 21212),
    ("enum value", {}, {"to": PHONE, "from_": NUMBER, "body": "x", "content_retention": "forever"}, 400, 400),
    ("pattern", {}, {"to": PHONE, "messaging_service_sid": "MG123", "body": "x"}, 400, 400),
    ("callback off the machine", {}, {"to": PHONE, "from_": NUMBER, "body": "x", "status_callback": "https://example.com/cb"}, 400, 21609),
    ("callback not a URL", {}, {"to": PHONE, "from_": NUMBER, "body": "x", "status_callback": "callback"}, 400, 21609),
]


@pytest.mark.parametrize(("persona", "kwargs", "status", "code"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_message_errors_raise_twilio_rest_exception(
    sb: Sandbox, client: Client, persona: dict[str, Any], kwargs: dict[str, Any], status: int, code: int
) -> None:
    if persona:
        sb.add_phone(PHONE, **persona)
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(**kwargs)
    assert (info.value.status, info.value.code) == (status, code)
    assert sb.messages() == []


def test_error_body_is_twilios_format(sb: Sandbox, http: httpx.Client) -> None:
    response = http.post(f"/2010-04-01/Accounts/{SID}/Messages.json", data={"To": "12", "From": NUMBER, "Body": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "code": 21211,
        "message": "Invalid 'To' Phone Number",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    missing = http.get(f"/2010-04-01/Accounts/{SID}/Messages/SM{'0' * 32}.json")
    assert missing.status_code == 404 and missing.json()["code"] == 20404
    unknown = http.get(f"/2010-04-01/Accounts/{SID}/Queues.json")
    assert unknown.status_code == 404 and unknown.json()["code"] == 20404


def test_messaging_service_sender_and_unknown_parameters(sb: Sandbox, client: Client) -> None:
    message = client.messages.create(to=PHONE, messaging_service_sid="MG" + "a" * 32, body="x", provide_feedback=True)
    assert message.from_ == NUMBER and message.messaging_service_sid == "MG" + "a" * 32


def test_auth_failures(sb: Sandbox, server: SandboxServer, http: httpx.Client) -> None:
    wrong = server.twilio_client(SID, "wrong-token")
    with pytest.raises(TwilioRestException) as info:
        wrong.messages.create(to=PHONE, from_=NUMBER, body="x")
    assert (info.value.status, info.value.code) == (401, 20003)
    # Right credentials, someone else's account in the path.
    response = http.get(f"/2010-04-01/Accounts/{OTHER_SID}/Messages.json")
    assert response.status_code == 401 and response.json()["code"] == 20003
    assert response.headers["www-authenticate"].startswith("Basic")
    anonymous = httpx.get(server.url(f"/2010-04-01/Accounts/{SID}/Messages.json"), trust_env=False)
    assert anonymous.status_code == 401
    assert sb.messages() == []


def test_api_key_authenticates_for_its_account(sb: Sandbox, server: SandboxServer) -> None:
    keyed = Client(API_KEY, API_SECRET, SID)
    keyed.api.base_url = server.base_url
    assert keyed.messages.create(to=PHONE, from_=NUMBER, body="x").account_sid == SID


# --- faults ----------------------------------------------------------------------------


def test_rate_limit_burst_then_success(sb: Sandbox, client: Client) -> None:
    sb.faults.rate_limit(2)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to=PHONE, from_=NUMBER, body="x")
        assert (info.value.status, info.value.code) == (429, 20429)
    assert client.messages.create(to=PHONE, from_=NUMBER, body="x").status == "queued"
    assert len(sb.messages()) == 1


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
def test_server_errors_then_success(sb: Sandbox, client: Client, status: int, code: int) -> None:
    sb.faults.server_errors(1, status=status)
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=PHONE, from_=NUMBER, body="x")
    assert (info.value.status, info.value.code) == (status, code)
    assert client.messages.create(to=PHONE, from_=NUMBER, body="x").status == "queued"


def test_slow_fault_delays_the_answer(sb: Sandbox, client: Client, server: SandboxServer) -> None:
    sid = client.messages.create(to=PHONE, from_=NUMBER, body="x").sid
    impatient = Client(SID, TOKEN, http_client=TwilioHttpClient(timeout=0.05))
    impatient.api.base_url = server.base_url
    sb.faults.slow(0.5, count=1)
    with pytest.raises(requests.exceptions.Timeout):  # a fetch: the late answer changes nothing
        impatient.messages(sid).fetch()
    assert impatient.messages(sid).fetch().body == "x"


# --- latency -------------------------------------------------------------------------------


def _timed_create(client: Client, n: int) -> tuple[float, float]:
    """(start, end) of one messages.create on the monotonic clock, which the sandbox's waits run on
    (asyncio's event loop clock)."""
    started = time.monotonic()
    client.messages.create(to=PHONE, from_=NUMBER, body=f"latency {n}")
    return started, time.monotonic()


def test_latency_delays_every_rest_request_without_blocking_the_others(sb: Sandbox, client: Client) -> None:
    sb.latency.apply(LatencySpec(latency_ms=200))
    start, end = _timed_create(client, 0)
    assert end - start >= 0.2
    with ThreadPoolExecutor(max_workers=6) as pool:
        spans = list(pool.map(lambda n: _timed_create(client, n), range(1, 7)))
    assert all(end - start >= 0.2 for start, end in spans)
    # The six waits overlap: one after another they would take 1.2 s at least.
    assert max(end for _, end in spans) - min(start for start, _ in spans) < 0.6
    assert len(sb.messages()) == 7
    sb.reset()
    assert sb.latency.spec == LatencySpec()  # reset goes back to the configured latency (none here)


def test_latency_jitter_is_bounded_and_repeatable_with_a_seed() -> None:
    spec = LatencySpec(latency_ms=150, jitter_ms=50, seed=7)
    first, again = Latency(spec), Latency(spec)
    draws = [first.draw() for _ in range(200)]
    assert draws == [again.draw() for _ in range(200)]
    assert all(0.1 <= d <= 0.2 for d in draws) and len(set(draws)) > 100
    assert draws != [Latency(spec.model_copy(update={"seed": 8})).draw() for _ in range(200)]
    wide = Latency(LatencySpec(latency_ms=10, jitter_ms=30))
    wider = [wide.draw() for _ in range(50)]
    assert min(wider) == 0.0 and max(wider) > 0.02  # a negative draw waits nothing
    assert Latency().draw() == 0.0


def test_queue_full_and_queue_overflow(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.faults.queue_full(1)
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=PHONE, from_=NUMBER, body="x")
    assert info.value.code == 21611
    sb.faults.queue_overflow(1)
    sid = client.messages.create(to=PHONE, from_=NUMBER, body="x", status_callback=recorder.url("/status")).sid
    sb.advance(10)
    assert statuses(recorder) == ["queued", "failed"]
    assert recorder.requests("/status")[-1].form["ErrorCode"] == "30001"
    assert client.messages(sid).fetch().error_code == 30001


# --- status callbacks and signatures ---------------------------------------------------------


def test_status_callbacks_arrive_in_order_and_signed(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    callback = recorder.url("/status?tenant=acme&attempt=1")
    assert ":" in callback.split("//")[1].split("/")[0]  # a URL with a port and a query string
    message = client.messages.create(to=PHONE, from_=NUMBER, body="hello", status_callback=callback)
    assert recorder.requests() == []  # nothing happens until the clock moves
    sb.run_pending()
    assert statuses(recorder) == ["queued"]
    sb.advance(0.9)
    assert statuses(recorder) == ["queued"]
    sb.advance(0.1)
    assert statuses(recorder) == ["queued", "sent"]
    assert client.messages(message.sid).fetch().status == "sent"
    sb.advance(2)
    assert statuses(recorder) == ["queued", "sent", "delivered"]
    fetched = client.messages(message.sid).fetch()
    assert fetched.status == "delivered" and fetched.date_sent is not None

    for request in recorder.requests("/status"):
        assert request.url == callback
        assert_signed(request)
        form = request.form
        assert form["MessageSid"] == form["SmsSid"] == message.sid
        assert form["SmsStatus"] == form["MessageStatus"]
        assert (form["AccountSid"], form["From"], form["To"], form["ApiVersion"]) == (SID, NUMBER, PHONE, "2010-04-01")
        assert "ErrorCode" not in form

    request = recorder.requests("/status")[-1]
    validator = RequestValidator(TOKEN)
    forged = dict(request.form, MessageStatus="failed")
    assert not validator.validate(request.url, forged, request.signature)
    assert not validator.validate(request.url.replace("tenant=acme", "tenant=evil"), request.form, request.signature)
    assert not RequestValidator("another-token").validate(request.url, request.form, request.signature)


def test_signing_matches_the_official_validator_with_repeated_parameters() -> None:
    url = "https://bot.example.com:8443/twilio/sms?x=1&y=two"
    params = [("MediaUrl0", "http://a"), ("Body", "Ünïcode ✓"), ("Tag", "b"), ("Tag", "a")]
    signature = sign(TOKEN, url, params)

    class Multi(dict):  # what Flask/Starlette hand the validator for repeated names
        def getall(self, name: str) -> list[str]:
            return [v for k, v in params if k == name]

    validator = RequestValidator(TOKEN)
    assert validator.compute_signature(url, Multi(params)) == signature
    assert validator.validate(url, Multi(params), signature)


DELIVERY_CASES = [
    ({"delivery": "undelivered"}, ["queued", "sent", "undelivered"], 30003),
    ({"delivery": "undelivered", "error_code": 30005}, ["queued", "sent", "undelivered"], 30005),
    ({"delivery": "undelivered", "error_code": 30007}, ["queued", "sent", "undelivered"], 30007),
    ({"delivery": "failed"}, ["queued", "failed"], 30008),
    ({"line_type": "landline", "landline_sms": "undelivered"}, ["queued", "sent", "undelivered"], 30006),
]


@pytest.mark.parametrize(("persona", "expected", "code"), DELIVERY_CASES)
def test_delivery_failures_by_persona(
    sb: Sandbox, client: Client, recorder: WebhookRecorder, persona: dict[str, Any], expected: list[str], code: int
) -> None:
    sb.add_phone(PHONE, **persona)
    sid = client.messages.create(to=PHONE, from_=NUMBER, body="x", status_callback=recorder.url("/status")).sid
    sb.advance(10)
    assert statuses(recorder) == expected
    last = recorder.requests("/status")[-1].form
    assert last["ErrorCode"] == str(code) and last["ErrorMessage"]
    fetched = client.messages(sid).fetch()
    assert fetched.status == expected[-1] and fetched.error_code == code


def test_personas_by_pattern_and_exact_number(sb: Sandbox, client: Client) -> None:
    sb.add_phone("+1555123*", line_type="landline")
    sb.add_phone(PHONE, Persona())
    assert client.messages.create(to=PHONE, from_=NUMBER, body="x").status == "queued"
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=PHONE_2, from_=NUMBER, body="x")
    assert info.value.code == 21614


def test_duplicate_callbacks_fault(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.faults.callbacks(duplicate=True)
    client.messages.create(to=PHONE, from_=NUMBER, body="x", status_callback=recorder.url("/status"))
    sb.advance(10)
    assert statuses(recorder) == ["queued", "queued", "sent", "sent", "delivered", "delivered"]
    for request in recorder.requests("/status"):
        assert_signed(request)


def test_out_of_order_callbacks_fault(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.faults.callbacks(out_of_order=True)
    sid = client.messages.create(to=PHONE, from_=NUMBER, body="x", status_callback=recorder.url("/status")).sid
    sb.advance(2)
    assert statuses(recorder) == []  # held back
    sb.advance(10)
    assert statuses(recorder) == ["delivered", "sent", "queued"]
    assert client.messages(sid).fetch().status == "delivered"  # the record itself never goes backwards
    sb.faults.callbacks()
    client.messages.create(to=PHONE, from_=NUMBER, body="x", status_callback=recorder.url("/status2"))
    sb.advance(10)
    assert statuses(recorder, "/status2") == ["queued", "sent", "delivered"]


# --- inbound messages, TwiML replies, opt-out ------------------------------------------------


def test_inbound_sms_is_signed_and_twiml_reply_recorded(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.add_number(NUMBER, sms_url=recorder.url("/sms?source=sandbox"))
    recorder.respond("/sms", "<Response><Message>Thanks, we noted your promise.</Message></Response>")
    result = sb.send_sms(PHONE, NUMBER, "I will pay on Friday")

    [request] = recorder.requests("/sms")
    assert_signed(request)
    form = request.form
    assert form["From"] == PHONE and form["To"] == NUMBER and form["Body"] == "I will pay on Friday"
    assert form["MessageSid"] == form["SmsMessageSid"] == form["SmsSid"] == result.message.sid
    assert (form["AccountSid"], form["NumMedia"], form["NumSegments"], form["ApiVersion"]) == (SID, "0", "1", "2010-04-01")
    assert form["FromCountry"] == "US" and form["SmsStatus"] == "received"

    [reply] = result.replies
    assert reply.body == "Thanks, we noted your promise."
    assert (reply.to, reply.from_, reply.direction, reply.status) == (PHONE, NUMBER, "outbound-reply", "queued")
    assert [m.body for m in sb.messages_to(PHONE)] == ["Thanks, we noted your promise."]
    sb.advance(5)
    assert sb.message(reply.sid).status == "delivered"
    inbound = client.messages(result.message.sid).fetch()
    assert (inbound.direction, inbound.status) == ("inbound", "received")


def test_twiml_reply_with_body_element_attributes_and_bad_answers(sb: Sandbox, recorder: WebhookRecorder) -> None:
    sb.add_number(NUMBER, sms_url=recorder.url("/sms"))
    recorder.respond(
        "/sms",
        f'<Response><Message to="{PHONE_2}" statusCallback="{recorder.url("/reply-status")}"><Body>Forwarded</Body></Message>'
        "<Message>Second</Message></Response>",
    )
    result = sb.send_sms(PHONE, NUMBER, "hello")
    assert [(m.to, m.body) for m in result.replies] == [(PHONE_2, "Forwarded"), (PHONE, "Second")]
    sb.advance(5)
    assert statuses(recorder, "/reply-status") == ["queued", "sent", "delivered"]

    recorder.respond("/sms", "this is not XML")
    broken = sb.send_sms(PHONE, NUMBER, "again")
    assert broken.replies == [] and broken.webhook is not None and "TwiML" in (broken.webhook.error or "")
    recorder.respond("/sms", "", status=500)
    failing = sb.send_sms(PHONE, NUMBER, "again")
    assert failing.replies == [] and failing.webhook is not None and failing.webhook.status_code == 500


def test_stop_blocks_until_start(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.add_number(NUMBER, sms_url=recorder.url("/sms"))
    recorder.respond("/sms", "<Response><Message>We will stop.</Message></Response>")
    client.messages.create(to=PHONE, from_=NUMBER, body="Reminder")

    stop = sb.send_sms(PHONE, NUMBER, "Stop")
    assert recorder.requests("/sms")[-1].form["Body"] == "Stop"  # Twilio still forwards STOP to the bot
    assert stop.automatic_reply is not None and "unsubscribed" in stop.automatic_reply.body
    [blocked_reply] = stop.replies  # the bot's TwiML answer may not reach an opted-out phone
    assert (blocked_reply.status, blocked_reply.error_code) == ("failed", 21610)
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=PHONE, from_=NUMBER, body="Reminder")
    assert (info.value.status, info.value.code) == (400, 21610)
    # The opt-out is per (sender, recipient) pair.
    assert client.messages.create(to=PHONE, from_=SECOND_NUMBER, body="Reminder").status == "queued"

    start = sb.send_sms(PHONE, NUMBER, "START")
    assert start.automatic_reply is not None and "re-subscribed" in start.automatic_reply.body
    assert client.messages.create(to=PHONE, from_=NUMBER, body="Reminder").status == "queued"


def test_opted_out_persona_can_opt_back_in(sb: Sandbox, client: Client) -> None:
    sb.add_phone(PHONE, opted_out=True)
    assert sb.is_opted_out(NUMBER, PHONE)
    sb.send_sms(PHONE, NUMBER, "unstop")
    assert client.messages.create(to=PHONE, from_=NUMBER, body="x").status == "queued"
    with pytest.raises(TwilioRestException):
        client.messages.create(to=PHONE, from_=SECOND_NUMBER, body="x")


def test_scripted_replies_fire_only_when_the_clock_reaches_them(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.add_number(NUMBER, sms_url=recorder.url("/sms"))
    sb.add_phone(PHONE, replies=["PAID", {"text": "Call me later", "after": 10}], reply="ok", reply_after=30)
    client.messages.create(to=PHONE, from_=NUMBER, body="Reminder 1")
    sb.advance(3)  # delivered at t+3; the reply is due at t+33
    sb.advance(29.5)
    assert recorder.requests("/sms") == []
    sb.advance(0.5)
    assert [r.form["Body"] for r in recorder.requests("/sms")] == ["PAID"]
    client.messages.create(to=PHONE, from_=NUMBER, body="Reminder 2")
    sb.advance(13)
    assert [r.form["Body"] for r in recorder.requests("/sms")] == ["PAID", "Call me later"]
    client.messages.create(to=PHONE, from_=NUMBER, body="Reminder 3")
    sb.advance(33)
    assert [r.form["Body"] for r in recorder.requests("/sms")] == ["PAID", "Call me later", "ok"]
    # Inbound replies are recorded and visible through the REST API.
    assert [m.body for m in client.messages.list(from_=PHONE)] == ["ok", "Call me later", "PAID"]


def test_phone_sends_later(sb: Sandbox, recorder: WebhookRecorder) -> None:
    sb.add_number(NUMBER, sms_url=recorder.url("/sms"))
    sb.send_sms(PHONE, NUMBER, "later", after=60)
    sb.advance(59)
    assert recorder.requests("/sms") == []
    sb.advance(1)
    assert [r.form["Body"] for r in recorder.requests("/sms")] == ["later"]


def test_send_sms_to_an_unknown_number_is_refused(sb: Sandbox) -> None:
    with pytest.raises(SandboxError):
        sb.send_sms(PHONE, "+15009999999", "x")


# --- update, redact, delete ----------------------------------------------------------------


def test_redact_cancel_and_delete(sb: Sandbox, client: Client, http: httpx.Client) -> None:
    sid = client.messages.create(to=PHONE, from_=NUMBER, body="secret").sid
    redacted = client.messages(sid).update(body="")
    assert redacted.body == ""
    response = http.post(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json", data={"Body": ""})
    validate(spec.MESSAGE, "POST", 200, response.json())
    with pytest.raises(TwilioRestException) as info:
        client.messages(sid).update(status="canceled")
    assert info.value.code == 30409
    with pytest.raises(TwilioRestException) as info:
        client.messages(sid).delete()
    assert info.value.code == 20009
    sb.advance(10)
    assert client.messages(sid).delete() is True
    with pytest.raises(TwilioRestException) as info:
        client.messages(sid).fetch()
    assert info.value.status == 404


# --- webhook policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/sms", True),
        ("http://127.10.0.3/sms", True),
        ("http://localhost:9/x?y=1", True),
        ("http://[::1]:8000/sms", True),
        ("https://example.com/sms", False),
        ("http://127.0.0.1.example.com/sms", False),
        ("http://10.0.0.1/sms", False),
        ("http://0.0.0.0:80/sms", False),
        ("ftp://127.0.0.1/sms", False),
        ("/relative", False),
    ],
)
def test_webhook_policy_keeps_traffic_on_this_machine(url: str, allowed: bool) -> None:
    assert WebhookPolicy().allows(url) is allowed
    assert WebhookPolicy(frozenset({"example.com"})).allows("https://example.com/sms")


def test_non_loopback_webhooks_are_refused_everywhere(sb: Sandbox, recorder: WebhookRecorder) -> None:
    with pytest.raises(SandboxError):
        sb.add_number(NUMBER, sms_url="https://example.com/sms")
    sb.add_number(NUMBER, sms_url=recorder.url("/sms"))
    recorder.respond("/sms", '<Response><Message statusCallback="https://example.com/s">hi</Message></Response>')
    result = sb.send_sms(PHONE, NUMBER, "hello")
    sb.advance(5)
    refused = sb.webhook_log(kind="sms-status", sid=result.replies[0].sid)
    assert refused and all(a.error and a.error.startswith("refused") and a.status_code is None for a in refused)
    with pytest.raises(WebhookRefused):
        sb.webhooks.policy.check("https://example.com/s")


# --- privacy and small parts ---------------------------------------------------------------


def test_logs_carry_no_bodies_or_full_numbers(sb: Sandbox, client: Client, recorder: WebhookRecorder, caplog: pytest.LogCaptureFixture) -> None:
    sb.add_number(NUMBER, sms_url=recorder.url("/sms"))
    recorder.respond("/sms", "<Response><Message>Secret reply text</Message></Response>")
    with caplog.at_level(logging.DEBUG, logger="bot.sandbox"):
        client.messages.create(to=PHONE, from_=NUMBER, body="Secret body text", status_callback=recorder.url("/status"))
        sb.add_phone(PHONE_2, line_type="landline")
        with pytest.raises(TwilioRestException):
            client.messages.create(to=PHONE_2, from_=NUMBER, body="Secret body text")
        sb.send_sms(PHONE, NUMBER, "Secret inbound text")
        sb.advance(10)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "expected the sandbox to log"
    for secret in (PHONE, PHONE_2, PHONE[2:], "Secret"):
        assert secret not in text
    assert "+1 ***-***-0001" in text


@pytest.mark.parametrize(
    ("text", "segments"),
    [("", 0), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1), ("€" * 81, 2), ("é" * 160, 1), ("ü" * 70, 1), ("ł" * 70, 1), ("ł" * 71, 2), ("😀" * 35, 1), ("😀" * 36, 2),
     # a character that does not fit in what is left of a segment moves whole to the next
     ("a" * 152 + "[" + "a" * 152, 3), ("a" * 152 + "[" + "a" * 151, 2), ("中" * 66 + "😀" + "中" * 66, 3)],
)
def test_segment_count(text: str, segments: int) -> None:
    assert count_segments(text) == segments


def test_check_params_follows_the_spec() -> None:
    op = spec.operation(spec.MESSAGES, "POST")
    problems, unknown = spec.check_params(op.form_params, {"Body": ["x"], "SmartEncoded": ["maybe"], "Nonsense": ["1"]})
    assert {(p.name, p.kind) for p in problems} == {("To", "required"), ("SmartEncoded", "type")}
    assert unknown == ["Nonsense"]
    listing = spec.operation(spec.MESSAGES, "GET")
    problems, _ = spec.check_params(listing.query_params, {"PageSize": ["5000"]})
    assert [(p.name, p.kind) for p in problems] == [("PageSize", "range")]
    assert spec.LICENSE_PATH.read_text().startswith("MIT License")


def test_unsupported_method_is_405(sb: Sandbox, http: httpx.Client) -> None:
    response = http.put(f"/2010-04-01/Accounts/{SID}/Messages.json", data={"To": PHONE})
    assert response.status_code == 405 and response.json()["code"] == 20004
