"""The call service: from a provider's call events to the script engine and back (docs/voice.md).

Provider-neutral: each entry point takes one event of :mod:`bot.channels.events` (the
provider's webhooks parse them, bot.providers.twilio.webhooks) and answers with the
call's next step as a :class:`~bot.channels.events.CallPlan` (the provider renders it,
TwiML for Twilio) or with whether anything changed:

* :meth:`CallService.answer` (:class:`~bot.channels.events.CallAnswered`) -- the call was
  answered.  The compliance rules are checked again at this instant (a borrower who
  opted out, paid or disputed since the dial, or a clock that passed 21:00, gets a
  polite goodbye and nothing else); an answering machine gets the script's
  limited-content voicemail; a person the script's first node.
* :meth:`CallService.input` (:class:`~bot.channels.events.CallHeard`) -- the answer to
  a prompt: keys, a recording (fetched through the provider, stored under the media
  directory, recognised in the speech service's thread pool), or silence.  The
  transcript is redacted before it is stored.
* :meth:`CallService.status` (:class:`~bot.channels.events.CallProgress`) -- call
  progress; never moves backwards (the provider's status table ranks the words); a
  final status records the call's end (no-answer, busy, failed, canceled, or a hang-up
  in the middle of the script: ``partial``).
* :meth:`CallService.recording` (:class:`~bot.channels.events.RecordingReady`) -- the
  whole call's recording: fetched and kept.

The services it uses are given (:class:`bot.voice.services.CallServices`: speech,
prompts, recording storage, the provider's recording downloads), never built here.

Every step runs in ONE transaction that starts by locking the attempt, then the
call session (``UPDATE call_sessions SET updated_at = updated_at WHERE
attempt_id = :id``: a row lock on PostgreSQL, the write lock on SQLite, so two
copies of a webhook never interleave).  The attempt comes first because the
dispatcher records a placed call in that order (attempt, then the session's
CallSid): the other order made the two deadlock.  A transaction PostgreSQL
aborts anyway (a deadlock, a serialization failure) runs again
(:func:`bot.db.retry.retried`); so does one that lost its connection, twice,
after which the webhook answers 503 (bot.web.voice).  Inside: the engine step (pure, bot.scripts), the turns, the
effects through bot.replies (opt-out, tasks, promises, flags, the SMS
confirmation queued as an attempt for the dispatcher), the new state.  The
prompts are rendered afterwards (bot.speech's PromptRenderer, cached by content
hash) and served by the bot under signed, expiring URLs.

Idempotency: each listen has a turn number in its input URL; an input whose turn
is not the one the session waits for (a provider's retry, the same recording
twice) changes nothing and gets the TwiML of the step that is current, rebuilt
from the stored plan.  A retried answer webhook likewise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.channels.events import CallAnswered, CallHeard, CallPlan, CallProgress, ListenPlan, RecordingReady
from bot.db import Database
from bot.db.retry import retried
from bot.db.models import Borrower, CallSession, CallTurn, Consent, ContactAttempt, Installment, Loan
from bot.domain import Channel, ContactOutcome, Intent, TaskKind
from bot.ledger import OPEN, OUTSTANDING, is_paid
from bot.metrics import observe_call_turn, observe_recognition
from bot.providers.twilio.statuses import (
    CALL_FINAL,
    answered_kind,
    call_status_advances,
    is_call_status,
    lower_call_statuses,
)
from bot.replies.redaction import redact_reply
from bot.voice import media
from bot.voice.services import CallServices
from bot.voice.urls import input_url, signed_prompt_url

__all__ = [
    "CallMismatch",
    "CallService",
    "FINAL_STATUSES",
    "UnknownCall",
]

log = logging.getLogger(__name__)

ACTOR = "voice"
FINAL_STATUSES = frozenset(CALL_FINAL)
#: call_sessions.outcome of a call that never connected.
_UNANSWERED_OUTCOME = {"no-answer": "no_answer", "busy": "busy", "failed": "failed", "canceled": "canceled"}
#: Survey triggers (bot.replies.surveys) -> the call outcome that is one.
_SURVEY_OUTCOMES = {"promise": "promise", "paid": "paid_claim"}
#: The polite end when the rules no longer allow the call at the moment it is answered.
_POLITE_END = {
    "en": "Sorry, we cannot continue this call now. Goodbye.",
    "ko": "죄송합니다. 지금은 통화를 계속할 수 없습니다. 안녕히 계세요.",
    "zh": "抱歉，现在无法继续通话。再见。",
}
#: The polite end when a payment is committed while the call goes on (nothing about the debt).
_PAID_END = {
    "en": "Thank you for your time. There is nothing more we need today. Goodbye.",
    "ko": "시간 내주셔서 감사합니다. 오늘은 더 말씀드릴 것이 없습니다. 안녕히 계세요.",
    "zh": "感谢您的时间。今天没有其他事情了。再见。",
}
#: The tasks a script opens that are what the borrower said (the rest are the bot's own).
_TASK_INTENTS = {TaskKind.DISPUTE: Intent.DISPUTE, TaskKind.HARDSHIP: Intent.HARDSHIP,
                 TaskKind.CALLBACK: Intent.CALLBACK_REQUEST}


class UnknownCall(Exception):
    """No call session for this attempt (or the attempt is not a call)."""


class CallMismatch(Exception):
    """The event's call id is not the session's."""


# --- what a step says and how it listens ------------------------------------------------------


@dataclass
class Plan:
    """One step of a call before its prompts are rendered (texts, not URLs): kept in the state so a
    retry gets the same; :meth:`CallService.respond` makes it a :class:`~bot.channels.events.CallPlan`."""

    session_id: int
    locale: str
    prompts: list[dict[str, Any]] = field(default_factory=list)  # {"text", "seq"}
    listen: dict[str, Any] | None = None  # mode, expect, timeout_s, max_length_s, num_digits, turn
    hangup: bool = False
    attempt_id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "listen": self.listen, "hangup": self.hangup}

    @classmethod
    def from_json(cls, session_id: int, attempt_id: int, locale: str, data: Mapping[str, Any] | None) -> Plan:
        data = data or {}
        return cls(session_id=session_id, locale=locale, prompts=list(data.get("prompts") or []),
                   listen=data.get("listen"), hangup=bool(data.get("hangup", data.get("listen") is None)),
                   attempt_id=attempt_id)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the borrower gave a listen: keys, speech (recognised), or nothing."""

    source: str  # dtmf | speech | silence
    digits: str | None = None
    text: str = ""
    confidence: float | None = None
    intent: Intent | None = None
    promise_date: date | None = None
    audio_ref: str | None = None
    seconds: float = 0.0  # how long the borrower spoke (the recording's length): the turn began that much earlier
    margin: float | None = None  # the recogniser's margin over the filler (speech only; docs/speech.md)


