"""The local Twilio sandbox, call side: REST, progress, status callbacks, machine detection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.sandbox import Sandbox, SandboxServer, spec
from bot.sandbox.config import NumberConfig, SandboxConfig
from bot.sandbox.recorder import WebhookRecorder

SID = "AC" + "0" * 32
TOKEN = "sandbox-token"
NUMBER = "+15005550006"
PHONE = "+15551230001"
# The call flow runs this TwiML; the long pause keeps the line open until the persona hangs up.
TWIML = '<Response><Say>This is a reminder from Example Lending.</Say><Pause length="120"/></Response>'

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture(scope="module")
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(Sandbox(SandboxConfig(numbers=[NumberConfig(number=NUMBER)]))) as srv:
        yield srv


@pytest.fixture
def sb(server: SandboxServer, recorder: WebhookRecorder) -> Iterator[Sandbox]:
    server.sandbox.reset()
    recorder.clear()
    recorder.respond("/voice", TWIML)
    server.sandbox.add_phone(PHONE, call={"talk_seconds": 30})  # hangs up 30 s after answering
    yield server.sandbox


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Client:
    return server.twilio_client()


def call_statuses(recorder: WebhookRecorder, path: str = "/call-status") -> list[str]:
    return [r.form["CallStatus"] for r in recorder.requests(path)]


def make_call(client: Client, recorder: WebhookRecorder, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "to": PHONE,
        "from_": NUMBER,
        "url": recorder.url("/voice?script=reminder"),
        "status_callback": recorder.url("/call-status"),
        "status_callback_event": ALL_EVENTS,
    }
    options.update(kwargs)
    return client.calls.create(**options)


def test_answered_call_progress_callbacks_and_twiml_request(sb: Sandbox, client: Client, recorder: WebhookRecorder, server: SandboxServer) -> None:
    call = make_call(client, recorder)
    assert call.sid.startswith("CA") and len(call.sid) == 34 and call.status == "queued"
    sb.run_pending()
    assert call_statuses(recorder) == ["initiated"]
    assert client.calls(call.sid).fetch().status == "queued"
    sb.advance(1)
    assert call_statuses(recorder) == ["initiated", "ringing"]
    assert client.calls(call.sid).fetch().status == "ringing"
    sb.advance(4)  # default persona rings 4 s, then answers
    assert call_statuses(recorder) == ["initiated", "ringing", "in-progress"]
    [twiml_request] = recorder.requests("/voice")
    assert twiml_request.form["CallStatus"] == "in-progress" and twiml_request.form["CallSid"] == call.sid
    assert RequestValidator(TOKEN).validate(twiml_request.url, twiml_request.form, twiml_request.signature)
    assert sb.call(call.sid).twiml_log == [TWIML]
    sb.advance(30)
    assert call_statuses(recorder) == ["initiated", "ringing", "in-progress", "completed"]

    callbacks = recorder.requests("/call-status")
    assert [r.form["SequenceNumber"] for r in callbacks] == ["0", "1", "2", "3"]
    for request in callbacks:
        assert RequestValidator(TOKEN).validate(request.url, request.form, request.signature)
        assert request.form["CallbackSource"] == "call-progress-events"
        assert (request.form["From"], request.form["To"], request.form["Direction"]) == (NUMBER, PHONE, "outbound-api")
    assert callbacks[-1].form["CallDuration"] == "30"

    fetched = client.calls(call.sid).fetch()
    assert fetched.status == "completed" and fetched.duration == "30"
    assert fetched.start_time is not None and fetched.end_time is not None
    with httpx.Client(base_url=server.base_url, auth=(SID, TOKEN), trust_env=False) as http:
        payload = http.get(f"/2010-04-01/Accounts/{SID}/Calls/{call.sid}.json").json()
        spec.response_validator(spec.CALL, "GET", 200).validate(payload)
        assert set(payload) == set(spec.resolve(spec.operation(spec.CALL, "GET").responses[200])["properties"])
        listing = http.get(f"/2010-04-01/Accounts/{SID}/Calls.json", params={"Status": "completed"}).json()
        spec.response_validator(spec.CALLS, "GET", 200).validate(listing)
        assert [c["sid"] for c in listing["calls"]] == [call.sid]
        created = http.post(
            f"/2010-04-01/Accounts/{SID}/Calls.json", data={"To": PHONE, "From": NUMBER, "Twiml": TWIML}
        )
        assert created.status_code == 201
        spec.response_validator(spec.CALLS, "POST", 201).validate(created.json())


def test_default_status_callback_event_is_completed_only(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    make_call(client, recorder, status_callback_event=None)
    sb.advance(60)
    assert call_statuses(recorder) == ["completed"]


@pytest.mark.parametrize(
    ("persona", "expected", "final_after"),
    [
        ({"answer": "busy"}, ["initiated", "busy"], 1),
        ({"answer": "failed"}, ["initiated", "failed"], 1),
        ({"answer": "no-answer"}, ["initiated", "ringing", "no-answer"], 1 + 20),
        ({"answer": "human", "ring_seconds": 25}, ["initiated", "ringing", "no-answer"], 1 + 20),
    ],
)
def test_unanswered_calls_by_persona(
    sb: Sandbox, client: Client, recorder: WebhookRecorder, persona: dict[str, Any], expected: list[str], final_after: float
) -> None:
    sb.add_phone(PHONE, call=persona)
    call = make_call(client, recorder, timeout=20)
    sb.advance(final_after - 0.5)
    assert client.calls(call.sid).fetch().status in ("queued", "ringing")
    sb.advance(0.5)
    assert call_statuses(recorder) == expected
    fetched = client.calls(call.sid).fetch()
    assert fetched.status == expected[-1] and fetched.duration == "0"
    assert recorder.requests("/voice") == []


def test_hang_up_cancel_and_redirect(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    ringing = make_call(client, recorder)
    sb.advance(2)
    assert client.calls(ringing.sid).update(status="canceled").status == "canceled"
    sb.run_pending()
    assert call_statuses(recorder)[-1] == "canceled"

    live = make_call(client, recorder)
    sb.advance(6)
    assert client.calls(live.sid).fetch().status == "in-progress"
    redirected = client.calls(live.sid).update(twiml='<Response><Pause length="50"/></Response>')
    assert redirected.status == "in-progress"
    sb.run_pending()
    assert sb.call(live.sid).twiml_log[-1] == '<Response><Pause length="50"/></Response>'
    assert client.calls(live.sid).update(status="canceled").status == "in-progress"  # too late to cancel
    sb.advance(2)
    ended = client.calls(live.sid).update(status="completed")
    assert ended.status == "completed" and ended.duration == "3"
    sb.advance(60)  # the old hang-up timer does nothing any more
    assert call_statuses(recorder).count("completed") == 1
    with pytest.raises(TwilioRestException) as info:
        client.calls(live.sid).update(url=recorder.url("/voice"))
    assert (info.value.status, info.value.code) == (400, 21220)
    assert client.calls(live.sid).delete() is True


def test_machine_detection(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.add_phone(PHONE, call={"answer": "machine"})
    call = make_call(
        client,
        recorder,
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=recorder.url("/amd"),
    )
    sb.advance(9.9)
    # Async AMD: the TwiML is requested at once, without AnsweredBy; the result comes at the beep.
    assert "AnsweredBy" not in recorder.requests("/voice")[0].form
    assert client.calls(call.sid).fetch().answered_by is None and recorder.requests("/amd") == []
    sb.advance(0.1)
    assert client.calls(call.sid).fetch().answered_by == "machine_end_beep"
    [amd] = recorder.requests("/amd")
    assert amd.form["AnsweredBy"] == "machine_end_beep" and amd.form["CallSid"] == call.sid
    assert RequestValidator(TOKEN).validate(amd.url, amd.form, amd.signature)


def test_call_callbacks_fault_modes(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.faults.callbacks(duplicate=True, out_of_order=True)
    make_call(client, recorder)
    sb.advance(30)
    assert call_statuses(recorder) == []
    sb.advance(10)
    assert call_statuses(recorder) == [s for s in ["completed", "in-progress", "ringing", "initiated"] for _ in range(2)]


def test_get_status_callback_method(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    make_call(client, recorder, status_callback_method="GET", status_callback_event=["completed"])
    sb.advance(60)
    [request] = recorder.requests("/call-status")
    assert request.method == "GET" and "CallStatus=completed" in request.url
    assert RequestValidator(TOKEN).validate(request.url, {}, request.signature)


CALL_ERRORS = [
    ("missing To", {"to": ""}, 21201),
    ("missing From", {"from_": ""}, 21213),
    ("no instructions", {"url": None}, 21205),
    ("Url off the machine", {"url": "https://example.com/voice"}, 21205),
    ("callback off the machine", {"status_callback": "https://example.com/status"}, 21609),
    ("unknown event", {"status_callback_event": ["answered", "hungup"]}, 21626),
    ("From not ours", {"from_": "+15005559999"}, 21210),
    ("malformed To", {"to": "12"}, 21211),
    ("bad method", {"method": "PUT"}, 400),
    ("bad machine detection", {"machine_detection": "Always"}, 400),
    ("bad timeout", {"timeout": "soon"}, 400),
    # AsyncAmd is a string in Twilio's spec, but only true or false are taken
    ("bad async amd", {"machine_detection": "Enable", "async_amd": "maybe"}, 400),
    ("async amd as a number", {"machine_detection": "Enable", "async_amd": "1"}, 400),
]


@pytest.mark.parametrize(("kwargs", "code"), [c[1:] for c in CALL_ERRORS], ids=[c[0] for c in CALL_ERRORS])
def test_call_errors(sb: Sandbox, client: Client, recorder: WebhookRecorder, kwargs: dict[str, Any], code: int) -> None:
    with pytest.raises(TwilioRestException) as info:
        make_call(client, recorder, **kwargs)
    assert (info.value.status, info.value.code) == (400, code)
    assert sb.calls() == []


def test_invalid_number_persona_cannot_be_called(sb: Sandbox, client: Client, recorder: WebhookRecorder) -> None:
    sb.add_phone(PHONE, line_type="invalid")
    with pytest.raises(TwilioRestException) as info:
        make_call(client, recorder)
    assert info.value.code == 21211
    sb.add_phone(PHONE, line_type="landline")  # landlines take calls
    assert make_call(client, recorder).status == "queued"


def test_unknown_call_is_not_found(sb: Sandbox, client: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.calls("CA" + "f" * 32).fetch()
    assert (info.value.status, info.value.code) == (404, 20404)
