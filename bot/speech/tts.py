"""Voice prompts: text -> 8 kHz telephone WAV, rendered once and cached (docs/speech.md).

:class:`PromptRenderer` renders with pyttsx3 driving espeak-ng **in a worker
process** (:mod:`bot.speech.tts_worker`): each render has a timeout; a worker
that hangs, crashes or produces a bad file is killed and replaced, and the
render is tried once more before :class:`TtsError` is raised.  Every output
is verified (exists, non-empty, a readable WAV, a plausible duration for the
text, not silence) and converted to 8 kHz mono 16-bit PCM.

Files are cached by a content hash of (text, voice, rate, renderer version,
output format) in the cache directory and written atomically, so a prompt
that every call says ("This call may be recorded") is rendered once, and a
crash can never leave half a file behind.  Per-call text (names, amounts,
dates) is rendered on demand the same way.  Thread-safe: the web app renders
from several requests at once; cache hits never wait for the worker.

The text of a prompt may contain personal data (initials, amounts): it is
never logged and never part of an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import unicodedata
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.speech.audio import TELEPHONY_RATE, AudioError, Pcm, read_wav, rms, telephony, write_wav
from bot.speech.errors import TtsError

__all__ = ["RENDERER_VERSION", "VOICES", "PromptRenderer", "RenderedPrompt", "TtsError", "voice_for"]

log = logging.getLogger("bot.speech.tts")

# Part of every cache key: bump it when rendering changes (voice settings, resampler, format).
RENDERER_VERSION = 1
OUTPUT_FORMAT = "wav/pcm16/8000/mono"
MAX_TEXT_CHARS = 2000
DEFAULT_RATE_WPM = 150  # a little slower than espeak's 175: clearer on a phone line
WORKER_RECYCLE_AFTER = 500  # renders; a long-lived espeak engine is a known source of hangs

# espeak-ng voices per locale: exact tag first, then the language.
VOICES: dict[str, str] = {
    "en-US": "en-us",
    "en-GB": "en-gb-x-rp",
    "zh-CN": "cmn",
    "zh-TW": "cmn",
    "zh-HK": "yue",
    "ko-KR": "ko",
    "es-US": "es-419",
    "es-MX": "es-419",
    "es-ES": "es",
    "en": "en-us",
    "zh": "cmn",
    "ko": "ko",
    "es": "es-419",
}


def voice_for(locale: str) -> str:
    """The espeak-ng voice for a BCP 47 locale (``en-US`` -> ``en-us``, ``zh-CN`` -> ``cmn``, ``ko-KR`` -> ``ko``).

    Raises ValueError for a locale without a voice.
    """
    tag = str(locale).strip().replace("_", "-")
    parts = tag.split("-")
    if len(parts) >= 2:
        exact = f"{parts[0].lower()}-{parts[-1].upper()}"
        if exact in VOICES:
            return VOICES[exact]
    language = parts[0].lower()
    if language in VOICES:
        return VOICES[language]
    raise ValueError(f"no text-to-speech voice for locale {locale!r}; voices exist for "
                     + ", ".join(sorted(k for k in VOICES if "-" in k)))


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A rendered prompt: an 8 kHz mono 16-bit WAV at ``path``, named by its content hash ``sha``."""

    path: Path
    sha: str
    duration_s: float
    cached: bool


class _WorkerFailure(Exception):
    """The worker hung, died or answered nonsense (internal: triggers a restart)."""


def _default_worker_argv() -> list[str]:
    return [sys.executable, "-I", str(Path(__file__).with_name("tts_worker.py"))]


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


