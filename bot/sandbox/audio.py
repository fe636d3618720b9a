"""Just enough of the WAV format to know what a clip is and how long it plays.

The sandbox never decodes or converts audio: it reads a RIFF/WAVE header
to tell whether the bot's ``<Play>`` file is a WAV file and how long it
lasts (that is how long the call spends on it), and to give a persona's
recording its ``RecordingDuration``.  Anything else is "not a WAV file" and
gets a rough duration from its size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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
