"""The voice adapter: places a scripted call through Twilio's Calls API (docs/voice.md).

``send`` takes an :class:`~bot.channels.base.ApprovedMessage` of channel
``voice`` (no text: the script runs when the call is answered) and creates
the call with the official ``twilio`` client::

    calls.create(to, from_, url=<public>/twilio/voice/answer?attempt=<id>,
                 status_callback=<public>/twilio/voice/status?attempt=<id>,
                 status_callback_event=[initiated, ringing, answered, completed],
                 machine_detection="DetectMessageEnd", timeout=..., time_limit=...,
                 record=True, recording_channels="dual",   # unless voice_record_calls is off
                 recording_status_callback=<public>/twilio/voice/recording?attempt=<id>)

The caller id is the message's ``from_`` or one of ``twilio_from_numbers``
chosen by a hash of the recipient (a borrower always sees the same number, and
a call-back reaches the same line).  The client, transport and error classifier are the SMS adapter's
(an aiohttp session of ours, bounded by ``concurrency``).

Errors are classified like SMS, with the Calls tables of :mod:`bot.providers.twilio.errors`:
``TwilioTransientError`` (retry with backoff; with ``outcome_unknown`` when the
request may have reached Twilio: the dispatcher then reconciles by listing calls,
:class:`bot.providers.twilio.lookup.TwilioLookup`) or ``TwilioPermanentError``
with an ``effect`` on the number (``invalid`` for 21211/21217, ``landline``
for 21614).

Logs carry the attempt id, the masked number, the call SID and codes only.

Composing a call (:func:`compose_call`): a voice attempt has no text, its
``template`` is the policy step's ``script`` (``first_stage``), and composing it
means choosing the script and the locale it is spoken in (:func:`script_locale`:
the borrower's if the script has it, else en-US) and checking the script loads.
The script runs when the call is answered (bot.voice).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from bot.channels.base import ApprovedMessage, SendResult
from bot.channels.sms import TwilioAdapter
from bot.domain import Channel as ChannelName
from bot.privacy import mask_phone
from bot.providers.twilio.errors import classify_call_error
from bot.voice.sessions import DEFAULT_SCRIPT, FALLBACK_LOCALE
from bot.voice.urls import answer_url, recording_url, status_url

__all__ = ["CALL_EVENTS", "ComposedCall", "VoiceChannel", "compose_call", "script_locale"]

log = logging.getLogger("bot.channels.voice")

CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
MACHINE_DETECTION = "DetectMessageEnd"
#: Calls are one per second per account by default: a few in flight is plenty.
DEFAULT_CONCURRENCY = 8


class VoiceChannel(TwilioAdapter):
    """Places calls through Twilio (or the local sandbox at ``twilio_api_base_url``).

    ``client``: a ready ``twilio.rest.Client`` (tests); default: one built from the
    settings with an async HTTP client.  One adapter serves one event loop; call
    :meth:`aclose` when the loop is done.
    """

    name: ClassVar[ChannelName] = ChannelName.VOICE
    resource = "calls"
    log_label = "call"
    default_concurrency = DEFAULT_CONCURRENCY
    numbers_needed = "BOT_TWILIO_FROM_NUMBERS: at least one caller id is needed to place calls"

    # --- placing a call ------------------------------------------------------------------

    def create_kwargs(self, message: ApprovedMessage) -> dict[str, Any]:
        """The ``calls.create`` arguments for ``message`` (also what tests check)."""
        base = self.settings.public_base_url
        kwargs: dict[str, Any] = {
            "to": message.to,
            "from_": message.from_ or self.sender_for(message.to),
            "url": answer_url(base, message.attempt_id),
            "method": "POST",
            "status_callback": message.status_callback or status_url(base, message.attempt_id),
            "status_callback_method": "POST",
            "status_callback_event": list(CALL_EVENTS),
            "machine_detection": MACHINE_DETECTION,
            "timeout": self.settings.call_ring_timeout_seconds,
            "time_limit": self.settings.call_time_limit_seconds,
        }
        if self.settings.voice_record_calls and self.settings.voice_keep_recordings:
            # One recording of the whole call, the bot and the borrower on separate channels.
            kwargs.update(record=True, recording_channels="dual",
                          recording_status_callback=recording_url(base, message.attempt_id),
                          recording_status_callback_method="POST", recording_status_callback_event=["completed"])
        return kwargs

    async def send(self, message: ApprovedMessage) -> SendResult:
        """Create the call at Twilio; ``SendResult(call_sid, status)``."""
        if message.channel != ChannelName.VOICE:
            raise ValueError(f"VoiceChannel cannot place a {message.channel} message")
        kwargs = self.create_kwargs(message)
        created = await self.create(message, kwargs, classify=classify_call_error, undone="placed")
        masked = mask_phone(message.to)
        log.info("call attempt=%s to=%s from=%s sid=%s status=%s", message.attempt_id, masked,
                 mask_phone(kwargs["from_"]), created.sid, created.status)
        return SendResult(provider_id=created.sid, status=str(created.status))


# --- composing a call ----------------------------------------------------------------------

class CallComposeError(Exception):
    """The call cannot be composed (no usable script): ``reason`` goes to ``last_error``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ComposedCall:
    """What the adapter and the call session need: no text (the script runs on answer)."""

    attempt_id: int
    to: str
    idempotency_key: str
    locale: str
    script: str
    status_callback: str
    loan_id: str | None = None
    body: str = ""

    def approve_fields(self) -> dict[str, Any]:
        return {
            "attempt_id": self.attempt_id,
            "channel": ChannelName.VOICE,
            "to": self.to,
            "body": "",
            "idempotency_key": self.idempotency_key,
            "status_callback": self.status_callback,
        }