class _WorkerHandle:
    """The current worker process; shared with the finalizer so that it is stopped at exit."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.renders = 0
        self.restarts = 0

    def stop(self) -> None:
        proc, self.proc, self.buffer, self.renders = self.proc, None, b"", 0
        _stop(proc)


class PromptRenderer:
    """Render prompts to cached telephone WAVs; see the module docstring.

    ``timeout_s`` bounds one render (the setting ``tts_timeout_seconds``);
    ``worker_argv`` is the command that runs the worker (tests substitute one
    that hangs or crashes).  Call :meth:`close` (or use ``with``) to stop the
    worker; it is also stopped when the renderer is garbage-collected and at exit.
    """

    def __init__(
        self,
        cache_dir: Path | str,
        *,
        timeout_s: float = 10.0,
        rate_wpm: int = DEFAULT_RATE_WPM,
        worker_argv: Sequence[str] | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError("timeout_s must be positive")
        if not 80 <= rate_wpm <= 450:
            raise ValueError("rate_wpm must be between 80 and 450 words per minute")
        self.cache_dir = Path(cache_dir)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TtsError(f"speech cache directory {self.cache_dir} cannot be created "
                           f"({exc.strerror or type(exc).__name__})") from None
        self.timeout_s = float(timeout_s)
        self.rate_wpm = int(rate_wpm)
        self._argv = list(worker_argv) if worker_argv is not None else _default_worker_argv()
        self._lock = threading.Lock()
        self._worker = _WorkerHandle()
        self._finalizer = weakref.finalize(self, _WorkerHandle.stop, self._worker)
        self.renders = 0  # renders done by the worker (cache misses)
        self.hits = 0

    # --- public API ----------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: object, cache_dir: Path | str | None = None) -> PromptRenderer:
        """A renderer with the settings' ``speech_cache_dir`` (or ``cache_dir``) and ``tts_timeout_seconds``."""
        directory = cache_dir if cache_dir is not None else getattr(settings, "speech_cache_dir")
        return cls(directory, timeout_s=float(getattr(settings, "tts_timeout_seconds")))

    voice_for = staticmethod(voice_for)

    def key(self, text: str, locale: str) -> str:
        """The cache key (sha256 hex) of ``text`` said in ``locale``."""
        return self._key(self._clean(text), voice_for(locale))

    def render(self, text: str, locale: str) -> RenderedPrompt:
        """The prompt ``text`` in the voice for ``locale``, from the cache or rendered now.

        Raises ValueError for empty or over-long text or a locale without a
        voice, and :class:`TtsError` when rendering fails twice.
        """
        clean = self._clean(text)
        voice = voice_for(locale)
        sha = self._key(clean, voice)
        path = self.cache_dir / f"{sha}.wav"
        hit = self._cached(path, sha)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._cached(path, sha)  # another thread may have rendered it meanwhile
            if hit is not None:
                return hit
            pcm = self._render_verified(clean, voice, sha)
            write_wav(path, pcm)
            self.renders += 1
            return RenderedPrompt(path, sha, pcm.duration_s, cached=False)

    def warm_up(self) -> int:
        """Start the worker now (so that the first call does not pay for it); its pid."""
        with self._lock:
            reply = self._exchange({"op": "ping"}, self.timeout_s)
            return int(reply.get("pid", 0))

    @property
    def worker_pid(self) -> int | None:
        proc = self._worker.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def restarts(self) -> int:
        return self._worker.restarts

    def close(self) -> None:
        with self._lock:
            self._worker.stop()

    def __enter__(self) -> PromptRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- cache -----------------------------------------------------------------------

    @staticmethod
    def _clean(text: str) -> str:
        if not isinstance(text, str):
            raise ValueError("prompt text must be a string")
        clean = " ".join(unicodedata.normalize("NFC", text).split())
        if not clean:
            raise ValueError("prompt text is empty")
        if len(clean) > MAX_TEXT_CHARS:
            raise ValueError(f"prompt text is {len(clean)} characters; the limit is {MAX_TEXT_CHARS}")
        return clean

    def _key(self, clean: str, voice: str) -> str:
        material = json.dumps(
            {"text": clean, "voice": voice, "rate": self.rate_wpm, "version": RENDERER_VERSION,
             "format": OUTPUT_FORMAT},
            ensure_ascii=False, sort_keys=True,
        )
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def _cached(self, path: Path, sha: str) -> RenderedPrompt | None:
        if not path.is_file():
            return None
        try:
            pcm = read_wav(path)
        except AudioError:
            log.warning("speech cache: %s is unreadable; rendering it again", path.name)
            return None
        if pcm.rate != TELEPHONY_RATE or not len(pcm.samples):
            return None
        try:  # a prompt in use stays in the cache: retention counts from the last use (bot.voice.media)
            os.utime(path)
        except OSError:
            pass
        self.hits += 1
        return RenderedPrompt(path, sha, pcm.duration_s, cached=True)

    # --- rendering --------------------------------------------------------------------

    def _render_verified(self, clean: str, voice: str, sha: str) -> Pcm:
        raw = self.cache_dir / f".{sha}.{os.getpid()}.raw.wav"
        request = {"op": "render", "text": clean, "voice": voice, "rate": self.rate_wpm, "out": str(raw)}
        problem = ""
        try:
            for attempt in (1, 2):
                raw.unlink(missing_ok=True)
                started = time.perf_counter()
                try:
                    reply = self._exchange(request, self.timeout_s)
                except _WorkerFailure as exc:
                    problem = str(exc)
                    log.warning("tts worker failed (voice %s, attempt %d): %s; restarting it", voice, attempt, problem)
                    self._restart()
                    continue
                if not reply.get("ok"):
                    # the worker is alive and says why (e.g. an unknown voice): no point retrying
                    raise TtsError(f"voice {voice}: rendering failed: {reply.get('error', 'no reason given')}")
                try:
                    pcm = self._verify(raw, clean)
                except TtsError as exc:
                    problem = str(exc)
                    log.warning("tts output failed verification (voice %s, attempt %d): %s; restarting the worker",
                                voice, attempt, problem)
                    self._restart()
                    continue
                log.debug("rendered a prompt (voice %s, %.2f s audio) in %.0f ms", voice, pcm.duration_s,
                          (time.perf_counter() - started) * 1000)
                return telephony(pcm)
        finally:
            raw.unlink(missing_ok=True)
        raise TtsError(f"voice {voice}: rendering failed twice ({problem})")

    @staticmethod
    def _verify(raw: Path, clean: str) -> Pcm:
        if not raw.is_file():
            raise TtsError("the worker wrote no file")
        if raw.stat().st_size <= 44:
            raise TtsError("the worker wrote an empty file")
        try:
            pcm = read_wav(raw, name="rendered prompt")
        except AudioError as exc:
            raise TtsError(str(exc)) from None
        letters = sum(1 for ch in clean if not ch.isspace())
        shortest = max(0.15, 0.02 * letters)
        longest = 3.0 + 0.5 * letters
        if not shortest <= pcm.duration_s <= longest:
            raise TtsError(f"implausible duration {pcm.duration_s:.2f} s for {letters} characters "
                           f"(expected {shortest:.2f} to {longest:.1f} s)")
        if rms(pcm) < 0.002:
            raise TtsError("the rendered audio is silent")
        return pcm

    # --- the worker process -------------------------------------------------------------

    def _restart(self) -> None:
        self._worker.stop()
        self._worker.restarts += 1

    def _ensure_worker(self) -> subprocess.Popen[bytes]:
        worker = self._worker
        if worker.proc is not None and (worker.proc.poll() is not None or worker.renders >= WORKER_RECYCLE_AFTER):
            worker.stop()
        if worker.proc is None:
            try:
                worker.proc = subprocess.Popen(
                    self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    close_fds=True,
                )
            except OSError as exc:
                raise TtsError(f"cannot start the text-to-speech worker ({exc.strerror or type(exc).__name__})") from None
        return worker.proc

    def _exchange(self, request: dict[str, object], timeout: float) -> dict[str, object]:
        """Send one request and wait at most ``timeout`` seconds for its reply line."""
        worker = self._worker
        proc = self._ensure_worker()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _WorkerFailure(f"the worker exited (status {proc.poll()})") from None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in worker.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerFailure(f"no answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _WorkerFailure(f"the worker exited (status {proc.wait()})")
            worker.buffer += chunk
        line, _, worker.buffer = worker.buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            raise _WorkerFailure("the worker answered something that is not JSON") from None
        if not isinstance(reply, dict):
            raise _WorkerFailure("the worker answered something that is not a JSON object")
        if request.get("op") == "render":
            worker.renders += 1
        return reply
