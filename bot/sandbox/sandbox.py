"""The sandbox itself: records, personas, faults and the clock, with a Python API.

A :class:`Sandbox` is plain Python; :class:`bot.sandbox.server.SandboxServer`
puts it behind HTTP.  Tests drive time explicitly::

    sb = Sandbox()                      # manual clock (a FixedClock)
    sb.add_number("+15005550006", sms_url=receiver.url("/sms"))
    sb.add_phone("+15551230001", replies=["PAID"], reply_after=30)
    ... the bot sends an SMS through the REST API ...
    sb.advance(3)                       # queued -> sent -> delivered callbacks fire now
    sb.advance(30)                      # the phone's reply is posted to sms_url now

In real-time mode (``Sandbox(realtime=True)``, what ``bot sandbox`` uses)
a background thread fires events when they fall due on the system clock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, FixedClock, SystemClock
from bot.sandbox.config import E164, AccountConfig, NumberConfig, PhoneConfig, SandboxConfig
from bot.sandbox.errors import SandboxError
from bot.sandbox.events import Event, EventQueue
from bot.sandbox.faults import Faults, Latency
from bot.sandbox.messaging import InboundResult, Messaging
from bot.sandbox.phones import PhoneBook, Persona
from bot.sandbox.state import Account, Call, Message, OwnedNumber, Recording, Store
from bot.sandbox.voice import Voice
from bot.sandbox.webhooks import WebhookAttempt, WebhookPolicy, WebhookRefused, WebhookSender

log = logging.getLogger("bot.sandbox")

#: events one advance()/run_pending() may fire before it suspects a loop (bot and phone replying forever)
MAX_EVENTS_PER_RUN = 10_000


class Sandbox:
    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Clock | None = None,
        realtime: bool = False,
    ) -> None:
        self.initial_config = config or SandboxConfig()
        self.config = self.initial_config.model_copy(deep=True)
        self.realtime = realtime
        self.clock: Clock = clock or (SystemClock() if realtime else FixedClock())
        self.store = Store()
        self.phones = PhoneBook()
        self.faults = Faults()
        self.latency = Latency()
        self.events = EventQueue()
        self.webhooks = WebhookSender()
        self.messaging = Messaging(self)
        self.voice = Voice(self)
        #: where the sandbox's REST API is reached (``RecordingUrl``s point here); set by
        #: :class:`~bot.sandbox.server.SandboxServer`, else taken from the first REST request
        self.base_url: str | None = None
        self._firing = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.apply_config(self.config)

    # --- configuration -----------------------------------------------------------

    def apply_config(self, config: SandboxConfig) -> None:
        """Make *config* the sandbox's configuration (accounts, numbers, phones, faults, timing, latency).

        Everything is checked before anything changes, so a refused webhook
        URL leaves the previous configuration in place.
        """
        policy = WebhookPolicy(frozenset(h.lower() for h in config.allowed_webhook_hosts))
        for index, number in enumerate(config.numbers):
            for name in ("sms_url", "voice_url"):
                url = getattr(number, name)
                if url and not policy.allows(url):
                    raise SandboxError(f"numbers.{index}.{name}: the host is not loopback and not allowed")
        with self.store.lock:
            self.config = config.model_copy(deep=True)
            self.webhooks.policy = policy
            self.store.accounts.clear()
            self.store.numbers.clear()
            self.phones.clear()
            for account in config.accounts:
                self._put_account(account)
            for number in config.numbers:
                self._put_number(number)
            for phone in config.phones:
                self.phones.add(phone.match, phone.persona())
            self.faults.apply(config.faults)
            self.latency.apply(config.latency)

    def reset(self) -> None:
        """Forget every message, call, event, opt-out, webhook and fault; restore the initial configuration."""
        with self._firing, self.store.lock:
            self.events.clear()
            self.store.clear_records()
            self.webhooks.attempts.clear()
            self.apply_config(self.initial_config)

    def add_account(self, sid: str, auth_token: str, api_keys: dict[str, str] | None = None) -> None:
        self._put_account(AccountConfig(sid=sid, auth_token=auth_token, api_keys=api_keys or {}))

    def _put_account(self, account: AccountConfig) -> None:
        with self.store.lock:
            self.store.accounts[account.sid] = Account(account.sid, account.auth_token, dict(account.api_keys))

    def add_number(
        self,
        number: str,
        *,
        account_sid: str | None = None,
        sms_url: str | None = None,
        sms_method: str = "POST",
        voice_url: str | None = None,
        voice_method: str = "POST",
    ) -> OwnedNumber:
        """Give an account a number (replacing its configuration if it exists)."""
        with self.store.lock:
            config = NumberConfig(
                number=number,
                account_sid=account_sid or next(iter(self.store.accounts)),
                sms_url=sms_url,
                sms_method=sms_method.upper(),  # type: ignore[arg-type]
                voice_url=voice_url,
                voice_method=voice_method.upper(),  # type: ignore[arg-type]
            )
            return self._put_number(config)

    def _put_number(self, config: NumberConfig) -> OwnedNumber:
        for name in ("sms_url", "voice_url"):
            url = getattr(config, name)
            if url:
                try:
                    self.webhooks.policy.check(url)
                except WebhookRefused as exc:
                    raise SandboxError(f"number {name}: {exc}") from None
        account_sid = config.account_sid or next(iter(self.store.accounts))
        if account_sid not in self.store.accounts:
            raise SandboxError("number account_sid: no such sandbox account")
        existing = self.store.numbers.get(config.number)
        owned = OwnedNumber(
            number=config.number,
            account_sid=account_sid,
            sms_url=config.sms_url,
            sms_method=config.sms_method,
            voice_url=config.voice_url,
            voice_method=config.voice_method,
        )
        if existing is not None:
            owned.sid = existing.sid
        self.store.numbers[config.number] = owned
        return owned

    def add_phone(self, match: str, persona: Persona | None = None, **fields: Any) -> Persona:
        """Give a number (``+15551230001``) or pattern (``+1555123*``) a persona.

        Either pass a :class:`Persona` or its fields as keyword arguments:
        ``sb.add_phone("+15551230001", replies=["PAID"], reply_after=30)``.
        """
        if persona is not None and fields:
            raise SandboxError("give a Persona or its fields, not both")
        key = "pattern" if any(ch in match for ch in "*?[") else "number"
        base = persona.model_dump() if persona is not None else fields
        entry = PhoneConfig.model_validate({**base, key: match})
        chosen = entry.persona()
        for where, path in chosen.call.audio_files():
            if not path.is_file():
                raise SandboxError(f"{where}: no such file {path}")
        self.phones.add(match, chosen)
        return chosen

    # --- time ----------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def schedule(self, delay: float, label: str, action: Callable[[], None]) -> Event:
        return self.events.schedule(self.now() + timedelta(seconds=delay), label, action)

    def run_pending(self) -> int:
        """Fire every event that is due now, in order, in this thread; return how many fired."""
        fired = 0
        with self._firing:
            while True:
                event = self.events.pop_due(self.now())
                if event is None:
                    return fired
                fired += 1
                if fired > MAX_EVENTS_PER_RUN:
                    raise SandboxError(f"more than {MAX_EVENTS_PER_RUN} events at one instant: a reply loop?")
                try:
                    event.action()
                except Exception:  # one broken event must not stall the timeline
                    log.exception("sandbox event %r failed", event.label)

    def advance(self, seconds: float) -> int:
        """Move the manual clock forward, firing each event at its own instant; return how many fired."""
        clock = self.clock
        if not isinstance(clock, FixedClock):
            raise SandboxError("advance() needs the manual clock (a FixedClock); this sandbox runs in real time")
        if seconds < 0:
            raise SandboxError("advance() cannot go back in time")
        target = clock.now() + timedelta(seconds=seconds)
        fired = 0
        with self._firing:
            fired += self.run_pending()
            while (due := self.events.next_due()) is not None and due <= target:
                if due > clock.now():
                    clock.set(due)
                fired += self.run_pending()
            clock.set(target)
            fired += self.run_pending()
        return fired

    # --- real-time mode ---------------------------------------------------------------

    def start(self) -> None:
        """Fire events in a background thread as they fall due (real-time mode)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_realtime, name="sandbox-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self.events.wake()
        self._thread.join(timeout=30)
        self._thread = None

    def close(self) -> None:
        self.stop()
        self.webhooks.close()

    def _run_realtime(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pending()
            except SandboxError:
                log.exception("sandbox event loop")
            due = self.events.next_due()
            wait = 0.5 if due is None else (due - self.now()).total_seconds()
            if wait > 0:
                self.events.wait(min(wait, 0.5))

    # --- simulated phones ------------------------------------------------------------

    def send_sms(
        self,
        from_: str,
        to: str,
        body: str,
        *,
        media_urls: list[str] | None = None,
        after: float | None = None,
    ) -> InboundResult | Event:
        """Make a phone text a sandbox number: now (returns what happened) or *after* seconds (returns the event)."""
        if after:
            return self.schedule(after, "sms from a phone", lambda: self.messaging._phone_sends(from_, to, body))
        return self.messaging.receive(from_, to, body, media_urls)

    def is_opted_out(self, sender: str, phone: str) -> bool:
        with self.store.lock:
            state = self.store.opt_outs.get((sender, phone))
            return self.phones.persona(phone).opted_out if state is None else state

    # --- looking at what happened -----------------------------------------------------

    def messages(self, phone: str | None = None, *, direction: str | None = None) -> list[Message]:
        """Messages to or from *phone* (all when None), oldest first; ``direction`` narrows them."""
        with self.store.lock:
            found = [
                dataclasses.replace(m)
                for m in self.store.messages.values()
                if (phone is None or phone in (m.to, m.from_)) and (direction is None or m.direction == direction)
            ]
        return sorted(found, key=lambda m: (m.date_created, m.seq))

    def messages_to(self, phone: str) -> list[Message]:
        """Everything sent to a phone (by the REST API, TwiML replies or automatic confirmations)."""
        return [m for m in self.messages(phone) if m.to == phone and m.direction != "inbound"]

    def message(self, sid: str) -> Message:
        with self.store.lock:
            if sid not in self.store.messages:
                raise SandboxError(f"no message {sid}")
            return dataclasses.replace(self.store.messages[sid])

    def calls(self, phone: str | None = None) -> list[Call]:
        with self.store.lock:
            found = [_snapshot(c) for c in self.store.calls.values() if phone is None or phone in (c.to, c.from_)]
        return sorted(found, key=lambda c: (c.date_created, c.seq))

    def call(self, sid: str) -> Call:
        """A copy of the call: status, ``twiml_log``, ``spoken``, ``events``, ``recording_sids``."""
        with self.store.lock:
            if sid not in self.store.calls:
                raise SandboxError(f"no call {sid}")
            return _snapshot(self.store.calls[sid])

    def recordings(self, call_sid: str | None = None) -> list[Recording]:
        """Recordings made by ``<Record>`` (of one call when *call_sid* is given), oldest first."""
        with self.store.lock:
            found = [r for r in self.store.recordings.values() if call_sid is None or r.call_sid == call_sid]
        return sorted(found, key=lambda r: (r.date_created, r.seq))

    def recording(self, sid: str) -> Recording:
        with self.store.lock:
            if sid not in self.store.recordings:
                raise SandboxError(f"no recording {sid}")
            return self.store.recordings[sid]

    def webhook_log(self, kind: str | None = None, sid: str | None = None) -> list[WebhookAttempt]:
        return [a for a in list(self.webhooks.attempts) if (kind is None or a.kind == kind) and (sid is None or a.sid == sid)]

    def auth_token(self, account_sid: str) -> str:
        with self.store.lock:
            account = self.store.accounts.get(account_sid)
            if account is None:
                raise SandboxError("no such sandbox account")
            return account.auth_token

    @property
    def default_account(self) -> Account:
        with self.store.lock:
            return next(iter(self.store.accounts.values()))

    @staticmethod
    def valid_number(number: str) -> bool:
        return bool(E164.match(number))


def _snapshot(call: Call) -> Call:
    """A copy of *call* whose lists do not change while the caller looks at them."""
    return dataclasses.replace(
        call,
        twiml_log=list(call.twiml_log),
        spoken=list(call.spoken),
        events=list(call.events),
        recording_sids=list(call.recording_sids),
    )
