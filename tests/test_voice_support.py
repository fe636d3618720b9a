"""The voice world of tests/test_voice_*.py: the sandbox and the bot's web app over real HTTP.

* :class:`VoiceWorld` runs, in this process, the Twilio sandbox (manual clock)
  and the bot's ASGI app (uvicorn in a thread), sharing one :class:`FixedClock`.
  Calls are placed by the dispatcher's own path (``bot.dispatch.manual.place_call``
  with the real voice adapter and the official twilio client), the sandbox rings,
  answers as the number's persona says, fetches the bot's signed TwiML webhooks,
  plays the prompts it fetches from the bot, posts keys and recordings back;
  ``world.run()`` moves the sandbox clock until the call is over.
* ``world.prompts`` maps each prompt's content hash to its text (a spy on the
  real prompt renderer), so a test can read what the sandbox's ``call.spoken``
  actually played.

One world serves a test module; each test points it at its own database.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from builders import add_account

from bot.app import build_call_service, create_app
from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.db import Database
from bot.db.models import CallSession, CallTurn, ContactAttempt
from bot.dispatch.options import DispatchOptions
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.server import SandboxServer, ThreadedServer
from bot.voice import media
from bot.voice.service import CallService
from bot.http.context import WebContext
from bot.web.voice import set_service


# Tests that follow the call flow once an answer is understood use espeak-ng's voice: the
# acceptance fitted for unknown callers (speech_accept_margin / _confidence, docs/speech.md)
# would turn most synthetic answers into reprompts, so they relax it to the scripts' own
# min_confidence; what the bot acts on is measured in tests/test_speech_heldout.py.
FLOW = {"speech_accept_margin": -100.0, "speech_accept_confidence": 0.5}

#: Tuesday 09:30 in Seoul, Monday 19:30 in New York: inside contact hours for both.
AT = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
OUR_NUMBER = "+15005550006"
_numbers = itertools.count(1)


class SpyRenderer:
    """The real prompt renderer, remembering which text each content hash is."""

    def __init__(self, renderer: Any, seen: dict[str, str]) -> None:
        self.renderer = renderer
        self.seen = seen

    def render(self, text: str, locale: str) -> Any:
        rendered = self.renderer.render(text, locale)
        self.seen[rendered.sha] = text
        return rendered

    def key(self, text: str, locale: str) -> str:
        return str(self.renderer.key(text, locale))


class VoiceWorld:
    def __init__(self, media_dir: Path) -> None:
        self.clock = FixedClock(AT)
        self.sandbox = Sandbox(clock=self.clock)
        self.sandbox_server = SandboxServer(self.sandbox)
        self._placeholder = Database("sqlite://")
        self.app = create_app(load_settings(None), self._placeholder, self.clock)
        self.bot_server = ThreadedServer(self.app)
        self.media_dir = media_dir
        self.prompts: dict[str, str] = {}
        self.db: Database | None = None
        self.settings: Settings | None = None
        self.service: CallService | None = None

    def start(self) -> VoiceWorld:
        self.sandbox_server.start()
        self.bot_server.start()
        return self

    def stop(self) -> None:
        if self.service is not None:
            self.service.close()
        self.bot_server.stop()
        self.sandbox_server.stop()
        self._placeholder.dispose()

    # --- per test -----------------------------------------------------------------------

    def use(self, db: Database, *, understand: Any = None, survey: Any = None, **overrides: Any) -> Settings:
        """Point the world at ``db`` with fresh sandbox records; the bot's settings (``survey``: the
        policy's satisfaction survey, None: off)."""
        self.clock.set(AT)
        self.sandbox.reset()
        values: dict[str, Any] = {
            "database_url": db.url, "public_base_url": self.bot_server.base_url,
            "twilio_api_base_url": self.sandbox_server.base_url,
            "twilio_account_sid": self.sandbox.default_account.sid,
            "twilio_auth_token": self.sandbox.auth_token(self.sandbox.default_account.sid),
            "twilio_from_numbers": [OUR_NUMBER], "media_dir": self.media_dir, "rate_limits_enabled": False,
            "lender_phone": "+18005550100",
        }
        values.update(overrides)
        settings = load_settings(None, **values)
        context = WebContext(settings=settings, db=db, clock=self.clock, survey=survey)
        self.app.state.bot = context
        service = build_call_service(context, understand=understand,
                                     renderer=SpyRenderer(media.prompt_renderer(settings), self.prompts))
        set_service(self.app, context, service)
        self.service, self.db, self.settings = service, db, settings
        return settings

    def borrower(self, borrower_id: str, *, locale: str = "en-US", country: str = "US", region: str | None = "NY",
                 timezone: str | None = None, currency: str = "USD", amount: int = 12_345,
                 due: date = date(2026, 11, 20), name: str = "Jane Doe", consent: tuple[str, ...] = ("sms", "voice"),
                 call: dict[str, Any] | None = None) -> str:
        """A borrower with a loan and one overdue installment; its phone gets the ``call`` persona."""
        assert self.db is not None
        phone = f"+1212555{next(_numbers):04d}" if country == "US" else f"+8210555{next(_numbers):04d}"
        add_account(self.db, borrower_id, name=name, phone=phone, email=None, locale=locale, country=country,
                    region=region, timezone=timezone, consent=consent, currency=currency, amount=amount, due=due,
                    installment_id=f"{borrower_id}-I1", at=AT)
        self.sandbox.add_phone(phone, call=call or {})
        return phone

    def place(self, borrower_id: str) -> Any:
        """``bot call``'s path: a manual attempt, checked, composed and placed through the sandbox."""
        from bot.dispatch.manual import place_call

        assert self.db is not None and self.settings is not None
        options = DispatchOptions(rate_limits=False, worker_id="voice-test")
        return asyncio.run(place_call(self.db, self.settings, borrower_id, clock=self.clock, options=options))

    def run(self, seconds: float = 600) -> None:
        """Let the sandbox play the call out (and deliver every callback)."""
        self.sandbox.advance(seconds)

    # --- looking at the result ------------------------------------------------------------

    def session(self, attempt_id: int) -> CallSession:
        assert self.db is not None
        with self.db.sessions() as s:
            found = s.scalar(select(CallSession).where(CallSession.attempt_id == attempt_id))
            assert found is not None
            return found

    def turns(self, session_id: int) -> list[CallTurn]:
        assert self.db is not None
        with self.db.sessions() as s:
            return list(s.scalars(select(CallTurn).where(CallTurn.session_id == session_id).order_by(CallTurn.seq)))

    def attempt(self, attempt_id: int) -> ContactAttempt:
        assert self.db is not None
        with self.db.sessions() as s:
            found = s.get(ContactAttempt, attempt_id)
            assert found is not None
            return found

    def played(self, call_sid: str) -> list[str]:
        """The texts of the prompts the sandbox played on the call, in order (from ``call.spoken``)."""
        out = []
        for item in self.sandbox.call(call_sid).spoken:
            assert item.kind == "play", f"the bot must only <Play> its own prompts, not {item.kind}"
            assert item.valid_wav, "a prompt that is not a valid WAV was played"
            sha = urlsplit(item.url).path.rsplit("/", 1)[-1].removesuffix(".wav")
            out.append(self.prompts[sha])
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceWorld]:
    w = VoiceWorld(tmp_path_factory.mktemp("voice-media")).start()
    try:
        yield w
    finally:
        w.stop()