@dataclass(frozen=True, slots=True)
class Snapshot:
    session_id: int
    call_sid: str | None
    locale: str
    turn: int | None  # the turn the session listens for (None: not listening)
    expect: str | None
    today: date | None
    plan: Plan


# --- the service ----------------------------------------------------------------------------------


class CallService:
    """The call flow for one web app (settings, database, clock) and the services it is given
    (:class:`~bot.voice.services.CallServices`: speech, prompts, recording storage and downloads)."""

    def __init__(self, settings: Any, db: Database, clock: Any, services: CallServices, *,
                 compliance_config: Any = None, survey: Any = None) -> None:
        self.settings = settings
        self.survey = survey  # the policy's SurveySettings: a call ending with a promise or paid may be followed by one
        self.db = db
        self.clock = clock
        self.services = services
        self._config = compliance_config
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if db.dialect == "sqlite" else contextlib.nullcontext())

    def close(self) -> None:
        self.services.close()

    @property
    def renderer(self) -> Any:
        return self.services.prompts.renderer

    def speech_available(self, locale: str) -> bool:
        return self.services.speech.available(locale)

    def compliance_config(self) -> Any:
        if self._config is None:
            from bot.compliance.config import cached_compliance_config

            path = str(self.settings.compliance_file) if self.settings.compliance_file else None
            self._config = cached_compliance_config(path, self.settings.default_timezone)
        return self._config

    #: Tries again of a webhook's transaction after a lost connection (0.5 s, then 1 s apart).
    OUTAGE_TRIES = 2

    def _retried(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` (one transaction), run again after a deadlock or a lost connection."""
        return retried(lambda: fn(*args), what=f"voice {what} webhook", outage_tries=self.OUTAGE_TRIES)

    @contextlib.contextmanager
    def _locked(self, attempt_id: int) -> Iterator[tuple[Session, CallSession]]:
        """A transaction holding the call session's lock (see the module docstring)."""
        with self._write_lock, self.db.session() as session:
            session.execute(select(ContactAttempt.id).where(ContactAttempt.id == attempt_id)
                            .with_for_update()).first()  # the attempt first: the dispatcher's lock order
            found = session.scalar(
                update(CallSession).where(CallSession.attempt_id == attempt_id)
                .values(updated_at=CallSession.updated_at).returning(CallSession.id)
                .execution_options(synchronize_session=False)
            )
            if found is None:
                raise UnknownCall(f"no call for attempt {attempt_id}")
            call = session.get(CallSession, found, populate_existing=True)
            assert call is not None
            yield session, call

    # --- answer ---------------------------------------------------------------------------------

    async def answer(self, event: CallAnswered) -> CallPlan:
        plan = await run_in_threadpool(self._retried, "answer", self._answer_tx, event)
        return await self.respond(plan)

    def _answer_tx(self, event: CallAnswered) -> Plan:
        from bot.scripts import load_script, start

        attempt_id, call_sid, answered_by = event.attempt_id, event.call_id, event.answered_by_detail
        call_status, detection_s = event.status, event.detection_s
        with self._locked(attempt_id) as (session, call):
            _claim_sid(call, call_sid)
            if call.state is not None:  # a retried answer webhook: the current step again
                log.info("call %s: answer webhook again; current step repeated", call_sid)
                return _stored_plan(call)
            now = self.clock.now()
            call.answered_at = call.answered_at or now
            # The pick-up, where a whole-call recording starts: machine detection answers the webhook later.
            if self.settings.voice_record_calls and self.settings.voice_keep_recordings:
                call.recording_started_at = call.recording_started_at or now - timedelta(seconds=detection_s)
            call.answered_by = answered_by
            _advance_status(call, call_status or "in-progress")
            attempt = session.get(ContactAttempt, attempt_id)
            if call.status in FINAL_STATUSES or attempt is None:  # answered after it ended: nothing to say
                plan = Plan(call.id, call.locale, hangup=True, attempt_id=attempt_id)
                call.state = {"call": {"turn": 0, "seq": 0, "plan": plan.to_json(), "listening": False}}
                return plan
            decision = self._check_now(session, call, attempt, now)
            call.decision = decision.to_json() | {"at": now.isoformat(), "checked": "answer",
                                                  "results": [r.rule for r in decision.results if not r.allowed]}
            if not decision.allowed:
                return self._polite_end(session, call, attempt, decision.reasons, now)
            if event.answered_by == "fax":
                plan = Plan(call.id, call.locale, hangup=True, attempt_id=attempt_id)
                call.outcome = "no_answer"
                call.state = {"call": {"turn": 0, "seq": 0, "plan": plan.to_json(), "listening": False}}
                return plan
            machine = event.answered_by == "machine"
            script = load_script(call.script, call.locale, scripts_dir=self.settings.voice_scripts_dir)
            speech = self.speech_available(call.locale)
            call.speech = speech
            context = self._context(session, call, attempt, now, speech)
            state, actions = start(script, context, answered_by="machine" if machine else "human")
            log.info("call %s answered (%s) for attempt %s", call_sid, answered_by or "unknown", attempt_id)
            return self._apply(session, call, attempt, state, actions, now, {"turn": 0, "seq": 0})

    def _check_now(self, session: Session, call: CallSession, attempt: ContactAttempt, now: datetime) -> Any:
        """The compliance decision at the answer instant, this call's own attempt left out of the history."""
        from bot.compliance import check
        from bot.compliance.loader import load_context

        config = self.compliance_config()
        context = load_context(session, call.borrower_id, at=now, loan_id=call.loan_id, config=config)
        history = list(context.history)
        for index, entry in enumerate(history):
            if entry.channel is Channel.VOICE and entry.occurred_at == attempt.occurred_at:
                del history[index]
                break
        state = context.state
        if attempt.installment_id and not state.paid:  # the call is about this installment
            state = replace(state, paid=is_paid(session, attempt.installment_id))
        return check(context.subject, Channel.VOICE, now, history, state, loan_id=context.loan_id,
                     config=config)

    def _paid_now(self, session: Session, call: CallSession, attempt: ContactAttempt) -> bool:
        """Whether what this call is about was paid since it was answered (bot.ledger)."""
        from bot.compliance.loader import oldest_outstanding_loan

        if attempt.installment_id:
            return is_paid(session, attempt.installment_id)
        return oldest_outstanding_loan(session, call.borrower_id) is None

    def _paid_end(self, session: Session, call: CallSession, attempt: ContactAttempt, seq: int,
                  now: datetime) -> Plan:
        """End the call at this turn: a payment was committed while it went on.

        The words are neutral (nothing about the debt), as the person may not have
        been confirmed as the borrower yet."""
        text = _PAID_END.get(call.locale.split("-")[0].lower(), _PAID_END["en"])
        call.outcome = call.outcome or "paid"
        _flag(call, "paid_during_call")
        ref = self._prompt_ref(text, call.locale)
        seq = _add_turn(session, call, seq + 1, speaker="bot", node=None, at=now, source="tts", text=text,
                        audio_ref=ref)
        plan = Plan(call.id, call.locale, prompts=[{"text": text, "seq": seq, "ref": ref is not None}], hangup=True,
                    attempt_id=attempt.id)
        call.state = {**(call.state or {}), "ended": True,  # the script is over: a hang-up now changes nothing
                      "call": {"turn": 0, "seq": seq, "plan": plan.to_json(), "listening": False}}
        log.info("call %s: paid while the call went on; ended politely", call.call_sid)
        return plan

    def _polite_end(self, session: Session, call: CallSession, attempt: ContactAttempt, reasons: Sequence[str],
                    now: datetime) -> Plan:
        text = _POLITE_END.get(call.locale.split("-")[0].lower(), _POLITE_END["en"])
        call.outcome = "blocked"
        _flag(call, "compliance_at_answer")
        ref = self._prompt_ref(text, call.locale)
        seq = _add_turn(session, call, 1, speaker="bot", node=None, at=now, source="tts", text=text, audio_ref=ref)
        plan = Plan(call.id, call.locale, prompts=[{"text": text, "seq": seq, "ref": ref is not None}], hangup=True,
                    attempt_id=attempt.id)
        call.state = {"call": {"turn": 0, "seq": 1, "plan": plan.to_json(), "listening": False}}
        _set_attempt_outcome(attempt, ContactOutcome.CONNECTED.value)
        log.warning("call %s answered but no longer allowed (%s): ended politely", call.call_sid, ",".join(reasons))
        return plan

    def _context(self, session: Session, call: CallSession, attempt: ContactAttempt, now: datetime,
                 speech: bool) -> Any:
        from bot.compliance.loader import oldest_outstanding_loan
        from bot.compliance.zones import resolve_zones
        from bot.rendering import format_day, money
        from bot.scripts import CallContext

        borrower = session.get(Borrower, call.borrower_id)
        assert borrower is not None
        zones = resolve_zones(borrower.country, borrower.region, borrower.timezone, borrower.phone_e164,
                              self.settings.default_timezone)
        today = now.astimezone(zones.primary).date()
        loan_id = call.loan_id or oldest_outstanding_loan(session, call.borrower_id)
        amount_text = due_text = ""
        if loan_id is not None:
            loan = session.get(Loan, loan_id)
            rows = session.execute(
                select(Installment.due_date, OUTSTANDING)
                .where(Installment.loan_id == loan_id, OPEN).order_by(Installment.due_date, Installment.id)
            ).all()
            if loan is not None and rows:
                due = [r for r in rows if r[0] <= today] or rows[:1]
                amount_text = money(sum(int(r[1]) for r in due), loan.currency, call.locale)
                due_text = format_day(due[0][0], call.locale, "long")
        confirmation = _confirmation(session, call.borrower_id, attempt.address, now)
        return CallContext(
            lender_name=self.settings.lender_name,
            party_initials=initials(borrower.full_name),
            amount_text=amount_text,
            due_date_text=due_text,
            callback_number_text=spoken_number(self.settings.lender_phone),
            speech_available=speech,
            today=today,
            confirmation=confirmation,
            readback_below=self.settings.voice_readback_below,
            survey_after=self._survey_after(session, call.borrower_id, now),
            payment_link=_payment_link(self.settings, attempt, confirmation),
        )

    def _survey_after(self, session: Session, borrower_id: str, now: datetime) -> tuple[str, ...]:
        """The call outcomes after which the script's keypad survey may be asked (bot.replies.surveys)."""
        from bot.replies.surveys import may_ask

        return tuple(kind for trigger, kind in _SURVEY_OUTCOMES.items()
                     if may_ask(session, self.survey, borrower_id, trigger, Channel.VOICE.value, now) is None)

    # --- the whole call's recording ------------------------------------------------------------

    async def recording(self, event: RecordingReady) -> bool:
        """The whole call's recording is ready: fetch (through the provider) and keep it.

        False when it changes nothing: the recording is not completed, is kept already (a
        retry), or recordings are not kept (``voice_keep_recordings = false``)."""
        attempt_id, sid, status = event.attempt_id, event.audio.recording_id, event.status
        snap = await run_in_threadpool(self._snapshot, attempt_id)
        if snap.call_sid is not None and event.call_id != snap.call_sid:
            raise CallMismatch("CallSid is not this call's")
        if status != "completed" or not self.settings.voice_keep_recordings:
            log.info("call %s: whole-call recording %s not kept (%s)", snap.call_sid, sid, status)
            return False
        ref = media.call_recording_ref(snap.session_id, sid)
        kept = await run_in_threadpool(self._kept_recording, attempt_id)
        if kept == sid:
            return False
        data = await self.services.speech.run(self.services.fetch, event.audio)
        channels = _wav_channels(data)
        await run_in_threadpool(self.services.storage.store, ref, data)
        return bool(await run_in_threadpool(self._retried, "recording", self._recording_tx, attempt_id, sid, ref,
                                            channels, event.started_at))

    def _kept_recording(self, attempt_id: int) -> str | None:
        with self.db.sessions() as session:
            return session.scalar(select(CallSession.recording_sid).where(CallSession.attempt_id == attempt_id))

    def _recording_tx(self, attempt_id: int, sid: str, ref: str, channels: int, started: datetime | None) -> bool:
        with self._locked(attempt_id) as (session, call):
            if call.recording_sid == sid:
                return False
            previous = call.recording_ref
            call.recording_ref, call.recording_sid, call.recording_channels = ref, sid[:64], channels
            # The pick-up as the answer webhook told it (to the millisecond) wins over RecordingStartTime (seconds).
            call.recording_started_at = call.recording_started_at or started
            call.recording_dir = f"{media.RECORDINGS}/{call.id}"
            call_sid = call.call_sid
        if previous and previous != ref:
            self.services.storage.remove(previous)
        log.info("call %s: whole-call recording kept (%s channel(s))", call_sid, channels)
        return True

    # --- input ----------------------------------------------------------------------------------

    async def input(self, event: CallHeard) -> CallPlan:
        attempt_id, turn = event.attempt_id, event.turn
        snap = await run_in_threadpool(self._snapshot, attempt_id)
        if snap.call_sid is not None and event.call_id != snap.call_sid:
            raise CallMismatch("CallSid is not this call's")
        if snap.turn != turn:  # a retry, or an answer to a step that is over: the current step again
            log.info("call %s: input for turn %s while at %s; current step repeated", snap.call_sid, turn, snap.turn)
            return await self.respond(snap.plan)
        started = time.perf_counter()
        if event.digits is not None:
            answer = Answer(source="dtmf", digits=event.digits)
        elif event.audio is None:
            answer = Answer(source="silence")
        else:
            answer = await self.services.speech.run(self._recognise, snap, event)
            if event.audio.duration_s is not None:
                answer = dataclasses.replace(answer, seconds=event.audio.duration_s)
        plan = await run_in_threadpool(self._retried, "input", self._input_tx, attempt_id, turn, answer)
        step = await self.respond(plan)
        observe_call_turn(time.perf_counter() - started)
        return step

    def _snapshot(self, attempt_id: int) -> Snapshot:
        with self.db.sessions() as session:
            call = session.scalar(select(CallSession).where(CallSession.attempt_id == attempt_id))
            if call is None:
                raise UnknownCall(f"no call for attempt {attempt_id}")
            extra = (call.state or {}).get("call") or {}
            listen = (extra.get("plan") or {}).get("listen")
            today = None
            context = (call.state or {}).get("context")
            if isinstance(context, Mapping) and context.get("today"):
                today = date.fromisoformat(context["today"])
            return Snapshot(
                session_id=call.id, call_sid=call.call_sid, locale=call.locale,
                turn=int(listen["turn"]) if extra.get("listening") and listen else None,
                expect=listen.get("expect") if listen else None, today=today,
                plan=_stored_plan(call),
            )

    def _recognise(self, snap: Snapshot, event: CallHeard) -> Answer:
        """Fetch, keep and recognise one recording (in the recognition pool)."""
        from bot.speech.audio import read_wav
        from bot.speech.errors import AudioTooLong

        turn, audio = event.turn, event.audio
        assert audio is not None
        ref = media.recording_ref(snap.session_id, turn, audio.recording_id or f"T{turn}")
        data = self.services.fetch(audio)
        self.services.storage.store(ref, data)
        try:
            # Longer than max_audio_seconds: refused from the header, never decoded, never an intent.
            pcm = read_wav(data, name=f"recording of turn {turn}", max_seconds=self.settings.max_audio_seconds)
            started = time.perf_counter()
            heard = self.services.speech.understand(pcm, snap.locale, expect=snap.expect if snap.expect != "digits" else None,
                                    today=snap.today or self.clock.now().date())
            observe_recognition(snap.locale, time.perf_counter() - started)
        except Exception as exc:  # too long, unreadable audio, no model: not understood (logged by kind)
            if isinstance(exc, AudioTooLong):
                log.warning("call %s turn %s: recording longer than max_audio_seconds (%g s), not recognised",
                            snap.call_sid, turn, self.settings.max_audio_seconds)
            else:
                log.warning("call %s turn %s: recognition failed (%s)", snap.call_sid, turn, type(exc).__name__)
            return Answer(source="speech", text="", confidence=0.0, intent=Intent.OTHER,
                          audio_ref=ref if self.settings.voice_keep_recordings else None)
        finally:
            if not self.settings.voice_keep_recordings:
                self.services.storage.remove(ref)
        return Answer(source="speech", text=heard.text or "", confidence=float(heard.confidence),
                      intent=heard.intent, promise_date=heard.promise_date, margin=getattr(heard, "margin", None),
                      audio_ref=ref if self.settings.voice_keep_recordings else None)

    def _input_tx(self, attempt_id: int, turn: int, answer: Answer) -> Plan:
        from bot.scripts import CallState, NoInput, load_script, step
        from bot.scripts import Heard as EngineHeard

        with self._locked(attempt_id) as (session, call):
            extra = dict((call.state or {}).get("call") or {})
            listen = (extra.get("plan") or {}).get("listen")
            if not extra.get("listening") or not listen or int(listen["turn"]) != turn:
                return _stored_plan(call)  # a concurrent copy of this webhook got here first
            now = self.clock.now()
            attempt = session.get(ContactAttempt, attempt_id)
            assert attempt is not None
            text = redact_reply(answer.text) if answer.text else ""
            low = (answer.source == "speech" and answer.confidence is not None
                   and answer.confidence < self.settings.voice_low_confidence)
            seq = int(extra.get("seq", 0)) + 1
            intent, promise_date = answer.intent.value if answer.intent else None, answer.promise_date
            if answer.source == "dtmf":  # the keys' meaning at this node: the turn records it as speech's
                intent, promise_date = _keypad_meaning(call, answer.digits, self.settings.voice_scripts_dir)
            _add_turn(session, call, seq, speaker="borrower", node=(call.state or {}).get("node"), at=now,
                      source=answer.source, text=text if answer.source == "speech" else (answer.digits or None),
                      confidence=answer.confidence, intent=intent, promise_date=promise_date,
                      audio_ref=answer.audio_ref, flagged=low, lead_s=_spoken_lead(answer, listen),
                      margin=answer.margin if answer.source == "speech" else None)
            extra["seq"] = seq
            if answer.source == "speech" and answer.confidence is not None:
                call.min_confidence = answer.confidence if call.min_confidence is None else min(
                    call.min_confidence, answer.confidence)
            if low:
                _flag(call, "low_confidence")
            if answer.audio_ref:
                call.recording_dir = f"{media.RECORDINGS}/{call.id}"
            if self._paid_now(session, call, attempt):
                return self._paid_end(session, call, attempt, seq, now)
            script = load_script(call.script, call.locale, scripts_dir=self.settings.voice_scripts_dir)
            state = CallState.from_json(call.state)
            # What the bot may do to confirm a promise, as it is now (the borrower may have
            # texted STOP during the call): the next prompts say only that.
            confirmation = _confirmation(session, call.borrower_id, attempt.address, now)
            link = _payment_link(self.settings, attempt, confirmation)
            if (state.context.confirmation, state.context.payment_link) != (confirmation, link):
                state = dataclasses.replace(state, context=dataclasses.replace(
                    state.context, confirmation=confirmation, payment_link=link))
            if answer.source == "silence":
                event: Any = NoInput()
            elif answer.source == "dtmf":
                event = EngineHeard(intent=Intent.OTHER, source="dtmf", digits=answer.digits)
            else:
                event = EngineHeard(intent=answer.intent or Intent.OTHER, text_redacted=text,
                                    confidence=answer.confidence or 0.0, promise_date=answer.promise_date,
                                    source="speech")
            state, actions = step(script, state, event)
            return self._apply(session, call, attempt, state, actions, now, extra)

    # --- status ---------------------------------------------------------------------------------

    async def status(self, event: CallProgress) -> bool:
        """Apply a call's progress; False when it changed nothing (a duplicate or out of order)."""
        return await run_in_threadpool(self.apply_status, event)

    def apply_status(self, event: CallProgress) -> bool:
        """What a status callback does, for a status learnt another way too (the dispatcher asks the
        provider about a call whose final callback never came: bot.dispatch.statuses)."""
        return bool(self._retried("status", self._status_tx, event))

    def _status_tx(self, event: CallProgress) -> bool:
        attempt_id, sid, status = event.attempt_id, event.call_id, event.status
        with self._locked(attempt_id) as (session, call):
            _claim_sid(call, sid)
            now = self.clock.now()
            _attempt_status(session, attempt_id, sid, status, now)
            if event.answered_by_detail and not call.answered_by:
                call.answered_by = event.answered_by_detail[:32]
            if not _advance_status(call, status):
                return False
            if status not in FINAL_STATUSES:
                return True
            call.ended_at = now
            if event.duration_s is not None:
                call.duration_s = event.duration_s
            attempt = session.get(ContactAttempt, attempt_id)
            if status != "completed":
                call.outcome = call.outcome or _UNANSWERED_OUTCOME[status]
                if attempt is not None:
                    _set_attempt_outcome(attempt, ContactOutcome.FAILED.value if status == "failed"
                                         else ContactOutcome.ATTEMPTED.value, force=True)
                _call_completed(session, call, attempt, now)
                log.info("call %s ended: %s", sid, status)
                return True
            if call.state is None or "node" not in call.state:  # never reached the script
                call.outcome = call.outcome or ("no_answer" if call.answered_at is None else "failed")
            elif not call.state.get("ended"):
                from bot.scripts import CallState, HungUp, load_script, step

                script = load_script(call.script, call.locale, scripts_dir=self.settings.voice_scripts_dir)
                state, actions = step(script, CallState.from_json(call.state), HungUp())
                extra = dict(call.state.get("call") or {})
                if attempt is not None:
                    self._apply(session, call, attempt, state, actions, now, extra)
                if call.outcome is None:
                    call.outcome = "partial"
            if attempt is not None:
                _set_attempt_outcome(attempt, _answered_outcome(call))
            _call_completed(session, call, attempt, now)
            log.info("call %s completed: %s", sid, call.outcome)
            return True

    # --- applying the engine's actions -----------------------------------------------------------

    def _apply(self, session: Session, call: CallSession, attempt: ContactAttempt, state: Any,
               actions: Sequence[Any], now: datetime, extra: dict[str, Any]) -> Plan:
        """Record the actions of one engine step; the plan of what to say next."""
        from bot.scripts import (
            Flag,
            FlagNumber,
            Hangup,
            Listen,
            OpenTask,
            OptOut,
            Outcome,
            Rating,
            Say,
            SendSms,
        )

        seq = int(extra.get("seq", 0))
        turn = int(extra.get("turn", 0))
        plan = Plan(call.id, call.locale, attempt_id=attempt.id)
        effects = Effects(session, call, attempt, now, self.settings, self.survey)
        for action in actions:
            if isinstance(action, Say):
                seq += 1
                ref = self._prompt_ref(action.text, call.locale)
                _add_turn(session, call, seq, speaker="bot", node=action.node, at=now, source="tts",
                          text=action.text, audio_ref=ref)
                plan.prompts.append({"text": action.text, "seq": seq, "ref": ref is not None})
            elif isinstance(action, Listen):
                turn += 1
                plan.listen = {"mode": action.mode, "expect": action.expect, "timeout_s": action.timeout_s,
                               "max_length_s": action.max_length_s, "num_digits": action.num_digits, "turn": turn}
            elif isinstance(action, Hangup):
                plan.hangup = True
            elif isinstance(action, Outcome):
                effects.outcome(action.kind, action.promise_date)
            elif isinstance(action, OptOut):
                effects.opt_out()
            elif isinstance(action, OpenTask):
                effects.task(action.kind)
            elif isinstance(action, FlagNumber):
                effects.flag_number(action.reason)
            elif isinstance(action, SendSms):
                effects.send_sms(action.template, action.promise_date)
            elif isinstance(action, Flag):
                _flag(call, action.reason)
            elif isinstance(action, Rating):
                effects.rating(action.score)
        if plan.listen is None:
            plan.hangup = True
        extra.update(seq=seq, turn=turn, plan=plan.to_json(), listening=plan.listen is not None and not state.ended)
        call.state = state.to_json() | {"call": extra}
        if state.facts.promise_date is not None and state.facts.promise_confirmed:
            call.promise_date = state.facts.promise_date
        if call.status not in FINAL_STATUSES:
            _set_attempt_outcome(attempt, _answered_outcome(call))
        return plan

    def _prompt_ref(self, text: str, locale: str) -> str | None:
        """Where the prompt's WAV will be (its content hash), known before it is rendered."""
        key = getattr(self.renderer, "key", None)
        if not callable(key):
            return None
        try:
            return f"{media.PROMPTS}/{key(text, locale)}.wav"
        except ValueError:  # no voice for the locale: rendering will say so
            return None

    # --- the step, for the provider to render --------------------------------------------------

    async def respond(self, plan: Plan) -> CallPlan:
        """Render the plan's prompts (cached by content), record where they are: the neutral step
        (prompt URLs, how to listen) the provider renders."""
        urls: list[str] = []
        refs: list[tuple[int, str]] = []
        starts: list[tuple[int, float]] = []  # (turn seq, seconds after the step's first prompt starts)
        elapsed = 0.0
        now = self.clock.now()
        for prompt in plan.prompts:
            rendered = await run_in_threadpool(self.renderer.render, prompt["text"], plan.locale)
            if prompt.get("seq"):
                starts.append((int(prompt["seq"]), elapsed))
            elapsed += float(getattr(rendered, "duration_s", 0.0) or 0.0)
            urls.append(signed_prompt_url(self.settings.public_base_url, self.settings.media_url_secret,
                                          rendered.sha, now=now, ttl_seconds=self.settings.media_url_ttl_seconds))
            if not prompt.get("ref") and prompt.get("seq"):  # a renderer that cannot say its hash first
                ref = media.relative_ref(self.settings, rendered.path)
                if ref:
                    refs.append((int(prompt["seq"]), ref))
        if refs:
            await run_in_threadpool(self._set_audio_refs, plan.session_id, refs)
        if len(starts) > 1:
            await run_in_threadpool(self._set_offsets, plan.session_id, starts)
        listen = None
        if plan.listen is not None:
            turn = int(plan.listen["turn"])
            base = self.settings.public_base_url
            listen = ListenPlan(mode=plan.listen["mode"], timeout_s=int(plan.listen["timeout_s"]),
                                max_length_s=int(plan.listen["max_length_s"]),
                                num_digits=plan.listen.get("num_digits"),
                                action=input_url(base, plan.attempt_id, turn),
                                silence=input_url(base, plan.attempt_id, turn, silence=True))
        return CallPlan(prompts=tuple(urls), listen=listen, hangup=plan.hangup)

    def _set_audio_refs(self, session_id: int, refs: Sequence[tuple[int, str]]) -> None:
        with self._write_lock, self.db.session() as session:
            for seq, ref in refs:
                session.execute(
                    update(CallTurn)
                    .where(CallTurn.session_id == session_id, CallTurn.seq == seq, CallTurn.audio_ref.is_(None))
                    .values(audio_ref=ref[:255]).execution_options(synchronize_session=False)
                )


    def _set_offsets(self, session_id: int, starts: Sequence[tuple[int, float]]) -> None:
        """The prompts of one step play one after another: each starts where the one before ended
        (absolute values from the first prompt's offset, so a retried webhook writes the same)."""
        with self._write_lock, self.db.session() as session:
            first = session.scalar(select(CallTurn.offset_s).where(CallTurn.session_id == session_id,
                                                                   CallTurn.seq == starts[0][0]))
            if first is None:
                return
            for seq, after in starts[1:]:
                session.execute(
                    update(CallTurn).where(CallTurn.session_id == session_id, CallTurn.seq == seq)
                    .values(offset_s=round(first + after, 2)).execution_options(synchronize_session=False))


# --- the effects of a call, through bot.replies ------------------------------------------------


class Effects:
    """What the script's side-effect actions do, each through the one path every channel takes:
    :func:`bot.replies.apply_statement` for what the borrower said, :func:`bot.replies.queue_answer`
    for the text that confirms it (docs/voice.md, "Effects")."""

    def __init__(self, session: Session, call: CallSession, attempt: ContactAttempt, now: datetime,
                 settings: Any, survey: Any = None) -> None:
        self.session = session
        self.survey = survey
        self.call = call
        self.attempt = attempt
        self.now = now
        self.settings = settings
        self.number = attempt.address or ""

    def _statement(self, intent: Intent, **fields: Any) -> Any:
        from bot.replies import Statement

        today = self.now.date()
        context = (self.call.state or {}).get("context")
        if isinstance(context, Mapping) and context.get("today"):
            today = date.fromisoformat(context["today"])
        return Statement(borrower_id=self.call.borrower_id, address=self.number or None, channel=ACTOR,
                         intent=intent, at=self.now, today=today, ref=f"call:{self.call.id}",
                         detail={"call_session_id": self.call.id}, **fields)

    def _say(self, intent: Intent, **fields: Any) -> Any:
        from bot.replies import apply_statement

        return apply_statement(self.session, self._statement(intent, **fields))

    def outcome(self, kind: str, promise_date: date | None) -> None:
        from bot.replies.records import audit

        self.call.outcome = kind
        audit(self.session, self.now, actor=ACTOR, action="call.outcome", borrower_id=self.call.borrower_id,
              detail={"call_session_id": self.call.id, "attempt_id": self.attempt.id, "outcome": kind})
        if kind == "promise":
            self._say(Intent.PROMISE_TO_PAY, promise_date=promise_date)
            if promise_date is not None:
                self.call.promise_date = promise_date
                self._survey("promise")
        elif kind == "paid_claim":
            self._say(Intent.PAID)
            self._survey("paid")
        elif kind == "dispute":
            _flag(self.call, "dispute")

    def _survey(self, trigger: str) -> None:
        """The satisfaction survey's text after this call (bot.replies.surveys), when the policy asks
        for one by SMS; with ``voice`` among its channels the script's keypad question asks instead."""
        from bot.replies.surveys import ask_by_sms

        if self.survey is not None and Channel.VOICE.value in self.survey.channels:
            return
        ask_by_sms(self.session, self.survey, borrower_id=self.call.borrower_id, trigger=trigger,
                   address=self.number, at=self.now)

    def rating(self, score: int) -> None:
        """The caller's key 1-5 to the script's survey question."""
        from bot.replies.surveys import record_keypad

        trigger = next((t for t, kind in _SURVEY_OUTCOMES.items() if kind == self.call.outcome), None)
        if trigger is not None:
            record_keypad(self.session, self.survey, borrower_id=self.call.borrower_id, trigger=trigger,
                          attempt_id=self.attempt.id, score=score, at=self.now)

    def opt_out(self) -> None:
        """"Stop calling me": the number opted out of calls (a call's opt-out is about calls)."""
        self._say(Intent.OPT_OUT, scope=Channel.VOICE)

    def task(self, kind: TaskKind) -> None:
        from bot.replies.statement import statement_task

        intent = _TASK_INTENTS.get(kind)
        if intent is not None:
            self._say(intent)
        else:
            statement_task(self.session, self._statement(Intent.OTHER), kind)
        if kind is TaskKind.DISPUTE:
            _flag(self.call, "dispute")

    def flag_number(self, reason: str) -> None:
        from bot.replies import Applied
        from bot.replies.statement import flag_number

        if reason in ("wrong_party", "wrong_number"):
            self._say(Intent.WRONG_NUMBER)
        else:
            flag_number(self.session, self._statement(Intent.OTHER), reason[:32], Applied())

    def send_sms(self, template: str, promise_date: date | None) -> None:
        """Queue an SMS answer for the dispatcher to send under the rules (bot.replies.queue_answer:
        the same checks as an answer to a text, the daily cap of automatic answers included).

        ``template`` names a reply template: ``reply_<kind>``, ``<kind>`` or
        ``<kind>_confirmation`` (the scripts' ``promise_confirmation`` is ``reply_promise``).
        """
        from bot.replies import REPLY_KINDS, Answer, queue_answer

        kind = template.removeprefix("reply_").removesuffix("_confirmation")
        if kind not in REPLY_KINDS:
            log.warning("call session %s: SMS template %r is not a reply template; not queued", self.call.id,
                        template[:40])
            return
        about: dict[str, Any] = {}
        if kind == "payment_link":  # a link to the installment the call is about, or nothing
            loan_id = self.attempt.loan_id or self.call.loan_id
            if not _payment_link(self.settings, self.attempt, "sms") or not loan_id:
                log.warning("call session %s: no payment link to send (no payment_url_template or no "
                            "installment); not queued", self.call.id)
                return
            about = {"installment_id": self.attempt.installment_id, "loan_id": loan_id}
        queue_answer(self.session, Answer(
            borrower_id=self.call.borrower_id, address=self.number, kind=kind, at=self.now,
            dedupe_key=f"reply:call:{self.call.id}:{kind}", actor=ACTOR,
            detail={"call_session_id": self.call.id}, promise_date=promise_date, **about))


# --- small helpers ------------------------------------------------------------------------------


def _confirmation(session: Session, borrower_id: str, number: str | None, now: datetime) -> str:
    """``"sms"`` when the call's number may be texted now (SMS consent granted, not opted
    out, not flagged, the borrower has not asked to cease communication) and a text would not
    be held back by the daily cap of automatic answers (bot.replies.answer), else ``"none"``:
    what a script may promise (a confirmation text, a payment link) at the moment it speaks."""
    from bot.replies.answer import reply_cap_reached

    if not number or reply_cap_reached(session, borrower_id, now):
        return "none"
    consent = session.execute(
        select(Consent.granted, Consent.opted_out_at, Consent.address_flag)
        .where(Consent.borrower_id == borrower_id, Consent.channel == Channel.SMS.value, Consent.address == number)
    ).first()
    ceased = session.scalar(select(Borrower.cease_communication_at).where(Borrower.id == borrower_id))
    if consent is None or not consent.granted or consent.opted_out_at is not None or consent.address_flag \
            or ceased is not None:
        return "none"
    return "sms"


def _payment_link(settings: Any, attempt: ContactAttempt, confirmation: str) -> bool:
    """Whether the call may offer to text a payment link now: the lender's payment URL is set, the
    call is about an installment (the link names it) and the number may be texted."""
    return bool(settings.payment_url_template) and attempt.installment_id is not None and confirmation == "sms"


def _claim_sid(call: CallSession, sid: str) -> None:
    if call.call_sid is None:
        call.call_sid = sid[:64]
    elif call.call_sid != sid:
        raise CallMismatch("CallSid is not this call's")


def _call_completed(session: Session, call: CallSession, attempt: ContactAttempt | None, now: datetime) -> None:
    """``call.completed`` (docs/events.md) for a call whose final status was just applied."""
    from bot.events import emit

    emit(session, "call.completed", borrower_id=call.borrower_id, at=now, data={
        "call_session_id": call.id, "attempt_id": call.attempt_id, "loan_id": call.loan_id,
        "status": call.status, "outcome": call.outcome, "answered_by": call.answered_by,
        "duration_s": call.duration_s, "promise_date": call.promise_date, "flagged": bool(call.flagged),
        "address": attempt.address if attempt is not None else None,
    })


def _advance_status(call: CallSession, status: str) -> bool:
    """Move the session's status forward only (the provider's ranks); True when it moved."""
    if not is_call_status(status):
        log.warning("call %s: unknown call status ignored", call.call_sid)
        return False
    if not call_status_advances(call.status, status):
        return False
    call.status = status
    return True


def _attempt_status(session: Session, attempt_id: int, sid: str, status: str, now: datetime) -> None:
    """The attempt's provider status, forward only, in one statement; the SID if it has none yet."""
    if not is_call_status(status):
        return
    lower = lower_call_statuses(status)
    session.execute(
        update(ContactAttempt)
        .where(ContactAttempt.id == attempt_id,
               (ContactAttempt.provider_id.is_(None)) | (ContactAttempt.provider_id == sid),
               (ContactAttempt.provider_status.is_(None)) | (ContactAttempt.provider_status.in_(lower)))
        .values(provider_status=status, provider_id=func.coalesce(ContactAttempt.provider_id, sid), updated_at=now)
        .execution_options(synchronize_session=False)
    )


_OUTCOME_RANK = {None: 0, ContactOutcome.ATTEMPTED.value: 1, ContactOutcome.FAILED.value: 1,
                 ContactOutcome.CONNECTED.value: 2, ContactOutcome.VOICEMAIL.value: 2,
                 ContactOutcome.CONVERSATION.value: 3}


def _set_attempt_outcome(attempt: ContactAttempt, outcome: str | None, *, force: bool = False) -> None:
    if outcome is None:
        return
    if force or _OUTCOME_RANK.get(outcome, 0) > _OUTCOME_RANK.get(attempt.outcome, 0):
        attempt.outcome = outcome


def _answered_outcome(call: CallSession) -> str | None:
    """The attempt's outcome for a call that was answered: voicemail, conversation or connected."""
    if call.answered_at is None:
        return None
    if answered_kind(call.answered_by) == "machine":
        return ContactOutcome.VOICEMAIL.value
    facts = (call.state or {}).get("facts") or {}
    if facts.get("right_party_confirmed"):
        return ContactOutcome.CONVERSATION.value
    return ContactOutcome.CONNECTED.value


def _flag(call: CallSession, reason: str) -> None:
    reasons = list((call.flags or {}).get("reasons") or [])
    if reason not in reasons:
        reasons.append(reason[:64])
    call.flags = {"reasons": reasons}
    call.flagged = True


def _keypad_meaning(call: CallSession, digits: str | None,
                    scripts_dir: Path | None = None) -> tuple[str | None, date | None]:
    """(intent, promise date) of keypad digits at the call's current node, as the script reads
    them (``bot.scripts.understood``); (None, None) when they mean nothing there."""
    from bot.scripts import CallState, Heard, load_script, understood

    if not call.state or "node" not in call.state:
        return None, None
    state = CallState.from_json(call.state)
    meaning = understood(load_script(call.script, call.locale, scripts_dir=scripts_dir), state,
                         Heard(intent=Intent.OTHER, source="dtmf", digits=digits))
    return (meaning[0].value, meaning[1]) if meaning else (None, None)


#: how much earlier than computed a spoken answer's offset is put, so that seeking never cuts its first word
SPEECH_LEAD_S = 0.5


def _spoken_lead(answer: Answer, listen: Mapping[str, Any]) -> float:
    """How long before the input webhook a spoken answer began: ``<Record>`` ends ``timeout``
    seconds of silence after the borrower stopped, who spoke ``RecordingDuration`` seconds."""
    if answer.source != "speech" or not answer.seconds:
        return 0.0
    return answer.seconds + float(listen.get("timeout_s") or 0) + SPEECH_LEAD_S


def _wav_channels(data: bytes) -> int:
    """The channel count of a WAV recording; ValueError naming the problem for anything else."""
    import io
    import wave

    try:
        with wave.open(io.BytesIO(data)) as w:
            return int(w.getnchannels())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"the call recording is not a WAV file ({type(exc).__name__})") from None


def _add_turn(session: Session, call: CallSession, seq: int, *, speaker: str, node: str | None, at: datetime,
              source: str, text: str | None, confidence: float | None = None, intent: str | None = None,
              promise_date: date | None = None, audio_ref: str | None = None, flagged: bool = False,
              lead_s: float = 0.0, margin: float | None = None) -> int:
    """Store a turn; ``offset_s`` is where it starts in the call's recording: seconds since the
    answer, less ``lead_s`` (a spoken answer reaches the bot when the borrower has finished)."""
    offset = None
    if call.answered_at is not None:
        offset = round(max((at - call.answered_at).total_seconds() - lead_s, 0.0), 2)
    session.add(CallTurn(session_id=call.id, seq=seq, speaker=speaker, node=node, at=at, source=source,
                         text_redacted=redact_reply(text) if text else text, confidence=confidence, intent=intent,
                         promise_date=promise_date, audio_ref=audio_ref, flagged=flagged, offset_s=offset,
                         margin=margin))
    return seq


def _stored_plan(call: CallSession) -> Plan:
    extra = (call.state or {}).get("call") or {}
    if not extra:
        return Plan(call.id, call.locale, hangup=True, attempt_id=call.attempt_id or 0)
    plan = Plan.from_json(call.id, call.attempt_id or 0, call.locale, extra.get("plan"))
    if (call.state or {}).get("ended") or call.status in FINAL_STATUSES:
        plan.listen = None
        plan.hangup = True
    return plan


def initials(full_name: str | None) -> str:
    """``Jane Doe`` → ``J. D.``; a CJK name → its first character (the family name)."""
    name = (full_name or "").strip()
    if not name:
        return ""
    first = name[0]
    if "\u1100" <= first <= "\u11ff" or "\u3040" <= first <= "\u9fff" or "\uac00" <= first <= "\ud7a3":
        return first
    return " ".join(f"{part[0].upper()}." for part in name.split() if part[:1].isalpha())


def spoken_number(e164: str) -> str:
    """The lender's number as it is read aloud: national format, digits grouped."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
