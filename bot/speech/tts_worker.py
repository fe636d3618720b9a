"""The text-to-speech worker process (docs/speech.md, "Worker isolation").

:class:`bot.speech.tts.PromptRenderer` runs this file as a separate Python
process (``python -I .../tts_worker.py``) and talks to it over its standard
input and output, one JSON object per line:

    -> {"op": "render", "text": ..., "voice": "ko", "rate": 150, "out": "/cache/.x.raw.wav"}
    <- {"ok": true, "voice_id": "ko"}            or  {"ok": false, "error": "..."}
    -> {"op": "ping"}
    <- {"ok": true, "pid": 1234}

pyttsx3 on espeak-ng is known to fail silently, hang on a repeated
``runAndWait`` and return early in containers; in a process of its own a hang
costs a restart, not the web server.  The renderer enforces the timeout and
verifies the file; this side only renders.

The file imports nothing from ``bot`` so that it can run in isolated mode; a
test may import it and call :func:`serve` with a render function of its own
(one that hangs or crashes) to exercise the renderer's recovery.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

Request = dict[str, Any]
Reply = dict[str, Any]

FINISH_WAIT_S = 120  # the parent's timeout is shorter; this only keeps a stuck worker from waiting forever

_engine: Any = None
_voices: dict[str, str] = {}


def _get_engine() -> Any:
    global _engine
    if _engine is None:
        import pyttsx3

        _engine = pyttsx3.init("espeak")
    return _engine


def resolve_voice(engine: Any, name: str) -> str | None:
    """The espeak-ng voice id for ``name`` (``ko`` -> ``ko``, ``cmn`` -> ``sit/cmn``, ``en-us`` -> ``gmw/en-us``)."""
    if name in _voices:
        return _voices[name]
    wanted = name.lower()
    found: str | None = None
    for voice in engine.getProperty("voices"):
        vid = str(voice.id).lower()
        languages = [str(lang).lower() for lang in (voice.languages or [])]
        if vid == wanted or vid.endswith("/" + wanted):
            found = str(voice.id)
            break
        if found is None and wanted in languages:
            found = str(voice.id)
    if found is not None:
        _voices[name] = found
    return found


def render(request: Request) -> Reply:
    """Render ``request["text"]`` with pyttsx3 into ``request["out"]`` (22,050 Hz mono 16-bit WAV)."""
    engine = _get_engine()
    voice_id = resolve_voice(engine, str(request["voice"]))
    if voice_id is None:
        return {"ok": False, "error": f"voice {request['voice']!r} is not installed in espeak-ng"}
    engine.setProperty("voice", voice_id)
    engine.setProperty("rate", int(request["rate"]))
    engine.setProperty("volume", 1.0)
    # pyttsx3's espeak driver lets runAndWait() return while espeak-ng is still
    # synthesising in its own thread (the queued endLoop runs before the
    # utterance starts), so the file may not exist yet: wait for the driver's
    # "finished-utterance" notification, which comes after the file is written.
    finished = threading.Event()
    token = engine.connect("finished-utterance", lambda **_: finished.set())
    try:
        engine.save_to_file(str(request["text"]), str(request["out"]))
        engine.runAndWait()
        if not finished.wait(FINISH_WAIT_S):
            return {"ok": False, "error": f"espeak-ng did not finish within {FINISH_WAIT_S} s"}
    finally:
        engine.disconnect(token)
    return {"ok": True, "voice_id": voice_id}


def serve(render_fn: Callable[[Request], Reply] = render, *, stdin: BinaryIO | None = None,
          stdout: BinaryIO | None = None) -> None:
    """Answer requests until standard input closes.

    pyttsx3's espeak driver prints to standard output; the protocol keeps a
    private copy of the real stdout and points file descriptor 1 at stderr so
    that nothing else can write into it.
    """
    if stdout is None:
        stdout = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    source = stdin if stdin is not None else sys.stdin.buffer
    for raw in source:
        if not raw.strip():
            continue
        try:
            request = json.loads(raw)
            op = request.get("op")
            if op == "ping":
                reply: Reply = {"ok": True, "pid": os.getpid()}
            elif op == "render":
                reply = render_fn(request)
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # report, keep serving: the parent decides whether to restart
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(reply).encode("ascii") + b"\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
