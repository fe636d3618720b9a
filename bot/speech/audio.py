"""Audio in and out: WAV files, G.711 (mu-law, A-law), resampling (docs/speech.md).

Everything the speech layer handles is a :class:`Pcm`: mono signed 16-bit
samples at some rate.  :func:`read_wav` accepts what telephony and desktop
tools write — RIFF WAVE with PCM (8, 16, 24, 32-bit), IEEE float, mu-law
(format 7) or A-law (format 6), plain or ``WAVE_FORMAT_EXTENSIBLE``, any
rate, any number of channels (averaged to mono) — and raises
:class:`AudioError` naming the file and what is wrong with it.

:func:`resample` is a windowed-sinc (Kaiser) resampler in numpy: the filter
is evaluated once per phase of the rational rate ratio (a polyphase filter)
and applied to blocks of output samples, with the cut-off below the lower of
the two Nyquist frequencies so that downsampling does not alias.  No
``audioop`` (deprecated) and no scipy.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from dataclasses import dataclass
from functools import cache
from math import ceil, gcd
from pathlib import Path
from typing import Literal

import numpy as np

from bot.speech.errors import AudioError, AudioTooLong

__all__ = [
    "TELEPHONY_RATE",
    "AudioError",
    "AudioTooLong",
    "Pcm",
    "alaw_decode",
    "alaw_encode",
    "mulaw_decode",
    "mulaw_encode",
    "read_wav",
    "resample",
    "rms",
    "telephony",
    "wav_bytes",
    "wav_duration",
    "write_wav",
]

TELEPHONY_RATE = 8000
MIN_RATE = 1000
MAX_RATE = 768_000
MAX_CHANNELS = 32

Encoding = Literal["pcm16", "mulaw"]


@dataclass(frozen=True, eq=False, slots=True)
class Pcm:
    """Mono signed 16-bit audio: ``samples`` (a read-only numpy ``int16`` vector) at ``rate`` Hz."""

    samples: np.ndarray
    rate: int

    def __post_init__(self) -> None:
        samples = self.samples
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16 or samples.ndim != 1:
            raise ValueError("Pcm.samples must be a one-dimensional numpy int16 array (mono)")
        if not isinstance(self.rate, int) or not MIN_RATE <= self.rate <= MAX_RATE:
            raise ValueError(f"Pcm.rate must be an integer between {MIN_RATE} and {MAX_RATE} Hz")
        view = samples.view()
        view.flags.writeable = False
        object.__setattr__(self, "samples", view)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @classmethod
    def from_float(cls, data: np.ndarray, rate: int) -> Pcm:
        """From floats in [-1, 1] (clipped), e.g. a generated test tone."""
        values = np.clip(np.asarray(data, dtype=np.float64), -1.0, 1.0) * 32767.0
        return cls(np.round(values).astype(np.int16), rate)

    def __repr__(self) -> str:
        return f"Pcm({len(self.samples)} samples, {self.rate} Hz, {self.duration_s:.3f} s)"


def rms(pcm: Pcm) -> float:
    """Root-mean-square level relative to full scale (0 silence, about 0.7 a full-scale sine)."""
    if not len(pcm.samples):
        return 0.0
    values = pcm.samples.astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(values * values)))


# --- G.711 --------------------------------------------------------------------
# The classic reference algorithms (Sun Microsystems' g711.c, ITU-T G.711),
# vectorised once into lookup tables.

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


@cache
def _ulaw_decode_table() -> np.ndarray:
    u = (~np.arange(256)) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


@cache
def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


@cache
def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = np.searchsorted(_ULAW_SEG_END, pcm, side="left")
    uval = (seg << 4) | ((pcm >> (seg + 1)) & 0x0F)
    return ((np.where(seg >= 8, 0x7F, uval)) ^ mask).astype(np.uint8)


@cache
def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, pcm, side="left")
    shift = np.where(seg < 2, 1, seg)
    aval = (seg << 4) | ((pcm >> shift) & 0x0F)
    return ((np.where(seg >= 8, 0x7F, aval)) ^ mask).astype(np.uint8)


def _codes(data: bytes | np.ndarray) -> np.ndarray:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def mulaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples."""
    return _ulaw_decode_table()[_codes(data)]


def mulaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> G.711 mu-law bytes (what Twilio Media Streams carry)."""
    values = np.asarray(samples, dtype=np.int16).astype(np.int32) + 32768
    return _ulaw_encode_table()[values].tobytes()


def alaw_decode(data: bytes | np.ndarray) -> np.ndarray:
    """G.711 A-law bytes -> int16 samples."""
    return _alaw_decode_table()[_codes(data)]


def alaw_encode(samples: np.ndarray) -> bytes:
    """int16 samples -> G.711 A-law bytes."""
    values = np.asarray(samples, dtype=np.int16).astype(np.int32) + 32768
    return _alaw_encode_table()[values].tobytes()


# --- reading WAV ------------------------------------------------------------------

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
_FORMAT_NAMES = {
    2: "Microsoft ADPCM", 0x11: "IMA ADPCM", 0x31: "GSM 6.10", 0x40: "G.721 ADPCM", 0x50: "MPEG",
    0x55: "MPEG Layer 3 (MP3)", 0x64: "G.726 ADPCM", 0x65: "G.722 ADPCM", 0x161: "WMA", 0x1610: "AAC",
    0xF1AC: "FLAC",
}
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_SUPPORTED = "PCM 8/16/24/32-bit, IEEE float, mu-law (7), A-law (6), plain or WAVE_FORMAT_EXTENSIBLE"
_STREAMING_SIZE = 0xFFFFFFFF  # written by live recorders that never go back to fix the header


@dataclass(frozen=True, slots=True)
class _Format:
    code: int
    channels: int
    rate: int
    block_align: int
    bits: int


def _format_name(code: int) -> str:
    return f"{_FORMAT_NAMES[code]} (format {code:#x})" if code in _FORMAT_NAMES else f"format {code:#x}"


def _parse_fmt(body: bytes) -> _Format:
    if len(body) < 16:
        raise AudioError(f"fmt chunk is {len(body)} bytes, expected at least 16")
    code, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if code == _EXTENSIBLE:
        if len(body) < 40:
            raise AudioError(f"WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(body)} bytes, expected 40")
        sub_code = struct.unpack_from("<H", body, 24)[0]
        if body[26:40] != _GUID_TAIL:
            raise AudioError("WAVE_FORMAT_EXTENSIBLE with a sub-format GUID that is not a standard WAVE format")
        code = sub_code
    if code not in (_PCM, _FLOAT, _ALAW, _MULAW):
        raise AudioError(f"unsupported encoding {_format_name(code)}; supported: {_SUPPORTED}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"fmt chunk says {channels} channels; expected 1 to {MAX_CHANNELS}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"unsupported sample rate {rate} Hz; expected {MIN_RATE} to {MAX_RATE}")
    allowed = {_PCM: (8, 16, 24, 32), _FLOAT: (32, 64), _ALAW: (8,), _MULAW: (8,)}[code]
    if bits not in allowed:
        raise AudioError(f"unsupported sample size {bits} bits for {_format_name(code)}; expected "
                         + " or ".join(str(b) for b in allowed))
    expected_align = channels * bits // 8
    if block_align != expected_align:
        raise AudioError(f"fmt chunk is inconsistent: block align {block_align} for {channels} channel(s) "
                         f"of {bits} bits (expected {expected_align})")
    return _Format(code, channels, rate, block_align, bits)


def _decode_frames(fmt: _Format, data: bytes) -> np.ndarray:
    """Interleaved frames -> float64 array (frames, channels) on the int16 scale."""
    if fmt.code == _MULAW:
        values = mulaw_decode(data).astype(np.float64)
    elif fmt.code == _ALAW:
        values = alaw_decode(data).astype(np.float64)
    elif fmt.code == _FLOAT:
        raw = np.frombuffer(data, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float64)
        raw = np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=-1.0)
        values = np.clip(raw, -1.0, 1.0) * 32767.0
    elif fmt.bits == 8:
        values = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    elif fmt.bits == 16:
        values = np.frombuffer(data, dtype="<i2").astype(np.float64)
    elif fmt.bits == 24:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        values = ints.astype(np.float64) / 256.0
    else:  # 32-bit integer PCM
        values = np.frombuffer(data, dtype="<i4").astype(np.float64) / 65536.0
    return values.reshape(-1, fmt.channels)


def _to_int16(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), -32768, 32767).astype(np.int16)


def _declared(fh: io.BufferedIOBase | io.BytesIO, total: int) -> tuple[_Format, int] | None:
    """The format and the data chunk's size in bytes, from the chunk headers alone (seeking past
    the bodies); None when the headers cannot tell (:func:`read_wav` then says what is wrong)."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
        return None
    fmt: _Format | None = None
    size_of_data: int | None = None
    offset = 12
    while offset + 8 <= total and (fmt is None or size_of_data is None):
        fh.seek(offset)
        chunk_id, size = struct.unpack("<4sI", fh.read(8))
        body_start = offset + 8
        if chunk_id == b"data":
            size_of_data = total - body_start if size == _STREAMING_SIZE else size  # as declared
        elif chunk_id == b"fmt ":
            try:
                fmt = _parse_fmt(fh.read(size))
            except (AudioError, struct.error):
                return None
        offset = body_start + size + (size & 1)
    if fmt is None or size_of_data is None:
        return None
    return fmt, size_of_data


