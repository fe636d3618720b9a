"""The call flow driven with provider-neutral events, no HTTP and no provider (docs/voice.md).

:class:`~bot.voice.service.CallService` is given its services (a renderer that names
prompts by their text's hash, a recogniser, a recording source and a store under a
temporary media directory) and answers each event with a neutral
:class:`~bot.channels.events.CallPlan`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from builders import add_account

from bot.channels.events import AudioRef, CallAnswered, CallHeard, CallPlan, CallProgress, RecordingReady
from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import CallSession, CallTurn, ContactAttempt
from bot.domain import Intent
from bot.voice.service import CallMismatch, CallService, UnknownCall
from bot.voice.services import CallServices

#: Monday 19:30 in New York: inside contact hours.
AT = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
PHONE = "+12125550199"
SID = "CA" + "ab" * 16
OTHER_SID = "CA" + "cd" * 16
BASE = "https://bot.example"


@dataclass(frozen=True)
class Rendered:
    path: Path
    sha: str
    duration_s: float


class HashRenderer:
    """Prompts named by the hash of their text (no speech engine); remembers what it said."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.said: dict[str, str] = {}

    def key(self, text: str, locale: str) -> str:
        return hashlib.sha256(f"{locale}:{text}".encode()).hexdigest()

    def render(self, text: str, locale: str) -> Rendered:
        sha = self.key(text, locale)
        self.said[sha] = text
        return Rendered(self.directory / "prompts" / f"{sha}.wav", sha, 1.5)

    def texts(self, plan: CallPlan) -> list[str]:
        return [self.said[url.split("?")[0].rsplit("/", 1)[-1].removesuffix(".wav")] for url in plan.prompts]


def wav(channels: int = 1, seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * channels * int(8000 * seconds))
    return out.getvalue()


class Recordings:
    """The provider's recording downloads, played by the test: what was asked for."""

    def __init__(self) -> None:
        self.fetched: list[AudioRef] = []
        self.closed = False

    def fetch(self, audio: AudioRef) -> bytes:
        self.fetched.append(audio)
        return wav(channels=2 if audio.recording_id.startswith("RE") and audio.duration_s is None else 1)

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class Heard:
    text: str
    confidence: float
    intent: Intent
    promise_date: date | None = None


class Flow:
    def __init__(self, db: Database, tmp_path: Path, **settings: Any) -> None:
        self.db = db
        self.clock = FixedClock(AT)
        self.settings: Settings = load_settings(None, database_url=db.url, public_base_url=BASE, media_dir=tmp_path,
                                                twilio_from_numbers=["+15005550006"], lender_phone="+18005550100",
                                                rate_limits_enabled=False, **settings)
        self.next_heard = Heard("yes it is", 0.93, Intent.AFFIRM)  # what the recogniser hears next
        self.renderer = HashRenderer(tmp_path)
        self.recordings = Recordings()
        self.heard: list[tuple[str, str | None]] = []
        services = CallServices.for_settings(self.settings, recordings=self.recordings, renderer=self.renderer,
                                             understand=self.understand, speech_available=lambda locale: True)
        self.service = CallService(self.settings, db, self.clock, services)
        self.attempt_id = self._call()

    def understand(self, pcm: Any, locale: str, *, expect: str | None, today: date) -> Heard:
        self.heard.append((locale, expect))
        return self.next_heard

    def _call(self) -> int:
        with self.db.session() as session:
            add_account(session, "B1", phone=PHONE, email=None, consent=("sms", "voice"), amount=12_345,
                        loan_id="L1", installment_id="I1", at=AT)
            attempt = ContactAttempt(dedupe_key="call-1", borrower_id="B1", loan_id="L1", installment_id="I1",
                                     channel="voice", source="manual", status="sent", outcome=None, step="call",
                                     template=None, address=PHONE, occurred_at=AT, next_attempt_at=None,
                                     provider_id=SID, decision=None, tries=1, created_at=AT, updated_at=AT)
            session.add(attempt)
            session.flush()
            session.add(CallSession(attempt_id=attempt.id, call_sid=SID, borrower_id="B1", loan_id="L1",
                                    locale="en-US", script="first_stage", state=None, status="queued",
                                    speech=True, flagged=False, started_at=AT, created_at=AT, updated_at=AT))
            return attempt.id

    def call(self) -> CallSession:
        with self.db.sessions() as session:
            found = session.scalar(select(CallSession).where(CallSession.attempt_id == self.attempt_id))
            assert found is not None
            return found

    def turns(self) -> list[CallTurn]:
        with self.db.sessions() as session:
            return list(session.scalars(select(CallTurn).where(CallTurn.session_id == self.call().id)
                                        .order_by(CallTurn.seq)))

    def attempt(self) -> ContactAttempt:
        with self.db.sessions() as session:
            found = session.get(ContactAttempt, self.attempt_id)
            assert found is not None
            return found


