"""Simulated calls: the sandbox executes the bot's voice TwiML against a persona.

When a call is answered, :class:`CallFlows` fetches the call's TwiML (the
signed ``Url`` request, or the inline ``Twiml``) and runs its verbs one by
one on the sandbox timeline, the way Twilio's call engine would:

* ``<Say>`` takes a time estimated from the text (:func:`say_seconds`) and is
  recorded in ``call.spoken`` with its ``language`` and ``voice``.
* ``<Play>`` fetches the URL (a signed GET, like every request the sandbox
  makes), records its sha256, size, content type and whether it is a valid
  WAV file, and takes the time the WAV header says.  A fetch that fails is
  recorded as error 11200 (HTTP retrieval failure), a body that is not audio
  as 12300 (invalid content type), and the verb is skipped, as Twilio does.
* ``<Gather>`` plays its nested ``<Say>``/``<Play>``/``<Pause>``, then takes
  the persona's next turn: keys (``Digits``) or speech text
  (``SpeechResult``) are posted to ``action``; with no input it falls
  through to the next verb (or posts an empty result with
  ``actionOnEmptyResult``).
* ``<Record>`` beeps, then takes the persona's next turn: an audio clip
  becomes a Recording resource and ``RecordingUrl``, ``RecordingSid``,
  ``RecordingDuration`` (and ``Digits`` = the key or ``hangup`` that ended
  it) are posted to ``action``.  An empty recording (silence, or a key
  pressed before anything was said) posts nothing and the flow goes on with
  the next verb: Twilio's documented exception.
* ``<Pause>`` waits, ``<Redirect>`` fetches a new document (at most
  :data:`MAX_REDIRECTS` per call), ``<Hangup>`` and the end of a document end
  the call.

A persona's ``call.turns`` answer the ``<Gather>``/``<Record>`` verbs in
order.  A turn waits for a verb that can take it (keys for a DTMF gather or
a record's ``finishOnKey``, audio for a record, speech text for a speech
gather); a verb that cannot take the next turn hears silence.  When the
turns run out the person stays silent and the bot decides what to do.

Everything the bot did and the persona answered is in ``call.spoken``
(:class:`Spoken`) and ``call.events`` (:class:`CallEvent`); TwiML the
sandbox cannot execute ends the call with error 12100 (an ``error`` event),
never with an exception in the sandbox.

Every step is an event on the sandbox timeline, so with the manual clock a
test moves through a call with ``advance()``; in real time the
``sandbox-events`` thread runs it.  Requests to the bot are sent with the
store lock released, and each step checks that the call is still live and
that its flow was not replaced (by a REST redirect) while it waited.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from bot.sandbox.audio import BORROWER_CHANNEL, BOT_CHANNEL, clip_seconds, mixdown, wav_info
from bot.sandbox.phones import CallTurn
from bot.sandbox.resources import rfc2822
from bot.sandbox.state import Call, Recording, new_sid
from bot.sandbox.voice_twiml import (
    Gather,
    Hangup,
    Pause,
    Play,
    Record,
    Redirect,
    Say,
    Unsupported,
    Verb,
    VoiceTwimlError,
    parse_voice,
)
from bot.sandbox.webhooks import WebhookAttempt

if TYPE_CHECKING:
    from bot.sandbox.host import CallEnds, Host

log = logging.getLogger("bot.sandbox.callflow")

T = TypeVar("T")

#: seconds a person takes to react to a prompt (press a key, start speaking, hang up)
REACTION_SECONDS = 1.0
#: length of the beep ``<Record playBeep="true">`` plays
BEEP_SECONDS = 0.5
#: ``<Redirect>`` verbs one call may follow; more ends the call with an error event
MAX_REDIRECTS = 100
#: largest ``<Play>`` file the sandbox fetches
MAX_MEDIA_BYTES = 16 * 1024 * 1024
#: Twilio's default ``<Say>`` language
DEFAULT_LANGUAGE = "en-US"
#: the ``Confidence`` posted with a speech turn's ``SpeechResult``
SPEECH_CONFIDENCE = "0.9"
#: characters per second for a spoken estimate: alphabetic scripts, and CJK/Hangul
LATIN_CHARS_PER_SECOND = 15.0
CJK_CHARS_PER_SECOND = 5.0

#: Twilio debugger codes the flow records
ERROR_TEXT = {
    11100: "Invalid URL format",
    11200: "HTTP retrieval failure",
    12100: "Document parse failure",
    12300: "Invalid Content-Type",
    13520: "Say: Invalid text",
}


def say_seconds(text: str) -> float:
    """How long ``<Say>`` speaks *text*: ~15 characters a second, 5 for Chinese/Japanese/Korean."""
    cjk = sum(1 for ch in text if _is_cjk(ch))
    other = len(text) - cjk
    return round(max(0.5, other / LATIN_CHARS_PER_SECOND + cjk / CJK_CHARS_PER_SECOND), 2)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x1100 <= code <= 0x11FF  # Hangul Jamo
        or 0x3040 <= code <= 0x30FF  # kana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
    )


@dataclass(frozen=True)
class Spoken:
    """One thing the bot said (``say``) or played (``play``) on a call."""

    kind: str
    at: datetime
    duration_s: float
    text: str | None = None
    language: str | None = None
    voice: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None
    valid_wav: bool | None = None
    loop: int = 1
    #: a prompt nested in a ``<Gather>``
    in_gather: bool = False
    #: a machine answered and this started after its beep: it is on the voicemail
    on_voicemail: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True)
class CallEvent:
    """Something that happened on a call; ``detail`` depends on ``type`` (docs/sandbox.md lists them)."""

    type: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.detail.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "at": self.at.isoformat(), **self.detail}


@dataclass(frozen=True)
class _Listen:
    """Internal marker: the input phase of a ``<Gather>``, after its nested prompts."""

    gather: Gather


@dataclass
class Flow:
    """Where a call is in its TwiML (kept in ``call.extra["flow"]``)."""

    #: bumped when the flow is replaced or ends: steps scheduled before turn into no-ops
    gen: int = 0
    verbs: list[Verb | _Listen] = field(default_factory=list)
    index: int = 0
    #: the URL of the current document (relative URLs, default actions); None for inline TwiML
    doc_url: str | None = None
    turn_index: int = 0
    redirects: int = 0
    #: when a machine's beep sounds (what is said after it lands on the voicemail)
    beep_at: datetime | None = None


class CallFlows:
    """Runs the call flow of every answered call of one sandbox."""

    def __init__(self, sandbox: Host, voice: CallEnds) -> None:
        self.sb = sandbox
        self.voice = voice

    # --- entry points (store lock held) ------------------------------------------------

    def answered(self, call: Call) -> None:
        """The callee picked up: schedule machine detection, the beep, hang-up timers and the first TwiML."""
        behaviour = self.sb.phones.persona(call.to).call
        flow = Flow()
        call.extra["flow"] = flow
        answered_at = call.answered_at or self.sb.now()
        self._event(call, "answered", answered_by=call.answered_by, answer=behaviour.answer)
        sid = call.sid
        if behaviour.answer == "machine":
            flow.beep_at = answered_at + timedelta(seconds=behaviour.greeting_seconds)
            self._while_live(sid, behaviour.greeting_seconds, "machine beep", lambda c: self._event(c, "machine-beep"))
        if behaviour.talk_seconds is not None:
            self._while_live(sid, behaviour.talk_seconds, "callee hangs up", lambda c: self._caller_hangup(c, "talk_seconds"))
        self._while_live(sid, float(call.time_limit), "time limit", self._time_limit)
        delay = 0.0
        if call.machine_detection and not call.async_amd:
            # Synchronous AMD: Twilio requests the TwiML once detection has decided.
            end_of_message = behaviour.answer == "machine" and call.machine_detection == "DetectMessageEnd"
            delay = behaviour.greeting_seconds if end_of_message else behaviour.amd_seconds
        self._later(call, flow, delay, "fetch TwiML", lambda c, f: self._fetch_instructions(c, f, "answer"))

    def redirect(self, call: Call) -> None:
        """New ``Url``/``Twiml`` for an in-progress call (REST update): drop the current flow, fetch the new one."""
        flow = call.extra.get("flow")
        if not isinstance(flow, Flow):
            # Redirected in the instant it was answered, before its flow began: begin it with the new TwiML.
            self.answered(call)
            return
        flow.gen += 1
        flow.verbs, flow.index = [], 0
        self._event(call, "redirect", source="update")
        self._fetch_instructions(call, flow, "update")

    # --- scheduling helpers ---------------------------------------------------------------

    def _current(self, sid: str, gen: int) -> tuple[Call, Flow] | None:
        call = self.sb.store.calls.get(sid)
        if call is None or call.is_final:
            return None
        flow = call.extra.get("flow")
        if not isinstance(flow, Flow) or flow.gen != gen:
            return None
        return call, flow

    def _later(self, call: Call, flow: Flow, delay: float, label: str, step: Callable[[Call, Flow], None]) -> None:
        """Run *step* under the store lock after *delay* seconds, unless the call ended or its flow changed."""
        sid, gen = call.sid, flow.gen

        def run() -> None:
            with self.sb.store.lock:
                current = self._current(sid, gen)
                if current is not None:
                    self._safely(*current, lambda: step(*current))

        self.sb.schedule(delay, f"call {sid} {label}", run)

    def _safely(self, call: Call, flow: Flow, action: Callable[[], None]) -> None:
        """Run one step; a bug in the sandbox ends this call with an error event instead of leaving it hanging."""
        try:
            action()
        except Exception:
            log.exception("call %s: the sandbox's call flow failed", call.sid)
            if not call.is_final:
                self._fail(call, flow, None, "the sandbox's call flow failed (see its log); the call was ended")

    def _io(
        self,
        call: Call,
        flow: Flow,
        label: str,
        request: Callable[[], T],
        then: Callable[[Call, Flow, T], None],
    ) -> None:
        """Send *request* now as its own event without the lock, then continue with *then* under it."""
        sid, gen = call.sid, flow.gen

        def run() -> None:
            with self.sb.store.lock:
                if self._current(sid, gen) is None:
                    return
            try:
                result = request()
            except Exception:
                log.exception("call %s: request of the call flow failed", sid)
                with self.sb.store.lock:
                    current = self._current(sid, gen)
                    if current is not None:
                        self._fail(*current, None, "the sandbox could not send a request (see its log); the call was ended")
                return
            with self.sb.store.lock:
                current = self._current(sid, gen)
                if current is not None:
                    self._safely(*current, lambda: then(*current, result))

        self.sb.schedule(0.0, f"call {sid} {label}", run)

    def _while_live(self, sid: str, delay: float, label: str, step: Callable[[Call], None]) -> None:
        """Run *step* after *delay* if the call is still live (whatever happened to its flow)."""

        def run() -> None:
            with self.sb.store.lock:
                call = self.sb.store.calls.get(sid)
                if call is not None and not call.is_final:
                    step(call)

        self.sb.schedule(delay, f"call {sid} {label}", run)

    # --- records ----------------------------------------------------------------------------

    def _event(self, call: Call, type_: str, **detail: Any) -> CallEvent:
        event = CallEvent(type_, self.sb.now(), {k: v for k, v in detail.items() if v is not None})
        call.events.append(event)
        return event

    def _error(self, call: Call, code: int | None, message: str, **detail: Any) -> None:
        self._event(call, "error", code=code, message=message, **detail)
        log.info("call %s: error %s (%s)", call.sid, code if code is not None else "-", message)

    def _fail(self, call: Call, flow: Flow, code: int | None, message: str, **detail: Any) -> None:
        """An application error: record it and end the call, as Twilio does after its error message."""
        self._error(call, code, message, **detail)
        self._end(call, flow)

    def _end(self, call: Call, flow: Flow | None = None) -> None:
        if flow is not None:
            flow.gen += 1
        self.voice._end(call, "completed")

    def _speak(self, call: Call, flow: Flow, item: Spoken) -> None:
        call.spoken.append(item)
        self._event(call, item.kind, spoken=len(call.spoken) - 1)

    def _on_voicemail(self, flow: Flow) -> bool:
        return flow.beep_at is not None and self.sb.now() >= flow.beep_at

    def _resolve(self, call: Call, flow: Flow, url: str) -> str | None:
        """*url* made absolute against the current document; None (error 11100) when it cannot be."""
        if urlsplit(url).scheme in ("http", "https"):
            return url
        if flow.doc_url is None:
            self._error(call, 11100, "a relative URL in TwiML that has no document URL (inline Twiml)")
            return None
        return urljoin(flow.doc_url, url)

    # --- documents ----------------------------------------------------------------------------

    def _fetch_instructions(self, call: Call, flow: Flow, source: str) -> None:
        twiml, url = call.instructions.get("twiml"), call.instructions.get("url")
        if twiml:
            call.twiml_log.append(twiml)
            self._start_document(call, flow, twiml, None, source)
        elif url:
            method = call.instructions.get("method") or "POST"
            extra: list[tuple[str, str]] = []
            if source == "answer" and call.machine_detection and not call.async_amd and call.answered_at:
                # Synchronous AMD: how long detection took is part of the answer request, as at Twilio.
                waited = (self.sb.now() - call.answered_at).total_seconds()
                extra.append(("MachineDetectionDuration", str(int(round(waited * 1000)))))
            self._fetch_document(call, flow, url, method, extra, source, kind="call-twiml")
        else:
            self._fail(call, flow, None, "ApplicationSid calls are not emulated: give Url or Twiml")

    def _fetch_document(
        self, call: Call, flow: Flow, url: str, method: str, extra: list[tuple[str, str]], source: str, *, kind: str
    ) -> None:
        params = self.voice.call_params(call, "in-progress") + extra
        token = self.sb.auth_token(call.account_sid)
        sid = call.sid

        def request() -> WebhookAttempt:
            return self.sb.webhooks.send(kind=kind, sid=sid, url=url, params=params, auth_token=token, at=self.sb.now(), method=method)

        self._io(call, flow, f"{source} request", request, lambda c, f, attempt: self._load(c, f, attempt, url, source))

    def _load(self, call: Call, flow: Flow, attempt: WebhookAttempt, url: str, source: str) -> None:
        if not attempt.ok:
            reason = attempt.error or f"HTTP {attempt.status_code}"
            self._fail(call, flow, 11200, f"{ERROR_TEXT[11200]}: {reason}", url=url, status_code=attempt.status_code)
            return
        content_type = attempt.content_type.split(";")[0].strip().lower()
        if content_type and "xml" not in content_type:
            self._fail(call, flow, 12300, f"{ERROR_TEXT[12300]}: TwiML must be XML", url=url, content_type=content_type)
            return
        call.twiml_log.append(attempt.response_text)
        self._start_document(call, flow, attempt.response_text, url, source)

    def _start_document(self, call: Call, flow: Flow, text: str, url: str | None, source: str) -> None:
        try:
            verbs = parse_voice(text)
        except VoiceTwimlError as exc:
            self._fail(call, flow, 12100, f"{ERROR_TEXT[12100]}: {exc}", url=url)
            return
        flow.verbs, flow.index, flow.doc_url = list(verbs), 0, url
        self._event(call, "twiml", source=source, url=url, verbs=len(verbs))
        self._step(call, flow)

    # --- verbs --------------------------------------------------------------------------------

    def _step(self, call: Call, flow: Flow) -> None:
        """Execute verbs from ``flow.index`` until one takes time or needs a request."""
        while True:
            if flow.index >= len(flow.verbs):
                self._event(call, "twiml-end")
                self._end(call, flow)
                return
            verb = flow.verbs[flow.index]
            flow.index += 1
            if isinstance(verb, Say):
                if self._say(call, flow, verb):
                    return
            elif isinstance(verb, Play):
                if self._play(call, flow, verb):
                    return
            elif isinstance(verb, Pause):
                self._event(call, "pause", seconds=verb.length)
                if verb.length > 0:
                    self._later(call, flow, float(verb.length), "pause", self._step)
                    return
            elif isinstance(verb, Gather):
                # Its prompts run as ordinary verbs, then the input phase.
                flow.verbs[flow.index : flow.index] = [*verb.children, _Listen(verb)]
            elif isinstance(verb, _Listen):
                self._listen(call, flow, verb.gather)
                return
            elif isinstance(verb, Record):
                self._record(call, flow, verb)
                return
            elif isinstance(verb, Redirect):
                self._redirect(call, flow, verb)
                return
            elif isinstance(verb, Hangup):
                self._event(call, "hangup", by="bot")
                self._end(call, flow)
                return
            elif isinstance(verb, Unsupported):
                self._error(call, None, f"<{verb.tag}> is not emulated by the sandbox; skipped", verb=verb.tag)

    def _say(self, call: Call, flow: Flow, verb: Say) -> bool:
        """Speak (taking time); False when the verb is skipped at once."""
        if not verb.text:
            self._error(call, 13520, f"{ERROR_TEXT[13520]}: empty <Say>")
            return False
        seconds = round(say_seconds(verb.text) * verb.loop, 2)
        self._speak(
            call,
            flow,
            Spoken(
                kind="say",
                at=self.sb.now(),
                duration_s=seconds,
                text=verb.text,
                language=verb.language or DEFAULT_LANGUAGE,
                voice=verb.voice,
                loop=verb.loop,
                in_gather=verb.nested,
                on_voicemail=self._on_voicemail(flow),
            ),
        )
        self._later(call, flow, seconds, "say", self._step)
        return True

    def _play(self, call: Call, flow: Flow, verb: Play) -> bool:
        """Fetch the file (a request of its own); False when the verb is skipped at once."""
        url = self._resolve(call, flow, verb.url)
        if url is None:
            return False
        token, sid = self.sb.auth_token(call.account_sid), call.sid

        def request() -> tuple[WebhookAttempt, bytes | None]:
            return self.sb.webhooks.fetch(kind="call-play", sid=sid, url=url, auth_token=token, at=self.sb.now(), max_bytes=MAX_MEDIA_BYTES)

        self._io(call, flow, "play fetch", request, lambda c, f, result: self._played(c, f, verb, url, *result))
        return True

    def _played(self, call: Call, flow: Flow, verb: Play, url: str, attempt: WebhookAttempt, body: bytes | None) -> None:
        if body is None or not attempt.ok:
            reason = attempt.error or f"HTTP {attempt.status_code}"
            self._error(call, 11200, f"{ERROR_TEXT[11200]}: {reason}", url=url, status_code=attempt.status_code, verb="Play")
            self._step(call, flow)
            return
        content_type = attempt.content_type.split(";")[0].strip().lower()
        if not content_type.startswith("audio/"):
            self._error(call, 12300, f"{ERROR_TEXT[12300]}: <Play> needs audio", url=url, content_type=content_type, verb="Play")
            self._step(call, flow)
            return
        info = wav_info(body)
        seconds = round((info.duration_s if info is not None else clip_seconds(body)) * verb.loop, 2)
        if call.record and call.answered_at is not None:
            at = (self.sb.now() - call.answered_at).total_seconds()
            call.tracks.extend((BOT_CHANNEL, at + i * seconds / verb.loop, body) for i in range(min(verb.loop, 10)))
        self._speak(
            call,
            flow,
            Spoken(
                kind="play",
                at=self.sb.now(),
                duration_s=seconds,
                url=url,
                sha256=hashlib.sha256(body).hexdigest(),
                size=len(body),
                content_type=content_type,
                valid_wav=info is not None,
                loop=verb.loop,
                in_gather=verb.nested,
                on_voicemail=self._on_voicemail(flow),
            ),
        )
        self._later(call, flow, seconds, "play", self._step)

    def _redirect(self, call: Call, flow: Flow, verb: Redirect) -> None:
        flow.redirects += 1
        if flow.redirects > MAX_REDIRECTS:
            self._fail(call, flow, None, f"more than {MAX_REDIRECTS} <Redirect> verbs on one call: a redirect loop?")
            return
        url = self._resolve(call, flow, verb.url)
        if url is None:
            self._end(call, flow)
            return
        self._event(call, "redirect", source="twiml", url=url)
        self._fetch_document(call, flow, url, verb.method, [], "redirect", kind="call-twiml")

    # --- the persona's turns --------------------------------------------------------------------

    def _turn(self, call: Call, flow: Flow) -> CallTurn | None:
        """The person's next turn (machines and people out of turns are silent)."""
        behaviour = self.sb.phones.persona(call.to).call
        if behaviour.answer != "human" or flow.turn_index >= len(behaviour.turns):
            return None
        return behaviour.turns[flow.turn_index]

    def _listen(self, call: Call, flow: Flow, gather: Gather) -> None:
        self._event(
            call,
            "gather",
            input=" ".join(sorted(gather.input)),
            num_digits=gather.num_digits,
            timeout=gather.timeout,
            finish_on_key=gather.finish_on_key,
        )
        turn = self._turn(call, flow)
        kind = turn.kind if turn is not None else "silence"
        if turn is not None and kind == "hangup":
            flow.turn_index += 1
            self._later(call, flow, REACTION_SECONDS, "caller hangs up", lambda c, f: self._caller_hangup(c, "turn"))
            return
        if turn is not None and turn.digits is not None and "dtmf" in gather.input:
            flow.turn_index += 1
            digits, finished_on = _collect(turn.digits, gather)
            complete = finished_on is not None or (gather.num_digits is not None and len(digits) >= gather.num_digits)
            wait = REACTION_SECONDS + (0 if complete else gather.timeout)
            if not digits:
                self._later(call, flow, wait, "gather: no input", lambda c, f: self._no_input(c, f, gather))
                return
            params = [("Digits", digits), ("FinishedOnKey", finished_on or "")]
            self._later(
                call,
                flow,
                wait,
                "gather: digits",
                lambda c, f: self._gathered(c, f, gather, params, "digits", digits=digits, finished_on_key=finished_on),
            )
            return
        if turn is not None and turn.speech is not None and "speech" in gather.input:
            flow.turn_index += 1
            text = turn.speech
            pause = 1.0 if gather.speech_timeout in (None, "auto") else float(gather.speech_timeout)
            wait = REACTION_SECONDS + say_seconds(text) + pause
            params = [("SpeechResult", text), ("Confidence", SPEECH_CONFIDENCE)]
            self._later(call, flow, wait, "gather: speech", lambda c, f: self._gathered(c, f, gather, params, "speech", text=text))
            return
        if turn is not None and kind == "silence":
            flow.turn_index += 1
        elif turn is not None:
            self._event(call, "turn-waits", turn=flow.turn_index, kind=kind, verb="Gather")
        self._later(call, flow, float(gather.timeout), "gather: timeout", lambda c, f: self._no_input(c, f, gather))

    def _gathered(
        self, call: Call, flow: Flow, gather: Gather, params: list[tuple[str, str]], kind: str, **detail: Any
    ) -> None:
        self._event(call, f"{kind}-sent", **detail)
        self._post_action(call, flow, gather.action, gather.method, params, "gather")

    def _no_input(self, call: Call, flow: Flow, gather: Gather) -> None:
        self._event(call, "gather-timeout")
        if gather.action_on_empty_result:
            self._post_action(call, flow, gather.action, gather.method, [], "gather")
        else:
            self._step(call, flow)

    def _record(self, call: Call, flow: Flow, record: Record) -> None:
        self._event(
            call,
            "record",
            timeout=record.timeout,
            max_length=record.max_length,
            finish_on_key=record.finish_on_key,
            play_beep=record.play_beep,
        )
        start = 0.0
        if record.play_beep:
            self._event(call, "beep")
            start = BEEP_SECONDS
        turn = self._turn(call, flow)
        kind = turn.kind if turn is not None else "silence"
        silence_wait = start + float(record.timeout or record.max_length)
        if turn is not None and kind == "hangup":
            flow.turn_index += 1
            self._later(call, flow, start + REACTION_SECONDS, "caller hangs up", lambda c, f: self._caller_hangup(c, "turn"))
            return
        if turn is not None and turn.audio is not None:
            flow.turn_index += 1
            try:
                audio = turn.audio.read_bytes()
            except OSError as exc:
                self._error(call, None, f"the persona's audio file cannot be read ({type(exc).__name__})", turn=flow.turn_index - 1)
                self._later(call, flow, silence_wait, "record: empty", lambda c, f: self._record_empty(c, f, "silence"))
                return
            seconds = clip_seconds(audio)
            capped = seconds > record.max_length
            if capped or (turn.finish == "silence" and record.timeout == 0):
                ending, tail = "max-length", 0.0
            else:
                ending, tail = turn.finish, (float(record.timeout) if turn.finish == "silence" else 0.0)
            kept = min(seconds, record.max_length)
            if ending == "max-length":
                wait = start + REACTION_SECONDS + record.max_length
            else:
                wait = start + REACTION_SECONDS + kept + tail
            digits = None
            if ending == "hangup":
                digits = "hangup"
            elif ending == "key":
                digits = "#" if "#" in record.finish_on_key else (record.finish_on_key[:1] or None)
            started = self.sb.now() + timedelta(seconds=start + REACTION_SECONDS)
            self._later(
                call,
                flow,
                wait,
                "record: done",
                lambda c, f: self._recorded(c, f, record, audio, kept, digits, started, ending),
            )
            return
        if turn is not None and turn.digits is not None:
            flow.turn_index += 1
            if turn.digits[0] in record.finish_on_key:
                self._later(call, flow, start + REACTION_SECONDS, "record: empty", lambda c, f: self._record_empty(c, f, "key"))
                return
        elif turn is not None and kind == "silence":
            flow.turn_index += 1
        elif turn is not None:
            self._event(call, "turn-waits", turn=flow.turn_index, kind=kind, verb="Record")
        self._later(call, flow, silence_wait, "record: empty", lambda c, f: self._record_empty(c, f, "silence"))

    def _record_empty(self, call: Call, flow: Flow, reason: str) -> None:
        """Twilio's exception: an empty recording requests no action; the document goes on."""
        self._event(call, "record-empty", reason=reason)
        self._step(call, flow)

    def _recorded(
        self,
        call: Call,
        flow: Flow,
        record: Record,
        audio: bytes,
        seconds: float,
        digits: str | None,
        started: datetime,
        ending: str,
    ) -> None:
        now = self.sb.now()
        recording = Recording(
            sid=new_sid("RE"),
            account_sid=call.account_sid,
            call_sid=call.sid,
            date_created=now,
            start_time=started,
            duration=max(1, round(seconds)),
            audio=audio,
            seq=self.sb.store.next_seq(),
        )
        self.sb.store.recordings[recording.sid] = recording
        call.recording_sids.append(recording.sid)
        if call.record and call.answered_at is not None:
            call.tracks.append((BORROWER_CHANNEL, (started - call.answered_at).total_seconds(), audio))
        url = self.recording_url(recording)
        params = [
            ("RecordingUrl", url),
            ("RecordingSid", recording.sid),
            ("RecordingDuration", str(recording.duration)),
        ]
        if digits is not None:
            params.append(("Digits", digits))
        self._event(call, "recording", recording_sid=recording.sid, duration=recording.duration, digits=digits, ended_by=ending)
        if record.recording_status_callback:
            self._recording_status(call, flow, record, recording, url)
        if digits == "hangup":
            # Twilio still posts the recording, but the call is over: the answer is ignored.
            self._post_after_hangup(call, flow, record, params)
            self._caller_hangup(call, "turn")
            return
        self._post_action(call, flow, record.action, record.method, params, "record")

    def record_call(self, call: Call) -> None:
        """The call ended: its whole-call recording (``Record=true`` on create), mixed from what was
        played and said at the moment it was, and its ``RecordingStatusCallback`` (store lock held)."""
        assert call.answered_at is not None
        end = call.end_time or self.sb.now()
        seconds = max((end - call.answered_at).total_seconds(), 0.0)
        dual = call.recording_channels == "dual"
        audio = mixdown(call.tracks, seconds, dual=dual)
        recording = Recording(
            sid=new_sid("RE"),
            account_sid=call.account_sid,
            call_sid=call.sid,
            date_created=end,
            start_time=call.answered_at,
            duration=max(1, round(seconds)),
            audio=audio,
            source="OutboundAPI",
            channels=2 if dual else 1,
            seq=self.sb.store.next_seq(),
        )
        self.sb.store.recordings[recording.sid] = recording
        call.recording_sids.append(recording.sid)
        self._event(call, "call-recording", recording_sid=recording.sid, duration=recording.duration,
                    channels=recording.channels)
        if call.recording_status_callback:
            params = [
                ("AccountSid", call.account_sid),
                ("CallSid", call.sid),
                ("RecordingSid", recording.sid),
                ("RecordingUrl", self.recording_url(recording)),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", str(recording.duration)),
                ("RecordingChannels", str(recording.channels)),
                ("RecordingStartTime", rfc2822(recording.start_time) or ""),
                ("RecordingSource", "OutboundAPI"),
                ("RecordingTrack", "both"),
            ]
            self._send_detached(call, call.recording_status_callback, call.recording_status_callback_method, params,
                                "recording-status")

    def recording_url(self, recording: Recording) -> str:
        base = self.sb.base_url or "http://127.0.0.1"
        return f"{base}/2010-04-01/Accounts/{recording.account_sid}/Recordings/{recording.sid}"

    def _recording_status(self, call: Call, flow: Flow, record: Record, recording: Recording, url: str) -> None:
        target = self._resolve(call, flow, record.recording_status_callback or "")
        if target is None:
            return
        params = [
            ("AccountSid", call.account_sid),
            ("CallSid", call.sid),
            ("RecordingSid", recording.sid),
            ("RecordingUrl", url),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", str(recording.duration)),
            ("RecordingChannels", "1"),
            ("RecordingStartTime", rfc2822(recording.start_time) or ""),
            ("RecordingSource", "RecordVerb"),
        ]
        self._send_detached(call, target, record.recording_status_callback_method, params, "recording-status")

    def _post_after_hangup(self, call: Call, flow: Flow, record: Record, params: list[tuple[str, str]]) -> None:
        url = self._resolve(call, flow, record.action) if record.action else flow.doc_url
        if url is None:
            return
        self._send_detached(call, url, record.method, self.voice.call_params(call, "completed") + params, "call-action")

    def _send_detached(self, call: Call, url: str, method: str, params: list[tuple[str, str]], kind: str) -> None:
        """A webhook whose answer does not steer the call (sent as its own event, lock released)."""
        token, sid = self.sb.auth_token(call.account_sid), call.sid
        self.sb.schedule(
            0.0,
            f"call {sid} {kind}",
            lambda: self.sb.webhooks.send(kind=kind, sid=sid, url=url, params=params, auth_token=token, at=self.sb.now(), method=method),
        )

    def _post_action(
        self, call: Call, flow: Flow, action: str | None, method: str, params: list[tuple[str, str]], source: str
    ) -> None:
        """Request the verb's ``action`` (default: the current document's URL); its answer is the next document."""
        if action:
            url = self._resolve(call, flow, action)
            if url is None:
                self._end(call, flow)
                return
        elif flow.doc_url is not None:
            url = flow.doc_url
        else:
            self._event(call, "no-action", verb=source)
            self._step(call, flow)
            return
        self._fetch_document(call, flow, url, method, params, source, kind="call-action")

    # --- the end ----------------------------------------------------------------------------------

    def _caller_hangup(self, call: Call, reason: str) -> None:
        self._event(call, "caller-hangup", reason=reason)
        flow = call.extra.get("flow")
        self._end(call, flow if isinstance(flow, Flow) else None)

    def _time_limit(self, call: Call) -> None:
        self._event(call, "time-limit", seconds=call.time_limit)
        flow = call.extra.get("flow")
        self._end(call, flow if isinstance(flow, Flow) else None)


def _collect(pressed: str, gather: Gather) -> tuple[str, str | None]:
    """The digits a ``<Gather>`` keeps from the keys pressed, and the finishing key if one ended it."""
    kept = ""
    for key in pressed:
        if gather.finish_on_key and key == gather.finish_on_key:
            return kept, key
        kept += key
        if gather.num_digits is not None and len(kept) >= gather.num_digits:
            return kept, None
    return kept, None


__all__ = ["CallEvent", "CallFlows", "Flow", "Spoken", "say_seconds"]
