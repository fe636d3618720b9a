"""The sandbox's simulated calls: a fake bot serves TwiML, personas press keys, speak and hang up.

Every request the sandbox sends to the fake bot is checked with twilio's own
``RequestValidator``; a request with a bad signature gets 403 and fails the
test that caused it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import threading
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.errors import InputFileError
from bot.sandbox import Sandbox, SandboxConfig, SandboxError, SandboxServer, ThreadedServer, load_config_file, spec
from bot.sandbox.audio import wav_info
from bot.sandbox.callflow import BEEP_SECONDS, MAX_REDIRECTS, REACTION_SECONDS, say_seconds
from bot.sandbox.config import NumberConfig
from bot.sandbox.voice_twiml import Gather, Say, VoiceTwimlError, parse_voice

SID = "AC" + "0" * 32
TOKEN = "sandbox-token"
NUMBER = "+15005550006"
PHONE = "+15551230001"
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
#: ring_after (1 s) + the default persona's ring_seconds (4 s)
ANSWER_AFTER = 5.0


def wav(seconds: float, *, level: int = 1, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of *seconds* at a constant *level* (different levels, different hashes)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(level.to_bytes(2, "little", signed=True) * int(seconds * rate))
    return buffer.getvalue()


# --- a fake bot -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    url: str
    form: dict[str, str]
    signed_ok: bool


Answer = str | tuple[int, str, str] | Callable[[dict[str, str]], str]


class FakeBot:
    """Serves TwiML and prompt audio by path, checks every signature, records every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits: list[Hit] = []
        self.twiml: dict[str, Answer] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self.validator = RequestValidator(TOKEN)
        self.arrived = threading.Condition(self._lock)
        self.server = ThreadedServer(Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])]))

    async def _handle(self, request: Request) -> Response:
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: v for k, v in (await request.form()).multi_items() if isinstance(v, str)}
        url = str(request.url)
        signed_ok = self.validator.validate(url, form, request.headers.get("X-Twilio-Signature", ""))
        with self.arrived:
            self.hits.append(Hit(request.method, request.url.path, url, form, signed_ok))
            self.arrived.notify_all()
            answer = self.twiml.get(request.url.path)
            media = self.media.get(request.url.path)
        if not signed_ok:
            return Response("bad signature", status_code=403)
        if media is not None:
            return Response(media[0], media_type=media[1])
        if answer is None:
            return Response("not found", status_code=404, media_type="text/plain")
        if callable(answer):
            answer = answer(form)
        if isinstance(answer, tuple):
            status, body, content_type = answer
            return Response(body, status_code=status, media_type=content_type)
        return Response(answer, media_type="application/xml")

    def url(self, path: str) -> str:
        return self.server.url(path)

    def requests(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if path is None or h.path == path]

    def wait_for(self, count: int, path: str, timeout: float = 10.0) -> list[Hit]:
        with self.arrived:
            self.arrived.wait_for(lambda: len([h for h in self.hits if h.path == path]) >= count, timeout)
            return [h for h in self.hits if h.path == path]

    def clear(self) -> None:
        with self._lock:
            self.hits.clear()
            self.twiml.clear()
            self.media.clear()


@pytest.fixture(scope="module")
def bot() -> Iterator[FakeBot]:
    fake = FakeBot()
    with fake.server:
        yield fake


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(Sandbox(SandboxConfig(numbers=[NumberConfig(number=NUMBER)]))) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Client:
    return server.twilio_client()


@pytest.fixture
def sb(server: SandboxServer, bot: FakeBot) -> Iterator[Sandbox]:
    server.sandbox.reset()
    bot.clear()
    yield server.sandbox
    bad = [h.url for h in bot.requests() if not h.signed_ok]
    assert bad == [], "the sandbox sent requests the official validator rejects"


def call(client: Client, bot: FakeBot, path: str = "/start", **kwargs: Any) -> str:
    options: dict[str, Any] = {
        "to": PHONE,
        "from_": NUMBER,
        "url": bot.url(path),
        "status_callback": bot.url("/status"),
        "status_callback_event": ALL_EVENTS,
    }
    options.update(kwargs)
    return client.calls.create(**options).sid


def statuses(bot: FakeBot) -> list[str]:
    return [h.form["CallStatus"] for h in bot.requests("/status")]


def spoken_texts(sb: Sandbox, sid: str) -> list[str]:
    return [item.text if item.kind == "say" else f"play {item.url}" for item in sb.call(sid).spoken]