@pytest.fixture
def flow(db: Database, tmp_path: Path) -> Iterator[Flow]:
    f = Flow(db, tmp_path)
    try:
        yield f
    finally:
        f.service.close()


def run(work: Any) -> Any:
    return asyncio.run(work)


def test_a_person_answers_and_the_plan_is_the_first_question(flow: Flow) -> None:
    plan = run(flow.service.answer(CallAnswered(flow.attempt_id, SID, "person", "human", "in-progress")))
    assert isinstance(plan, CallPlan) and not plan.hangup
    assert flow.renderer.texts(plan) == [
        "Hello, this is Example Lending calling.",
        "Am I speaking with J. D.? Please say yes or press 1. If not, say no or press 2.",
    ]
    assert all(url.startswith(f"{BASE}/") for url in plan.prompts)
    assert plan.listen is not None and plan.listen.mode == "both"
    assert plan.listen.action == f"{BASE}/twilio/voice/input?attempt={flow.attempt_id}&turn=1"
    assert plan.listen.silence.endswith("&silence=1")
    call = flow.call()
    assert call.status == "in-progress" and call.answered_by == "human" and call.answered_at == AT


def test_a_machine_gets_the_voicemail_and_a_hangup(flow: Flow) -> None:
    plan = run(flow.service.answer(CallAnswered(flow.attempt_id, SID, "machine", "machine_end_beep")))
    assert plan.listen is None and plan.hangup
    assert "Jane" not in " ".join(flow.renderer.texts(plan))  # the voicemail says the name of the lender only
    assert flow.call().answered_by == "machine_end_beep"
    assert run(flow.service.status(CallProgress(flow.attempt_id, SID, "completed", duration_s=21.0)))
    assert flow.attempt().outcome == "voicemail" and flow.call().duration_s == 21.0


def test_keys_then_speech_then_silence_move_the_script_and_a_retry_repeats_the_step(flow: Flow) -> None:
    first = run(flow.service.answer(CallAnswered(flow.attempt_id, SID, "person", "human")))
    again = run(flow.service.answer(CallAnswered(flow.attempt_id, SID, "person", "human")))
    assert flow.renderer.texts(again) == flow.renderer.texts(first)  # a retried answer: the same step

    keys = run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=1, digits="1")))
    assert any("attempt to collect a debt" in text for text in flow.renderer.texts(keys))
    assert keys.listen is not None and keys.listen.action.endswith("&turn=2")
    stale = run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=1, digits="2")))
    assert flow.renderer.texts(stale) == flow.renderer.texts(keys)  # an answer to a step that is over

    quiet = run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=2)))
    assert quiet.listen is not None and quiet.listen.action.endswith("&turn=3")
    assert any("didn't hear anything" in text for text in flow.renderer.texts(quiet))

    # A "yes" where a date is asked for is not understood: the keypad is offered instead.
    spoken = run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=3,
                                              audio=AudioRef("RE" + "1" * 32, "https://api.example/rec/1", 2.0))))
    assert flow.renderer.texts(spoken)[0] == "Sorry, I didn't catch that."
    assert spoken.listen is not None and spoken.listen.mode == "dtmf" and not spoken.hangup
    assert flow.recordings.fetched == [AudioRef("RE" + "1" * 32, "https://api.example/rec/1", 2.0)]
    assert flow.heard == [("en-US", "date")]  # recognised in the call's locale, for the node's expectation
    borrower = [t for t in flow.turns() if t.speaker == "borrower"]
    assert [(t.source, t.text_redacted) for t in borrower] == [("dtmf", "1"), ("silence", None),
                                                               ("speech", "yes it is")]
    assert borrower[-1].audio_ref is not None and (flow.settings.media_dir / borrower[-1].audio_ref).exists()


