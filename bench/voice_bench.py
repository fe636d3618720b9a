"""Voice benchmarks: speech figures (bot.speech) and call turn latency (bot.voice).

    python bench/voice_bench.py [--turns] [--calls 8] [--concurrency 1 4] [--database-url URL]

Speech figures (prompt rendering, model load, recognition speed and accuracy) are
the speech layer's part of this file.  The turn-latency part (:func:`turn_latency`)
measures, through the sandbox, the time from the end of a borrower's recording to the
next TwiML in the sandbox's hands, with 1 and with 4 calls at once, and prints p50/p95.
docs/benchmarks.md and docs/voice.md ("Latency") have the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# --- turn latency (the voice integration) --------------------------------------------------------
#
# From the end of a borrower's recording (the sandbox posts the <Record> action with the
# RecordingUrl) to the next TwiML in hand: the bot's input webhook fetches the recording
# from the sandbox, stores it, recognises it (Vosk, the model loaded once), runs one
# transaction (engine step, turns, effects), renders the next prompts (cached by content)
# and answers.  Calls are placed by the dispatcher's own path (the real voice adapter and
# the official twilio client) at a sandbox with a manual clock; each concurrent call has a
# sandbox (and a thread advancing its clock) of its own, so the bot really serves that many
# calls at once while the sandboxes spend no real time ringing or playing.


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class _TurnClock:
    """Times the sandbox's <Record> action webhooks (recording posted -> TwiML received)."""

    def __init__(self, sandbox: Any, samples: list[float], lock: threading.Lock) -> None:
        self.send = sandbox.webhooks.send
        self.samples = samples
        self.lock = lock

    def __call__(self, **kwargs: Any) -> Any:
        params = dict(kwargs.get("params") or [])
        timed = "RecordingUrl" in params and params.get("Digits") != "hangup"
        started = time.perf_counter()
        result = self.send(**kwargs)
        if timed and getattr(result, "ok", False):
            with self.lock:
                self.samples.append(time.perf_counter() - started)
        return result


