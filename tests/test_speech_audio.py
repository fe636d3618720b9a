"""bot.speech.audio: WAV formats in and out, G.711, resampling, and every way a file can be bad."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from bot.errors import BotError, InputFileError
from bot.speech.audio import (
    AudioError,
    AudioTooLong,
    Pcm,
    alaw_decode,
    alaw_encode,
    mulaw_decode,
    mulaw_encode,
    read_wav,
    resample,
    rms,
    telephony,
    wav_bytes,
    wav_duration,
    write_wav,
)


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> Pcm:
    t = np.arange(int(rate * seconds)) / rate
    return Pcm.from_float(amplitude * np.sin(2 * np.pi * freq * t), rate)


def riff(fmt: bytes, data: bytes, *, extra: list[tuple[bytes, bytes]] | None = None, data_size: int | None = None,
         data_first: bool = False) -> bytes:
    """A WAV file assembled by hand, so that the tests control every field."""
    def chunk(cid: bytes, body: bytes, size: int | None = None) -> bytes:
        return cid + struct.pack("<I", len(body) if size is None else size) + body + (b"\0" if len(body) & 1 else b"")

    fmt_chunk = chunk(b"fmt ", fmt)
    data_chunk = chunk(b"data", data, data_size)
    parts = [chunk(cid, body) for cid, body in (extra or [])]
    body = b"".join([*parts, data_chunk, fmt_chunk] if data_first else [fmt_chunk, *parts, data_chunk])
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def fmt_chunk(code: int, channels: int, rate: int, bits: int, *, block_align: int | None = None) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    return struct.pack("<HHIIHH", code, channels, rate, rate * align, align, bits)


def extensible(sub_code: int, channels: int, rate: int, bits: int) -> bytes:
    guid = struct.pack("<H", sub_code) + bytes.fromhex("000000001000800000aa00389b71")
    return fmt_chunk(0xFFFE, channels, rate, bits) + struct.pack("<HHI", 22, bits, 0) + guid


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
def test_pcm16_round_trip_is_exact_at_any_rate(rate: int) -> None:
    pcm = tone(440, rate, 0.25)
    back = read_wav(wav_bytes(pcm))
    assert back.rate == rate
    assert np.array_equal(back.samples, pcm.samples)
    assert back.duration_s == pytest.approx(0.25, abs=1 / rate)


def test_mulaw_round_trip_within_g711_quantisation() -> None:
    pcm = tone(1000, 8000, 0.5, amplitude=0.8)
    blob = wav_bytes(pcm, "mulaw")
    assert struct.unpack_from("<H", blob, 20)[0] == 7  # format tag: mu-law
    assert b"fact" in blob  # non-PCM WAVs carry a fact chunk
    back = read_wav(blob)
    assert back.rate == 8000 and len(back.samples) == len(pcm.samples)
    error = np.abs(back.samples.astype(int) - pcm.samples.astype(int))
    # G.711 keeps about 12-13 bits: the error is a few percent of the value, never more
    assert np.all(error <= 0.035 * np.abs(pcm.samples.astype(int)) + 8)
    assert read_wav(wav_bytes(back, "mulaw")).samples.tolist() == back.samples.tolist()  # idempotent


def test_odd_length_mulaw_data_is_padded_and_read_back() -> None:
    pcm = Pcm(np.array([0, 1000, -1000], dtype=np.int16), 8000)
    blob = wav_bytes(pcm, "mulaw")
    assert len(blob) % 2 == 0
    assert len(read_wav(blob).samples) == 3


def test_g711_reference_values() -> None:
    assert mulaw_decode(bytes([0xFF, 0x00, 0x80, 0x7F])).tolist() == [0, -32124, 32124, 0]
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]
    assert mulaw_encode(np.array([0], dtype=np.int16)) == b"\xff"
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(np.frombuffer(alaw_encode(alaw_decode(codes)), np.uint8), codes)
    kept = codes[codes != 0x7F]  # 0x7F and 0xFF are both zero
    assert np.array_equal(np.frombuffer(mulaw_encode(mulaw_decode(kept)), np.uint8), kept)


def test_alaw_file() -> None:
    pcm = tone(700, 8000, 0.2)
    blob = riff(fmt_chunk(6, 1, 8000, 8) + b"\0\0", alaw_encode(pcm.samples))
    back = read_wav(blob)
    assert np.array_equal(back.samples, alaw_decode(alaw_encode(pcm.samples)))


def test_8_bit_pcm_is_unsigned() -> None:
    blob = riff(fmt_chunk(1, 1, 8000, 8), bytes([128, 255, 0, 192]))
    assert read_wav(blob).samples.tolist() == [0, 32512, -32768, 16384]


def test_24_and_32_bit_pcm_and_float() -> None:
    values = np.array([0.0, 0.5, -0.5, 0.999], dtype=np.float64)
    ints24 = np.round(values * 8388607).astype(np.int32)
    raw24 = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints24)
    ints32 = np.round(values * 2147483647).astype("<i4").tobytes()
    floats = values.astype("<f4").tobytes()
    expected = np.round(values * 32767)
    for blob in (riff(fmt_chunk(1, 1, 16000, 24), raw24), riff(fmt_chunk(1, 1, 16000, 32), ints32),
                 riff(fmt_chunk(3, 1, 16000, 32), floats)):
        assert np.allclose(read_wav(blob).samples, expected, atol=2)


def test_wave_format_extensible_pcm_and_mulaw() -> None:
    pcm = tone(300, 16000, 0.1)
    assert np.array_equal(read_wav(riff(extensible(1, 1, 16000, 16), pcm.samples.tobytes())).samples, pcm.samples)
    codes = mulaw_encode(pcm.samples)
    assert np.array_equal(read_wav(riff(extensible(7, 1, 16000, 8), codes)).samples, mulaw_decode(codes))


def test_stereo_is_averaged_to_mono() -> None:
    left = tone(500, 8000, 0.1).samples.astype(np.int32)
    same = np.stack([left, left], axis=1).astype("<i2").tobytes()
    opposite = np.stack([left, -left], axis=1).astype("<i2").tobytes()
    assert np.array_equal(read_wav(riff(fmt_chunk(1, 2, 8000, 16), same)).samples, left.astype(np.int16))
    assert not read_wav(riff(fmt_chunk(1, 2, 8000, 16), opposite)).samples.any()
    six = np.repeat(left[:, None], 6, axis=1).astype("<i2").tobytes()
    assert read_wav(riff(fmt_chunk(1, 6, 8000, 16), six)).samples.tolist() == left.tolist()


def test_other_chunks_padding_and_order_are_tolerated() -> None:
    pcm = tone(440, 8000, 0.05)
    blob = riff(fmt_chunk(1, 1, 8000, 16), pcm.samples.tobytes(), extra=[(b"LIST", b"INFOabc"), (b"junk", b"x")])
    assert np.array_equal(read_wav(blob).samples, pcm.samples)
    blob = riff(fmt_chunk(1, 1, 8000, 16), pcm.samples.tobytes(), data_first=True)
    assert np.array_equal(read_wav(blob).samples, pcm.samples)


def test_streaming_size_placeholder_reads_to_the_end() -> None:
    pcm = tone(440, 8000, 0.05)
    blob = riff(fmt_chunk(1, 1, 8000, 16), pcm.samples.tobytes(), data_size=0xFFFFFFFF)
    assert np.array_equal(read_wav(blob).samples, pcm.samples)


def test_read_from_path_and_atomic_write(tmp_path: Path) -> None:
    pcm = tone(440, 8000, 0.1)
    target = write_wav(tmp_path / "a.wav", pcm)
    write_wav(target, telephony(tone(880, 16000, 0.2)), "mulaw")  # replaces in place
    assert read_wav(target).duration_s == pytest.approx(0.2)
    assert read_wav(str(target)).rate == 8000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]  # no temporary files left behind


def test_pcm_is_a_read_only_mono_int16_value() -> None:
    pcm = tone(440, 8000, 0.01)
    with pytest.raises(ValueError):
        pcm.samples[0] = 1
    with pytest.raises(ValueError, match="int16"):
        Pcm(np.zeros(10, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="mono"):
        Pcm(np.zeros((10, 2), dtype=np.int16), 8000)
    with pytest.raises(ValueError, match="rate"):
        Pcm(np.zeros(10, dtype=np.int16), 0)
    assert "8000 Hz" in repr(pcm)
    assert rms(Pcm(np.zeros(0, dtype=np.int16), 8000)) == 0.0


def test_wav_bytes_refuses_an_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="encoding"):
        wav_bytes(tone(1, 8000, 0.01), "mp3")  # type: ignore[arg-type]


# --- resampling ---------------------------------------------------------------------------


def _spectrum_peak(pcm: Pcm) -> tuple[float, float]:
    x = pcm.samples[len(pcm.samples) // 8 : -len(pcm.samples) // 8].astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / pcm.rate)[spectrum.argmax()]), float(np.sqrt(np.mean(x * x)))


@pytest.mark.parametrize(("source", "target"), [(22050, 8000), (44100, 8000), (48000, 8000), (16000, 8000),
                                                (8000, 16000), (11025, 8000), (8000, 22050)])
def test_resampling_keeps_frequency_and_level(source: int, target: int) -> None:
    pcm = tone(1000, source, 1.0, amplitude=0.5)
    out = resample(pcm, target)
    assert out.rate == target
    assert abs(len(out.samples) - target) <= 1
    peak, level = _spectrum_peak(out)
    assert peak == pytest.approx(1000, abs=2)
    assert level == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_downsampling_removes_what_the_new_rate_cannot_carry() -> None:
    out = telephony(tone(5000, 22050, 1.0, amplitude=0.5))  # 5 kHz is above the 4 kHz Nyquist of 8 kHz
    assert out.rate == 8000
    # at least 60 dB down away from the edges (where the tone itself starts and stops): no alias at 3 kHz
    assert _spectrum_peak(out)[1] < 0.5 / np.sqrt(2) * 10 ** (-60 / 20)
    band = telephony(tone(3000, 22050, 1.0, amplitude=0.5))  # inside the telephone band: kept
    assert _spectrum_peak(band)[1] == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_resampling_edge_cases() -> None:
    pcm = tone(440, 8000, 0.1)
    assert resample(pcm, 8000) is pcm
    assert len(resample(Pcm(np.zeros(0, dtype=np.int16), 8000), 16000).samples) == 0
    odd = resample(tone(440, 44101, 0.2), 8000)  # an awkward ratio (44101/8000 does not reduce)
    assert odd.rate == 8000 and _spectrum_peak(odd)[0] == pytest.approx(440, abs=5)
    loud = resample(Pcm(np.full(1000, 32767, dtype=np.int16), 16000), 8000)
    assert loud.samples.max() <= 32767  # clipped, not wrapped
    with pytest.raises(ValueError, match="rate"):
        resample(pcm, 7)


# --- bad files --------------------------------------------------------------------------------


GOOD = wav_bytes(tone(440, 8000, 0.05))


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (b"", "empty file"),
        (b"RIFF", "not a WAV file"),
        (b"hello world, this is text" * 4, "not a WAV file"),
        (b"RIFX" + GOOD[4:], "big-endian"),
        (b"RF64" + GOOD[4:], "RF64"),
        (GOOD[:-20], "truncated: the data chunk declares"),
        (GOOD[:40], "truncated"),
        (GOOD[:30], "truncated fmt chunk"),
        (riff(fmt_chunk(1, 1, 8000, 16), b"\x01\x02\x03"), "not a whole number of 2-byte frames"),
        (riff(fmt_chunk(2, 1, 8000, 4), b"\0" * 8), "unsupported encoding Microsoft ADPCM"),
        (riff(fmt_chunk(0x55, 1, 8000, 16), b"\0" * 8), "MP3"),
        (riff(fmt_chunk(1, 1, 8000, 12), b"\0" * 8), "unsupported sample size 12 bits"),
        (riff(fmt_chunk(1, 0, 8000, 16, block_align=0), b"\0" * 8), "0 channels"),
        (riff(fmt_chunk(1, 1, 10, 16), b"\0" * 8), "unsupported sample rate 10 Hz"),
        (riff(fmt_chunk(1, 2, 8000, 16, block_align=2), b"\0" * 8), "block align 2"),
        (riff(b"\x01\x00\x01\x00", b"\0" * 8), "fmt chunk is 4 bytes"),
        (riff(extensible(1, 1, 8000, 16)[:30], b"\0" * 8), "WAVE_FORMAT_EXTENSIBLE fmt chunk is 30 bytes"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
        (b"RIFF" + struct.pack("<I", 28) + b"WAVEfmt " + struct.pack("<I", 16) + fmt_chunk(1, 1, 8000, 16), "no data chunk"),
    ],
)
def test_bad_audio_names_the_file_and_the_problem(tmp_path: Path, blob: bytes, problem: str) -> None:
    path = tmp_path / "answer.wav"
    path.write_bytes(blob)
    with pytest.raises(AudioError) as caught:
        read_wav(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)
    with pytest.raises(AudioError, match=r"^recording RE123: "):
        read_wav(blob, name="recording RE123")


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        read_wav(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is a directory"):
        read_wav(tmp_path)
    with pytest.raises(AudioError, match=r"^<audio bytes>: empty file"):
        read_wav(b"")


# --- the length limit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blob", "seconds"),
    [
        (wav_bytes(Pcm(np.zeros(8000 * 90, dtype=np.int16), 8000)), 90.0),
        (wav_bytes(Pcm(np.zeros(8000 * 90, dtype=np.int16), 8000), "mulaw"), 90.0),
        (riff(fmt_chunk(1, 2, 48000, 16), b"\0" * 4 * 48000 * 2), 2.0),  # stereo: frames, not bytes
        (riff(fmt_chunk(3, 1, 16000, 32), b"\0" * 4 * 16000), 1.0),
        (riff(fmt_chunk(1, 1, 8000, 16), b"\0" * 1600, data_first=True, extra=[(b"LIST", b"x" * 99)]), 0.1),
        (riff(fmt_chunk(1, 1, 8000, 16), b"\0" * 16000, data_size=0xFFFFFFFF), 1.0),  # streaming: to the end
        (riff(fmt_chunk(1, 1, 8000, 16), b"\0" * 16000, data_size=8000 * 2 * 600), 600.0),  # as declared
        (b"not a wav file at all", None),
        (b"RIFF\x04\x00\x00\x00WAVE", None),
    ],
)
def test_wav_duration_reads_the_headers_only(tmp_path: Path, blob: bytes, seconds: float | None) -> None:
    assert wav_duration(blob) == seconds
    path = tmp_path / "answer.wav"
    path.write_bytes(blob)
    assert wav_duration(path) == seconds


def test_audio_longer_than_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "ten-minutes.wav"
    path.write_bytes(wav_bytes(Pcm(np.zeros(8000 * 600, dtype=np.int16), 8000)))
    with pytest.raises(AudioTooLong) as caught:
        read_wav(path, max_seconds=60)
    assert str(caught.value) == f"{path}: 600.0 s of audio, longer than the limit of 60 s (setting max_audio_seconds)"
    assert isinstance(caught.value, AudioError) and isinstance(caught.value, InputFileError)  # exit status 2
    # The header decides, before any sample is read: it declares ten minutes, one second is present.
    declared = riff(fmt_chunk(1, 1, 8000, 16), b"\0" * 16000, data_size=8000 * 2 * 600)
    with pytest.raises(AudioTooLong, match=r"^recording RE1: 600\.0 s of audio, longer than the limit of 60 s"):
        read_wav(declared, name="recording RE1", max_seconds=60)
    with pytest.raises(AudioError, match="truncated"):
        read_wav(declared, name="recording RE1")  # without a limit: read, and found truncated
    # Within the limit (the limit itself included), or without one: read as before.
    assert read_wav(wav_bytes(tone(440, 8000, 2.0)), max_seconds=2).duration_s == 2.0
    assert read_wav(path).duration_s == 600.0


def test_audio_errors_are_input_file_errors() -> None:
    assert issubclass(AudioError, InputFileError) and issubclass(AudioError, BotError)


def test_no_audioop_anywhere_in_the_speech_package() -> None:
    package = Path(__file__).resolve().parent.parent / "bot" / "speech"
    imports = re.compile(r"^\s*(?:import|from)\s+audioop\b|import_module\(.audioop", re.M)
    for source in package.glob("*.py"):
        assert not imports.search(source.read_text(encoding="utf-8")), source.name