def test_progress_moves_forward_only_and_a_final_status_ends_the_call(flow: Flow) -> None:
    assert run(flow.service.status(CallProgress(flow.attempt_id, SID, "ringing")))
    assert not run(flow.service.status(CallProgress(flow.attempt_id, SID, "ringing")))  # a duplicate
    assert not run(flow.service.status(CallProgress(flow.attempt_id, SID, "queued")))  # out of order
    assert not run(flow.service.status(CallProgress(flow.attempt_id, SID, "teleported")))  # unknown word
    assert run(flow.service.status(CallProgress(flow.attempt_id, SID, "no-answer", duration_s=0.0)))
    call, attempt = flow.call(), flow.attempt()
    assert (call.status, call.outcome, call.ended_at) == ("no-answer", "no_answer", AT)
    assert (attempt.provider_status, attempt.outcome) == ("no-answer", "attempted")
    assert not run(flow.service.status(CallProgress(flow.attempt_id, SID, "completed")))  # final is final


def test_the_whole_call_recording_is_fetched_through_the_source_and_kept_once(flow: Flow) -> None:
    run(flow.service.answer(CallAnswered(flow.attempt_id, SID, "person", "human")))
    ready = RecordingReady(flow.attempt_id, SID, AudioRef("RE" + "2" * 32, "https://api.example/rec/2"),
                           started_at=datetime(2026, 12, 1, 0, 29, 59, tzinfo=UTC))
    assert run(flow.service.recording(ready))
    assert not run(flow.service.recording(ready))  # a retry: kept already, not fetched again
    assert flow.recordings.fetched == [ready.audio]
    call = flow.call()
    assert call.recording_sid == ready.audio.recording_id and call.recording_channels == 2
    assert (flow.settings.media_dir / call.recording_ref).read_bytes() == wav(channels=2)
    assert not run(flow.service.recording(RecordingReady(flow.attempt_id, SID, AudioRef("RE" + "3" * 32, "u"),
                                                         status="absent")))


def test_events_for_another_call_or_no_call_are_refused(flow: Flow) -> None:
    with pytest.raises(CallMismatch):
        run(flow.service.input(CallHeard(flow.attempt_id, OTHER_SID, turn=1, digits="1")))
    with pytest.raises(CallMismatch):
        run(flow.service.status(CallProgress(flow.attempt_id, OTHER_SID, "ringing")))
    with pytest.raises(UnknownCall):
        run(flow.service.answer(CallAnswered(flow.attempt_id + 1000, SID)))


def test_closing_the_service_closes_the_recording_source(flow: Flow) -> None:
    flow.service.close()
    assert flow.recordings.closed


def test_the_app_builds_the_call_flow_in_its_lifespan_and_again_for_a_new_context(db: Database,
                                                                                  tmp_path: Path) -> None:
    from types import SimpleNamespace

    from bot.app import create_app
    from bot.providers.twilio.client import RecordingDownloader
    from bot.http.context import WebContext
    from bot.web.voice import service_for

    settings = load_settings(None, database_url=db.url, public_base_url=BASE, media_dir=tmp_path)
    app = create_app(settings, db, FixedClock(AT))
    request: Any = SimpleNamespace(app=app)
    services: list[CallService] = []

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            first = app.state.voice_service
            assert isinstance(first, CallService) and first.context is app.state.bot
            assert isinstance(first.services.recordings, RecordingDownloader)  # downloads through the provider
            assert service_for(request) is first  # built once, not per request
            app.state.bot = WebContext(settings=settings.model_copy(update={"public_base_url": "https://b.example"}),
                                       db=db, clock=FixedClock(AT))
            second = service_for(request)
            assert second is not first and second.settings.public_base_url == "https://b.example"
            assert first.services.speech._executor._shutdown  # the replaced one was closed
            services.append(second)

    asyncio.run(serve())
    assert app.state.voice_service is None and services[0].services.speech._executor._shutdown


