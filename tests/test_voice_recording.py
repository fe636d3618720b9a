"""The whole call recorded in two channels, end to end through the sandbox (docs/voice.md, "Recordings").

The bot asks for it on ``calls.create`` (``Record=true``, ``RecordingChannels=dual``, a
``RecordingStatusCallback``); the sandbox mixes a real two-channel WAV (the borrower's
clips on the first channel, the bot's prompts on the second, each at the moment it was
said) and posts the signed callback; the bot fetches and keeps the file, and every turn
knows where it starts in it.  Then the retention job deletes it with the other recordings.
"""

from __future__ import annotations

import io
import wave
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from twilio.request_validator import RequestValidator

from bot.channels.voice import VoiceChannel
from bot.db import Database
from bot.retention import purge
from bot.sandbox.audio import BORROWER_CHANNEL, BOT_CHANNEL, mixdown
from test_voice_e2e import clips, korean  # noqa: F401 - fixture
from test_voice_support import FLOW, VoiceWorld, world  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # the Vosk model and espeak-ng clips through the sandbox: `pytest -m "not slow"` leaves it out


def _channels(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (2, 2)
        rate = w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return frames.astype(np.float64), rate


def _level(frames: np.ndarray, rate: int, channel: int, start: float, seconds: float = 0.6) -> float:
    window = frames[int(start * rate): int((start + seconds) * rate), channel]
    return float(np.sqrt(np.mean(window ** 2))) if len(window) else 0.0


def test_the_call_is_recorded_in_two_channels_and_kept_with_turn_offsets(
        world: VoiceWorld, db: Database, clips: dict[str, Path]) -> None:
    # Acceptance relaxed (FLOW): the three answers are understood and the call takes the path the
    # offsets are checked on.
    world.use(db, **FLOW)
    korean(world, "B1", [{"audio": clips["yes"]}, {"audio": clips["thursday"]}, {"audio": clips["yes"]}])
    placed = world.place("B1")
    assert placed.placed, placed
    world.run()

    # The sandbox made one two-channel recording of the whole call and posted its callback.
    sandbox_call = world.sandbox.call(placed.call_sid)
    assert sandbox_call.record and sandbox_call.recording_channels == "dual"
    whole = [world.sandbox.store.recordings[sid] for sid in sandbox_call.recording_sids
             if world.sandbox.store.recordings[sid].source == "OutboundAPI"]
    assert len(whole) == 1 and whole[0].channels == 2

    call = world.session(placed.attempt_id)
    assert call.recording_sid == whole[0].sid and call.recording_channels == 2
    assert call.recording_ref == f"recordings/{call.id}/call-{whole[0].sid}.wav"
    stored = (world.media_dir / call.recording_ref).read_bytes()
    assert stored == whole[0].audio
    frames, rate = _channels(stored)
    assert rate == 8000 and abs(len(frames) / rate - (call.duration_s or 0)) <= 1.0

    # Each turn starts where its audio is: prompts on the bot's channel, answers on the borrower's.
    # Offsets count from the bot's answer; the recording began at the pick-up, machine detection earlier.
    shift = (call.answered_at - call.recording_started_at).total_seconds()
    assert shift == pytest.approx(3.0)  # the persona's amd_seconds, told by MachineDetectionDuration
    assert call.recording_started_at == sandbox_call.answered_at
    turns = world.turns(call.id)
    bots = [t for t in turns if t.speaker == "bot"]
    answers = [t for t in turns if t.speaker == "borrower"]
    assert len(answers) == 3 and all(t.offset_s is not None for t in turns)
    assert [t.offset_s for t in turns] == sorted(t.offset_s for t in turns)
    for turn in bots:
        assert _level(frames, rate, BOT_CHANNEL, turn.offset_s + shift) > 300, (turn.seq, turn.offset_s)
    for turn in answers:
        # at most a second before the first word (never after it), the borrower speaks, the bot listens
        assert _level(frames, rate, BORROWER_CHANNEL, turn.offset_s + shift, 1.5) > 300, (turn.seq, turn.offset_s)
        assert _level(frames, rate, BORROWER_CHANNEL, turn.offset_s + shift - 0.3, 0.3) < 50, turn.seq
        assert _level(frames, rate, BOT_CHANNEL, turn.offset_s + shift + 1.0, 0.3) < 50, turn.seq
    silent_gap = answers[0].offset_s + shift - 0.8  # before the first answer the bot speaks, the borrower not
    assert _level(frames, rate, BORROWER_CHANNEL, silent_gap, 0.5) < 50
    assert _level(frames, rate, BOT_CHANNEL, 0.0, shift - 0.1) == 0  # nothing before the first prompt

    # The callback again (Twilio retries): 204, nothing changes.
    token = world.sandbox.auth_token(world.sandbox.default_account.sid)
    url = f"{world.settings.public_base_url}/twilio/voice/recording?attempt={placed.attempt_id}"
    params = {"AccountSid": world.sandbox.default_account.sid, "CallSid": placed.call_sid,
              "RecordingSid": whole[0].sid, "RecordingStatus": "completed",
              "RecordingUrl": f"{world.sandbox.base_url}/2010-04-01/Accounts/{whole[0].account_sid}"
                              f"/Recordings/{whole[0].sid}", "RecordingChannels": "2"}
    signature = RequestValidator(token).compute_signature(url, params)
    again = httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, trust_env=False)
    assert again.status_code == 204
    assert world.session(placed.attempt_id).recording_ref == call.recording_ref
    unsigned = httpx.post(url, data=params, trust_env=False)
    assert unsigned.status_code == 403
    for bad, message in (({"RecordingSid": "RE../../x"}, "RecordingSid"), ({"RecordingUrl": ""}, "RecordingUrl"),
                         ({"CallSid": "CA" + "f" * 32}, "CallSid")):
        forged = {**params, **bad}
        response = httpx.post(url, data=forged, trust_env=False, headers={
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, forged)})
        assert response.status_code == 400 and message in response.text, (bad, response.text)
    assert world.session(placed.attempt_id).recording_ref == call.recording_ref

    # Retention: past the recordings' period the file goes and the reference is cleared.
    later = world.clock.now() + timedelta(days=world.settings.retention_recordings_days + 1)
    only_recordings = world.settings.model_copy(update={f"retention_{c}_days": 0 for c in (
        "transcripts", "attempts", "audit", "webhooks")})
    report = purge(db, only_recordings, later)
    assert report.counts["call_sessions.recording"] == 1
    assert world.session(placed.attempt_id).recording_ref is None
    assert not (world.media_dir / call.recording_ref).exists()


