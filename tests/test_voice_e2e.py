"""Scripted calls end to end, over real HTTP, on SQLite and PostgreSQL.

The official twilio client (the bot's voice adapter) creates each call at the
sandbox; the sandbox rings the number's persona, posts the signed answer
webhook to the bot's web app, plays the prompts it fetches from the bot
(signed prompt URLs), answers each ``<Gather>``/``<Record>`` with the persona's
keys, Korean speech clips synthesised with espeak-ng, silence or a hang-up, and
sends the call's status callbacks.  The bot recognises the recordings with
Vosk (the model is loaded once per process), runs the script engine and
answers with TwiML.  Each test then looks at what the sandbox heard
(``call.spoken``) and what the bot stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace
from typing import Any
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.console.filters import parse_call_filters
from bot.console.queries import list_calls
from bot.db import Database
from bot.db.models import (
    AuditEvent,
    CallTurn,
    Consent,
    ContactAttempt,
    InboundMessage,
    Promise,
    Task,
)
from bot.domain import Channel, Intent
from speech_support import korean_clip
from test_voice_support import FLOW, VoiceWorld, world  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # the Vosk model and espeak-ng clips through the sandbox: `pytest -m "not slow"` leaves it out

DEBT_WORDS = ("debt", "payment", "$", "due", "collect", "채무", "납부", "추심", "원")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Korean answers as a person would speak them to the bot's questions (espeak-ng, 8 kHz)."""
    folder = tmp_path_factory.mktemp("clips")
    texts = {
        "yes": "네",
        "no": "아니요",
        "thursday": "목요일에 낼게요",
        "stop": "다시는 전화하지 마세요",
        "paid": "이미 냈어요",
    }
    yield {name: korean_clip(text, folder / f"{name}.wav") for name, text in texts.items()}


def korean(world: VoiceWorld, borrower_id: str, turns: list[dict[str, object]], **kwargs: object) -> str:
    return world.borrower(borrower_id, locale="ko-KR", country="KR", region=None, timezone="Asia/Seoul",
                          currency="KRW", amount=150_000, name="김민준", call={"turns": turns}, **kwargs)


def count(db: Database, model: type, *where: object) -> int:
    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def said_nothing_about_the_debt(texts: list[str]) -> bool:
    return not any(word in text for text in texts for word in DEBT_WORDS)


# --- the branches ---------------------------------------------------------------------------------