# --- "press 1 and we'll text you a link to pay" -------------------------------------------------------

PAY_URL = "https://pay.example.com/checkout/{token}"
RECORDING = AudioRef("RE" + "2" * 32, "https://api.example/rec/2", 1.0)


def _refuse_a_date(flow: Flow) -> CallPlan:
    """A person answers, presses 1 (it is them), then says "no" to the date question."""
    run(flow.service.answer(CallAnswered(flow.attempt_id, SID, "person", "human")))
    run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=1, digits="1")))
    flow.next_heard = Heard("no I can't", 0.95, Intent.DENY)
    return run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=2, audio=RECORDING)))


def _link_replies(flow: Flow) -> list[ContactAttempt]:
    with flow.db.sessions() as session:
        return list(session.scalars(select(ContactAttempt).where(ContactAttempt.template == "reply_payment_link")))


@pytest.mark.parametrize("short", [False, True], ids=["lender-url", "short-link"])
def test_pressing_1_queues_one_text_with_a_working_payment_link(db: Database, tmp_path: Path, short: bool) -> None:
    from bot.messages import compose
    from bot.paylinks import decode_code, read_token
    from bot.rendering import Renderer
    from bot.web.paylinks import _click

    flow = Flow(db, tmp_path, payment_url_template=PAY_URL, payment_short_links=short)
    try:
        offer = _refuse_a_date(flow)
        assert flow.renderer.texts(offer)[-1] == (
            "All right. If you'd like a text with a link to pay online, press 1 or say yes.")
        assert offer.listen is not None and not offer.hangup
        done = run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=3, digits="1")))
        assert done.hangup and "text message with a link" in flow.renderer.texts(done)[-1]
        again = run(flow.service.input(CallHeard(flow.attempt_id, SID, turn=3, digits="1")))  # a retried webhook
        assert again.hangup
        (reply,) = _link_replies(flow)
        assert (reply.status, reply.source, reply.channel, reply.address) == ("planned", "reply", "sms", PHONE)
        assert (reply.installment_id, reply.loan_id) == ("I1", "L1")
        assert flow.call().outcome == "refused"
        with flow.db.sessions() as session:
            body = compose(session, reply, flow.settings, renderer=Renderer(flow.settings.templates_dir)).body
        secret = flow.settings.payment_link_secret
        if short:
            code = body.split(f"{BASE}/p/", 1)[1].split()[0]
            assert decode_code(secret, code) == reply.id
            click = _click(flow.db, flow.settings, reply.id, AT)
            assert click.outcome == "redirect" and click.url is not None
            url = click.url
        else:
            url = next(word for word in body.split() if word.startswith("https://pay.example.com/checkout/"))
        claim = read_token(secret, url.rsplit("/", 1)[1], now=AT)
        assert claim is not None and (claim.installment_id, claim.loan_id, claim.attempt_id) == ("I1", "L1", reply.id)
    finally:
        flow.service.close()


def test_no_link_offer_without_a_payment_url_template(flow: Flow) -> None:
    plan = _refuse_a_date(flow)
    assert plan.hangup and flow.renderer.texts(plan)[-1].startswith("I understand. When you are ready")
    assert _link_replies(flow) == [] and flow.call().outcome == "refused"


def test_no_link_offer_when_the_number_may_not_be_texted(db: Database, tmp_path: Path) -> None:
    from bot.db.models import Consent

    flow = Flow(db, tmp_path, payment_url_template=PAY_URL)
    try:
        with flow.db.session() as session:
            consent = session.scalar(select(Consent).where(Consent.borrower_id == "B1", Consent.channel == "sms"))
            assert consent is not None
            consent.opted_out_at = AT
        plan = _refuse_a_date(flow)
        assert plan.hangup and flow.renderer.texts(plan)[-1].startswith("I understand. When you are ready")
        assert _link_replies(flow) == []
    finally:
        flow.service.close()
