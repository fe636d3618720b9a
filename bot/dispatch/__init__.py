"""The dispatcher: the only code that sends (docs/dispatch.md).

* :class:`Dispatcher` -- one pass: reconcile, claim, re-check, compose, rate-limit,
  send, record (:mod:`bot.dispatch.runner`);
* :func:`build_channels` -- the SMS, email and voice adapters from the settings;
* :func:`dispatch_once` -- build the adapters, run one pass, close them;
* :func:`make_dispatcher` -- the function the scheduler's ``dispatch`` job calls
  (``fn(database, clock) -> attempts handled``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from bot.channels.base import Channel
from bot.clock import Clock, SystemClock
from bot.db import Database
from bot.dispatch.options import DispatchOptions, backoff_delay
from bot.dispatch.report import OUTCOMES, DispatchReport
from bot.dispatch.runner import Dispatcher

__all__ = [
    "OUTCOMES",
    "DispatchOptions",
    "DispatchReport",
    "Dispatcher",
    "backoff_delay",
    "build_channels",
    "dispatch_once",
    "dispatch_retrying",
    "make_dispatcher",
]

log = logging.getLogger(__name__)

#: How long a scheduled pass keeps sending what comes due (rate-limited attempts) on a real clock.
SCHEDULED_PASS_SECONDS = 50.0


def build_channels(settings: Any) -> dict[str, Channel]:
    """The adapters the settings configure: SMS and calls (Twilio or the sandbox) and email (SMTP)."""
    from bot.channels.email import EmailChannel
    from bot.channels.sms import SmsChannel
    from bot.channels.voice import VoiceChannel

    return {"sms": SmsChannel(settings), "email": EmailChannel(settings), "voice": VoiceChannel(settings)}


async def _close(channels: Mapping[str, Channel]) -> None:
    for channel in channels.values():
        try:
            await channel.aclose()
        except Exception as exc:  # closing must not hide the pass's result
            log.warning("closing the %s adapter failed: %s", channel.name, type(exc).__name__)


async def dispatch_once(
    db: Database,
    settings: Any,
    *,
    clock: Clock,
    policy: Any = None,
    compliance_config: Any = None,
    options: DispatchOptions | None = None,
    channels: Mapping[str, Channel] | None = None,
    rng: random.Random | None = None,
) -> DispatchReport:
    """One pass with adapters built from the settings (or the given ones), closed afterwards."""
    own = channels is None
    adapters = build_channels(settings) if channels is None else dict(channels)
    try:
        dispatcher = Dispatcher(db, settings, channels=adapters, policy=policy, clock=clock, options=options,
                                rng=rng, compliance_config=compliance_config)
        return await dispatcher.run_pass()
    finally:
        if own:
            await _close(adapters)


def dispatch_retrying(db: Database, settings: Any, **kwargs: Any) -> DispatchReport:
    """:func:`dispatch_once` in an event loop of its own, run again when the database went away
    during the pass (``database_retries`` in all, bot.db.retry.retry_pass); then
    :class:`~bot.errors.DatabaseUnavailable`.  A pass run again first takes back its own claims
    and reconciles what it may have left ``sending`` once the lease ends: nothing is sent twice."""
    from bot.db.retry import retry_pass

    return retry_pass(lambda: asyncio.run(dispatch_once(db, settings, **kwargs)), what="dispatch pass",
                      tries=settings.database_retries, pause=settings.database_retry_pause_seconds)


def make_dispatcher(settings: Any, *, policy: Any = None, compliance_config: Any = None,
                    stop: threading.Event | None = None, **option_overrides: Any) -> Callable[[Database, Clock], int]:
    """The scheduler's dispatch function: one pass in its own event loop (APScheduler runs
    jobs in a worker thread).  On the real clock a pass keeps sending what comes due
    for :data:`SCHEDULED_PASS_SECONDS`; on a fixed clock it is one sweep.  Once ``stop``
    is set (the service is stopping) a pass sends no further batch.

    Every template the dispatcher may send is checked here, once, when the service is
    built (:func:`bot.messages.validate_templates`: a :class:`~bot.messages.TemplateCheckError`
    names each file), not when a message is due."""
    from bot.messages import validate_templates
    from bot.rendering import get_renderer

    validate_templates(get_renderer(str(settings.templates_dir)), policy=policy, settings=settings)

    def dispatch(db: Database, clock: Clock) -> int:
        overrides = dict(option_overrides)
        if stop is not None:
            overrides["stop"] = stop
            if stop.is_set():
                return 0
        if isinstance(clock, SystemClock):
            overrides.setdefault("keep_running_for", SCHEDULED_PASS_SECONDS)
        options = DispatchOptions.from_settings(settings, **overrides)
        report = dispatch_retrying(db, settings, clock=clock, policy=policy, compliance_config=compliance_config,
                                   options=options)
        return report.handled

    return dispatch
