"""What the dispatcher does differently per channel: one small object per channel.

The pass itself (bot.dispatch.runner) is the same for every channel; a
:class:`ChannelSteps` holds what is not:

* :meth:`~ChannelSteps.sender`: who sends (an SMS's number, a call's caller id);
* :meth:`~ChannelSteps.compose`: the message (text for SMS and email, through
  bot.messages; script and locale for a call, :func:`bot.channels.voice.compose_call`)
  and the :class:`~bot.dispatch.attempts.DispatchMeta` kept with the attempt;
* :meth:`~ChannelSteps.limits`: the rate-limit buckets it passes;
* :meth:`~ChannelSteps.on_marked`, :meth:`~ChannelSteps.on_sent`, :meth:`~ChannelSteps.on_failed`,
  :meth:`~ChannelSteps.on_reconciled`: a step in the same transaction as marking ``sending``,
  recording a send or a failure (bot.dispatch.attempts.AttemptStore.record) or settling a
  crash (a call's session);
* :meth:`~ChannelSteps.check_statuses`: fetching statuses whose callbacks never came
  (given the :class:`~bot.dispatch.runner.Dispatcher`: its database, clock, options,
  lookup and ``write``).

:data:`STEPS` maps each channel name to its steps; a new channel is one more entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from bot.channels.base import Channel
from bot.dispatch.attempts import DispatchMeta
from bot.dispatch.reconcile import body_hash
from bot.dispatch.records import Failed, Sent
from bot.dispatch.report import DispatchReport
from bot.dispatch.statuses import (
    CALL_FINAL,
    calls_due_for_check,
    due_for_check,
    fetch_call_statuses,
    fetch_statuses,
    record_statuses,
    touch,
)
from bot.domain import Channel as ChannelName
from bot.ratelimit import Limit
from bot.voice.sessions import SessionSeed, ensure_call_sessions, link_call_sids, mark_unplaced

__all__ = ["STEPS", "ChannelSteps", "Composed", "EmailSteps", "SmsSteps", "VoiceSteps"]

log = logging.getLogger("bot.dispatch.runner")


@dataclass(frozen=True, slots=True)
class Composed:
    """A composed message: what the adapter is given (``message``: the composer's result, with
    ``to``, ``body`` and ``approve_fields()``) and what the attempt keeps (``meta``)."""

    message: Any
    meta: DispatchMeta
    loan_id: str | None = None  # a call's loan (its session's)


class ChannelSteps:
    """The default steps: a text message composed from its template, no sender, no extra writes."""

    name: ClassVar[str] = ""
    #: Its provider can be asked about a message after a crash (bot.providers.twilio.lookup).
    provider_lookup: ClassVar[bool] = False
    #: The first text from a sender to a number must say how to opt out (CTIA).
    first_text: ClassVar[bool] = False

    def sender(self, adapter: Channel | None, settings: Any, to: str, replied_to: str | None) -> str | None:
        return None

    def compose(self, data: Any, attempt: Any, settings: Any, *, renderer: Any, at: datetime,
                first_text: bool, sender: str | None) -> Composed:
        from bot.messages import compose

        message = compose(data, attempt, settings, renderer=renderer, at=at, first_text=first_text)
        return Composed(message, DispatchMeta(sender=sender, body_sha256=body_hash(message.body)))

    def limits(self, settings: Any, sender: str | None) -> list[Limit]:
        return []

    def on_marked(self, session: Session, items: Sequence[tuple[int, str, Composed]], now: datetime) -> None:
        """In the transaction that marks ``items`` (attempt id, borrower id, composed) ``sending``."""

    def on_sent(self, session: Session, sent: Sequence[Sent], now: datetime) -> None:
        """In the transaction that records ``sent`` (in id order), after their attempts."""

    def on_failed(self, session: Session, failed: Sequence[Failed], now: datetime) -> None:
        """In the transaction that records ``failed`` (in id order), after their attempts."""

    def on_reconciled(self, session: Session, attempt_id: int, provider_id: str, now: datetime) -> None:
        """In the transaction that records a crashed attempt as found at the provider."""

    async def check_statuses(self, dispatcher: Any, report: DispatchReport) -> None:
        """Fetch the statuses whose callbacks never came (bot.dispatch.statuses)."""


class SmsSteps(ChannelSteps):
    name = ChannelName.SMS.value
    provider_lookup = True
    first_text = True

    def sender(self, adapter: Channel | None, settings: Any, to: str, replied_to: str | None) -> str | None:
        """The number the borrower wrote to (replies), else the adapter's choice."""
        numbers = tuple(getattr(settings, "twilio_from_numbers", ()) or ())
        if replied_to and replied_to in numbers:
            return replied_to
        choose = getattr(adapter, "sender_for", None)
        if callable(choose):
            return str(choose(to))
        return numbers[0] if numbers else None

    def limits(self, settings: Any, sender: str | None) -> list[Limit]:
        limits = [Limit.per_second(f"sms:number:{sender}", settings.sms_rate_per_number)] if sender else []
        limits.append(Limit.per_second(f"sms:account:{settings.twilio_account_sid}", settings.sms_rate_per_account))
        return limits

    async def check_statuses(self, dispatcher: Any, report: DispatchReport) -> None:
        now, due = _due(dispatcher, "message_status", due_for_check)
        if not due:
            return
        checked = await fetch_statuses(dispatcher.lookup, due)  # type: ignore[arg-type]
        moved = dispatcher.write("status check", lambda session: record_statuses(session, checked, now))
        if moved:
            report.add(self.name, "status_fetched", moved)
            log.info("dispatch: %d delivery statuses fetched from the provider (their callbacks never came)", moved)