def test_promise_by_voice_is_read_back_confirmed_stored_and_confirmed_by_sms(
        world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    world.use(db, **FLOW)
    phone = korean(world, "B1", [{"audio": clips["yes"]}, {"audio": clips["thursday"]}, {"audio": clips["yes"]}])
    placed = world.place("B1")
    assert placed.placed, placed
    world.run()

    played = world.played(placed.call_sid)
    thursday = date(2026, 12, 3)  # "목요일" said on Tuesday 1 December (Seoul)
    assert any("150,000" in text for text in played)  # the amount, after the disclosure
    read_back = [text for text in played if "12월 3일 목요일" in text]
    assert read_back and "맞습니까" in read_back[0]  # the date read back and asked to confirm
    call = world.session(placed.attempt_id)
    assert (call.status, call.outcome, call.promise_date, call.answered_by) == (
        "completed", "promise", thursday, "human")
    assert call.call_sid == placed.call_sid and call.speech
    borrower_turns = [t for t in world.turns(call.id) if t.speaker == "borrower"]
    assert [t.source for t in borrower_turns] == ["speech"] * 3
    assert [t.intent for t in borrower_turns] == ["affirm", "promise_to_pay", "affirm"]
    assert borrower_turns[1].promise_date == thursday
    for turn in borrower_turns:  # each recording kept under the media directory
        assert turn.audio_ref and (world.media_dir / turn.audio_ref).is_file()
    with db.sessions() as s:
        [promise] = s.scalars(select(Promise)).all()
        assert (promise.borrower_id, promise.promised_date, promise.status, promise.source) == (
            "B1", thursday, "pending", "voice")
        [sms] = s.scalars(select(ContactAttempt).where(ContactAttempt.channel == "sms")).all()
        assert (sms.source, sms.status, sms.template, sms.address) == ("reply", "planned", "reply_promise", phone)
    attempt = world.attempt(placed.attempt_id)
    assert (attempt.status, attempt.outcome, attempt.provider_status) == ("sent", "conversation", "completed")

    # Reminders pause until the day after the promise; the confirmation is sent by the dispatcher.
    from bot.compliance import check
    from bot.compliance.loader import load_context

    with db.sessions() as s:
        context = load_context(s, "B1", at=world.clock.now())
    assert "promise_pending" in check(context.subject, Channel.SMS, world.clock.now(), context.history,
                                      context.state).reasons
    from bot.dispatch import dispatch_once

    assert world.settings is not None
    report = asyncio.run(dispatch_once(db, world.settings, clock=world.clock))
    assert report.by_channel() == {"sms": {"sent": 1}}
    [text] = [m.body for m in world.sandbox.messages_to(phone)]
    assert "2026. 12. 3." in text


def test_without_sms_consent_the_call_promises_no_text_and_queues_none(
        world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    """The closing words follow what the bot may do when they are said: no SMS consent, so
    no "we will send a text" and no SMS attempt (it would only be blocked no_consent)."""
    world.use(db, **FLOW)
    korean(world, "B1", [{"audio": clips["yes"]}, {"audio": clips["thursday"]}, {"audio": clips["yes"]}],
           consent=("voice",))
    placed = world.place("B1")
    assert placed.placed, placed
    world.run()
    call = world.session(placed.attempt_id)
    assert (call.outcome, call.promise_date) == ("promise", date(2026, 12, 3))
    played = world.played(placed.call_sid)
    closing = [text for text in played if "12월 3일 목요일" in text and "기록" in text]
    assert closing, played  # the promise is acknowledged
    assert not any("문자" in text for text in played)  # and no text is promised
    assert count(db, ContactAttempt, ContactAttempt.channel == "sms") == 0


def test_already_paid_is_checked_against_payments(world: VoiceWorld, db: Database,
                                                   clips: dict[str, Path]) -> None:
    world.use(db, **FLOW)
    korean(world, "B2", [{"audio": clips["yes"]}, {"audio": clips["paid"]}])
    placed = world.place("B2")
    world.run()
    call = world.session(placed.attempt_id)
    assert call.outcome == "paid_claim" and "paid_claim" in call.flags["reasons"]
    with db.sessions() as s:  # no payment on record: a person reviews the claim
        [task] = s.scalars(select(Task)).all()
        assert (task.kind, task.source, task.borrower_id) == ("review", "voice", "B2")


def test_dispute_opens_a_task_and_flags_the_call(world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    """The Korean grammar of a date question lists no dispute phrases, so the recogniser cannot hear one
    there yet: this test scripts the recogniser's verdicts (the audio is still recorded, fetched and stored)."""
    verdicts = iter([(Intent.AFFIRM, "네", 8.25), (Intent.DISPUTE, "제 대출이 아니에요", 14.5)])

    def understand(pcm: object, locale: str, *, expect: str | None, today: date) -> SimpleNamespace:
        intent, text, margin = next(verdicts)
        return SimpleNamespace(text=text, confidence=0.9, intent=intent, promise_date=None, margin=margin)

    world.use(db, understand=understand)
    korean(world, "B3", [{"audio": clips["yes"]}, {"audio": clips["no"]}])
    placed = world.place("B3")
    world.run()
    call = world.session(placed.attempt_id)
    assert call.outcome == "dispute" and call.flagged and "dispute" in call.flags["reasons"]
    # each spoken turn keeps the recogniser's margin (the console's "low margin" reason); the bot's have none
    assert [(t.speaker, t.margin) for t in world.turns(call.id) if t.source != "tts"] == [
        ("borrower", 8.25), ("borrower", 14.5)]
    assert all(t.margin is None for t in world.turns(call.id) if t.speaker == "bot")
    with db.sessions() as s:
        [task] = s.scalars(select(Task)).all()
        assert (task.kind, task.status, task.source) == ("dispute", "open", "voice")


def test_a_person_asked_for_opens_a_callback_task(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    # verified, a day typed in, then 0 ("a person, please") when asked to confirm it
    world.borrower("B4", call={"turns": [{"digits": "1"}, {"digits": "15#"}, {"digits": "0"}]})
    placed = world.place("B4")
    world.run()
    played = world.played(placed.call_sid)
    assert played[-1].startswith("Of course. A member of our team will call you back.")
    assert "800" in played[-1]  # the call-back number
    call = world.session(placed.attempt_id)
    assert call.outcome == "callback" and not call.speech  # no English model: keypad only
    spoken = [t for t in world.turns(call.id) if t.speaker == "bot"]
    assert len(spoken) == len(played) and spoken[0].text_redacted == played[0]
    assert all(t.audio_ref and (world.media_dir / t.audio_ref).is_file() for t in spoken)  # the WAVs played
    with db.sessions() as s:
        [task] = s.scalars(select(Task)).all()
        assert (task.kind, task.borrower_id) == ("callback", "B4")
    # The keys' meaning is stored on each turn as speech's is, so the console finds the call by intent.
    answers = [(t.source, t.text_redacted, t.intent, t.promise_date) for t in world.turns(call.id)
               if t.speaker == "borrower"]
    assert [a[:3] for a in answers] == [("dtmf", "1", "affirm"), ("dtmf", "15", "promise_to_pay"),
                                        ("dtmf", "0", "callback_request")]
    assert answers[1][3] is not None and answers[1][3].day == 15
    with db.sessions() as s:
        for intent in ("promise_to_pay", "callback_request"):
            found = list_calls(s, parse_call_filters({"intent": intent}), zone_name="UTC", low_confidence=0.6,
                               page_size=10)
            assert [item["id"] for item in found.items] == [call.id], intent
            assert intent in found.items[0]["intents"]


def test_the_keypad_survey_after_a_promise_stores_the_key_pressed(world: VoiceWorld, db: Database) -> None:
    from bot.db.models import Survey
    from bot.policy import SurveySettings

    world.use(db, survey=SurveySettings(after=frozenset({"promise"}), channels=("voice",)))
    # verified, the 15th typed in and confirmed; then 4 to the survey question
    world.borrower("B30", call={"turns": [{"digits": "1"}, {"digits": "15#"}, {"digits": "1"}, {"digits": "4"}]})
    placed = world.place("B30")
    world.run()
    played = world.played(placed.call_sid)
    assert played[-2].startswith("Before you hang up: how satisfied are you with this call?")
    assert played[-1] == "Thank you for your answer. Goodbye."
    call = world.session(placed.attempt_id)
    assert (call.status, call.outcome) == ("completed", "promise")  # the survey does not change the outcome
    answers = [(t.source, t.text_redacted, t.intent) for t in world.turns(call.id) if t.speaker == "borrower"]
    assert answers[-1] == ("dtmf", "4", "survey_response")
    with db.sessions() as s:
        [survey] = s.scalars(select(Survey)).all()
        assert (survey.borrower_id, survey.channel, survey.trigger, survey.score, survey.attempt_id) == (
            "B30", "voice", "promise", 4, placed.attempt_id)
        # the keypad question replaces the texted one; the promise confirmation is still queued
        assert s.scalars(select(ContactAttempt.template).where(ContactAttempt.channel == "sms")).all() == [
            "reply_promise"]


def test_without_a_survey_in_the_policy_a_promise_call_ends_as_before(world: VoiceWorld, db: Database) -> None:
    world.use(db)
    world.borrower("B31", call={"turns": [{"digits": "1"}, {"digits": "15#"}, {"digits": "1"}, {"digits": "4"}]})
    placed = world.place("B31")
    world.run()
    assert not any("satisfied" in text for text in world.played(placed.call_sid))
    assert world.session(placed.attempt_id).outcome == "promise"


def test_stop_calling_records_the_voice_opt_out_and_confirms_it(world: VoiceWorld, db: Database,
                                                                 clips: dict[str, Path]) -> None:
    world.use(db, **FLOW)
    phone = korean(world, "B5", [{"audio": clips["stop"]}])
    placed = world.place("B5")
    world.run()
    played = world.played(placed.call_sid)
    assert "다시 전화드리지 않겠습니다" in played[-1]
    assert said_nothing_about_the_debt(played)
    assert world.session(placed.attempt_id).outcome == "opt_out"
    with db.sessions() as s:
        voice = s.scalar(select(Consent).where(Consent.channel == "voice", Consent.address == phone))
        sms = s.scalar(select(Consent).where(Consent.channel == "sms", Consent.address == phone))
        assert voice is not None and voice.opted_out_at is not None and voice.opt_out_source == "voice"
        assert sms is not None and sms.opted_out_at is None  # "stop calling" bars calls only
    again = world.place("B5")  # the next call is refused by the rules
    assert not again.placed and again.status == "blocked" and "opted_out" in again.reasons


READBACK_BELOW = 0.99  # the clips are clear: a setting this high makes the recogniser's "stop calling" unsure


def test_an_unsure_stop_calling_is_read_back_and_recorded_only_after_yes(
        world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    world.use(db, **FLOW, voice_readback_below=READBACK_BELOW)
    phone = korean(world, "B15", [{"audio": clips["stop"]}, {"audio": clips["yes"]}])
    placed = world.place("B15")
    world.run()
    played = world.played(placed.call_sid)
    assert "더 이상 전화를 받지 않으시겠다는 말씀이 맞으십니까" in played[2]  # read back, as a yes/no question
    assert "다시 전화드리지 않겠습니다" in played[-1] and said_nothing_about_the_debt(played)
    call = world.session(placed.attempt_id)
    assert call.outcome == "opt_out"
    answers = [t for t in world.turns(call.id) if t.speaker == "borrower"]
    assert [(t.source, t.intent) for t in answers] == [("speech", "opt_out"), ("speech", "affirm")]
    assert answers[0].confidence is not None and answers[0].confidence < READBACK_BELOW
    with db.sessions() as s:
        voice = s.scalar(select(Consent).where(Consent.channel == "voice", Consent.address == phone))
        assert voice is not None and voice.opted_out_at is not None and voice.opt_out_source == "voice"


def test_no_to_an_unsure_stop_calling_records_nothing(world: VoiceWorld, db: Database,
                                                      clips: dict[str, Path]) -> None:
    world.use(db, **FLOW, voice_readback_below=READBACK_BELOW)
    phone = korean(world, "B16", [{"audio": clips["stop"]}, {"audio": clips["no"]}, {"hangup": True}])
    placed = world.place("B16")
    world.run()
    played = world.played(placed.call_sid)
    assert "더 이상 전화를 받지 않으시겠다는 말씀이 맞으십니까" in played[2]
    assert played[3] == played[1]  # "no": the right-party question again, nothing done
    assert not any("다시 전화드리지 않겠습니다" in text for text in played)
    call = world.session(placed.attempt_id)
    assert call.outcome == "partial"
    with db.sessions() as s:
        voice = s.scalar(select(Consent).where(Consent.channel == "voice", Consent.address == phone))
        assert voice is not None and voice.opted_out_at is None
    assert count(db, Task) == 0
    again = world.place("B16")  # and the number may still be called
    assert again.placed, again


def test_wrong_person_hears_nothing_about_the_debt_and_the_number_is_flagged(
        world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    world.use(db, **FLOW)
    phone = korean(world, "B6", [{"audio": clips["no"]}])
    placed = world.place("B6")
    world.run()
    played = world.played(placed.call_sid)
    assert len(played) == 3 and "죄송합니다" in played[-1]  # greeting, verification, apology
    assert said_nothing_about_the_debt(played)
    assert not any("150" in text or "11월" in text for text in played)
    assert world.session(placed.attempt_id).outcome == "wrong_party"
    with db.sessions() as s:
        flags = {c.channel: c.address_flag for c in s.scalars(select(Consent).where(Consent.address == phone))}
        assert flags == {"sms": "wrong_number", "voice": "wrong_number"}
        assert [t.kind for t in s.scalars(select(Task))] == ["wrong_number"]
    attempt = world.attempt(placed.attempt_id)
    assert attempt.outcome == "connected"  # answered, but no conversation with the borrower


def test_silence_reprompts_then_the_keypad_menu_then_a_polite_end(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    korean(world, "B7", [{"silence": True}, {"silence": True}, {"silence": True}])
    placed = world.place("B7")
    world.run()
    played = world.played(placed.call_sid)
    assert played[2] == "죄송합니다, 말씀을 듣지 못했습니다."  # no input: said so, asked again
    assert "1번을 누르세요" in played[3] and "전화기 버튼" not in played[3]
    assert played[4] == "죄송합니다, 말씀을 듣지 못했습니다."
    assert "전화기 버튼을 이용해 주세요" in played[5]  # then the keypad menu
    assert "통화를 계속할 수 없습니다" in played[-1] and "800" in played[-1]  # the call-back number
    assert said_nothing_about_the_debt(played)
    call = world.session(placed.attempt_id)
    assert call.outcome == "partial"
    assert [t.source for t in world.turns(call.id) if t.speaker == "borrower"] == ["silence"] * 3


def test_a_recording_longer_than_the_limit_is_not_understood_never_an_intent(world: VoiceWorld, db: Database,
                                                                            clips: dict[str, Path]) -> None:
    """A turn's recording longer than max_audio_seconds is refused from its header: the recogniser
    never runs, the answer is not understood (said so, asked again), then the keypad, then the end."""
    from bot.speech.audio import wav_duration

    heard: list[float] = []

    def understand(pcm: Any, locale: str, *, expect: str | None, today: date) -> SimpleNamespace:
        heard.append(pcm.duration_s)
        return SimpleNamespace(text="목요일에 낼게요", confidence=0.99, intent=Intent.PROMISE_TO_PAY,
                               promise_date=date(2026, 11, 26))

    clip = clips["thursday"]
    assert (wav_duration(clip) or 0) > 1.0
    world.use(db, understand=understand, max_audio_seconds=1.0)
    korean(world, "B8", [{"audio": clip}] * 3)
    placed = world.place("B8")
    world.run()
    assert heard == []
    played = world.played(placed.call_sid)
    assert played[2] == "죄송합니다, 잘 알아듣지 못했습니다."  # not understood: said so, asked again
    assert "전화기 버튼을 이용해 주세요" in played[5]  # then the keypad menu
    call = world.session(placed.attempt_id)
    assert call.outcome == "partial"
    answers = [t for t in world.turns(call.id) if t.speaker == "borrower"]
    # two spoken answers refused; the third, on the keypad menu, heard no key
    assert [(t.source, t.intent, t.confidence, t.promise_date) for t in answers[:2]] == [("speech", "other", 0.0, None)] * 2
    assert count(db, Promise) == 0


def test_hang_up_in_the_middle_is_a_partial_call(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    world.borrower("B8", call={"turns": [{"digits": "1"}, {"hangup": True}]})
    placed = world.place("B8")
    world.run()
    call = world.session(placed.attempt_id)
    assert (call.status, call.outcome) == ("completed", "partial")
    assert call.duration_s is not None and call.duration_s > 0 and call.ended_at is not None
    attempt = world.attempt(placed.attempt_id)
    assert attempt.outcome == "conversation"  # the borrower was verified before hanging up


def test_voicemail_says_only_the_name_and_the_call_back_number(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    world.borrower("B9", call={"answer": "machine", "greeting_seconds": 3})
    placed = world.place("B9")
    world.run()
    [message] = world.played(placed.call_sid)
    assert message == ("Hello, this is a message from Example Lending. Please call us back at (800) 555-0100. "
                       "Thank you.")
    assert [s.on_voicemail for s in world.sandbox.call(placed.call_sid).spoken] == [True]
    call = world.session(placed.attempt_id)
    assert (call.answered_by, call.outcome) == ("machine_end_beep", "voicemail")
    assert world.attempt(placed.attempt_id).outcome == "voicemail"


@pytest.mark.parametrize("answer", ["no-answer", "busy"])
def test_unanswered_calls_are_recorded_and_count_for_the_frequency_cap(world: VoiceWorld, db: Database,
                                                                       answer: str) -> None:
    world.use(db, **FLOW)
    world.borrower("B10", region="MA", call={"answer": answer})  # Massachusetts: 2 calls per 7 days
    for _ in range(2):
        placed = world.place("B10")
        assert placed.placed
        world.run()
        call = world.session(placed.attempt_id)
        assert (call.status, call.outcome, call.answered_at) == (answer, answer.replace("-", "_"), None)
        attempt = world.attempt(placed.attempt_id)
        assert (attempt.status, attempt.provider_status, attempt.outcome) == ("sent", answer, "attempted")
    third = world.place("B10")
    assert not third.placed and any("frequency" in r for r in third.reasons), third
    assert len(world.sandbox.calls()) == 2


def test_answered_after_an_opt_out_ends_politely_without_the_script(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    phone = world.borrower("B11", call={"turns": [{"digits": "1"}]})
    placed = world.place("B11")
    with db.session() as s:  # the borrower texts STOP CALLING while the phone rings
        s.execute(Consent.__table__.update().where(Consent.address == phone, Consent.channel == "voice")
                  .values(opted_out_at=world.clock.now(), opt_out_source="sms"))
    world.run()
    [said] = world.played(placed.call_sid)
    assert said == "Sorry, we cannot continue this call now. Goodbye."
    call = world.session(placed.attempt_id)
    assert call.outcome == "blocked" and "compliance_at_answer" in call.flags["reasons"]
    assert call.decision["allowed"] is False and "opted_out" in call.decision["reasons"]


# --- webhooks: signatures, retries, order ---------------------------------------------------


def test_forged_or_unsigned_webhooks_are_refused(world: VoiceWorld, db: Database) -> None:
    settings = world.use(db, **FLOW)
    world.borrower("B12", call={"answer": "no-answer"})
    placed = world.place("B12")
    params = {"CallSid": placed.call_sid, "CallStatus": "completed", "AccountSid": settings.twilio_account_sid}
    with httpx.Client(base_url=world.bot_server.base_url, trust_env=False) as client:
        for path in (f"/twilio/voice/answer?attempt={placed.attempt_id}",
                     f"/twilio/voice/input?attempt={placed.attempt_id}&turn=1",
                     f"/twilio/voice/status?attempt={placed.attempt_id}"):
            url = settings.public_base_url + path
            forged = RequestValidator("not-the-token").compute_signature(url, params)
            assert client.post(path, data=params, headers={"X-Twilio-Signature": forged}).status_code == 403
            assert client.post(path, data=params).status_code == 403
            other = RequestValidator(settings.twilio_auth_token).compute_signature(url + "0", params)
            assert client.post(path, data=params, headers={"X-Twilio-Signature": other}).status_code == 403
    call = world.session(placed.attempt_id)
    assert (call.status, call.outcome, call.state) == ("queued", None, None)  # nothing changed


def test_a_retried_input_webhook_changes_nothing(world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    settings = world.use(db, **FLOW)
    korean(world, "B13", [{"audio": clips["no"]}])
    world.sandbox.faults.apply(_faults(duplicate=True))
    placed = world.place("B13")
    world.run()
    call = world.session(placed.attempt_id)
    before = len(world.turns(call.id))
    [attempt] = [a for a in world.sandbox.webhook_log(sid=placed.call_sid) if "/twilio/voice/input" in a.url]
    again = _post(world, attempt.url, dict(attempt.params), settings.twilio_auth_token)
    assert again.status_code == 200 and "<Hangup" in again.text  # the step that is current: the goodbye
    assert len(world.turns(call.id)) == before
    assert count(db, CallTurn, CallTurn.session_id == call.id, CallTurn.speaker == "borrower") == 1
    assert world.session(placed.attempt_id).status == "completed"  # duplicated callbacks: never backwards


def _faults(**kwargs: bool) -> object:
    from bot.sandbox.faults import FaultSpec

    return FaultSpec(duplicate_callbacks=kwargs.get("duplicate", False),
                     out_of_order_callbacks=kwargs.get("out_of_order", False))


def _post(world: VoiceWorld, url: str, params: dict[str, str], token: str) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(url, params)
    with httpx.Client(trust_env=False) as client:
        return client.post(url, data=params, headers={"X-Twilio-Signature": signature})


def test_status_callbacks_out_of_order_never_move_a_call_backwards(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    from bot.db.models import OutboxEvent
    from bot.events import EVENT_TYPES
    from bot.events.subscriptions import add_subscription

    with db.session() as s:  # events of the call (docs/events.md): each once, whatever the callbacks do
        add_subscription(s, "http://127.0.0.1:9/hooks", EVENT_TYPES, at=world.clock.now())
    world.sandbox.faults.apply(_faults(duplicate=True, out_of_order=True))
    world.borrower("B14", call={"turns": [{"digits": "2"}]})
    placed = world.place("B14")
    world.run()
    call = world.session(placed.attempt_id)
    assert (call.status, call.outcome) == ("completed", "wrong_party")
    with db.sessions() as s:
        events = s.execute(select(OutboxEvent.type, OutboxEvent.data).order_by(OutboxEvent.id)).all()
    [completed] = [data for kind, data in events if kind == "call.completed"]
    assert completed["outcome"] == "wrong_party" and completed["status"] == "completed"
    assert completed["attempt_id"] == placed.attempt_id
    kinds = [kind for kind, _ in events]
    assert kinds.count("attempt.sent") == 1 and "task.opened" in kinds and "consent.changed" in kinds
    assert world.attempt(placed.attempt_id).provider_status == "completed"
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "call.outcome")) == 1
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 0


# --- payments: nothing more is said or dialled for what is paid -------------------------------


def _pay_in_full(db: Database, borrower_id: str, at: object) -> None:
    """A payment committed the way the importer and the API commit one (bot.ledger)."""
    from bot.db.models import Installment, Payment
    from bot.ledger import settle_loans

    loan_id = f"{borrower_id}-L1"
    with db.session() as s:
        owed = s.scalar(select(func.sum(Installment.amount_due_minor)).where(Installment.loan_id == loan_id))
        s.add(Payment(id=f"P-{borrower_id}", loan_id=loan_id, paid_at=at, amount_minor=owed, created_at=at,
                      updated_at=at))
        s.flush()
        settle_loans(s, [loan_id], at=at)


def test_bot_call_does_not_dial_a_borrower_who_has_paid(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    world.borrower("B20", call={"turns": [{"digits": "1"}]})
    _pay_in_full(db, "B20", world.clock.now())
    placed = world.place("B20")
    assert not placed.placed and placed.reasons == ["paid"], placed
    assert world.sandbox.calls() == []


def test_a_payment_during_a_call_ends_it_politely_at_the_next_turn(world: VoiceWorld, db: Database) -> None:
    world.use(db, **FLOW)
    world.borrower("B21", call={"turns": [{"digits": "1"}, {"digits": "1"}, {"digits": "1"}]})
    placed = world.place("B21")
    assert placed.placed
    paid_at: list[bool] = []

    def pay_when_answered() -> None:
        if not paid_at and world.session(placed.attempt_id).answered_at is not None:
            _pay_in_full(db, "B21", world.clock.now())
            paid_at.append(True)

    for _ in range(120):
        world.run(1)
        pay_when_answered()
        if world.session(placed.attempt_id).status == "completed":
            break
    assert paid_at, "the call was never answered"
    said = world.played(placed.call_sid)
    assert said[-1] == "Thank you for your time. There is nothing more we need today. Goodbye."
    assert said_nothing_about_the_debt(said[-1:])
    call = world.session(placed.attempt_id)
    assert call.outcome == "paid" and "paid_during_call" in call.flags["reasons"]
    borrower_turns = [t for t in world.turns(call.id) if t.speaker == "borrower"]
    assert len(borrower_turns) == 1  # the turn after the payment ended the call


def test_a_call_whose_final_callback_never_came_is_asked_at_the_provider(world: VoiceWorld, db: Database) -> None:
    """Status callbacks go to a port nobody listens on: the call's end is fetched by the dispatcher."""
    from datetime import timedelta

    from bot.channels.voice import VoiceChannel
    from bot.dispatch import dispatch_once
    from bot.policy import load_policy
    from dispatch_support import free_port

    settings = world.use(db, public_base_url=f"http://127.0.0.1:{free_port()}", status_check_after_minutes=30)
    world.borrower("B30", call={"answer": "no-answer"})
    start = world.clock.now()
    placed = world.place("B30")
    assert placed.placed
    world.run(60)
    assert world.sandbox.call(placed.call_sid).status == "no-answer"
    assert world.session(placed.attempt_id).status not in ("no-answer", "completed")  # the callback was lost

    def dispatch(minutes: int):  # noqa: ANN202
        world.clock.set(start + timedelta(minutes=minutes))

        async def once():  # noqa: ANN202
            channel = VoiceChannel(settings)
            try:
                return await dispatch_once(db, settings, clock=world.clock, policy=load_policy(),
                                           channels={"voice": channel})
            finally:
                await channel.aclose()

        return asyncio.run(once())

    assert dispatch(29).total("status_fetched") == 0  # the callback may still come
    assert dispatch(31).total("status_fetched") == 1
    call = world.session(placed.attempt_id)
    assert (call.status, call.outcome) == ("no-answer", "no_answer")
    assert world.attempt(placed.attempt_id).outcome == "attempted"
    assert dispatch(120).total("status_fetched") == 0  # final: never asked again
