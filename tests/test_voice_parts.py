"""The pieces of the voice integration around the call flow: the adapter, the dispatcher's voice
branch (compose, call sessions, crash reconciliation), ``bot call``, prompt URLs and TwiML.

Real HTTP throughout (the sandbox behind the official twilio client, the bot's app in
uvicorn), on SQLite and PostgreSQL where a database is involved.
"""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from twilio.base.exceptions import TwilioRestException

from bot.channels.base import approve
from bot.channels.events import ListenPlan
from bot.channels.voice import VoiceChannel
from bot.compliance.types import Decision
from bot.db import Database
from bot.db.models import CallSession, ContactAttempt
from bot.dispatch import DispatchOptions, Dispatcher, build_channels, dispatch_once
from bot.dispatch.report import DispatchReport
from bot.domain import Channel
from bot.policy import load_policy
from bot.providers.twilio.errors import (
    TwilioConfigurationError,
    TwilioPermanentError,
    TwilioTransientError,
    classify_call_error,
)
from bot.scheduler.planner import plan
from bot.scripts import load_script
from bot.providers.twilio.twiml import KEY_DIGIT_SECONDS, build
from bot.voice.urls import signed_prompt_url, verify_prompt
from test_voice_support import AT, OUR_NUMBER, VoiceWorld, world  # noqa: F401 - fixture

ALLOW = Decision(allowed=True, reasons=(), next_allowed_at=None, rule_set="test", zones=())


def message(attempt_id: int, to: str) -> Any:
    return approve(ALLOW, attempt_id=attempt_id, channel=Channel.VOICE, to=to, body="", idempotency_key=f"k{attempt_id}",
                   status_callback=None)


# --- the adapter ------------------------------------------------------------------------------------


def test_the_adapter_creates_the_call_twilio_expects(world: VoiceWorld, db: Database) -> None:
    settings = world.use(db, call_ring_timeout_seconds=25)
    channel = VoiceChannel(settings)

    async def send() -> Any:
        try:
            return await channel.send(message(41, "+12125550199"))
        finally:
            await channel.aclose()

    result = asyncio.run(send())
    call = world.sandbox.call(result.provider_id)
    base = settings.public_base_url
    assert result.status == "queued" and call.sid.startswith("CA")
    assert (call.to, call.from_, call.timeout, call.machine_detection) == (
        "+12125550199", OUR_NUMBER, 25, "DetectMessageEnd")
    assert call.instructions["url"] == f"{base}/twilio/voice/answer?attempt=41"
    assert call.status_callback == f"{base}/twilio/voice/status?attempt=41"
    assert call.status_callback_events == frozenset({"initiated", "ringing", "answered", "completed"})


def test_adapter_errors_are_classified(world: VoiceWorld, db: Database) -> None:
    settings = world.use(db)
    world.sandbox.add_phone("+12125550198", line_type="invalid")
    channel = VoiceChannel(settings)

    async def send(to: str) -> BaseException:
        try:
            await channel.send(message(1, to))
        except Exception as exc:
            return exc
        raise AssertionError("no error")

    async def both() -> tuple[BaseException, BaseException]:
        try:
            invalid = await send("+12125550198")
            world.sandbox.faults.rate_limit(1)
            limited = await send("+12125550197")
            return invalid, limited
        finally:
            await channel.aclose()

    invalid, limited = asyncio.run(both())
    assert isinstance(invalid, TwilioPermanentError) and (invalid.code, invalid.effect) == (21211, "invalid")
    assert isinstance(limited, TwilioTransientError) and limited.code == 20429 and not limited.outcome_unknown
    unreachable = VoiceChannel(settings.model_copy(update={"twilio_api_base_url": "http://127.0.0.1:9"}))

    async def refused() -> BaseException:
        try:
            await unreachable.send(message(2, "+12125550196"))
        except Exception as exc:
            return exc
        finally:
            await unreachable.aclose()
        raise AssertionError("no error")

    error = asyncio.run(refused())
    assert isinstance(error, TwilioTransientError) and error.code == "connect" and not error.outcome_unknown


