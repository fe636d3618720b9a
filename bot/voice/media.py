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
:func:`prune_prompts` deletes prompts unused for ``prompt_retention_days``
(the scheduler of ``bot run`` calls it once a day).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "PROMPTS",
    "RECORDINGS",
    "call_recording_ref",
    "close_renderers",
    "media_root",
    "PruneReport",
    "prune_prompts",
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

log = logging.getLogger("bot.voice.media")
LEFTOVER_SECONDS = 3600  # a render's temporary file older than this belongs to a worker that died

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


@dataclass(frozen=True, slots=True)
class PruneReport:
    removed: int
    kept: int
    freed_bytes: int


def prune_prompts(settings: Any, now: datetime) -> PruneReport:
    """Delete cached prompt WAVs not used for ``settings.prompt_retention_days`` days.

    "Used" is the file's modification time: rendering writes it and every cache
    hit touches it, so a prompt the scripts keep playing stays, while one that
    said a borrower's amount and date goes once its retention has passed (it is
    rendered again if it is ever needed).  The retention is at least a day, far
    longer than a prompt URL in a call's TwiML lives (``media_url_ttl_seconds``).
    Temporary files of a render that died are removed after an hour.  Only
    ``*.wav`` files directly in the prompt directory are touched; file names
    are never logged.
    """
    directory = media_root(settings) / PROMPTS
    if not directory.is_dir():
        return PruneReport(0, 0, 0)
    cutoff = now.timestamp() - int(settings.prompt_retention_days) * 86_400
    leftovers = now.timestamp() - LEFTOVER_SECONDS
    removed = kept = freed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.endswith(".wav") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime >= (leftovers if entry.name.startswith(".") else cutoff):
                    kept += 1
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:  # removed meanwhile (another process pruning)
                continue
            removed += 1
            freed += info.st_size
    if removed:
        log.info("prompt cache: removed %d prompts unused for %d days (%d bytes), kept %d",
                 removed, settings.prompt_retention_days, freed, kept)
    return PruneReport(removed, kept, freed)


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


def call_recording_ref(session_id: int, recording_sid: str) -> str:
    """Where the whole call's (dual-channel) recording is kept, relative to the media directory."""
    if not _SID_RE.match(recording_sid):
        raise ValueError("RecordingSid is malformed")
    return f"{RECORDINGS}/{int(session_id)}/call-{recording_sid}.wav"


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