def wav_duration(source: Path | str | bytes) -> float | None:
    """The length in seconds a WAV file's headers declare, without reading or decoding its samples;
    None when they cannot tell (not a WAV file, no fmt or data chunk, unreadable)."""
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            declared = _declared(io.BytesIO(source), len(source))
        else:
            with Path(source).open("rb") as fh:
                declared = _declared(fh, os.fstat(fh.fileno()).st_size)
    except OSError:
        return None
    if declared is None:
        return None
    fmt, size = declared
    return size // fmt.block_align / fmt.rate


def _too_long(label: str, seconds: float, limit: float) -> AudioTooLong:
    return AudioTooLong(f"{label}: {seconds:.1f} s of audio, longer than the limit of {limit:g} s "
                        "(setting max_audio_seconds)")


def read_wav(source: Path | str | bytes, *, name: str | None = None, max_seconds: float | None = None) -> Pcm:
    """Read a RIFF WAVE file (a path or its bytes) into mono 16-bit :class:`Pcm`.

    Raises :class:`AudioError` whose message starts with the file name (or
    ``name``, for bytes) and says what is wrong: missing, not a WAV file,
    truncated, an unsupported encoding, inconsistent headers.  With
    ``max_seconds``, audio longer than that is refused with
    :class:`AudioTooLong` from its headers, before the samples are read (from
    a file) or decoded.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "<audio bytes>"
    else:
        label = name or str(Path(source))
    if max_seconds is not None:
        declared = wav_duration(source)
        if declared is not None and declared > max_seconds:
            raise _too_long(label, declared, max_seconds)
    if isinstance(source, bytes | bytearray | memoryview):
        blob = bytes(source)
    else:
        path = Path(source)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise AudioError(f"{label}: no such file") from None
        except IsADirectoryError:
            raise AudioError(f"{label}: is a directory, not a WAV file") from None
        except PermissionError:
            raise AudioError(f"{label}: permission denied") from None
        except OSError as exc:
            raise AudioError(f"{label}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        pcm = _parse_wav(blob)
    except AudioError as exc:
        raise AudioError(f"{label}: {exc}") from None
    if max_seconds is not None and pcm.duration_s > max_seconds:  # headers that could not tell
        raise _too_long(label, pcm.duration_s, max_seconds)
    return pcm


def _parse_wav(blob: bytes) -> Pcm:
    if len(blob) == 0:
        raise AudioError("empty file")
    if len(blob) < 12:
        raise AudioError(f"not a WAV file (only {len(blob)} bytes)")
    riff, _riff_size, wave = struct.unpack_from("<4sI4s", blob)
    if riff == b"RIFX":
        raise AudioError("big-endian RIFX WAV is not supported")
    if riff == b"RF64":
        raise AudioError("RF64 (64-bit WAV) is not supported")
    if riff != b"RIFF" or wave != b"WAVE":
        raise AudioError("not a WAV file (no RIFF/WAVE header)")
    fmt: _Format | None = None
    data: bytes | None = None
    offset = 12
    while offset < len(blob) and (fmt is None or data is None):
        if len(blob) - offset < 8:
            raise AudioError(f"truncated chunk header at byte {offset}")
        chunk_id, size = struct.unpack_from("<4sI", blob, offset)
        body_start = offset + 8
        remaining = len(blob) - body_start
        if chunk_id == b"data":
            if size == _STREAMING_SIZE:
                size = remaining
            elif size > remaining:
                raise AudioError(f"truncated: the data chunk declares {size} bytes but only {remaining} are present")
            data = blob[body_start : body_start + size]
        elif chunk_id == b"fmt ":
            if size > remaining:
                raise AudioError(f"truncated fmt chunk ({size} bytes declared, {remaining} present)")
            fmt = _parse_fmt(blob[body_start : body_start + size])
        elif size > remaining:
            printable = chunk_id.decode("latin-1") if chunk_id.isascii() else repr(chunk_id)
            raise AudioError(f"truncated {printable!r} chunk at byte {offset}")
        offset = body_start + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise AudioError("no fmt chunk (not a valid WAV file)")
    if data is None:
        raise AudioError("no data chunk")
    if len(data) % fmt.block_align:
        raise AudioError(f"truncated: the data chunk holds {len(data)} bytes, not a whole number of "
                         f"{fmt.block_align}-byte frames")
    frames = _decode_frames(fmt, data)
    mono = frames[:, 0] if fmt.channels == 1 else frames.mean(axis=1)
    return Pcm(_to_int16(mono), fmt.rate)


# --- resampling -------------------------------------------------------------------

_ZERO_CROSSINGS = 16  # half-width of the sinc, in zero crossings of the cut-off
_ROLLOFF = 0.92  # cut-off as a fraction of the lower Nyquist frequency
_KAISER_BETA = 8.6  # about 80 dB stop-band attenuation
_MAX_TABLE_PHASES = 4096
_BLOCK = 16384  # output samples computed per block (bounds the memory of the gather)


def _kernel(distance: np.ndarray, cutoff: float, half_width: float) -> np.ndarray:
    """Kaiser-windowed sinc at ``distance`` input samples from the output instant."""
    z = np.clip(distance / half_width, -1.0, 1.0)
    window = np.i0(_KAISER_BETA * np.sqrt(1.0 - z * z)) / np.i0(_KAISER_BETA)
    window[np.abs(distance) > half_width] = 0.0
    return cutoff * np.sinc(cutoff * distance) * window


def _weights(fractions: np.ndarray, taps: int, cutoff: float, half_width: float) -> np.ndarray:
    reach = taps // 2
    offsets = (reach - 1) - np.arange(taps)  # distance of tap j from the output instant, before the fraction
    weights = _kernel(fractions[:, None] + offsets[None, :], cutoff, half_width)
    return weights / weights.sum(axis=1, keepdims=True)  # unit gain at DC for every phase


@cache
def _phase_table(up: int, down: int) -> tuple[np.ndarray, int]:
    cutoff = min(1.0, up / down) * _ROLLOFF
    half_width = _ZERO_CROSSINGS / cutoff
    taps = 2 * ceil(half_width)
    table = _weights(np.arange(up) / up, taps, cutoff, half_width)
    table.flags.writeable = False
    return table, taps


def resample(pcm: Pcm, rate: int) -> Pcm:
    """``pcm`` at ``rate`` Hz (band-limited: nothing above the lower Nyquist frequency survives)."""
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be an integer between {MIN_RATE} and {MAX_RATE} Hz")
    if rate == pcm.rate:
        return pcm
    common = gcd(rate, pcm.rate)
    up, down = rate // common, pcm.rate // common
    count = len(pcm.samples) * up // down
    if count == 0:
        return Pcm(np.zeros(0, dtype=np.int16), rate)
    cutoff = min(1.0, up / down) * _ROLLOFF
    half_width = _ZERO_CROSSINGS / cutoff
    table: np.ndarray | None = None
    if up <= _MAX_TABLE_PHASES:
        table, taps = _phase_table(up, down)
    else:  # an awkward ratio (e.g. 44,101 -> 8,000 Hz): weights per block instead of a huge table
        taps = 2 * ceil(half_width)
    reach = taps // 2
    source = np.concatenate([np.zeros(reach), pcm.samples.astype(np.float64), np.zeros(reach + 1)])
    out = np.empty(count, dtype=np.float64)
    steps = np.arange(taps)
    for first in range(0, count, _BLOCK):
        n = np.arange(first, min(count, first + _BLOCK), dtype=np.int64)
        position = n * down
        base = position // up
        phase = position % up
        gathered = source[base[:, None] + 1 + steps[None, :]]
        if table is not None:
            weights = table[phase]
        else:
            weights = _weights(phase / up, taps, cutoff, half_width)
        out[first : first + len(n)] = np.einsum("ij,ij->i", gathered, weights)
    return Pcm(_to_int16(out), rate)


def telephony(pcm: Pcm) -> Pcm:
    """8 kHz mono, what a phone line carries."""
    return resample(pcm, TELEPHONY_RATE)


# --- writing WAV -------------------------------------------------------------------


def wav_bytes(pcm: Pcm, encoding: Encoding = "pcm16") -> bytes:
    """A RIFF WAVE file: 16-bit PCM (``pcm16``) or G.711 mu-law (``mulaw``, with the fact chunk)."""
    if encoding == "pcm16":
        data = pcm.samples.astype("<i2").tobytes()
        fmt = struct.pack("<HHIIHH", _PCM, 1, pcm.rate, pcm.rate * 2, 2, 16)
        chunks = [(b"fmt ", fmt), (b"data", data)]
    elif encoding == "mulaw":
        data = mulaw_encode(pcm.samples)
        fmt = struct.pack("<HHIIHHH", _MULAW, 1, pcm.rate, pcm.rate, 1, 8, 0)
        chunks = [(b"fmt ", fmt), (b"fact", struct.pack("<I", len(pcm.samples))), (b"data", data)]
    else:
        raise ValueError(f"unknown encoding {encoding!r}; use 'pcm16' or 'mulaw'")
    body = b"".join(cid + struct.pack("<I", len(c)) + c + (b"\x00" if len(c) & 1 else b"") for cid, c in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def write_wav(path: Path | str, pcm: Pcm, encoding: Encoding = "pcm16") -> Path:
    """Write ``pcm`` to ``path`` atomically (a temporary file in the same directory, then a rename)."""
    target = Path(path)
    payload = wav_bytes(pcm, encoding)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