@pytest.mark.parametrize(("code", "status", "kind", "effect"), [
    (21211, 400, TwilioPermanentError, "invalid"),
    (21217, 400, TwilioPermanentError, "invalid"),
    (21614, 400, TwilioPermanentError, "landline"),
    (13224, 400, TwilioPermanentError, None),
    (13225, 403, TwilioPermanentError, None),
    (21215, 400, TwilioConfigurationError, None),
    (21210, 400, TwilioConfigurationError, None),
    (21219, 400, TwilioConfigurationError, None),
    (21609, 400, TwilioConfigurationError, None),
    (20429, 429, TwilioTransientError, None),
    (None, 503, TwilioTransientError, None),
    (99999, 400, TwilioPermanentError, None),
])
def test_call_error_table(code: int | None, status: int, kind: type, effect: str | None) -> None:
    error = classify_call_error(TwilioRestException(status, "https://api.twilio.com/x", code=code))
    assert isinstance(error, kind) and error.effect == effect


# --- the dispatcher's voice branch ---------------------------------------------------------------


def test_a_planned_voice_step_is_dialled_once_with_its_call_session(world: VoiceWorld, db: Database) -> None:
    settings = world.use(db)
    phone = world.borrower("P1", due=date(2026, 11, 27), call={"answer": "no-answer"})  # D+3 in New York
    policy = load_policy()
    with db.sessions() as s:
        report = plan(s, AT, policy=policy)
    assert report.by_status.get("planned") == 1
    first = asyncio.run(dispatch_once(db, settings, clock=world.clock, policy=policy,
                                      options=DispatchOptions(rate_limits=False)))
    assert first.by_channel() == {"voice": {"sent": 1}}
    assert set(build_channels(settings)) == {"sms", "email", "voice"}
    with db.sessions() as s:
        attempt = s.scalar(select(ContactAttempt).where(ContactAttempt.channel == "voice"))
        assert attempt is not None
        call = s.scalar(select(CallSession).where(CallSession.attempt_id == attempt.id))
    assert call is not None
    assert (call.call_sid, call.borrower_id, call.loan_id, call.locale, call.script, call.status) == (
        attempt.provider_id, "P1", "P1-L1", "en-US", "first_stage", "queued")
    assert (attempt.call_script, attempt.call_locale) == ("first_stage", "en-US")
    assert attempt.sender == OUR_NUMBER and attempt.outcome == "attempted"
    again = asyncio.run(dispatch_once(db, settings, clock=world.clock, policy=policy,
                                      options=DispatchOptions(rate_limits=False)))
    assert again.handled == 0 and [c.to for c in world.sandbox.calls()] == [phone]
    world.run()
    call = world.session(attempt.id)
    assert (call.status, call.outcome) == ("no-answer", "no_answer")


def _crash(db: Database, attempt_id: int, *, keep_sid: bool = False) -> None:
    """What a worker that died between placing the call and recording it leaves behind."""
    with db.session() as s:
        s.execute(update(ContactAttempt).where(ContactAttempt.id == attempt_id).values(
            status="sending", provider_id=None, provider_status=None, sent_at=None, tries=0,
            claimed_by="dead:1", claimed_until=AT - timedelta(seconds=1)))
        if not keep_sid:
            s.execute(update(CallSession).where(CallSession.attempt_id == attempt_id).values(call_sid=None))


def _reconcile(world: VoiceWorld, db: Database) -> DispatchReport:
    assert world.settings is not None
    channel = VoiceChannel(world.settings)

    async def run() -> DispatchReport:
        try:
            dispatcher = Dispatcher(db, world.settings, channels={"voice": channel}, clock=world.clock,
                                    options=DispatchOptions(rate_limits=False, worker_id="w2"))
            report = DispatchReport(at=world.clock.now(), worker="w2")
            await dispatcher.reconcile(report)
            return report
        finally:
            await channel.aclose()

    return asyncio.run(run())