def test_the_bot_asks_for_the_dual_recording_unless_recordings_are_not_kept(world: VoiceWorld, db: Database) -> None:
    message = SimpleNamespace(attempt_id=7, to="+12125550100", from_=None, status_callback=None)
    settings = world.use(db)
    kwargs = VoiceChannel(settings, client=object()).create_kwargs(message)  # type: ignore[arg-type]
    assert (kwargs["record"], kwargs["recording_channels"]) == (True, "dual")
    assert kwargs["recording_status_callback"].endswith("/twilio/voice/recording?attempt=7")
    assert kwargs["recording_status_callback_event"] == ["completed"]
    for off in ({"voice_record_calls": False}, {"voice_keep_recordings": False}):
        settings = world.use(db, **off)
        assert "record" not in VoiceChannel(settings, client=object()).create_kwargs(message)  # type: ignore[arg-type], off


def test_mixdown_places_each_clip_on_its_channel_at_its_offset() -> None:
    tone = io.BytesIO()
    with wave.open(tone, "wb") as w:  # 0.5 s at 16 kHz: resampled to the recording's 8 kHz
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(8000) / 5) * 8000).astype("<i2").tobytes())
    audio = mixdown([(BOT_CHANNEL, 1.0, tone.getvalue()), (BORROWER_CHANNEL, 2.0, tone.getvalue()),
                     (BOT_CHANNEL, 0.0, b"not a wav")], 3.0)
    frames, rate = _channels(audio)
    assert len(frames) == 3 * rate
    assert _level(frames, rate, BOT_CHANNEL, 1.0, 0.5) > 1000 and _level(frames, rate, BORROWER_CHANNEL, 1.0, 0.5) == 0
    assert _level(frames, rate, BORROWER_CHANNEL, 2.0, 0.5) > 1000 and _level(frames, rate, BOT_CHANNEL, 2.0, 0.5) == 0
    assert _level(frames, rate, BOT_CHANNEL, 0.0, 1.0) == 0 and _level(frames, rate, BOT_CHANNEL, 1.5, 0.5) == 0
    mono = mixdown([(BOT_CHANNEL, 1.0, tone.getvalue())], 2.0, dual=False)
    with wave.open(io.BytesIO(mono)) as w:
        assert (w.getnchannels(), w.getnframes()) == (1, 2 * rate)
