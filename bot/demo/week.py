"""The day loop: plan and dispatch at a few instants a day, let the borrowers answer.

Time.  Everything runs on one :class:`~bot.clock.FixedClock`, shared by the
planner, the dispatcher, the bot's webhooks and the sandbox (whose
``advance()`` moves it, firing each status change and each scripted reply at
its own instant).  Nothing sleeps: a simulated week takes seconds.

Time zones.  The portfolio spans Korea and China (UTC+9, +8), the UK (UTC+0)
and the US (UTC-5 to UTC-10), and the rules allow contact only in the
borrower's local hours (08:00-21:00 in the US and the UK, 08:00-22:00 in
China, 08:00-20:00 elsewhere; no Sundays in the UK and Korea).  So the bot
works at :data:`TICKS` (UTC), chosen so that every zone of the portfolio
gets daytime ticks; at each one the planner plans what is current in each
borrower's local date and the dispatcher sends what the rules allow *now*,
deferring the rest to the borrower's morning.

One tick (``at``):

1. the planning job (:meth:`bot.scheduler.service.PlannerService.plan_job`:
   promise follow-up, then the planner);
2. a dispatch pass (:func:`bot.dispatch.dispatch_once`: SMS to the sandbox
   with the twilio client, email to the mail server);
3. ``DELIVERY_SECONDS`` later the status callbacks have reached the bot; the
   borrowers act: payers pay what the reminder was about, promise keepers pay
   on their day (both through the lender's payment feed, an import), opt-outs
   click the email's unsubscribe link;
4. during the next ``REPLY_WINDOW`` the phones' scripted replies arrive at the
   bot's ``/twilio/sms`` (STOP, "I'll pay Friday", "this is not my loan"...);
5. a second dispatch pass sends the bot's answers (confirmations), then
   extensions run.

Calls (with the voice extension) are dialled by the same dispatch passes: the
sandbox rings the borrower's phone, and while the clock moves on the call is
played out, each step a signed webhook to the bot's ``/twilio/voice/*`` routes
(the persona pressing keys, speaking a Korean clip, staying silent or hanging
up), all on the same clock.
"""

from __future__ import annotations

import contextlib
import time as time_module
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from bot.db.models import Borrower, Promise
from bot.demo.actions import PaymentFeed, click_unsubscribe, local_date
from bot.demo.extensions import DemoExtension
from bot.demo.personas import Cast, Kind
from bot.demo.report import DayStats, collect_day
from bot.demo.world import World
from bot.dispatch import DispatchOptions, DispatchReport, dispatch_once
from bot.policy import Policy
from bot.scheduler.service import PlannerService

__all__ = ["DELIVERY_SECONDS", "REPLY_WINDOW", "TICKS", "Week"]

#: When the bot plans and sends, in UTC (local times in docs/demo.md).
TICKS: tuple[time, ...] = (time(0, 30), time(5, 0), time(10, 0), time(14, 0), time(18, 0), time(23, 0))
#: Queued -> sent -> delivered takes 3 simulated seconds in the sandbox.
DELIVERY_SECONDS = 10.0
#: Phones answer 1-20 minutes after a message arrives.
REPLY_WINDOW = timedelta(minutes=30)