def test_a_call_a_crash_left_sending_is_found_at_the_provider_not_placed_again(world: VoiceWorld,
                                                                                  db: Database) -> None:
    world.use(db)
    world.borrower("R1", call={"answer": "busy"})
    placed = world.place("R1")
    _crash(db, placed.attempt_id)
    report = _reconcile(world, db)
    assert report.by_channel() == {"voice": {"reconciled": 1}}
    attempt = world.attempt(placed.attempt_id)
    assert (attempt.status, attempt.provider_id) == ("sent", placed.call_sid)
    assert world.session(placed.attempt_id).call_sid == placed.call_sid
    assert len(world.sandbox.calls()) == 1


def test_a_call_that_never_reached_the_provider_is_planned_again(world: VoiceWorld, db: Database) -> None:
    world.use(db)
    world.borrower("R2", call={"answer": "busy"})
    placed = world.place("R2")
    _crash(db, placed.attempt_id)
    world.sandbox.reset()  # the provider has no such call
    report = _reconcile(world, db)
    assert report.by_channel() == {"voice": {"requeued": 1}}
    assert world.attempt(placed.attempt_id).status == "planned"


def test_a_call_tried_before_and_then_blocked_ends_its_session_unplaced(world: VoiceWorld, db: Database) -> None:
    """The session written when the call was first tried does not stay ``queued`` once the rules stop it."""
    from bot.replies.consent import record_opt_out

    settings = world.use(db)
    phone = world.borrower("R3", due=date(2026, 11, 27), call={"answer": "busy"})
    policy = load_policy()
    with db.sessions() as s:
        plan(s, AT, policy=policy)
    first = asyncio.run(dispatch_once(db, settings, clock=world.clock, policy=policy,
                                      options=DispatchOptions(rate_limits=False)))
    assert first.by_channel() == {"voice": {"sent": 1}}
    with db.sessions() as s:
        attempt_id = s.scalar(select(ContactAttempt.id).where(ContactAttempt.channel == "voice"))
    assert attempt_id is not None
    _crash(db, attempt_id)
    world.sandbox.reset()  # the call never reached the provider: planned again, its session still queued
    assert _reconcile(world, db).by_channel() == {"voice": {"requeued": 1}}
    assert (world.session(attempt_id).status, world.session(attempt_id).call_sid) == ("queued", None)
    with db.session() as s:  # meanwhile the borrower asks for no more calls
        record_opt_out(s, "R3", "voice", phone, "test", AT)
    again = asyncio.run(dispatch_once(db, settings, clock=world.clock, policy=policy,
                                      options=DispatchOptions(rate_limits=False)))
    assert again.by_channel() == {"voice": {"blocked": 1}}
    assert world.attempt(attempt_id).status == "blocked"
    call = world.session(attempt_id)
    assert (call.status, call.outcome, call.call_sid, call.ended_at is not None) == ("canceled", "canceled", None, True)
    assert world.sandbox.calls() == []


