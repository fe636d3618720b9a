"""Errors of the speech layer (docs/speech.md).

Messages name the file, locale, voice or setting and what is wrong; they never
contain what was said or the text of a prompt.
"""

from __future__ import annotations

from bot.errors import BotError, InputFileError

__all__ = ["AudioError", "AudioTooLong", "NoModelError", "SpeechError", "TtsError"]


class SpeechError(BotError):
    """Base of the speech layer's deliberate errors."""


class AudioError(SpeechError, InputFileError):
    """An audio file or buffer that cannot be read: missing, corrupt, truncated or an unsupported encoding."""


class AudioTooLong(AudioError):
    """Audio longer than the ``max_audio_seconds`` limit, refused from its header before decoding."""


class NoModelError(SpeechError):
    """No speech-recognition model is configured (or present) for a locale; the caller falls back to the keypad."""


class TtsError(SpeechError):
    """A prompt could not be rendered (unknown voice, worker hang or crash, output that failed verification)."""
