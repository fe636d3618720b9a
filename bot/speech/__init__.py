"""Speech in and out for voice calls (docs/speech.md).

* :mod:`bot.speech.audio` — WAV reading and writing, G.711, resampling (:class:`Pcm`);
* :mod:`bot.speech.tts` — :class:`PromptRenderer`: prompts rendered by espeak-ng in a
  worker process, cached as 8 kHz telephone WAVs;
* :mod:`bot.speech.stt` — :class:`ModelRegistry` (Vosk models per locale, loaded once
  per process) and :class:`Recognizer` (grammar per prompt, free recognition as fallback);
* :func:`understand` — recognise one answer and classify it with :mod:`bot.nlu`.

Names are imported lazily: ``import bot.speech`` costs nothing, and the
text-to-speech worker never loads numpy or Vosk.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.speech.audio import Pcm, read_wav, resample, telephony, wav_bytes, write_wav
    from bot.speech.errors import AudioError, NoModelError, SpeechError, TtsError
    from bot.speech.grammars import grammar_for
    from bot.speech.listen import Heard, understand
    from bot.speech.stt import ModelRegistry, Recognition, Recognizer, recognize
    from bot.speech.tts import PromptRenderer, RenderedPrompt, voice_for

_EXPORTS = {
    "Pcm": "bot.speech.audio",
    "read_wav": "bot.speech.audio",
    "resample": "bot.speech.audio",
    "telephony": "bot.speech.audio",
    "wav_bytes": "bot.speech.audio",
    "write_wav": "bot.speech.audio",
    "AudioError": "bot.speech.errors",
    "NoModelError": "bot.speech.errors",
    "SpeechError": "bot.speech.errors",
    "TtsError": "bot.speech.errors",
    "grammar_for": "bot.speech.grammars",
    "Heard": "bot.speech.listen",
    "understand": "bot.speech.listen",
    "ModelRegistry": "bot.speech.stt",
    "Recognition": "bot.speech.stt",
    "Recognizer": "bot.speech.stt",
    "recognize": "bot.speech.stt",
    "PromptRenderer": "bot.speech.tts",
    "RenderedPrompt": "bot.speech.tts",
    "voice_for": "bot.speech.tts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.speech' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
