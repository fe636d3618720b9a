"""The services a call flow is given (docs/voice.md): speech, prompts, recording storage and the
provider's recording downloads.

:class:`~bot.voice.service.CallService` builds none of them: the composition root
(:func:`bot.app.build_call_service`) builds them once for the app's settings and hands
them over, a test hands over stand-ins (a recogniser, a renderer).

* :class:`SpeechService` -- speech model management: the Vosk models of the settings
  (loaded once, in the background when a call that may speak is answered) and the
  recognition thread pool (recognition must not take every worker thread of the web app);
* :class:`PromptService` -- prompt rendering: the process's
  :class:`bot.speech.tts.PromptRenderer` for the media directory (or the one given);
* :class:`RecordingStore` -- where recordings are kept under the media directory
  (:mod:`bot.voice.media`);
* ``recordings`` -- the provider's recording downloads (``fetch(audio) -> bytes``,
  ``close()``; bot.providers.twilio.client.RecordingDownloader for Twilio).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from bot.channels.events import AudioRef
from bot.voice import media

__all__ = ["CallServices", "PromptService", "RecordingSource", "RecordingStore", "SpeechService"]

log = logging.getLogger("bot.voice.service")


class RecordingSource(Protocol):
    """The provider's recording downloads."""

    def fetch(self, audio: AudioRef) -> bytes:
        """The recording's WAV bytes."""

    def close(self) -> None:
        """Release the connections."""


class SpeechService:
    """Speech recognition for calls: the models of the settings and a thread pool of its own.

    ``understand(pcm, locale, *, expect, today)`` replaces the recogniser (default
    :func:`bot.speech.understand` on the settings' models); ``available(locale)`` replaces
    the question whether a locale has a model.
    """

    def __init__(self, settings: Any, *, understand: Callable[..., Any] | None = None,
                 available: Callable[[str], bool] | None = None) -> None:
        self.settings = settings
        self._understand = understand
        self._available = available
        self._registry: Any = None
        self._executor = ThreadPoolExecutor(settings.voice_recognition_threads, thread_name_prefix="voice-stt")

    @property
    def registry(self) -> Any:
        """The Vosk models of the settings (``vosk_models``, ``BOT_VOSK_MODEL_*``); loaded once."""
        if self._registry is None:
            from bot.speech.stt import ModelRegistry

            self._registry = ModelRegistry(self.settings)
        return self._registry

    def understand(self, pcm: Any, locale: str, *, expect: str | None, today: date) -> Any:
        if self._understand is None:
            from bot.speech.listen import understand
            from bot.speech.stt import Recognizer

            recognizer = Recognizer(self.registry)
            margin, confidence = self.settings.speech_accept_margin, self.settings.speech_accept_confidence
            self._understand = lambda pcm, locale, **kw: understand(pcm, locale, recognizer=recognizer,
                                                                    accept_margin=margin,
                                                                    accept_confidence=confidence, **kw)
        return self._understand(pcm, locale, expect=expect, today=today)

    def available(self, locale: str) -> bool:
        """Whether answers can be spoken in ``locale`` (a model exists); if so, load it in the background now,
        while the first prompts play, so the first answer does not wait for it."""
        try:
            if self._available is not None:
                return bool(self._available(locale))
            available = bool(self.registry.has_model(locale))
        except Exception as exc:  # a broken model configuration: keypad only
            log.warning("speech recognition for %s unavailable (%s): keypad only", locale, type(exc).__name__)
            return False
        if available and self._understand is None:
            self._executor.submit(self._preload, locale)
        return available

    def _preload(self, locale: str) -> None:
        try:
            self.registry.model(locale)
        except Exception as exc:  # the first recognition reports it
            log.warning("speech model for %s did not load (%s)", locale, type(exc).__name__)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the recognition pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class PromptService:
    """Prompt rendering: ``renderer`` (default the process's renderer for the media directory, built
    on first use: it runs a worker process)."""

    def __init__(self, settings: Any, renderer: Any = None) -> None:
        self.settings = settings
        self._renderer = renderer

    @property
    def renderer(self) -> Any:
        if self._renderer is None:
            self._renderer = media.prompt_renderer(self.settings)
        return self._renderer


class RecordingStore:
    """Recordings kept under the media directory (files of mode 0600, :mod:`bot.voice.media`)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def store(self, ref: str, data: bytes) -> Path:
        return media.store(self.settings, ref, data)

    def remove(self, ref: str) -> None:
        media.remove_ref(self.settings, ref)


@dataclass(frozen=True, slots=True)
class CallServices:
    """Everything a :class:`~bot.voice.service.CallService` is given besides settings, database, clock."""

    speech: SpeechService
    prompts: PromptService
    storage: RecordingStore
    recordings: RecordingSource | None = None  # None: recordings cannot be fetched (status checks only)

    @classmethod
    def for_settings(cls, settings: Any, *, recordings: RecordingSource | None = None,
                     understand: Callable[..., Any] | None = None, renderer: Any = None,
                     speech_available: Callable[[str], bool] | None = None) -> CallServices:
        """The services for ``settings``; the keyword arguments replace a default (tests)."""
        return cls(speech=SpeechService(settings, understand=understand, available=speech_available),
                   prompts=PromptService(settings, renderer), storage=RecordingStore(settings),
                   recordings=recordings)

    def fetch(self, audio: AudioRef) -> bytes:
        """A recording's bytes, through the provider."""
        if self.recordings is None:
            raise RuntimeError("no recording source: recordings cannot be fetched")
        return self.recordings.fetch(audio)

    def close(self) -> None:
        self.speech.close()
        if self.recordings is not None:
            self.recordings.close()