@lru_cache(maxsize=64)
def _script_ok(name: str, locale: str, scripts_dir: str | None) -> str | None:
    """None when script ``name`` loads for ``locale``, else the problem (cached per process)."""
    from bot.scripts import load_script

    try:
        load_script(name, locale, scripts_dir=Path(scripts_dir) if scripts_dir else None)
    except Exception as exc:  # ScriptError, a missing file: the script cannot run in this locale
        return type(exc).__name__
    return None


def _dir(value: Any) -> str | None:
    return str(value) if value else None


def script_locale(name: str, wanted: str | None, *, scripts_dir: str | None = None) -> str:
    """The locale to speak script ``name`` in: the borrower's if the script has it, else en-US."""
    tag = (wanted or FALLBACK_LOCALE).replace("_", "-")
    for candidate in dict.fromkeys((tag, FALLBACK_LOCALE)):
        if _script_ok(name, candidate, scripts_dir) is None:
            return candidate
    raise CallComposeError("script_error", f"voice script {name!r} does not load for {tag} nor {FALLBACK_LOCALE}")


def compose_call(data: Any, attempt: Any, settings: Any, *, at: datetime | None = None) -> ComposedCall:
    """The call of a voice attempt (``data`` is its :class:`~bot.messages.MessageData` or None).

    Raises :class:`bot.messages.ComposeError` when there is no number, no
    borrower, or the script does not load.
    """
    from bot.messages import ComposeError

    if not attempt.address:
        raise ComposeError("no_address", f"attempt {attempt.id} has no number", template=attempt.template)
    if data is None:
        raise ComposeError("missing_data", f"attempt {attempt.id}: its borrower is not in the database")
    script = attempt.template or DEFAULT_SCRIPT
    planner = (attempt.decision or {}).get("planner") if isinstance(attempt.decision, Mapping) else None
    wanted = planner.get("locale") if isinstance(planner, Mapping) and planner.get("locale") else data.locale
    try:
        locale = script_locale(script, wanted, scripts_dir=_dir(getattr(settings, "voice_scripts_dir", None)))
    except CallComposeError as exc:
        raise ComposeError(exc.reason, str(exc), template=script) from None
    return ComposedCall(
        attempt_id=attempt.id,
        to=attempt.address,
        idempotency_key=attempt.dedupe_key,
        locale=locale,
        script=script,
        status_callback=status_url(settings.public_base_url, attempt.id),
        loan_id=attempt.loan_id or data.loan_id,
    )
