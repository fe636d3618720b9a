"""Calls in the sandbox: the Calls resource and call progress with status callbacks.

A created call is ``queued``; its progress is scheduled from the callee's
persona (``Persona.call``):

========== ==========================================================================
answer     progress (t = seconds after create; r = ``timing.call_ring_after``)
========== ==========================================================================
human      initiated (t=0), ringing (r), in-progress (r + ring_seconds), completed
machine    when the call flow ends (the bot hangs up, the TwiML runs out, the persona hangs
           up, ``talk_seconds`` or ``TimeLimit``); ``ring_seconds >= Timeout`` gives
           no-answer at r + Timeout
no-answer  initiated, ringing, no-answer at r + Timeout
busy       initiated, busy at r
failed     initiated, failed at r
========== ==========================================================================

Status callbacks go to ``StatusCallback`` for the events named in
``StatusCallbackEvent`` (default: ``completed`` only) with ``CallStatus``
``initiated``, ``ringing``, ``in-progress`` or the final status, a
``SequenceNumber`` and ``CallbackSource=call-progress-events``.

When the call is answered, :meth:`Voice.on_answered` hands it to the call
flow (:mod:`bot.sandbox.callflow`), which fetches the TwiML (signed request
to ``Url``, or the inline ``Twiml``), records it in ``Call.twiml_log`` and
executes it against the persona; a REST redirect (``Url``/``Twiml`` update)
goes to :meth:`Voice.on_redirect`.

Machine detection decides ``amd_seconds`` after answering (a machine with
``DetectMessageEnd``: at its beep, ``greeting_seconds``).  Synchronous AMD
sets ``AnsweredBy`` at once and the call flow waits that long before
requesting the TwiML; with ``AsyncAmd`` the TwiML is requested at once
(without ``AnsweredBy``) and the result is posted to
``AsyncAmdStatusCallback`` when detection decides.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING

from bot.privacy import mask_phone
from bot.sandbox import spec
from bot.sandbox.callbacks import deliver_status
from bot.sandbox.callflow import CallFlows
from bot.sandbox.config import E164
from bot.sandbox.errors import TwilioApiError
from bot.sandbox.messaging import region_of
from bot.sandbox.params import FormValues, date_filters, date_matches, first
from bot.sandbox.phones import CallBehaviour
from bot.sandbox.resources import DEFAULT_PAGE_SIZE, account_uri, call_json, page_json, rfc2822
from bot.sandbox.state import API_VERSION, Call, new_sid
from bot.sandbox.webhooks import WebhookRefused

if TYPE_CHECKING:
    from bot.sandbox.host import Host

log = logging.getLogger("bot.sandbox.voice")

CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
MACHINE_DETECTION = ("Enable", "DetectMessageEnd")
MAX_TIMEOUT = 600


class Voice:
    def __init__(self, sandbox: Host) -> None:
        self.sb = sandbox
        self.flows = CallFlows(sandbox, self)

    # --- REST ------------------------------------------------------------------

    def create(self, account_sid: str, form: FormValues) -> Call:
        op = spec.operation(spec.CALLS, "POST")
        to, from_ = first(form, "To"), first(form, "From")
        url, twiml, application = first(form, "Url"), first(form, "Twiml"), first(form, "ApplicationSid")
        if not to:
            raise TwilioApiError(21201)
        if not from_:
            raise TwilioApiError(21213)
        if not (url or twiml or application):
            raise TwilioApiError(21205, "Either Url, Twiml or ApplicationSid is required")
        problems, unknown = spec.check_params(op.form_params, form)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        if unknown:
            log.debug("ignoring unknown Calls parameters: %s", ", ".join(unknown))
        events = _callback_events(form.get("StatusCallbackEvent", []))
        detection = first(form, "MachineDetection")
        if detection and detection not in MACHINE_DETECTION:
            raise TwilioApiError(400, "Invalid parameter MachineDetection: must be Enable or DetectMessageEnd")
        async_amd = (first(form, "AsyncAmd") or "false").lower()
        if async_amd not in ("true", "false"):  # a string in the spec, but only these two are taken
            raise TwilioApiError(400, "Invalid parameter AsyncAmd: must be true or false")
        if not E164.match(to):
            raise TwilioApiError(21211)
        if not E164.match(from_):
            raise TwilioApiError(21212)
        if url:
            self._check_url(url, 21205, "Url")
        status_callback = first(form, "StatusCallback")
        if status_callback:
            self._check_url(status_callback, 21609, "StatusCallback")
        recording_channels = (first(form, "RecordingChannels") or "mono").lower()
        if recording_channels not in ("mono", "dual"):
            raise TwilioApiError(400, "Invalid parameter RecordingChannels: must be mono or dual")
        recording_callback = first(form, "RecordingStatusCallback")
        if recording_callback:
            self._check_url(recording_callback, 21609, "RecordingStatusCallback")
        amd_callback = first(form, "AsyncAmdStatusCallback")
        if amd_callback:
            self._check_url(amd_callback, 21609, "AsyncAmdStatusCallback")
        timeout = min(int(first(form, "Timeout") or 60), MAX_TIMEOUT)
        sb = self.sb
        with sb.store.lock:
            owned = sb.store.numbers.get(from_)
            if owned is None or owned.account_sid != account_sid:
                raise TwilioApiError(21210)
            persona = sb.phones.persona(to)
            if persona.line_type == "invalid":
                raise TwilioApiError(21211)
            now = sb.now()
            duplicate, out_of_order = sb.faults.callback_modes()
            call = Call(
                sid=new_sid("CA"),
                account_sid=account_sid,
                to=to,
                from_=from_,
                status="queued",
                date_created=now,
                date_updated=now,
                phone_number_sid=owned.sid,
                instructions={
                    "url": url,
                    "method": (first(form, "Method") or "POST").upper(),
                    "twiml": twiml,
                    "application_sid": application,
                    "fallback_url": first(form, "FallbackUrl"),
                },
                status_callback=status_callback,
                status_callback_method=(first(form, "StatusCallbackMethod") or "POST").upper(),
                status_callback_events=events,
                timeout=timeout,
                time_limit=int(first(form, "TimeLimit") or 14400),
                machine_detection=detection,
                async_amd=async_amd == "true",
                async_amd_status_callback=amd_callback,
                async_amd_status_callback_method=(first(form, "AsyncAmdStatusCallbackMethod") or "POST").upper(),
                record=(first(form, "Record") or "false").lower() == "true",
                recording_channels=recording_channels,
                recording_status_callback=recording_callback,
                recording_status_callback_method=(first(form, "RecordingStatusCallbackMethod") or "POST").upper(),
                seq=sb.store.next_seq(),
                duplicate_callbacks=duplicate,
                out_of_order_callbacks=out_of_order,
            )
            sb.store.calls[call.sid] = call
            self._schedule_progress(call)
            log.info("call %s queued to %s", call.sid, mask_phone(to))
            return dataclasses.replace(call)

    def fetch(self, account_sid: str, sid: str) -> Call:
        with self.sb.store.lock:
            return dataclasses.replace(self._get(account_sid, sid))

    def list(self, account_sid: str, query: FormValues) -> dict[str, object]:
        op = spec.operation(spec.CALLS, "GET")
        problems, _ = spec.check_params(op.query_params, query)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        names = ("To", "From", "ParentCallSid", "Status", "StartTime", "StartTime<", "StartTime>", "EndTime", "EndTime<", "EndTime>")
        filters = [(name, value) for name in names if (value := first(query, name))]
        time_filters = date_filters(query, (n for n in names if n.startswith(("StartTime", "EndTime"))))
        plain = {name: value for name, value in filters if not name.startswith(("StartTime", "EndTime"))}
        field_of = {"To": "to", "From": "from_", "ParentCallSid": "parent_call_sid", "Status": "status"}
        with self.sb.store.lock:
            records = [
                dataclasses.replace(c)
                for c in self.sb.store.calls.values()
                if c.account_sid == account_sid
                and all(getattr(c, field_of[name]) == value for name, value in plain.items())
                and all(date_matches(c.start_time if name.startswith("StartTime") else c.end_time, name, value)
                        for name, value in time_filters)
            ]
        records.sort(key=lambda c: (c.date_created, c.seq), reverse=True)
        return page_json(
            key="calls",
            list_uri=f"{account_uri(account_sid)}/Calls.json",
            filters=filters,
            records=records,
            render=call_json,
            sid_of=lambda c: c.sid,
            page_size=int(first(query, "PageSize") or DEFAULT_PAGE_SIZE),
            page=int(first(query, "Page") or 0),
            token=first(query, "PageToken"),
        )

    def update(self, account_sid: str, sid: str, form: FormValues) -> Call:
        op = spec.operation(spec.CALL, "POST")
        problems, _ = spec.check_params(op.form_params, form)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        url, twiml, status = first(form, "Url"), first(form, "Twiml"), first(form, "Status")
        if url:
            self._check_url(url, 21205, "Url")
        status_callback = first(form, "StatusCallback")
        if status_callback:
            self._check_url(status_callback, 21609, "StatusCallback")
        sb = self.sb
        with sb.store.lock:
            call = self._get(account_sid, sid)
            if status_callback:
                call.status_callback = status_callback
                call.status_callback_method = (first(form, "StatusCallbackMethod") or "POST").upper()
            if status:
                if call.status in ("queued", "ringing"):
                    self._end(call, "canceled")
                elif call.status == "in-progress" and status == "completed":
                    self._end(call, "completed")
                return dataclasses.replace(call)
            if url or twiml:
                if call.is_final:
                    raise TwilioApiError(21220)
                call.instructions.update({"url": url, "twiml": twiml, "method": (first(form, "Method") or "POST").upper()})
                call.date_updated = sb.now()
                if call.status == "in-progress":
                    call.epoch += 1
                    epoch = call.epoch
                    sb.schedule(0.0, f"call {sid} redirect", lambda: self._if_current(sid, epoch, self.on_redirect))
            return dataclasses.replace(call)

    def delete(self, account_sid: str, sid: str) -> None:
        with self.sb.store.lock:
            call = self._get(account_sid, sid)
            if not call.is_final:
                raise TwilioApiError(20009)
            del self.sb.store.calls[sid]

    def _get(self, account_sid: str, sid: str) -> Call:
        call = self.sb.store.calls.get(sid)
        if call is None or call.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource /2010-04-01/Accounts/{account_sid}/Calls/{sid}.json was not found")
        return call

    def _check_url(self, url: str, code: int, name: str) -> None:
        try:
            self.sb.webhooks.policy.check(url)
        except WebhookRefused as exc:
            raise TwilioApiError(code, f"Invalid '{name}': {exc}") from None

    # --- progress ----------------------------------------------------------------

    def _schedule_progress(self, call: Call) -> None:
        """Queue the call's progress from the callee's persona (store lock held)."""
        behaviour = self.sb.phones.persona(call.to).call
        ring_after = self.sb.config.timing.call_ring_after
        sid, epoch = call.sid, call.epoch
        self.sb.schedule(0.0, f"call {sid} initiated", lambda: self._if_current(sid, epoch, self._initiated))
        if behaviour.answer in ("busy", "failed"):
            final = behaviour.answer
            self.sb.schedule(ring_after, f"call {sid} {final}", lambda: self._if_current(sid, epoch, lambda c: self._end(c, final)))
            return
        self.sb.schedule(ring_after, f"call {sid} ringing", lambda: self._if_current(sid, epoch, self._ringing))
        if behaviour.answer == "no-answer" or behaviour.ring_seconds >= call.timeout:
            self.sb.schedule(
                ring_after + call.timeout,
                f"call {sid} no-answer",
                lambda: self._if_current(sid, epoch, lambda c: self._end(c, "no-answer")),
            )
        else:
            self.sb.schedule(ring_after + behaviour.ring_seconds, f"call {sid} answered", lambda: self._if_current(sid, epoch, self._answered))

    def _if_current(self, sid: str, epoch: int, step) -> None:  # type: ignore[no-untyped-def]
        """Run *step(call)* under the lock unless the call moved on since the event was scheduled."""
        with self.sb.store.lock:
            call = self.sb.store.calls.get(sid)
            if call is None or call.epoch != epoch or call.is_final:
                return
            step(call)

    def _initiated(self, call: Call) -> None:
        call.start_time = call.start_time or self.sb.now()
        call.date_updated = self.sb.now()
        self._status_callback(call, "initiated", "initiated")

    def _ringing(self, call: Call) -> None:
        call.status = "ringing"
        call.date_updated = self.sb.now()
        self._status_callback(call, "ringing", "ringing")

    def _answered(self, call: Call) -> None:
        now = self.sb.now()
        behaviour = self.sb.phones.persona(call.to).call
        call.status = "in-progress"
        call.answered_at = now
        call.date_updated = now
        detected = None
        if call.machine_detection:
            detected = answered_by(behaviour.answer, behaviour.answered_by, call.machine_detection)
            if not call.async_amd:
                call.answered_by = detected  # synchronous AMD: the TwiML request waits for it
        self._status_callback(call, "answered", "in-progress")
        sid, epoch = call.sid, call.epoch
        self.sb.schedule(0.0, f"call {sid} answered: fetch TwiML", lambda: self._if_current(sid, epoch, self.on_answered))
        if call.machine_detection and call.async_amd:
            # Asynchronous AMD: the TwiML runs at once; the result comes later, to its own callback.
            result = detected or "unknown"
            self.sb.schedule(_amd_seconds(behaviour, call.machine_detection), f"call {sid} async AMD", lambda: self._amd_result(sid, result))

    def _end(self, call: Call, status: str) -> None:
        """Put the call in a final status now and send the ``completed`` event (store lock held)."""
        now = self.sb.now()
        call.status = status
        call.end_time = now
        call.date_updated = now
        call.duration = math.ceil((now - call.answered_at).total_seconds()) if call.answered_at else 0
        call.epoch += 1
        log.info("call %s %s", call.sid, status)
        if call.record and call.answered_at is not None:
            self.flows.record_call(call)
        self._status_callback(call, "completed", status, final=True)

    def _status_callback(self, call: Call, event: str, call_status: str, *, final: bool = False) -> None:
        """Schedule the callback of *event* at once (a separate event: never sent with the lock held)."""
        subscribed = call.status_callback is not None and event in call.status_callback_events
        params = None
        if subscribed:
            params = self.call_params(call, call_status) + [
                ("CallbackSource", "call-progress-events"),
                ("SequenceNumber", str(call.sequence)),
                ("Timestamp", rfc2822(self.sb.now()) or ""),
            ]
            if event == "completed":
                params.append(("CallDuration", str(call.duration or 0)))
            call.sequence += 1
        if params is None and not final:
            return
        url, method = call.status_callback, call.status_callback_method
        self.sb.schedule(
            0.0,
            f"call {call.sid} {event} callback",
            lambda: deliver_status(self.sb, call, kind="call-status", url=url, method=method, params=params, final=final),
        )

    def call_params(self, call: Call, call_status: str) -> list[tuple[str, str]]:
        """The parameters Twilio sends with every voice webhook of this call."""
        params = [
            ("AccountSid", call.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", call.sid),
            ("CallStatus", call_status),
            ("Called", call.to),
            ("CalledCountry", region_of(call.to)),
            ("Caller", call.from_),
            ("CallerCountry", region_of(call.from_)),
            ("Direction", call.direction),
            ("From", call.from_),
            ("FromCountry", region_of(call.from_)),
            ("To", call.to),
            ("ToCountry", region_of(call.to)),
        ]
        if call.answered_by:
            params.append(("AnsweredBy", call.answered_by))
        return params

    # --- the call flow ---------------------------------------------------------------------

    def on_answered(self, call: Call) -> None:
        """The callee answered: run the call's TwiML against the persona (store lock held)."""
        self.flows.answered(call)

    def on_redirect(self, call: Call) -> None:
        """New instructions for an in-progress call (``Url``/``Twiml`` update, store lock held)."""
        self.flows.redirect(call)

    def _amd_result(self, sid: str, result: str) -> None:
        with self.sb.store.lock:
            call = self.sb.store.calls.get(sid)
            if call is None or call.answered_at is None:
                return
            call.answered_by = result
            if not call.async_amd_status_callback:
                return
            detection_ms = int(_amd_seconds(self.sb.phones.persona(call.to).call, call.machine_detection or "Enable") * 1000)
            params = [
                ("AccountSid", call.account_sid),
                ("AnsweredBy", call.answered_by or "unknown"),
                ("CallSid", call.sid),
                ("MachineDetectionDuration", str(detection_ms)),
            ]
            url, method, token = call.async_amd_status_callback, call.async_amd_status_callback_method, self.sb.auth_token(call.account_sid)
        self.sb.webhooks.send(kind="amd-status", sid=sid, url=url, params=params, auth_token=token, at=self.sb.now(), method=method)


def answered_by(answer: str, override: str | None, detection: str) -> str:
    """``AnsweredBy`` for a persona: human, or machine_start (Enable) / machine_end_beep (DetectMessageEnd)."""
    if override:
        return override
    if answer == "machine":
        return "machine_end_beep" if detection == "DetectMessageEnd" else "machine_start"
    return "human"


def _amd_seconds(behaviour: CallBehaviour, detection: str) -> float:
    """When machine detection decides: at the beep for a machine with DetectMessageEnd, else ``amd_seconds``."""
    if behaviour.answer == "machine" and detection == "DetectMessageEnd":
        return behaviour.greeting_seconds
    return behaviour.amd_seconds


def _callback_events(values: list[str]) -> frozenset[str]:
    events: set[str] = set()
    for value in values:
        events.update(value.split())
    unknown = events - set(CALL_EVENTS)
    if unknown:
        raise TwilioApiError(21626)
    return frozenset(events) if events else frozenset({"completed"})
