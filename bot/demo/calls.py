"""How the simulated borrowers answer the bot's calls (the policy's D+3 and D+7 voice steps).

Every borrower has a :class:`CallStyle` (dealt with their :class:`~bot.demo.personas.Kind`
in :func:`bot.demo.personas.cast`).  :func:`call_behaviour` turns it into the
sandbox persona's ``call`` behaviour: how the phone answers (a person, an
answering machine, no answer, busy, a failed line) and, for a person, what
they do at each of the bot's questions (``call.turns``):

* Korean borrowers (ko-KR) **speak**: each answer is a real audio clip, Korean
  words synthesised with espeak-ng at telephone quality (8 kHz mono), which the
  bot recognises with its Vosk model as it would a person's voice.  After a
  final answer they press the matching key as well, which the bot only hears
  if it did not understand the words (it then offers the keypad menu);
* the others use the **keypad**: the bot has no speech model for English or
  Chinese, so its scripts ask for keys (1 yes, 2 no, the day of the month
  and #, 0 a call back from a person, 9 no more calls).  There is no key for
  "it is paid" or "it is not my debt": those borrowers press 0.

The clips are made once into ``DIR/clips/`` and kept (:func:`korean_clips`):
a file's name carries a hash of its text and voice settings, so a clip is
made again only when those change.  Without espeak-ng the Korean borrowers
use the keypad too, and the demo says so.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.demo.extensions import DemoExtension
from bot.domain import Channel as ChannelName
from bot.sandbox import CallBehaviour

if TYPE_CHECKING:
    from bot.demo.world import World

__all__ = ["CLIP_TEXTS", "CallStyle", "DialTimeCasting", "VoiceCalls", "call_behaviour", "korean_clips",
           "spoken_locale"]

#: Voice settings of the clips (the same as the speech tests use): espeak-ng's Korean voice.
CLIP_VOICE = "ko"
CLIP_SPEED = 140
CLIP_PITCH = 50
CLIP_VERSION = 1  # part of each clip's name: bump it when the way clips are made changes

#: What the Korean borrowers say on a call.
CLIP_TEXTS: dict[str, str] = {
    "yes": "네",                       # yes (it is me; that date is right)
    "no": "아니요",                    # no (not the person asked for)
    "monday": "월요일에 낼게요",        # I will pay on Monday
    "friday": "금요일에 낼게요",        # I will pay on Friday
    "paid": "이미 냈어요",              # I have already paid
    "dispute": "제 빚이 아니에요",      # it is not my debt
    "stop": "전화하지 마세요",          # do not call me
}


class CallStyle(str, enum.Enum):
    PROMISE = "promise"          # confirms who they are, promises a day, confirms the date
    PAID = "paid"                # says it is paid (keypad: 0, asks to be called back)
    DISPUTE = "dispute"          # says it is not their debt (keypad: 0, asks to be called back)
    OPT_OUT = "opt_out"          # asks not to be called again (9 on the keypad)
    WRONG_PARTY = "wrong_party"  # somebody else answers: "no" / 2
    HANG_UP = "hang_up"          # confirms who they are, then hangs up
    VOICEMAIL = "voicemail"      # an answering machine takes the call
    NO_ANSWER = "no_answer"      # rings out
    BUSY = "busy"
    FAILED = "failed"            # the line fails (a phone that is off, a number that does not exist)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    CallStyle.PROMISE: "promises a day on the phone",
    CallStyle.PAID: "says it is paid",
    CallStyle.DISPUTE: "disputes the debt on the phone",
    CallStyle.OPT_OUT: "asks not to be called again",
    CallStyle.WRONG_PARTY: "somebody else answers",
    CallStyle.HANG_UP: "hangs up in the middle",
    CallStyle.VOICEMAIL: "answering machine",
    CallStyle.NO_ANSWER: "does not pick up",
    CallStyle.BUSY: "line busy",
    CallStyle.FAILED: "line fails",
}

#: Answering machines: a greeting of this many seconds, then the beep.
GREETING_SECONDS = 4.0


def spoken_locale(locale: str) -> bool:
    """Whether borrowers of ``locale`` answer calls by voice (the bot has a speech model for it)."""
    return locale == "ko-KR"


def call_behaviour(style: CallStyle, locale: str, call_day: date | None, *, soon: bool = False,
                   clips: Mapping[str, Path] | None = None) -> CallBehaviour:
    """The sandbox ``call`` behaviour of a borrower's phone.

    ``call_day`` is the day of the call (a keypad promise types the day of the
    month three days later, or one day later with ``soon``: the borrower who
    will not keep it); ``clips`` the Korean clips when the borrower speaks.
    """
    if style is CallStyle.VOICEMAIL:
        return CallBehaviour(answer="machine", greeting_seconds=GREETING_SECONDS)
    if style is CallStyle.NO_ANSWER:
        return CallBehaviour(answer="no-answer", ring_seconds=30)
    if style is CallStyle.BUSY:
        return CallBehaviour(answer="busy")
    if style is CallStyle.FAILED:
        return CallBehaviour(answer="failed")
    turns = _spoken_turns(style, soon, clips) if clips and spoken_locale(locale) else _keypad_turns(
        style, call_day, soon)
    return CallBehaviour(answer="human", turns=turns)  # type: ignore[arg-type]


def _keypad_turns(style: CallStyle, call_day: date | None, soon: bool) -> list[dict[str, object]]:
    if style is CallStyle.PROMISE:
        if call_day is None:
            raise ValueError("a promise on the keypad needs the day of the call")
        day = call_day + timedelta(days=1 if soon else 3)
        return [{"digits": "1"}, {"digits": f"{day.day}#"}, {"digits": "1"}]
    return {
        # No key says "it is paid" or "it is not my debt": 0, a person to call back.
        CallStyle.PAID: [{"digits": "0"}],
        CallStyle.DISPUTE: [{"digits": "0"}],
        CallStyle.OPT_OUT: [{"digits": "9"}],
        CallStyle.WRONG_PARTY: [{"digits": "2"}],
        CallStyle.HANG_UP: [{"digits": "1"}, {"hangup": True}],
    }[style]


def _spoken_turns(style: CallStyle, soon: bool, clips: Mapping[str, Path]) -> list[dict[str, object]]:
    def say(name: str) -> dict[str, object]:
        return {"audio": clips[name]}

    # A last yes, no or stop is followed by its key: heard only if the words were not understood
    # (the bot then offers the keypad).  "Paid" and "not my debt" have no key.
    return {
        CallStyle.PROMISE: [say("yes"), say("friday" if soon else "monday"), say("yes"), {"digits": "1"}],
        CallStyle.PAID: [say("yes"), say("paid")],
        CallStyle.DISPUTE: [say("yes"), say("dispute")],
        CallStyle.OPT_OUT: [say("stop"), {"digits": "9"}],
        CallStyle.WRONG_PARTY: [say("no"), {"digits": "2"}],
        CallStyle.HANG_UP: [say("yes"), {"hangup": True}],
    }[style]


# --- the clips ----------------------------------------------------------------------------------


def _clip_name(name: str, text: str) -> str:
    material = json.dumps({"text": text, "voice": CLIP_VOICE, "speed": CLIP_SPEED, "pitch": CLIP_PITCH,
                           "version": CLIP_VERSION, "format": "wav/pcm16/8000/mono"},
                          ensure_ascii=False, sort_keys=True)
    return f"{name}-{hashlib.sha256(material.encode('utf-8')).hexdigest()[:12]}.wav"


def _usable(path: Path) -> bool:
    from bot.speech.audio import AudioError, read_wav

    if not path.is_file():
        return False
    try:
        pcm = read_wav(path)
    except AudioError:
        return False
    return pcm.rate == 8000 and pcm.duration_s > 0.2


def korean_clips(directory: Path) -> tuple[dict[str, Path] | None, int]:
    """The Korean answer clips in ``directory`` (made now if missing), and how many were made.

    ``(None, 0)`` when espeak-ng is not installed.  Clips are 8 kHz mono 16-bit
    WAV files, like a telephone recording; each is written atomically.
    """
    from bot.speech.audio import AudioError, read_wav, telephony, write_wav

    espeak = shutil.which("espeak-ng")
    directory.mkdir(parents=True, exist_ok=True)
    clips: dict[str, Path] = {}
    made = 0
    for name, text in CLIP_TEXTS.items():
        path = directory / _clip_name(name, text)
        if not _usable(path):
            if espeak is None:
                return None, 0
            fd, raw_name = tempfile.mkstemp(dir=directory, prefix=".raw-", suffix=".wav")
            os.close(fd)
            raw = Path(raw_name)
            try:
                subprocess.run([espeak, "-v", CLIP_VOICE, "-s", str(CLIP_SPEED), "-p", str(CLIP_PITCH), "-w",
                                str(raw), text], check=True, capture_output=True, timeout=30)
                write_wav(path, telephony(read_wav(raw)))  # atomically
            except (OSError, subprocess.SubprocessError, AudioError):
                return None, 0
            finally:
                raw.unlink(missing_ok=True)
            made += 1
        clips[name] = path
    return clips, made


# --- the extension --------------------------------------------------------------------------------


class VoiceCalls(DemoExtension):
    """The demo places calls: the dispatcher dials the voice steps that are due through the voice
    adapter (the official twilio client) to the sandbox, whose personas answer as their
    :class:`CallStyle` says; the bot's call webhooks run in the demo's web app."""

    name = "calls"

    def setup(self, world: World) -> None:
        world.channel_names = (*world.channel_names, "voice")
        world.progress("make the Korean answer clips (espeak-ng, 8 kHz, kept in "
                       f"{world.directory / 'clips'}/)")
        clips, made = korean_clips(world.directory / "clips")
        world.clips = clips
        if clips is None:
            world.progress("  espeak-ng is not installed: the Korean borrowers use the keypad too")
        elif made:
            world.progress(f"  {made} clip{'s' if made != 1 else ''} made")
        world.on_close(lambda: _close_voice(world))


def _close_voice(world: World) -> None:
    """Stop the web app's call service (its recognition threads) and the prompt renderer's worker."""
    from bot.voice import media

    service = getattr(world.app.state, "voice_service", None)
    if service is not None:
        service.close()
        world.app.state.voice_service = None
    media.close_renderers()


class DialTimeCasting:
    """The voice adapter as the demo's dispatcher sees it: the real one (the official twilio client
    to the sandbox), placing one call at a time, and telling the demo which number it is about to
    dial, after every rule has let the call through (the call showcase round is dealt then).

    It has the adapter's interface (``name``, ``send``, ``aclose``, ...) without being one: only
    the dispatcher uses adapters (tests/test_structure.py), and this one only wraps its own.
    """

    name = ChannelName.VOICE
    concurrency = 1  # one call at a time: the calls, and so the round, go in the dispatcher's order

    def __init__(self, inner: Any, before_dial: Callable[[int, str], None]) -> None:
        self.inner = inner
        self.before_dial = before_dial

    async def send(self, message: Any) -> Any:
        self.before_dial(message.attempt_id, message.to)
        return await self.inner.send(message)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)

    async def aclose(self) -> None:
        await self.inner.aclose()
