"""The media directory: rendered prompts and call recordings (docs/voice.md).

Layout under ``settings.media_dir`` (``call_turns.audio_ref`` is relative to it)::

    prompts/<sha>.wav                         prompt WAVs rendered by bot.speech (a cache)
    recordings/<session id>/<turn>-<RecordingSid>.wav   what the borrower said

Files are written atomically (a temporary file, then a rename) with mode 0600
in directories of mode 0700: a recording is personal data.  Paths are built
from ids the bot chose or checked (a RecordingSid is ``RE`` + hex), never from
anything a request could use to leave the directory.

:func:`prompt_renderer` keeps one :class:`bot.speech.tts.PromptRenderer` per
prompt directory for the whole process (it runs a worker process); call
:func:`close_renderers` when the process (or a test session) is done.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = [
    "PROMPTS",
    "RECORDINGS",
    "close_renderers",
    "media_root",
    "prompt_file",
    "prompt_renderer",
    "recording_ref",
    "relative_ref",
    "remove_ref",
    "store",
]

PROMPTS = "prompts"
RECORDINGS = "recordings"
_SID_RE = re.compile(r"^[A-Za-z0-9]{2,64}$")
_SHA_RE = re.compile(r"^[0-9a-f]{16,64}$")

_renderers: dict[Path, Any] = {}
_lock = threading.Lock()


def media_root(settings: Any) -> Path:
    """The media directory, absolute (a relative ``media_dir`` is relative to the working directory)."""
    return Path(settings.media_dir).expanduser().resolve()


def prompt_renderer(settings: Any) -> Any:
    """The process's :class:`~bot.speech.tts.PromptRenderer` for this media directory.

    Built with the settings' ``tts_timeout_seconds`` (one bad render is cut off
    after it and the worker restarted); prompts are cached under ``media_dir/prompts``.
    """
    directory = media_root(settings) / PROMPTS
    with _lock:
        renderer = _renderers.get(directory)
        if renderer is None:
            from bot.speech.tts import PromptRenderer

            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            renderer = _renderers[directory] = PromptRenderer.from_settings(settings, cache_dir=directory)
        return renderer


def close_renderers() -> None:
    """Stop every prompt renderer's worker process (idempotent)."""
    with _lock:
        renderers = list(_renderers.values())
        _renderers.clear()
    for renderer in renderers:
        try:
            renderer.close()
        except Exception:  # closing must not raise at exit
            pass


atexit.register(close_renderers)


def prompt_file(settings: Any, sha: str) -> Path | None:
    """The prompt WAV with content hash ``sha``, if it exists (``sha`` is checked first)."""
    if not _SHA_RE.match(sha):
        return None
    directory = media_root(settings) / PROMPTS
    candidate = directory / f"{sha}.wav"
    if candidate.is_file():
        return candidate
    matches = sorted(directory.glob(f"**/{sha}.wav"))  # a renderer that shards its cache
    return matches[0] if matches else None


def relative_ref(settings: Any, path: Path) -> str | None:
    """``path`` relative to the media directory (None when it lies outside it)."""
    try:
        return Path(path).resolve().relative_to(media_root(settings)).as_posix()
    except ValueError:
        return None


def recording_ref(session_id: int, turn: int, recording_sid: str) -> str:
    """Where a recording is kept, relative to the media directory."""
    if not _SID_RE.match(recording_sid):
        raise ValueError("RecordingSid is malformed")
    return f"{RECORDINGS}/{int(session_id)}/{int(turn)}-{recording_sid}.wav"


def store(settings: Any, ref: str, data: bytes) -> Path:
    """Write ``data`` at ``ref`` (relative to the media directory) atomically, mode 0600."""
    root = media_root(settings)
    target = (root / ref).resolve()
    if root not in target.parents:
        raise ValueError("media reference outside the media directory")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def remove_ref(settings: Any, ref: str) -> None:
    root = media_root(settings)
    target = (root / ref).resolve()
    if root in target.parents:
        target.unlink(missing_ok=True)