def turn_latency(*, calls: int = 8, concurrency: int = 1, database_url: str | None = None,
                 workdir: Path | None = None) -> dict[str, Any]:
    """Place ``calls`` Korean calls (3 spoken answers each), ``concurrency`` at a time; per-turn latency.

    Returns ``{"concurrency", "calls", "turns", "p50_ms", "p95_ms", "max_ms", "outcomes"}``.
    """
    from sqlalchemy import select

    from bot.clock import FixedClock
    from bot.config import load_settings
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.db.models import Borrower, CallSession, Consent, Installment, Loan
    from bot.dispatch.options import DispatchOptions
    from bot.dispatch.voice import place_call
    from bot.sandbox.sandbox import Sandbox
    from bot.sandbox.server import SandboxServer, ThreadedServer
    from bot.voice.service import CallService
    from bot.web.app import create_app
    from bot.web.context import WebContext
    from bot.web.voice import set_service

    at = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 09:30 in Seoul
    own = tempfile.TemporaryDirectory(prefix="voice-bench-") if workdir is None else None
    root = Path(own.name) if own is not None else Path(workdir)  # type: ignore[arg-type]
    clips = _korean_answers(root / "clips")
    db = Database(database_url or f"sqlite:///{root / 'bench.db'}")
    upgrade(db.engine)
    clock = FixedClock(at)
    sandboxes = [Sandbox(clock=FixedClock(at)) for _ in range(concurrency)]
    servers = [SandboxServer(sb).start() for sb in sandboxes]
    app = create_app(load_settings(None), db, clock)
    bot = ThreadedServer(app).start()
    samples: list[float] = []
    lock = threading.Lock()
    for sandbox in sandboxes:
        sandbox.webhooks.send = _TurnClock(sandbox, samples, lock)  # type: ignore[method-assign]
    base = load_settings(None, database_url=db.url, public_base_url=bot.base_url,
                         twilio_api_base_url=servers[0].base_url, media_dir=root / "media",
                         rate_limits_enabled=False)
    service = CallService(base, db, clock, fetch=_loopback_fetch(base))
    context = WebContext(settings=base, db=db, clock=clock)
    app.state.bot = context
    set_service(app, context, service)
    turns = [{"audio": clips["yes"]}, {"audio": clips["friday"]}, {"audio": clips["yes"]}]
    try:
        for n in range(calls):
            with db.session() as s:
                phone = f"+8210555{n:04d}"
                s.add(Borrower(id=f"V{n}", full_name="김민준", phone_e164=phone, email=None, locale="ko-KR",
                               timezone="Asia/Seoul", region=None, country="KR", created_at=at, updated_at=at))
                s.flush()
                s.add(Consent(borrower_id=f"V{n}", channel="voice", address=phone, granted=True, updated_at=at))
                s.add(Loan(id=f"V{n}-L", borrower_id=f"V{n}", product="p", principal_minor=1, currency="KRW",
                           opened_on=date(2026, 1, 1), created_at=at, updated_at=at))
                s.flush()
                s.add(Installment(id=f"V{n}-I", loan_id=f"V{n}-L", due_date=date(2026, 11, 20),
                                  amount_due_minor=150_000, amount_paid_minor=0, created_at=at, updated_at=at))
            sandboxes[n % concurrency].add_phone(phone, call={"turns": turns})
        service.registry.model("ko-KR")  # the model loads before anything is timed
        service.renderer.warm_up()  # and the prompt renderer's worker starts

        def drive(lane: int) -> None:
            settings = base.model_copy(update={"twilio_api_base_url": servers[lane].base_url})
            options = DispatchOptions(rate_limits=False, worker_id=f"bench-{lane}")
            for n in range(lane, calls, concurrency):
                placed = asyncio.run(place_call(db, settings, f"V{n}", clock=clock, options=options))
                if not placed.placed:
                    raise RuntimeError(f"call {n} not placed: {placed.status} {placed.reasons}")
                sandboxes[lane].advance(600)

        threads = [threading.Thread(target=drive, args=(lane,)) for lane in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with db.sessions() as s:
            outcomes = Counter(s.scalars(select(CallSession.outcome)))
    finally:
        service.close()
        bot.stop()
        for server in servers:
            server.stop()
        db.dispose()
        if own is not None:
            own.cleanup()
    return {
        "concurrency": concurrency, "calls": calls, "turns": len(samples),
        "p50_ms": round(_percentile(samples, 50) * 1000, 1), "p95_ms": round(_percentile(samples, 95) * 1000, 1),
        "max_ms": round(max(samples, default=float("nan")) * 1000, 1), "outcomes": dict(outcomes),
    }


def _loopback_fetch(settings: Any) -> Any:
    """The recording download of the call service, for several sandboxes on this machine (ports differ)."""
    import httpx

    client = httpx.Client(trust_env=False, timeout=15.0,
                          auth=(settings.twilio_account_sid, settings.twilio_auth_token))

    def fetch(url: str) -> bytes:
        if not url.startswith("http://127.0.0.1:"):
            raise PermissionError("not a sandbox of this benchmark")
        response = client.get(url)
        response.raise_for_status()
        return response.content

    return fetch


def _korean_answers(folder: Path) -> dict[str, Path]:
    """What the persona says: "yes", "I'll pay on Friday", "yes" (espeak-ng, 8 kHz)."""
    import subprocess

    from bot.speech.audio import read_wav, telephony, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in (("yes", "네"), ("friday", "금요일에 낼게요")):
        raw = folder / f"{name}.raw.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(raw), text], check=True,
                       capture_output=True, timeout=30)
        out[name] = write_wav(folder / f"{name}.wav", telephony(read_wav(raw)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", action="store_true", help="only the turn-latency part")
    parser.add_argument("--calls", type=int, default=8, help="calls per concurrency level (3 spoken turns each)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args(argv)
    for level in args.concurrency:
        figures = turn_latency(calls=args.calls, concurrency=level, database_url=args.database_url)
        print(f"turn latency, {level} call(s) at once: {figures['turns']} turns of {figures['calls']} calls, "
              f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms "
              f"(outcomes {figures['outcomes']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