@dataclass
class Week:
    world: World
    policy: Policy
    compliance_config: Any
    cast: Cast
    phones: dict[str, list[str]]           # number -> borrower ids
    emails: dict[str, list[str]]           # address (lower case) -> borrower ids
    extensions: Sequence[DemoExtension] = ()
    feed: PaymentFeed = field(init=False)
    _service: PlannerService = field(init=False)
    _seen_sms: int = 0      # sandbox messages looked at so far
    _seen_mail: int = 0     # mailbox messages looked at so far
    _unsubscribed: set[str] = field(default_factory=set)
    #: wall-clock seconds spent per phase (plan, dispatch, webhooks, borrowers, extensions)
    seconds: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        w = self.world
        self.feed = PaymentFeed(w.db, w.directory, w.clock, w.settings.default_timezone)
        self._service = PlannerService(db=w.db, clock=w.clock, policy=self.policy,
                                       default_timezone=w.settings.default_timezone,
                                       compliance_config=self.compliance_config, dispatchers=[])
        self._http = httpx.Client(trust_env=False, timeout=10.0)

    def close(self) -> None:
        self._http.close()

    # --- the loop -------------------------------------------------------------------

    def run_day(self, day: date) -> DayStats:
        stats = DayStats(day)
        start = datetime.combine(day, time(0), UTC)
        end = start + timedelta(days=1)
        sandbox_before = self._outbound_count()
        calls_before = len(self.world.sandbox.calls())
        mail_before = self.world.mailbox.count()
        for tick in TICKS:
            self._advance_to(datetime.combine(day, tick, UTC))
            self.tick(stats)
        self._advance_to(end)
        with self.world.db.sessions() as session:
            collect_day(session, stats, start, end)
        stats.at_sandbox = self._outbound_count() - sandbox_before
        stats.at_sandbox_calls = len(self.world.sandbox.calls()) - calls_before
        stats.at_mailbox = self.world.mailbox.count() - mail_before
        return stats

    def tick(self, stats: DayStats) -> None:
        w = self.world
        with self._timed("plan"):
            self._service.plan_job()
        self._dispatch(stats)
        self._advance(DELIVERY_SECONDS)
        with self._timed("borrowers"):
            self._borrowers_act()
        self._advance(REPLY_WINDOW.total_seconds() - DELIVERY_SECONDS)
        self._dispatch(stats)
        self._advance(DELIVERY_SECONDS)
        for extension in self.extensions:
            with self._timed(extension.name):
                stats.extra.update(extension.after_dispatch(w, w.clock.now()))

    @contextlib.contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        began = time_module.perf_counter()
        try:
            yield
        finally:
            self.seconds[what] += time_module.perf_counter() - began

    def _advance(self, seconds: float) -> None:
        """Move the shared clock; the sandbox fires callbacks and replies (webhooks to the bot) on the way."""
        with self._timed("webhooks"):
            self.world.sandbox.advance(seconds)

    def _advance_to(self, instant: datetime) -> None:
        seconds = (instant - self.world.clock.now()).total_seconds()
        if seconds > 0:
            self._advance(seconds)

    def _dispatch(self, stats: DayStats) -> DispatchReport:
        w = self.world
        options = DispatchOptions.from_settings(w.settings, worker_id="demo")
        with self._timed("dispatch"):
            report = w.loop.run(dispatch_once(w.db, w.settings, clock=w.clock, policy=self.policy,
                                          compliance_config=self.compliance_config, options=options,
                                              channels=w.channels))
        stats.dispatch.update(report.counts)
        return report

    def _outbound_count(self) -> int:
        return len(self.world.sandbox.messages(direction="outbound-api"))

    # --- the borrowers -----------------------------------------------------------------

    def _borrowers_act(self) -> None:
        w = self.world
        now = w.clock.now()
        kinds = self.cast.kinds
        # Reminders that reached a phone or a mailbox since the last look.
        messages = w.sandbox.messages(direction="outbound-api")
        reached: set[str] = set()
        for message in messages[self._seen_sms:]:
            if message.status == "delivered":
                reached.update(self.phones.get(message.to, ()))
        self._seen_sms = len(messages)
        new_mail = w.mailbox.mail(self._seen_mail)
        self._seen_mail += len(new_mail)
        for mail in new_mail:
            for address in mail.recipients:
                for borrower_id in self.emails.get(address, ()):
                    reached.add(borrower_id)
                    if kinds.get(borrower_id) is Kind.OPT_OUT and address not in self._unsubscribed:
                        if click_unsubscribe(mail, self._http):
                            self._unsubscribed.add(address)
        for borrower_id in sorted(reached):
            if kinds.get(borrower_id) is Kind.PAYS and borrower_id not in self.feed.paid:
                self.feed.pay(borrower_id, now)
        for borrower_id in self._promises_due(now):
            self.feed.pay(borrower_id, now)
        self.feed.flush()

    def _promises_due(self, now: datetime) -> list[str]:
        """Promise keepers whose promised day has come (in their own zone) and who have not paid yet."""
        keepers = [b for b, k in self.cast.kinds.items() if k is Kind.PROMISE_KEPT]
        if not keepers:
            return []
        due: list[str] = []
        tz = self.world.settings.default_timezone
        with self.world.db.sessions() as session:
            rows = session.execute(
                select(Borrower, Promise.promised_date, Promise.created_at)
                .join(Promise, Promise.borrower_id == Borrower.id)
                .where(Promise.status == "pending", Borrower.id.in_(keepers))
                .order_by(Borrower.id)
            ).all()
            for borrower, promised, made in rows:
                if local_date(borrower, now, tz) >= promised and \
                        self.feed.paid.get(borrower.id, datetime.min.replace(tzinfo=UTC)) < made:
                    due.append(borrower.id)
        return due