def test_the_prompt_cache_keeps_what_calls_use_and_forgets_the_rest(tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError
    from bot.voice.media import PROMPTS, PruneReport, prune_prompts

    settings = load_settings(media_dir=str(tmp_path / "media"), prompt_retention_days=7)
    assert prune_prompts(settings, AT) == PruneReport(0, 0, 0)  # no cache yet: nothing to do, no error
    prompts = tmp_path / "media" / PROMPTS
    prompts.mkdir(parents=True)

    def file(name: str, age: timedelta, size: int = 100) -> Path:
        path = prompts / name
        path.write_bytes(b"x" * size)
        when = (AT - age).timestamp()
        os.utime(path, (when, when))
        return path

    stale = file("a" * 64 + ".wav", timedelta(days=7, seconds=1), 300)  # a borrower's amount, said a week ago
    used = file("b" * 64 + ".wav", timedelta(days=6, hours=23))  # the greeting, played yesterday too
    dead_render = file(f".{'c' * 64}.123.raw.wav", timedelta(hours=2), 50)
    live_render = file(f".{'d' * 64}.124.raw.wav", timedelta(minutes=5))
    other = file("notes.txt", timedelta(days=400))
    (prompts / "sub").mkdir()
    nested = prompts / "sub" / ("e" * 64 + ".wav")
    nested.write_bytes(b"x")
    os.utime(nested, (0, 0))
    outside = tmp_path / "keep.wav"
    outside.write_bytes(b"x")
    os.utime(outside, (0, 0))
    (prompts / ("f" * 64 + ".wav")).symlink_to(outside)

    report = prune_prompts(settings, AT)
    assert report == PruneReport(removed=2, kept=2, freed_bytes=350)
    assert not stale.exists() and not dead_render.exists()
    assert used.exists() and live_render.exists() and other.exists() and nested.exists() and outside.exists()
    assert prune_prompts(settings, AT) == PruneReport(0, 2, 0)  # idempotent
    with pytest.raises(ConfigError, match="BOT_PROMPT_RETENTION_DAYS"):
        load_settings(prompt_retention_days=0)


# --- bot call ---------------------------------------------------------------------------------------


def _cli_env(world: VoiceWorld) -> dict[str, str]:
    settings = world.settings
    assert settings is not None
    return {"BOT_TWILIO_API_BASE_URL": settings.twilio_api_base_url or "",
            "BOT_TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
            "BOT_PUBLIC_BASE_URL": settings.public_base_url, "BOT_MEDIA_DIR": str(world.media_dir)}


def test_bot_call_places_a_call_and_prints_the_sid_masked(world: VoiceWorld, db: Database, run_bot: Any) -> None:
    world.use(db)
    phone = world.borrower("C1", call={"answer": "no-answer"})
    result = run_bot("call", "C1", "--at", AT.isoformat(), db_url=db.url, env=_cli_env(world))
    assert result.exit_code == 0, result.output
    [call] = world.sandbox.calls()
    assert call.to == phone and f"{call.sid[:4]}…{call.sid[-4:]}" in result.stdout
    assert call.sid not in result.output and phone not in result.output


def test_bot_call_refuses_at_night_with_the_reasons(world: VoiceWorld, db: Database, run_bot: Any) -> None:
    world.use(db)
    world.borrower("C2")
    night = (AT + timedelta(hours=3)).isoformat()  # 22:30 in New York
    result = run_bot("call", "C2", "--at", night, db_url=db.url, env=_cli_env(world))
    assert result.exit_code == 1
    assert "not allowed now (deferred)" in result.stderr and "quiet_hours" in result.stderr
    assert world.sandbox.calls() == []
    missing = run_bot("call", "NOPE", "--at", AT.isoformat(), db_url=db.url, env=_cli_env(world))
    assert missing.exit_code == 2 and "no borrower" in missing.stderr


# --- prompt URLs and TwiML ---------------------------------------------------------------------------


def test_prompt_urls_are_signed_and_expire(world: VoiceWorld, db: Database) -> None:
    settings = world.use(db)
    assert world.service is not None
    rendered = world.service.renderer.render("Hello, this is Example Lending calling.", "en-US")
    url = signed_prompt_url(settings.public_base_url, settings.media_url_secret, rendered.sha, now=AT,
                            ttl_seconds=settings.media_url_ttl_seconds)
    with httpx.Client(trust_env=False) as client:
        ok = client.get(url)
        assert ok.status_code == 200 and ok.content[:4] == b"RIFF"
        assert ok.headers["content-type"] == "audio/wav" and ok.headers["cache-control"].startswith("private")
        assert client.get(url.replace("sig=", "sig=0")).status_code == 404
        assert client.get(url.split("?")[0]).status_code == 404
        assert client.get(url.replace(rendered.sha, "0" * 40)).status_code == 404
        world.clock.set(AT + timedelta(seconds=settings.media_url_ttl_seconds + 120))
        assert client.get(url).status_code == 404
    assert verify_prompt("x" * 16, "../etc", "1", "2", now=AT) == "malformed prompt name"


def test_twiml_listens_with_gather_for_keys_and_record_for_speech() -> None:
    keys = build(["https://b/p.wav"], ListenPlan("dtmf", 6, 10, 1, "https://b/in?t=1", "https://b/in?t=1&s=1"),
                 hangup=False)
    assert '<Gather action="https://b/in?t=1" actionOnEmptyResult="true" input="dtmf"' in keys
    assert "<Play>https://b/p.wav</Play></Gather>" in keys and "<Record" not in keys
    both = build(["https://b/p.wav"], ListenPlan("both", 6, 10, None, "https://b/in?t=1", "https://b/in?t=1&s=1"),
                 hangup=False)
    assert both.index("<Gather") < both.index("<Record") < both.index("<Redirect")
    assert 'finishOnKey="#"' in both
    yes_no = build(["https://b/p.wav"], ListenPlan("both", 6, 10, 1, "https://b/in?t=1", "https://b/in?t=1&s=1"),
                   hangup=False)
    assert 'numDigits="1"' in yes_no and 'timeout="1"' in yes_no and 'playBeep="false"' in yes_no
    assert build(["https://b/p.wav"], None, hangup=True).endswith("<Play>https://b/p.wav</Play><Hangup /></Response>")


def _gather(twiml: str) -> ET.Element:
    found = ET.fromstring(twiml).find("Gather")
    assert found is not None
    return found


@pytest.mark.parametrize("mode", ["dtmf", "both"])
def test_a_multi_digit_entry_leaves_time_between_keys(mode: str) -> None:
    """A day typed as "1", "5", "#": Twilio's Gather timeout is also the wait between digits,
    so it must be one people can meet; the entry ends with # (the prompts say so)."""
    twiml = build(["https://b/p.wav"], ListenPlan(mode, 3, 10, None, "https://b/in?t=1", "https://b/in?t=1&s=1"),
                  hangup=False)
    gather = _gather(twiml)
    assert gather.get("finishOnKey") == "#" and gather.get("numDigits") is None
    assert int(gather.get("timeout", "0")) >= KEY_DIGIT_SECONDS == 5
    if mode == "both":  # the recording after the key wait starts with a tone the prompt announces
        record = ET.fromstring(twiml).find("Record")
        assert record is not None and record.get("playBeep") == "true"


def test_the_date_prompts_say_to_end_the_entry_with_the_pound_key() -> None:
    words = {"en-US": "pound", "zh-CN": "井号键", "ko-KR": "우물 정"}
    for locale, pound in words.items():
        script = load_script("first_stage", locale)
        for name, node in script.nodes.items():
            if node.listen is not None and node.listen.expect == "date":
                for prompt in node.prompts:
                    assert pound in prompt.source, (locale, prompt.key)


# --- transcripts: redaction and review flags ---------------------------------------------------------


def test_a_doubtful_answer_is_flagged_and_its_transcript_redacted(world: VoiceWorld, db: Database,
                                                                   tmp_path: Any) -> None:
    """The recogniser is replaced (its figures are tests/test_speech*.py's); the rest is the real flow."""
    from types import SimpleNamespace

    from bot.domain import Intent
    from speech_support import korean_clip

    heard: list[tuple[str, str | None]] = []

    def understand(pcm: Any, locale: str, *, expect: str | None, today: Any) -> Any:
        heard.append((locale, expect))
        return SimpleNamespace(text="네 카드 4111 1111 1111 1111 입니다", confidence=0.55, intent=Intent.AFFIRM,
                               promise_date=None, duration_s=pcm.duration_s)

    world.use(db, understand=understand)
    assert world.service is not None
    world.service._speech_available = lambda locale: True
    clip = korean_clip("네", tmp_path / "yes.wav")
    world.borrower("T1", locale="ko-KR", country="KR", region=None, timezone="Asia/Seoul", currency="KRW",
                   name="김민준", call={"turns": [{"audio": clip}, {"hangup": True}]})
    placed = world.place("T1")
    world.run()
    assert heard == [("ko-KR", "yes_no")]
    call = world.session(placed.attempt_id)
    [answer] = [t for t in world.turns(call.id) if t.speaker == "borrower"]
    assert answer.text_redacted is not None and "4111 1111 1111 1111" not in answer.text_redacted
    assert "1111" in answer.text_redacted  # the last four digits only
    assert (answer.intent, answer.confidence, answer.flagged) == ("affirm", 0.55, True)
    assert call.flagged and call.flags["reasons"] == ["low_confidence"] and call.min_confidence == 0.55
    assert answer.audio_ref and (world.media_dir / answer.audio_ref).read_bytes()[:4] == b"RIFF"
