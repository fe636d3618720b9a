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
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from bot.channels.base import ApprovedMessage, SendResult
from bot.channels.sms import TwilioAdapter
from bot.domain import Channel as ChannelName
from bot.privacy import mask_phone
from bot.providers.twilio.errors import (
    NETWORK_ERRORS,
    ClientError,
    RestError,
    TwilioTransientError,
    classify_call_error,
    network_error,
    refusal,
)
from bot.voice.urls import answer_url, recording_url, status_url

__all__ = ["CALL_EVENTS", "VoiceChannel"]

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
        self._bind_loop()
        client = self._client_for_loop()
        kwargs = self.create_kwargs(message)
        masked = mask_phone(message.to)
        try:
            created = await self._call(client, "create", **kwargs)
        except RestError as exc:
            error = classify_call_error(exc)
            level, kind = refusal(error)
            log.log(level, "call attempt=%s to=%s refused: code=%s status=%s %s", message.attempt_id, masked,
                    error.code, error.status, kind)
            raise error from None
        except NETWORK_ERRORS as exc:
            error = network_error(exc)
            log.warning("call attempt=%s to=%s not placed: %s (%s)", message.attempt_id, masked, error.code,
                        type(exc).__name__)
            raise error from None
        except ClientError as exc:
            log.warning("call attempt=%s to=%s: unreadable answer (%s)", message.attempt_id, masked,
                        type(exc).__name__)
            raise TwilioTransientError("the Twilio API gave an answer the client could not read",
                                       code="bad_response", outcome_unknown=True) from None
        log.info("call attempt=%s to=%s from=%s sid=%s status=%s", message.attempt_id, masked,
                 mask_phone(kwargs["from_"]), created.sid, created.status)
        return SendResult(provider_id=created.sid, status=str(created.status))