class EmailSteps(ChannelSteps):
    name = ChannelName.EMAIL.value

    def limits(self, settings: Any, sender: str | None) -> list[Limit]:
        return [Limit.per_second(f"email:relay:{settings.smtp_host}:{settings.smtp_port}", settings.email_rate)]


class VoiceSteps(ChannelSteps):
    name = ChannelName.VOICE.value
    provider_lookup = True

    def sender(self, adapter: Channel | None, settings: Any, to: str, replied_to: str | None) -> str | None:
        """The caller id: the adapter's choice, kept for reconciliation."""
        choose = getattr(adapter, "sender_for", None)
        return str(choose(to)) if callable(choose) else None

    def compose(self, data: Any, attempt: Any, settings: Any, *, renderer: Any, at: datetime,
                first_text: bool, sender: str | None) -> Composed:
        """A call: script and locale, no text (bot.channels.voice.compose_call)."""
        from bot.channels.voice import compose_call

        call = compose_call(data, attempt, settings, at=at)
        return Composed(call, DispatchMeta(sender=sender, body_sha256=body_hash(call.body), call_script=call.script,
                                           call_locale=call.locale), loan_id=call.loan_id)

    def limits(self, settings: Any, sender: str | None) -> list[Limit]:
        return [Limit.per_second(f"voice:account:{settings.twilio_account_sid}", settings.calls_per_second)]

    def on_marked(self, session: Session, items: Sequence[tuple[int, str, Composed]], now: datetime) -> None:
        """The call's session, written with ``sending`` (bot.voice.sessions)."""
        ensure_call_sessions(session, [SessionSeed(attempt_id, borrower_id, c.meta.call_script, c.meta.call_locale,
                                                   c.loan_id) for attempt_id, borrower_id, c in items], now)

    def on_sent(self, session: Session, sent: Sequence[Sent], now: datetime) -> None:
        """The call session learns its CallSid (bot.voice.sessions)."""
        link_call_sids(session, [(o.attempt_id, o.provider_id) for o in sent], now)

    def on_failed(self, session: Session, failed: Sequence[Failed], now: datetime) -> None:
        """A call that was never placed: its session ends."""
        mark_unplaced(session, [o.attempt_id for o in failed], now)

    def on_reconciled(self, session: Session, attempt_id: int, provider_id: str, now: datetime) -> None:
        link_call_sids(session, [(attempt_id, provider_id)], now)

    async def check_statuses(self, dispatcher: Any, report: DispatchReport) -> None:
        if dispatcher.settings is None:  # the call service needs them
            return
        now, due = _due(dispatcher, "call_status", calls_due_for_check)
        if not due:
            return
        answers = await fetch_call_statuses(dispatcher.lookup, due)  # type: ignore[arg-type]
        ended = [(attempt_id, progress) for attempt_id, progress in answers
                 if progress is not None and progress.status in CALL_FINAL]
        moved = 0
        if ended:
            from bot.voice.service import CallService
            from bot.voice.services import CallServices

            service = CallService(dispatcher.settings, dispatcher.db, dispatcher.clock,
                                  CallServices.for_settings(dispatcher.settings))
            try:
                for attempt_id, progress in ended:
                    try:
                        moved += bool(await asyncio.to_thread(service.apply_status, progress))
                    except Exception as exc:  # this call's record is not as expected: the next pass tries again
                        log.warning("dispatch: status of call attempt %s not recorded (%s)", attempt_id,
                                    type(exc).__name__)
            finally:
                service.close()
        asked = [attempt_id for attempt_id, params in answers if params is not None]
        dispatcher.write("call status check", lambda session: touch(session, asked, now))
        if moved:
            report.add(self.name, "status_fetched", moved)
            log.info("dispatch: %d call statuses fetched from the provider (their callbacks never came)", moved)


def _due(dispatcher: Any, ask: str, find: Any) -> tuple[datetime, list[Any]]:
    """Now, and what ``find`` (bot.dispatch.statuses) says is due for a status check; nothing when the
    lookup cannot ``ask`` (``message_status``, ``call_status``) or the service is stopping."""
    now = dispatcher.clock.now()
    if getattr(dispatcher.lookup, ask, None) is None or dispatcher.options.stopping:
        return now, []
    with dispatcher.db.sessions() as session:
        return now, list(find(session, now=now, after=dispatcher.options.status_check_after))


#: The steps of every channel the dispatcher can send on, by channel name.
STEPS: dict[str, ChannelSteps] = {s.name: s for s in (SmsSteps(), EmailSteps(), VoiceSteps())}