def event_types(sb: Sandbox, sid: str) -> list[str]:
    return [event.type for event in sb.call(sid).events]


def at(sb: Sandbox, sid: str, type_: str) -> datetime:
    [event] = [e for e in sb.call(sid).events if e.type == type_]
    return event.at


# --- keys, voice, silence, hang-up ------------------------------------------------------------------


def test_human_presses_a_key_at_a_gather(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    prompt = wav(2.0, level=7)
    bot.media["/prompts/menu.wav"] = (prompt, "audio/wav")
    bot.twiml["/start"] = (
        '<Response><Say voice="Polly.Joanna" language="en-US">Hello J. S.</Say>'
        '<Gather numDigits="1" action="/menu?step=1" timeout="5"><Play>/prompts/menu.wav</Play></Gather>'
        "<Say>We did not get that.</Say></Response>"
    )
    bot.twiml["/menu"] = "<Response><Say>Thank you.</Say><Hangup/></Response>"
    sb.add_phone(PHONE, call={"turns": [{"digits": "1"}]})
    sid = call(client, bot)
    sb.advance(60)

    [action] = bot.requests("/menu")
    assert action.form["Digits"] == "1" and action.form["CallSid"] == sid
    assert action.url.endswith("/menu?step=1") and action.form["CallStatus"] == "in-progress"
    record = sb.call(sid)
    assert record.status == "completed"
    assert spoken_texts(sb, sid) == ["Hello J. S.", f"play {bot.url('/prompts/menu.wav')}", "Thank you."]
    hello, menu, thanks = record.spoken
    assert (hello.language, hello.voice, hello.in_gather) == ("en-US", "Polly.Joanna", False)
    assert thanks.language == "en-US"  # Twilio's default when the bot names none
    assert menu.sha256 == hashlib.sha256(prompt).hexdigest() and menu.size == len(prompt)
    assert (menu.content_type, menu.valid_wav, menu.duration_s, menu.in_gather) == ("audio/wav", True, 2.0, True)
    [play_fetch] = bot.requests("/prompts/menu.wav")
    assert play_fetch.method == "GET"

    # Time runs on the sandbox clock: say, then the 2 s prompt, then the person reacts.
    answered = at(sb, sid, "answered")
    assert at(sb, sid, "digits-sent") - answered == timedelta(seconds=say_seconds("Hello J. S.") + 2.0 + REACTION_SECONDS)
    assert event_types(sb, sid) == [
        "answered", "twiml", "say", "play", "gather", "digits-sent", "twiml", "say", "hangup",
    ]
    assert statuses(bot) == ["initiated", "ringing", "in-progress", "completed"]
    assert client.calls(sid).fetch().status == "completed"


def test_keys_are_cut_at_num_digits_or_the_finish_key(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = (
        '<Response><Gather action="/dob" timeout="4"><Say>Enter your birth year then hash.</Say></Gather>'
        '<Gather numDigits="2" action="/two"><Say>Two digits.</Say></Gather>'
        '<Gather action="/slow" timeout="6"><Say>Slowly.</Say></Gather></Response>'
    )
    bot.twiml["/dob"] = bot.twiml["/two"] = "<Response/>"
    sb.add_phone(PHONE, call={"turns": [{"digits": "1984#77"}]})
    sid = call(client, bot)
    sb.advance(60)
    assert bot.requests("/dob")[0].form["Digits"] == "1984"
    assert bot.requests("/dob")[0].form["FinishedOnKey"] == "#"

    bot.twiml["/start"] = bot.twiml["/start"].replace('action="/dob"', 'action="/skipped" numDigits="9"', 1)
    sb.add_phone(PHONE, call={"turns": [{"silence": True}, {"digits": "123"}, {"digits": "5"}]})
    bot.twiml["/two"] = '<Response><Gather action="/slow" timeout="6"><Say>Slowly.</Say></Gather></Response>'
    bot.twiml["/slow"] = "<Response/>"
    second = call(client, bot)
    sb.advance(60)
    assert bot.requests("/skipped") == []  # silence: no input, the flow fell through
    assert bot.requests("/two")[0].form["Digits"] == "12"
    slow = [e for e in sb.call(second).events if e.type in ("gather", "digits-sent")][-2:]
    # One key and no finishing key: Gather waits its timeout after the key, then posts what it has.
    assert slow[1].at - slow[0].at == timedelta(seconds=REACTION_SECONDS + 6)
    assert bot.requests("/slow")[-1].form["Digits"] == "5"
    assert sb.call(sid).status == sb.call(second).status == "completed"


def test_human_answers_with_a_voice_clip(sb: Sandbox, client: Client, bot: FakeBot, server: SandboxServer, tmp_path: Path) -> None:
    clip = tmp_path / "yes.wav"
    clip.write_bytes(wav(2.0, level=3))
    bot.twiml["/start"] = (
        '<Response><Say>Are you John?</Say><Record action="/heard" maxLength="10" timeout="3"/>'
        "<Say>Never reached.</Say></Response>"
    )
    bot.twiml["/heard"] = "<Response><Say>Thanks.</Say></Response>"
    sb.add_phone(PHONE, call={"turns": [{"audio": str(clip)}]})
    sid = call(client, bot)
    sb.advance(60)

    [posted] = bot.requests("/heard")
    form = posted.form
    assert form["RecordingDuration"] == "2" and "Digits" not in form  # ended by the silence timeout
    recording_sid = form["RecordingSid"]
    assert recording_sid.startswith("RE") and len(recording_sid) == 34
    assert form["RecordingUrl"] == f"{server.base_url}/2010-04-01/Accounts/{SID}/Recordings/{recording_sid}"
    assert spoken_texts(sb, sid) == ["Are you John?", "Thanks."]
    assert sb.call(sid).recording_sids == [recording_sid]
    waited = at(sb, sid, "recording") - at(sb, sid, "record")
    assert waited == timedelta(seconds=BEEP_SECONDS + REACTION_SECONDS + 2.0 + 3)
    assert event_types(sb, sid)[:6] == ["answered", "twiml", "say", "record", "beep", "recording"]

    # The bot fetches the recording as Twilio serves it: Basic auth, WAV with or without the suffix.
    with httpx.Client(auth=(SID, TOKEN), trust_env=False) as http:
        for url in (form["RecordingUrl"] + ".wav", form["RecordingUrl"]):
            media = http.get(url)
            assert media.status_code == 200 and media.headers["content-type"] == "audio/x-wav"
            assert media.content == clip.read_bytes()
        assert http.get(form["RecordingUrl"] + ".mp3").json()["code"] == 20404
        payload = http.get(form["RecordingUrl"] + ".json").json()
        spec.response_validator(spec.RECORDING, "GET", 200).validate(payload)
        assert set(payload) == set(spec.resolve(spec.operation(spec.RECORDING, "GET").responses[200])["properties"])
        listing = http.get(f"{server.base_url}/2010-04-01/Accounts/{SID}/Recordings.json", params={"CallSid": sid}).json()
        spec.response_validator(spec.RECORDINGS, "GET", 200).validate(listing)
        assert [r["sid"] for r in listing["recordings"]] == [recording_sid]
    assert httpx.get(form["RecordingUrl"] + ".wav", trust_env=False).status_code == 401
    assert httpx.get(form["RecordingUrl"] + ".wav", auth=(SID, "wrong"), trust_env=False).json()["code"] == 20003

    fetched = client.recordings(recording_sid).fetch()
    assert (fetched.call_sid, fetched.duration, fetched.status, fetched.source) == (sid, "2", "completed", "RecordVerb")
    assert [r.sid for r in client.recordings.list(call_sid=sid)] == [recording_sid]
    assert client.recordings(recording_sid).delete() is True
    with pytest.raises(TwilioRestException) as info:
        client.recordings(recording_sid).fetch()
    assert (info.value.status, info.value.code) == (404, 20404)


@pytest.mark.parametrize(("finish", "digits"), [("key", "#"), ("hangup", "hangup")])
def test_a_clip_ended_by_a_key_or_by_hanging_up(
    sb: Sandbox, client: Client, bot: FakeBot, tmp_path: Path, finish: str, digits: str
) -> None:
    clip = tmp_path / "pay.wav"
    clip.write_bytes(wav(1.0))
    bot.twiml["/start"] = '<Response><Record action="/heard" timeout="5" playBeep="false"/></Response>'
    bot.twiml["/heard"] = "<Response><Say>Noted, goodbye.</Say><Hangup/></Response>"
    sb.add_phone(PHONE, call={"turns": [{"audio": str(clip), "finish": finish}]})
    sid = call(client, bot)
    sb.advance(60)
    [posted] = bot.requests("/heard")
    assert posted.form["Digits"] == digits and posted.form["RecordingDuration"] == "1"
    assert at(sb, sid, "recording") - at(sb, sid, "record") == timedelta(seconds=REACTION_SECONDS + 1.0)
    record = sb.call(sid)
    assert record.status == "completed"
    if finish == "hangup":
        # Twilio still posts the recording, but the call is over: its answer is never executed.
        assert posted.form["CallStatus"] == "completed"
        assert record.spoken == [] and "caller-hangup" in event_types(sb, sid)
    else:
        assert spoken_texts(sb, sid) == ["Noted, goodbye."]
    assert statuses(bot)[-1] == "completed"


def test_silence_falls_through_gather_and_record(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = (
        '<Response><Gather action="/keys" timeout="4"><Say>Press 1.</Say></Gather>'
        "<Say>We did not hear you.</Say>"
        '<Record action="/voice" timeout="3" maxLength="20"/>'
        '<Gather action="/keys" timeout="2" actionOnEmptyResult="true"><Say>Last chance.</Say></Gather>'
        "</Response>"
    )
    bot.twiml["/keys"] = "<Response><Say>Goodbye.</Say><Hangup/></Response>"
    sb.add_phone(PHONE, call={"turns": [{"silence": True}]})  # then out of turns: silent anyway
    sid = call(client, bot)
    sb.advance(120)
    assert bot.requests("/voice") == []  # an empty recording requests no action
    [empty] = bot.requests("/keys")  # only the gather that asks for empty results
    assert "Digits" not in empty.form
    assert spoken_texts(sb, sid) == ["Press 1.", "We did not hear you.", "Last chance.", "Goodbye."]
    types = event_types(sb, sid)
    assert types.count("gather-timeout") == 2 and "record-empty" in types
    assert at(sb, sid, "record-empty") - at(sb, sid, "record") == timedelta(seconds=BEEP_SECONDS + 3)
    assert sb.call(sid).status == "completed"


def test_hang_up_in_the_middle_of_a_flow(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = '<Response><Gather numDigits="1" action="/next"><Say>Press 1.</Say></Gather></Response>'
    bot.twiml["/next"] = (
        '<Response><Gather numDigits="1" action="/next"><Say>Press 2 to confirm.</Say></Gather>'
        "<Say>Never said.</Say></Response>"
    )
    sb.add_phone(PHONE, call={"turns": [{"digits": "1"}, {"hangup": True}]})
    sid = call(client, bot)
    sb.advance(120)
    assert [h.form["Digits"] for h in bot.requests("/next")] == ["1"]
    assert spoken_texts(sb, sid) == ["Press 1.", "Press 2 to confirm."]
    assert statuses(bot) == ["initiated", "ringing", "in-progress", "completed"]
    final = bot.requests("/status")[-1].form
    hung_up = at(sb, sid, "caller-hangup")
    assert final["CallDuration"] == str(math.ceil((hung_up - at(sb, sid, "answered")).total_seconds()))
    assert [e.get("reason") for e in sb.call(sid).events if e.type == "caller-hangup"] == ["turn"]


def test_turns_wait_for_a_verb_that_can_take_them(sb: Sandbox, client: Client, bot: FakeBot, tmp_path: Path) -> None:
    clip = tmp_path / "promise.wav"
    clip.write_bytes(wav(1.0))
    # A keypad gather before a record: a spoken answer is not keys, so it goes to the record.
    bot.twiml["/start"] = (
        '<Response><Gather input="dtmf" numDigits="1" timeout="2" action="/keys"><Say>Press 1 or say yes.</Say></Gather>'
        '<Record action="/heard" timeout="2"/></Response>'
    )
    bot.twiml["/heard"] = (
        '<Response><Gather input="speech" action="/speech"><Say>Which day?</Say></Gather>'
        '<Record action="/heard2" timeout="2"/></Response>'
    )
    bot.twiml["/speech"] = "<Response><Hangup/></Response>"
    sb.add_phone(PHONE, call={"turns": [{"audio": str(clip)}, {"speech": "next Friday"}]})
    sid = call(client, bot)
    sb.advance(120)
    assert bot.requests("/keys") == []
    assert len(bot.requests("/heard")) == 1
    [speech] = bot.requests("/speech")
    assert speech.form["SpeechResult"] == "next Friday" and speech.form["Confidence"] == "0.9"
    waits = [e for e in sb.call(sid).events if e.type == "turn-waits"]
    assert [(e.get("kind"), e.get("verb")) for e in waits] == [("audio", "Gather")]


def test_a_key_at_a_record_is_an_empty_recording(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = '<Response><Record action="/heard" finishOnKey="#"/><Say>Then press a key.</Say></Response>'
    sb.add_phone(PHONE, call={"turns": [{"digits": "#"}]})
    sid = call(client, bot)
    sb.advance(60)
    assert bot.requests("/heard") == []
    assert [e.get("reason") for e in sb.call(sid).events if e.type == "record-empty"] == ["key"]
    assert spoken_texts(sb, sid) == ["Then press a key."]


# --- machines ---------------------------------------------------------------------------------------------


def test_machine_with_detect_message_end_gets_the_twiml_after_the_beep(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = "<Response><Say>Please call us back.</Say><Hangup/></Response>"
    sb.add_phone(PHONE, call={"answer": "machine", "greeting_seconds": 8, "turns": [{"digits": "1"}]})
    sid = call(client, bot, machine_detection="DetectMessageEnd")
    sb.advance(ANSWER_AFTER + 7.9)
    assert bot.requests("/start") == []  # the greeting is still playing
    sb.advance(0.1)
    [request] = bot.requests("/start")
    assert request.form["AnsweredBy"] == "machine_end_beep"
    sb.advance(30)
    record = sb.call(sid)
    assert record.answered_by == "machine_end_beep"
    assert [(s.text, s.on_voicemail) for s in record.spoken] == [("Please call us back.", True)]
    assert event_types(sb, sid)[:3] == ["answered", "machine-beep", "twiml"]


def test_human_with_detect_message_end_is_human_after_amd_seconds(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = "<Response><Hangup/></Response>"
    sb.add_phone(PHONE, call={"amd_seconds": 2})
    call(client, bot, machine_detection="DetectMessageEnd")
    sb.advance(ANSWER_AFTER + 1.9)
    assert bot.requests("/start") == []
    sb.advance(0.1)
    assert bot.requests("/start")[0].form["AnsweredBy"] == "human"


def test_machine_without_detection_hears_only_what_follows_the_beep(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = (
        "<Response><Say>Hello, this is Example Lending.</Say><Pause length=\"5\"/>"
        '<Say>Please call us back.</Say><Gather numDigits="1" timeout="2" action="/keys"/></Response>'
    )
    sb.add_phone(PHONE, call={"answer": "machine", "greeting_seconds": 4, "turns": [{"digits": "1"}]})
    sid = call(client, bot)
    sb.advance(60)
    record = sb.call(sid)
    assert record.answered_by is None and "AnsweredBy" not in bot.requests("/start")[0].form
    assert [(s.text, s.on_voicemail) for s in record.spoken] == [
        ("Hello, this is Example Lending.", False),
        ("Please call us back.", True),
    ]
    assert bot.requests("/keys") == []  # machines press no keys
    assert record.status == "completed"


# --- loops, bad TwiML, failing fetches --------------------------------------------------------------------


def test_a_redirect_loop_is_bounded(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = "<Response><Redirect>/loop?n=1</Redirect></Response>"
    bot.twiml["/loop"] = '<Response><Redirect method="GET">loop</Redirect></Response>'  # relative to /loop
    sid = call(client, bot)
    sb.advance(10)
    assert len(bot.requests("/loop")) == MAX_REDIRECTS
    assert [h.method for h in bot.requests("/loop")][:2] == ["POST", "GET"]
    record = sb.call(sid)
    assert record.status == "completed"
    [error] = record.errors
    assert error.get("code") is None and "redirect" in error.get("message")
    assert statuses(bot)[-1] == "completed"


BAD_TWIML = [
    ("not XML", "this is not TwiML"),
    ("empty body", ""),
    ("wrong root", "<Speak><Say>Hi</Say></Speak>"),
    ("unknown verb", "<Response><Sya>Hi</Sya></Response>"),
    ("bad attribute", '<Response><Gather numDigits="one"><Say>Hi</Say></Gather></Response>'),
    ("bad nesting", "<Response><Gather><Record/></Gather></Response>"),
    ("redirect without URL", "<Response><Redirect/></Response>"),
    ("doctype", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Response/>'),
]


@pytest.mark.parametrize("document", [b[1] for b in BAD_TWIML], ids=[b[0] for b in BAD_TWIML])
def test_bad_twiml_ends_the_call_with_12100(sb: Sandbox, client: Client, bot: FakeBot, document: str) -> None:
    bot.twiml["/start"] = (200, document, "application/xml")
    sid = call(client, bot)
    sb.advance(10)
    record = sb.call(sid)
    assert record.status == "completed" and record.spoken == []
    assert [e.get("code") for e in record.errors] == [12100]
    assert "Hi" not in record.errors[0].get("message")  # messages name the verb, not the text
    assert statuses(bot)[-1] == "completed"


def test_bad_twiml_from_an_action_and_failing_requests(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = '<Response><Gather numDigits="1" action="/next"><Say>Press 1.</Say></Gather></Response>'
    bot.twiml["/next"] = "<Response><Say>Half"
    sb.add_phone(PHONE, call={"turns": [{"digits": "1"}]})
    first = call(client, bot)
    bot.twiml["/html"] = (200, "<html>oops</html>", "text/html")
    wrong_type = call(client, bot, "/html")
    bot.twiml["/boom"] = (500, "", "text/plain")
    failing = call(client, bot, "/boom")
    sb.advance(30)
    assert spoken_texts(sb, first) == ["Press 1."]
    assert [e.get("code") for e in sb.call(first).errors] == [12100]
    assert [e.get("code") for e in sb.call(wrong_type).errors] == [12300]
    assert [(e.get("code"), e.get("status_code")) for e in sb.call(failing).errors] == [(11200, 500)]
    assert {sb.call(s).status for s in (first, wrong_type, failing)} == {"completed"}
    # The sandbox itself is fine: the next call runs normally.
    bot.twiml["/start"] = "<Response><Say>Still here.</Say></Response>"
    after = call(client, bot)
    sb.advance(30)
    assert spoken_texts(sb, after) == ["Still here."] and sb.call(after).errors == []


def test_play_failures_are_recorded_and_skipped(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.media["/prompts/text.wav"] = (b"hello", "text/plain")
    bot.media["/prompts/broken.wav"] = (b"RIFF....not really", "audio/x-wav")
    bot.twiml["/start"] = (
        "<Response><Play>/prompts/missing.wav</Play><Play>/prompts/text.wav</Play>"
        "<Play>/prompts/broken.wav</Play><Say>After the prompts.</Say></Response>"
    )
    sid = call(client, bot)
    sb.advance(30)
    record = sb.call(sid)
    assert [(e.get("code"), e.get("url")) for e in record.errors] == [
        (11200, bot.url("/prompts/missing.wav")),
        (12300, bot.url("/prompts/text.wav")),
    ]
    broken, after = record.spoken
    assert (broken.kind, broken.valid_wav, broken.size) == ("play", False, 18)
    assert after.text == "After the prompts." and record.status == "completed"


def test_inline_twiml_with_a_relative_url_is_an_error(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    sid = client.calls.create(to=PHONE, from_=NUMBER, twiml="<Response><Say>Hi.</Say><Play>/a.wav</Play><Say>Bye.</Say></Response>").sid
    sb.advance(30)
    record = sb.call(sid)
    assert [s.text for s in record.spoken] == ["Hi.", "Bye."]
    assert [e.get("code") for e in record.errors] == [11100]


# --- REST changes, limits, the persona's patience --------------------------------------------------------


def test_rest_redirect_and_hang_up_replace_the_flow(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = '<Response><Say>First.</Say><Pause length="30"/><Say>Old document.</Say></Response>'
    bot.twiml["/new"] = '<Response><Say>New document.</Say><Pause length="60"/></Response>'
    sid = call(client, bot)
    sb.advance(ANSWER_AFTER + 5)
    client.calls(sid).update(url=bot.url("/new"))
    sb.advance(5)
    assert spoken_texts(sb, sid) == ["First.", "New document."]
    client.calls(sid).update(status="completed")
    sb.advance(120)
    assert spoken_texts(sb, sid) == ["First.", "New document."]
    assert sb.call(sid).status == "completed" and statuses(bot).count("completed") == 1


def test_time_limit_and_talk_seconds_end_the_call(sb: Sandbox, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = '<Response><Pause length="600"/></Response>'
    limited = call(client, bot, time_limit=20)
    sb.advance(ANSWER_AFTER + 20)
    assert sb.call(limited).status == "completed" and sb.call(limited).duration == 20
    assert "time-limit" in event_types(sb, limited)
    sb.add_phone(PHONE, call={"talk_seconds": 12})
    impatient = call(client, bot)
    sb.advance(ANSWER_AFTER + 12)
    assert sb.call(impatient).duration == 12
    assert [e.get("reason") for e in sb.call(impatient).events if e.type == "caller-hangup"] == ["talk_seconds"]


def test_a_failing_step_ends_the_call_instead_of_stalling_it(
    sb: Sandbox, client: Client, bot: FakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> bool:
        raise RuntimeError("a bug in the sandbox")

    monkeypatch.setattr(sb.voice.flows, "_say", broken)
    bot.twiml["/start"] = "<Response><Say>Hello.</Say><Pause length=\"60\"/></Response>"
    sid = call(client, bot)
    sb.advance(10)
    record = sb.call(sid)
    assert record.status == "completed" and "call flow failed" in record.errors[0].get("message")
    assert statuses(bot)[-1] == "completed"


def test_recording_status_callback(sb: Sandbox, client: Client, bot: FakeBot, tmp_path: Path) -> None:
    clip = tmp_path / "a.wav"
    clip.write_bytes(wav(1.0))
    bot.twiml["/start"] = '<Response><Record action="/heard" recordingStatusCallback="/rec-status"/></Response>'
    bot.twiml["/heard"] = bot.twiml["/rec-status"] = "<Response/>"
    sb.add_phone(PHONE, call={"turns": [{"audio": str(clip)}]})
    sid = call(client, bot)
    sb.advance(60)
    [status] = bot.requests("/rec-status")
    assert status.form["RecordingStatus"] == "completed" and status.form["CallSid"] == sid
    assert status.form["RecordingSid"] == bot.requests("/heard")[0].form["RecordingSid"]


def test_logs_never_carry_what_was_said(sb: Sandbox, client: Client, bot: FakeBot, caplog: pytest.LogCaptureFixture) -> None:
    bot.twiml["/start"] = '<Response><Say>Secret balance 120</Say><Gather input="speech" action="/x"/></Response>'
    bot.twiml["/x"] = "<Response><Sya>Secret</Sya></Response>"
    sb.add_phone(PHONE, call={"turns": [{"speech": "Secret answer"}]})
    with caplog.at_level(logging.DEBUG, logger="bot.sandbox"):
        call(client, bot)
        sb.advance(30)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "error 12100" in text  # the flow did run and log
    assert "Secret" not in text and PHONE not in text


# --- personas: Python, control API, file ---------------------------------------------------------------------


def test_turn_shapes_are_checked(sb: Sandbox, tmp_path: Path) -> None:
    clip = tmp_path / "c.wav"
    clip.write_bytes(wav(0.5))
    persona = sb.add_phone(PHONE, call={"turns": [{"digits": 12}, "hangup", {"audio": str(clip), "finish": "key"}]})
    assert [t.kind for t in persona.call.turns] == ["digits", "hangup", "audio"]
    assert persona.call.turns[0].digits == "12"
    for bad in ({"digits": "1", "hangup": True}, {}, {"digits": "12a"}, {"silence": True, "finish": "key"}):
        with pytest.raises(ValueError):
            sb.add_phone(PHONE, call={"turns": [bad]})
    with pytest.raises(SandboxError, match=r"call\.turns\.0\.audio"):
        sb.add_phone(PHONE, call={"turns": [{"audio": str(tmp_path / "missing.wav")}]})


def test_control_api_takes_turns_and_shows_what_was_spoken(sb: Sandbox, server: SandboxServer, client: Client, bot: FakeBot) -> None:
    bot.twiml["/start"] = '<Response><Say language="ko-KR">안녕하세요</Say><Gather numDigits="1" action="/k"/></Response>'
    bot.twiml["/k"] = "<Response><Hangup/></Response>"
    with httpx.Client(base_url=server.url("/_sandbox"), auth=(SID, TOKEN), trust_env=False) as control:
        added = control.post("/phones", json={"number": PHONE, "call": {"turns": [{"digits": "9"}], "greeting_seconds": 6}})
        assert added.status_code == 200
        assert added.json()["call"]["turns"][0]["digits"] == "9" and added.json()["call"]["greeting_seconds"] == 6
        bad = control.post("/phones", json={"number": PHONE, "call": {"turns": [{"audio": "/nowhere/x.wav"}]}})
        assert bad.status_code == 400 and "call.turns.0.audio" in bad.json()["error"]
        sid = call(client, bot)
        control.post("/advance", json={"seconds": 30})
        detail = control.get(f"/calls/{sid}").json()
        assert [(s["kind"], s["text"], s["language"]) for s in detail["spoken"]] == [("say", "안녕하세요", "ko-KR")]
        assert detail["spoken"][0]["duration_s"] == say_seconds("안녕하세요") == 1.0
        assert [e["type"] for e in detail["events"]][-3:] == ["digits-sent", "twiml", "hangup"]
        assert detail["events"][-3]["digits"] == "9"
        assert control.get("/calls").json()[0]["spoken"] == detail["spoken"]
        assert control.get("/calls/CA" + "f" * 32).status_code == 404


def test_personas_file_with_turns(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "yes.wav").write_bytes(wav(0.5))
    path = tmp_path / "personas.yaml"
    path.write_text(
        "phones:\n"
        "  - number: '+15551230001'\n"
        "    call:\n"
        "      greeting_seconds: 7\n"
        "      turns:\n"
        "        - digits: '1'\n"
        "        - audio: clips/yes.wav\n"
        "          finish: hangup\n"
        "        - silence: true\n",
        encoding="utf-8",
    )
    persona = Sandbox(load_config_file(path)).phones.persona(PHONE)
    assert persona.call.greeting_seconds == 7
    assert [t.kind for t in persona.call.turns] == ["digits", "audio", "silence"]
    assert persona.call.turns[1].audio == tmp_path / "clips" / "yes.wav"
    path.write_text(path.read_text().replace("clips/yes.wav", "clips/no.wav"), encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        load_config_file(path)
    assert str(path) in str(info.value) and "phones.0.call.turns.1.audio" in str(info.value)
    path.write_text("phones:\n  - number: '+15551230001'\n    call:\n      turns: [{digits: '1', silence: true}]\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"phones\.0\.call\.turns\.0"):
        load_config_file(path)


# --- real time ---------------------------------------------------------------------------------------------


def test_a_call_flow_runs_by_itself_in_real_time(bot: FakeBot) -> None:
    bot.clear()
    bot.twiml["/rt"] = '<Response><Say>Hi</Say><Gather numDigits="1" action="/rt-keys"/></Response>'
    bot.twiml["/rt-keys"] = "<Response><Hangup/></Response>"
    config = SandboxConfig(numbers=[NumberConfig(number=NUMBER)])
    config.timing.call_ring_after = 0
    with SandboxServer(Sandbox(config, realtime=True)) as srv:
        srv.sandbox.add_phone(PHONE, call={"ring_seconds": 0, "turns": [{"digits": "4"}]})
        sid = srv.twilio_client().calls.create(to=PHONE, from_=NUMBER, url=bot.url("/rt")).sid
        [keys] = bot.wait_for(1, "/rt-keys")
        assert keys.form["Digits"] == "4" and keys.signed_ok
        assert [s.text for s in srv.sandbox.call(sid).spoken] == ["Hi"]


# --- the parts ------------------------------------------------------------------------------------------------


def test_parse_voice_reads_verbs_and_nested_prompts() -> None:
    verbs = parse_voice(
        '<Response><Gather input="speech dtmf" numDigits="3" finishOnKey="" timeout="0">'
        '<Say voice="alice" loop="2">One <break time="1s"/> two</Say><Pause/></Gather></Response>'
    )
    [gather] = verbs
    assert isinstance(gather, Gather)
    assert gather.input == frozenset({"speech", "dtmf"}) and gather.finish_on_key == "" and gather.timeout == 0
    say = gather.children[0]
    assert isinstance(say, Say) and say.text == "One two" and say.ssml and say.loop == 2 and say.nested
    with pytest.raises(VoiceTwimlError, match="finishOnKey"):
        parse_voice('<Response><Gather finishOnKey="##"/></Response>')


def test_wav_info_reads_headers_and_estimates_speech() -> None:
    info = wav_info(wav(1.5, rate=16000))
    assert info is not None and (info.rate, info.channels, info.bits, info.duration_s) == (16000, 1, 16, 1.5)
    mulaw = b"RIFF" + (50).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    mulaw += (7).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    mulaw += (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    mulaw += b"data" + (4000).to_bytes(4, "little") + b"\xff" * 4000
    assert wav_info(mulaw) is not None and wav_info(mulaw).duration_s == 0.5  # type: ignore[union-attr]
    assert wav_info(b"ID3....") is None and wav_info(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert say_seconds("a" * 30) == 2.0 and say_seconds("가" * 10) == 2.0 and say_seconds("") == 0.5
