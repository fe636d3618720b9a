"""Just enough of the WAV format to know what a clip is and how long it plays.

The sandbox reads a RIFF/WAVE header to tell whether the bot's ``<Play>``
file is a WAV file and how long it lasts (that is how long the call spends on
it), and to give a persona's recording its ``RecordingDuration``.  Anything
else is "not a WAV file" and gets a rough duration from its size.

The one place it decodes audio is the whole-call recording (``Record=true``):
:func:`mixdown` places 16-bit PCM clips at the moments they were played or
said, on an 8 kHz timeline, in one channel or two (``RecordingChannels=dual``:
the borrower's replies on the first channel, the bot's prompts on the second).
"""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: WAVE format tags Twilio can play: PCM, IEEE float, A-law, mu-law, extensible
KNOWN_FORMATS = {1: "pcm", 3: "float", 6: "alaw", 7: "mulaw", 0xFFFE: "extensible"}
#: bytes per second assumed for audio whose length cannot be read (128 kbit/s)
FALLBACK_BYTES_PER_SECOND = 16_000


@dataclass(frozen=True)
class WavInfo:
    format: str
    channels: int
    rate: int
    bits: int
    data_bytes: int
    duration_s: float


def wav_info(data: bytes) -> WavInfo | None:
    """The header of a RIFF/WAVE file, or None when *data* is not a playable WAV file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    fmt: tuple[int, int, int, int, int, int] | None = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return None
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            if fmt is None:
                return None
            tag, channels, rate, byte_rate, block_align, bits = fmt
            if tag not in KNOWN_FORMATS or channels < 1 or rate < 1 or block_align < 1:
                return None
            available = len(data) - body
            data_bytes = min(size, available)  # streamed WAVs carry 0xFFFFFFFF or a short file
            per_second = byte_rate or rate * block_align
            return WavInfo(KNOWN_FORMATS[tag], channels, rate, bits, data_bytes, data_bytes / per_second)
        offset = body + size + (size & 1)  # chunks are padded to an even size
    return None


def clip_seconds(data: bytes) -> float:
    """How long *data* plays: from the WAV header, else estimated from its size."""
    info = wav_info(data)
    if info is not None:
        return info.duration_s
    return len(data) / FALLBACK_BYTES_PER_SECOND


#: the channels of a dual-channel call recording: the call's own leg (the person), then Twilio's (the bot)
BORROWER_CHANNEL, BOT_CHANNEL = 0, 1
#: the call recording's sample rate (telephone audio)
RECORDING_RATE = 8000


def _mono_samples(data: bytes, rate: int = RECORDING_RATE) -> np.ndarray | None:
    """A 16-bit PCM WAV clip as float samples at ``rate`` (channels averaged, linear resampling);
    None for anything else (the clip is left out of the recording)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, clip_rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        return None
    if width != 2 or channels < 1 or clip_rate < 1:
        return None
    samples = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if clip_rate != rate and len(samples):
        count = int(round(len(samples) * rate / clip_rate))
        samples = np.interp(np.arange(count) * clip_rate / rate, np.arange(len(samples)), samples)
    return samples


def mixdown(tracks: Iterable[tuple[int, float, bytes]], seconds: float, *, dual: bool = True,
            rate: int = RECORDING_RATE) -> bytes:
    """A 16-bit PCM WAV of ``seconds``: each (channel, offset in seconds, WAV clip) placed at its
    offset on its channel (``dual``), or all on one channel (mono); the rest is silence."""
    total = max(int(math.ceil(seconds * rate)), 1)
    width = 2 if dual else 1
    out = np.zeros((total, width))
    for channel, offset, clip in tracks:
        samples = _mono_samples(clip, rate)
        if samples is None:
            continue
        start = max(int(round(offset * rate)), 0)
        end = min(total, start + len(samples))
        if end > start:
            out[start:end, channel if dual else 0] += samples[: end - start]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(width)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())
    return buffer.getvalue()
