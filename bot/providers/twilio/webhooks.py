"""Twilio's webhooks: the only place that reads Twilio's form fields (docs/webhooks.md).

A request is believed only once its ``X-Twilio-Signature`` is proven: Twilio signs
the URL *it was configured with* followed by the sorted form parameters, and
:func:`verified_form` checks it with :func:`bot.providers.twilio.client.valid_signature`
against the URL the web layer rebuilt from ``public_base_url`` (bot.web.body).  Order of
checks: a missing signature is refused (403, :func:`require_signature`) before the body
is read; a non-form body (415) before it is parsed; a malformed body (400); a wrong
signature (403) before any parameter is looked at.

Each parser then turns the verified form (and the bot's own query parameters of the
callback URL: ``attempt``, ``turn``, ``silence``) into one provider-neutral event of
:mod:`bot.channels.events`, or raises :class:`~bot.errors.WebhookRejected` (400) naming
the field that is missing or malformed.  Nothing is stored before all of this passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict

from bot.channels.events import (
    AudioRef,
    CallAnswered,
    CallHeard,
    CallProgress,
    DeliveryUpdate,
    InboundText,
    RecordingReady,
)
from bot.db.types import is_row_id
from bot.errors import WebhookRejected
from bot.providers.twilio.client import valid_signature
from bot.providers.twilio.errors import code_effect
from bot.providers.twilio.statuses import answered_kind

__all__ = [
    "FORM_TYPE",
    "MAX_BODY_CHARS",
    "SIGNATURE_HEADER",
    "Form",
    "call_answered",
    "call_heard",
    "call_progress",
    "delivery_update",
    "inbound_text",
    "progress",
    "recording_ready",
    "require_signature",
    "verified_form",
]

SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 200
MAX_ADDRESS = 254
MAX_BODY_CHARS = 4096  # Twilio joins a long message into at most 1,600 characters

Form = ImmutableMultiDict[str, str]

_SID_RE = re.compile(r"^[A-Za-z0-9]{2,64}$")
_CALL_SID_RE = re.compile(r"^CA[0-9a-fA-F]{32}$")
_ERROR_CODE_RE = re.compile(r"^\d{1,10}$")
_KEYS = "0123456789*#"


def _bad(message: str) -> WebhookRejected:
    return WebhookRejected(400, message)


# --- the signature ------------------------------------------------------------------------------


def require_signature(headers: Mapping[str, str]) -> str:
    """The request's signature; 403 when there is none (checked before the body is read)."""
    signature = headers.get(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected(403, f"missing {SIGNATURE_HEADER} header")
    return signature


def verified_form(auth_token: str, url: str, signature: str, content_type: str, body: bytes) -> Form:
    """The form parameters of ``body`` once ``signature`` is proven for ``url`` (the URL Twilio
    was configured with); :class:`~bot.errors.WebhookRejected` otherwise (415, 400, 403)."""
    media_type = content_type.split(";")[0].strip().lower()
    if body and media_type != FORM_TYPE:
        raise WebhookRejected(415, f"expected a {FORM_TYPE} body")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise _bad("malformed form body") from None
    form = ImmutableMultiDict(pairs)
    if not valid_signature(auth_token, url, form, signature):
        raise WebhookRejected(403, f"invalid {SIGNATURE_HEADER} for the configured public URL")
    return form


# --- messages -----------------------------------------------------------------------------------


def _missing(form: Form, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name not in form]


def _attempt(query: Mapping[str, str], *, required: bool) -> int | None:
    """The ``attempt`` of the callback URL (the bot's own parameter); 400 when malformed or, for a
    call, absent."""
    raw = query.get("attempt")
    if raw is None and not required:
        return None
    if raw is None or not raw.isdigit() or not is_row_id(int(raw)):
        raise _bad("attempt must be a positive integer")
    return int(raw)


def inbound_text(form: Form, query: Mapping[str, str], *, at: datetime) -> InboundText:
    """An SMS to one of our numbers (``/twilio/sms``), received ``at``."""
    missing = _missing(form, ("MessageSid", "From", "To", "Body"))
    if missing:
        raise _bad("missing parameter(s): " + ", ".join(missing))
    sid, sender, recipient, body = form["MessageSid"], form["From"].strip(), form["To"].strip(), form["Body"]
    if not _SID_RE.match(sid):
        raise _bad("MessageSid is malformed")
    for name, value in (("From", sender), ("To", recipient)):
        if not value or len(value) > MAX_ADDRESS:
            raise _bad(f"{name} is empty or too long")
    if len(body) > MAX_BODY_CHARS:
        raise _bad(f"Body is longer than {MAX_BODY_CHARS} characters")
    return InboundText(message_id=sid, sender=sender, recipient=recipient, body=body, received_at=at)


def delivery_update(form: Form, query: Mapping[str, str]) -> DeliveryUpdate:
    """A message status callback (``/twilio/status``, ``?attempt=<id>`` when the dispatcher set it)."""
    attempt_id = _attempt(query, required=False)
    status = form.get("MessageStatus") or form.get("SmsStatus")
    missing = _missing(form, ("MessageSid",)) + ([] if status else ["MessageStatus"])
    if missing:
        raise _bad("missing parameter(s): " + ", ".join(missing))
    sid = form["MessageSid"]
    if not _SID_RE.match(sid):
        raise _bad("MessageSid is malformed")
    error_code = form.get("ErrorCode") or None
    if error_code is not None and not _ERROR_CODE_RE.match(error_code):
        raise _bad("ErrorCode is not a number")
    assert status is not None
    return DeliveryUpdate(message_id=sid, status=status.strip().lower(), error_code=error_code,
                          error_effect=code_effect(error_code), attempt_id=attempt_id)


# --- calls --------------------------------------------------------------------------------------


def _call(form: Form, query: Mapping[str, str]) -> tuple[int, str]:
    """What every voice webhook names: the attempt (the callback URL's) and the call."""
    attempt_id = _attempt(query, required=True)
    assert attempt_id is not None
    sid = form.get("CallSid")
    if not sid or not _CALL_SID_RE.match(sid):
        raise _bad("CallSid is missing or malformed")
    return attempt_id, sid


def _word(form: Form, name: str) -> str | None:
    return (form.get(name) or "").strip().lower() or None


def call_answered(form: Form, query: Mapping[str, str]) -> CallAnswered:
    """The call was answered (``/twilio/voice/answer``), with the machine detection's verdict."""
    attempt_id, sid = _call(form, query)
    detection = (form.get("MachineDetectionDuration") or "").strip()
    detail = _word(form, "AnsweredBy")
    return CallAnswered(attempt_id=attempt_id, call_id=sid, answered_by=answered_kind(detail),  # type: ignore[arg-type]
                        answered_by_detail=detail, status=_word(form, "CallStatus"),
                        detection_s=int(detection) / 1000 if detection.isdigit() and len(detection) < 7 else 0.0)


def _recording(form: Form) -> tuple[str, str]:
    return (form.get("RecordingSid") or "").strip(), (form.get("RecordingUrl") or "").strip()


def call_heard(form: Form, query: Mapping[str, str]) -> CallHeard:
    """The answer to one prompt (``/twilio/voice/input?turn=<n>``): keys (``Digits``), a recording
    (``RecordingUrl``) or silence (``silence=1``, an empty recording, a Gather hung up)."""
    attempt_id, sid = _call(form, query)
    raw_turn = query.get("turn", "")
    if not raw_turn.isdigit() or not 0 < int(raw_turn) < 10_000:
        raise _bad("turn must be a positive integer")
    recording_sid = form.get("RecordingSid")
    if form.get("RecordingUrl") and (not recording_sid or not _SID_RE.match(recording_sid)):
        raise _bad("RecordingSid is missing or malformed")
    digits = form.get("Digits") or ""
    if len(digits) > 32 or (digits != "hangup" and any(ch not in _KEYS for ch in digits)):
        raise _bad("Digits is malformed")
    digits = digits.strip()
    recording_sid, location = _recording(form)
    duration = (form.get("RecordingDuration") or "").strip()
    if digits and digits != "hangup":
        return CallHeard(attempt_id=attempt_id, call_id=sid, turn=int(raw_turn), digits=digits)
    if query.get("silence") == "1" or not location or duration in ("0", "-1"):
        return CallHeard(attempt_id=attempt_id, call_id=sid, turn=int(raw_turn))
    audio = AudioRef(recording_id=recording_sid, location=location,
                     duration_s=float(duration) if duration.isdigit() else None)
    return CallHeard(attempt_id=attempt_id, call_id=sid, turn=int(raw_turn), audio=audio)


def recording_ready(form: Form, query: Mapping[str, str]) -> RecordingReady:
    """The whole call's recording is ready (``/twilio/voice/recording``, a ``RecordingStatusCallback``)."""
    attempt_id, sid = _call(form, query)
    recording_sid, location = _recording(form)
    if not _SID_RE.match(form.get("RecordingSid") or "") or not recording_sid.startswith("RE"):
        raise _bad("RecordingSid is missing or malformed")
    if not location:
        raise _bad("missing parameter(s): RecordingUrl")
    return RecordingReady(attempt_id=attempt_id, call_id=sid, audio=AudioRef(recording_id=recording_sid,
                                                                            location=location),
                          status=_word(form, "RecordingStatus") or "completed",
                          started_at=_rfc2822(form.get("RecordingStartTime")))


def call_progress(form: Form, query: Mapping[str, str]) -> CallProgress:
    """A call progress callback (``/twilio/voice/status``)."""
    attempt_id, sid = _call(form, query)
    if not form.get("CallStatus"):
        raise _bad("missing parameter(s): CallStatus")
    duration = (form.get("CallDuration") or "").strip()
    if duration and not duration.isdigit():
        raise _bad("CallDuration is not a number")
    return progress(attempt_id, sid, form["CallStatus"], duration, form.get("AnsweredBy"))


def progress(attempt_id: int, sid: str, status: str, duration: str | None, answered_by: str | None) -> CallProgress:
    """A call's progress from Twilio's words (a status callback's, or a fetched call's)."""
    duration = (duration or "").strip()
    return CallProgress(attempt_id=attempt_id, call_id=sid, status=status.strip().lower(),
                        duration_s=float(duration) if duration.isdigit() else None,
                        answered_by_detail=(answered_by or "").strip().lower()[:32] or None)


def _rfc2822(value: str | None) -> datetime | None:
    """Twilio's ``RecordingStartTime`` (RFC 2822) as an aware instant, None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None
