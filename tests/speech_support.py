"""Speech clips for tests: what a person says, synthesised with espeak-ng (shared by tests/test_speech*.py
and tests/test_voice_*.py).

Not a test module: pytest collects nothing here.  espeak-ng is a Debian package
the bootstrap installs; clips are made in a temporary folder per test module
and converted to what a telephone recording is (8 kHz mono 16-bit PCM WAV) with
bot.speech.audio.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bot.speech.audio import read_wav, telephony, write_wav

ESPEAK = shutil.which("espeak-ng") or "espeak-ng"


def synth_clip(text: str, path: Path, *, voice: str, speed: int = 150, pitch: int = 50,
               gap_ms: int = 0) -> Path:
    """``text`` spoken by espeak-ng ``voice`` at ``speed`` words a minute, as an 8 kHz WAV at ``path``."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run([ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(gap_ms), "-w", str(raw),
                    text], check=True, capture_output=True, timeout=30)
    try:
        write_wav(path, telephony(read_wav(raw)))
    finally:
        raw.unlink(missing_ok=True)
    return path


def korean_clip(text: str, path: Path, *, speed: int = 140) -> Path:
    """A Korean answer (espeak-ng's ``ko`` voice), 8 kHz mono."""
    return synth_clip(text, path, voice="ko", speed=speed)


def english_clip(text: str, path: Path, *, speed: int = 150) -> Path:
    return synth_clip(text, path, voice="en-us", speed=speed)
