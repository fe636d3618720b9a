"""The dispatch pass: claim, re-check, compose, rate-limit, send, record.

One pass (:meth:`Dispatcher.run_pass`):

1. **Reconcile** attempts a crashed worker left ``sending`` (bot.dispatch.reconcile).
2. Repeat until nothing is due:

   a. **claim** up to ``batch_size`` due attempts with a lease (the attempt store,
      bot.dispatch.attempts, which alone writes the lease);
   b. **re-check** each at the sending instant (bot.dispatch.recheck): stale ones
      are cancelled, disallowed ones deferred or blocked;
   c. **compose** the allowed ones (each channel's steps, bot.dispatch.steps) and build the
      :class:`~bot.channels.base.ApprovedMessage` with
      :func:`~bot.channels.base.approve`;
   d. in one write transaction: take **rate-limit** tokens (bot.ratelimit; what
      finds no token is planned again a little later), store every decision, and
      mark the SMS about to be sent ``sending`` (SMS can be looked up at the
      provider after a crash).  With rate limits on, the decisions of what is not
      sent are stored when the batch is checked, and this transaction runs right
      before the batch's lanes start (after the batch in flight), so grants are
      used at once;
   e. **send** the rest concurrently: per channel up to ``concurrency`` lanes
      (never more than the adapter's own connections); an email lane marks each
      email ``sending`` (committed) right before calling the adapter; results are
      recorded with the writes of all lanes grouped into shared transactions
      (bot.dispatch.writer).  While one batch is sent the next is checked (with
      rate limits on, once every lane has its first message under way).  A lane
      that reaches a message more than ``send_tolerance`` after its tokens were
      taken does not send it: it is planned again at once (``late``), so grants
      made apart never reach the provider together.

Errors: a transient one plans the attempt again after an exponential backoff with
full jitter, up to ``max_tries``; a permanent one fails it (a Twilio 21610 records
the opt-out, 21211/21614 flag the number); a transport failure after which the
provider may have the message, or an adapter bug, leaves it ``sending`` for
reconciliation instead of risking a second message.

Only this package calls channel adapters (tests/test_structure.py checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels.base import ApprovedMessage, Channel, approve
from bot.clock import Clock, SystemClock
from bot.compliance import ComplianceConfig
from bot.db import Database
from bot.db.models import ContactAttempt
from bot.db.retry import lock_ids, transaction
from bot.dispatch.attempts import AttemptStore, VerdictRow, next_due_at, with_decision
from bot.dispatch.options import DispatchOptions, backoff_delay
from bot.dispatch.reconcile import ProviderLookup, Resolution, known_provider_ids, resolve, stuck_from
from bot.dispatch.recheck import SEND, Judge, decision_json, load_facts, reply_senders
from bot.dispatch.records import Failed, Late, Outcome, Retry, Sent, error_text
from bot.dispatch.report import DispatchReport
from bot.dispatch.steps import STEPS, ChannelSteps, Composed
from bot.dispatch.writer import GroupWriter, Write
from bot.domain import AttemptSource, AttemptStatus
from bot.errors import ConfigurationDeliveryError, PermanentDeliveryError, TransientDeliveryError
from bot.metrics import provider_error
from bot.policy import Policy
from bot.providers.twilio.errors import failure_effect
from bot.ratelimit import Limit, TokenBuckets
from bot.rendering import Renderer, get_renderer

log = logging.getLogger(__name__)

_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def configuration_problem(channel: str, exc: ConfigurationDeliveryError) -> bool:
    """Log a provider's configuration refusal once per process, channel and code, at ERROR
    (every send fails alike until the setting it names is fixed); True when it was logged."""
    key = (str(channel), str(exc.code))
    with _reported_lock:
        if key in _reported:
            return False
        _reported.add(key)
    log.error("configuration problem: %s: %s; the attempts it refuses fail without retry until it is fixed "
              "(logged once)", channel, exc)
    return True
T = TypeVar("T")


@dataclass(slots=True)
class _Ready:
    """An attempt that passed the check and was composed: waiting for its lane."""

    attempt_id: int
    channel: str
    tries: int
    borrower_id: str
    address: str
    message: ApprovedMessage
    limits: tuple[Limit, ...]
    decision: dict[str, Any]
    composed: Composed
    cost: float = 1.0  # tokens it takes from each bucket: an SMS's segments, else 1
    granted_at: datetime | None = None  # when it took its rate-limit tokens (None: rate limits off)


@dataclass(slots=True)
class _Stuck:
    """An outcome that leaves the attempt ``sending`` for reconciliation."""

    attempt_id: int
    channel: str
    error: str


#: Longest stretch (seconds) the check of the next batch runs before the sending lanes get a turn.
_SLICE = 0.005


class Dispatcher:
    """Sends what is due through the given channel adapters (see the module docstring).

    ``channels`` maps a channel name (``sms``, ``email``, ``voice``) to its adapter;
    attempts of other channels are left alone.  What each channel does differently is
    its :class:`~bot.dispatch.steps.ChannelSteps`; every lease write goes through the
    attempt store (:attr:`store`).  ``lookup`` finds SMS and calls at the provider for
    reconciliation (default: :class:`~bot.providers.twilio.lookup.TwilioLookup` built
    from the settings when a channel's provider can be asked).  ``rng`` draws the
    backoff jitter; tests seed it.
    """

    def __init__(
        self,
        db: Database,
        settings: Any,
        *,
        channels: Mapping[str, Channel],
        policy: Policy | None = None,
        clock: Clock | None = None,
        options: DispatchOptions | None = None,
        rng: random.Random | None = None,
        compliance_config: ComplianceConfig | None = None,
        lookup: ProviderLookup | None = None,
        renderer: Renderer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.settings = settings
        self.sleep = sleep  # a pass that keeps going waits with it (tests move a fixed clock instead)
        self.channels = dict(channels)
        self.policy = policy
        self.clock = clock or SystemClock()
        self.options = options or DispatchOptions.from_settings(settings)
        self.rng = rng or random.Random()
        self.config = compliance_config
        # In the registry's order (SMS, email, voice), then any other channel with the default steps.
        self.steps: dict[str, ChannelSteps] = {**{n: steps for n, steps in STEPS.items() if n in self.channels},
                                               **{n: ChannelSteps() for n in self.channels if n not in STEPS}}
        if lookup is None and any(steps.provider_lookup for steps in self.steps.values()):
            from bot.providers.twilio.lookup import TwilioLookup

            lookup = TwilioLookup(settings)
        self.lookup = lookup
        #: Channels marked ``sending`` a batch at a time: those reconciliation can look up.
        self.early: frozenset[str] = frozenset(getattr(lookup, "channels", ())) if lookup is not None else frozenset()
        self.renderer = renderer or get_renderer(str(settings.templates_dir))
        self.store = AttemptStore(self.options.worker_id, lease=self.options.lease)
        self.buckets = TokenBuckets(enabled=self.options.rate_limits, shared=not self.options.simulated)
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if db.dialect == "sqlite" else contextlib.nullcontext())

    def write(self, what: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a write transaction, again after a deadlock (bot.db.retry).  On SQLite the
        pass's writes take turns through a lock of their own: waiting on the database's lock means
        SQLite's busy handler, which sleeps in steps of up to 100 ms."""
        return transaction(self.db, work, what=f"dispatch {what}", lock=self._write_lock)

    # --- the pass -------------------------------------------------------------------------

    async def run_pass(self) -> DispatchReport:
        """Reconcile, then send everything due now (see the module docstring).

        Batches overlap: while one batch is being sent, the next is claimed and
        checked in the same event loop, giving way to the sending lanes every few
        milliseconds (a worker thread would fight the lanes for the interpreter
        lock, and every database call of the lanes would wait for it).
        """
        report = DispatchReport(at=self.clock.now(), worker=self.options.worker_id)
        released = self.write("release", lambda session: self.store.release_own(session, now=report.at))
        if released:
            log.warning("dispatch: %d claims an earlier pass of %s left were given back", released, report.worker)
        await self.reconcile(report)
        await self.check_statuses(report)
        deadline = self.clock.now() + timedelta(seconds=self.options.keep_running_for)
        seen: dict[int, datetime] = {}  # attempt -> the instant this pass handled it
        sent_now: dict[str, list[Any]] = {}  # what this pass sent, per borrower: history for later batches
        batch = await self._next_batch(seen, sent_now)
        while True:
            if batch is None:
                if self.options.keep_running_for <= 0 or self.clock.now() >= deadline or self.options.stopping:
                    break
                wait = self._seconds_to_next_due()
                if wait is None or wait > self.options.max_idle_wait:
                    break
                await self.sleep(max(wait, 0.01))
                batch = await self._next_batch(seen, sent_now)
                continue
            ready, counts = batch
            report.merge(counts)
            later: list[VerdictRow] = []
            if self.buckets.enabled:  # tokens taken now, used at once (see _grant)
                ready, later = self._grant(ready, report)
            started = asyncio.Event()
            sending = asyncio.create_task(self._send(ready, report, started))
            try:
                if self.buckets.enabled:  # every lane has its first message before the next batch is checked
                    await started.wait()
                self._write_later(later)
                batch = await self._next_batch(seen, sent_now)
            finally:
                await sending
        log.info("dispatch pass by %s: %s", report.worker, report.to_json()["totals"] or "nothing due")
        return report

    def _seconds_to_next_due(self) -> float | None:
        now = self.clock.now()
        with self.db.sessions() as session:
            nxt = next_due_at(session, channels=self.channels, after=now)
        return None if nxt is None else (nxt - now).total_seconds()

    async def _next_batch(self, seen: dict[int, datetime],
                          sent_now: dict[str, list[Any]]) -> tuple[list[_Ready], DispatchReport] | None:
        """Claim and check the next batch (None: nothing is due, or the service is stopping)."""
        if self.options.stopping:
            return None
        now = self.clock.now()
        ids = self.write("claim", lambda session: self.store.claim_due(
            session, now=now, channels=self.channels, limit=self.options.batch_size))
        if not ids:
            return None
        if all(seen.get(i) == now for i in ids):  # handled at this very instant already: stop, do not spin
            self._release(ids, now)
            return None
        seen.update(dict.fromkeys(ids, now))
        counts = DispatchReport(at=now, worker=self.options.worker_id, claimed=len(ids), batches=1)
        return await self._prepare(ids, now, counts, sent_now), counts

    async def send_now(self, ids: Sequence[int]) -> DispatchReport:
        """Claim the given pending attempts and send them at once, outside a pass (``bot call``):
        the same send-time re-check, composing, rate limit, ``sending`` mark and adapter as a pass.
        Attempts another worker holds a live lease on are left alone."""
        now = self.clock.now()
        claimed = self.write("claim", lambda session: self.store.claim(session, ids, now=now))
        report = DispatchReport(at=now, worker=self.options.worker_id, claimed=len(claimed), batches=1)
        if claimed:
            await self.send_claimed(claimed, now, report)
        return report

    async def send_claimed(self, ids: Sequence[int], now: datetime, report: DispatchReport) -> None:
        """Check, rate-limit and send attempts this worker has claimed, outside a pass (``bot call``)."""
        ready = await self._prepare(ids, now, report)
        if self.buckets.enabled:
            ready, later = self._grant(ready, report)
            self._write_later(later)
        if ready:
            await self._send(ready, report)

    def _release(self, ids: Sequence[int], now: datetime) -> None:
        def release(session: Session) -> None:
            lock_ids(session, ContactAttempt, ids)
            self.store.release(session, ids, now=now)

        self.write("release", release)

    # --- re-check and compose -----------------------------------------------------------

    async def _prepare(self, ids: Sequence[int], now: datetime, report: DispatchReport,
                       sent_now: dict[str, list[Any]] | None = None) -> list[_Ready]:
        from bot.messages import ComposeError, first_texts, load_message_data_many

        with self.db.sessions() as session:
            attempts = list(session.scalars(select(ContactAttempt).where(ContactAttempt.id.in_(ids))))
            facts = load_facts(session, attempts, now, self.config)
            senders = reply_senders(session, [a.id for a in attempts if a.source == AttemptSource.REPLY.value])
            data = load_message_data_many(session, attempts)
            # Who sends each SMS, known before composing: a number's first text from a sender
            # must say how to opt out (CTIA), whatever its template.
            sms_from = {a.id: self._sender(a, a.address, senders.get(a.id)) for a in attempts
                        if self._steps(a.channel).first_text and a.address}
            fresh = first_texts(session, {(a.address, sms_from[a.id]) for a in attempts
                                          if a.id in sms_from and sms_from[a.id] and a.address})
        attempts.sort(key=lambda a: (a.source != AttemptSource.REPLY.value, a.next_attempt_at or now, a.id))
        judge = Judge(facts, now, self.policy, self.config, self.options.max_age, self.options.reply_max_age,
                      default_timezone=getattr(self.settings, "default_timezone", "America/New_York"))
        if sent_now is not None:
            judge.share_history(sent_now)
        rows: list[VerdictRow] = []
        ready: list[_Ready] = []
        loop = asyncio.get_running_loop()
        give_way = loop.time() + _SLICE
        for attempt in attempts:
            if loop.time() >= give_way:  # let the lanes of the batch being sent run
                await asyncio.sleep(0)
                give_way = loop.time() + _SLICE
            verdict = judge(attempt)
            payload = with_decision(attempt.decision, decision_json(verdict.decision, verdict, now))
            if verdict.action != SEND:
                rows.append(VerdictRow(attempt.id, verdict.action, verdict.next_at, payload, release=True,
                                       last_error=verdict.reasons[0] if verdict.action == "cancelled" and
                                       verdict.reasons else None))
                report.add(attempt.channel, verdict.action)
                continue
            item = data.get(attempt.id)
            steps = self._steps(attempt.channel)
            try:
                if item is None:
                    raise ComposeError("missing_data", f"attempt {attempt.id}: its borrower is not in the database")
                first = attempt.id in sms_from and (attempt.address, sms_from[attempt.id]) in fresh
                composed = steps.compose(item, attempt, self.settings, renderer=self.renderer, at=now,
                                         first_text=first, sender=sms_from.get(attempt.id))
            except ComposeError as exc:
                rows.append(VerdictRow(attempt.id, AttemptStatus.FAILED.value, None, payload, release=True,
                                       last_error=error_text("compose", code=exc.reason)))
                report.add(attempt.channel, "failed")
                log.warning("attempt %d not composed: %s", attempt.id, exc.reason)
                continue
            sender = sms_from[attempt.id] if attempt.id in sms_from else \
                self._sender(attempt, composed.message.to, senders.get(attempt.id))  # a call's caller id
            if sender != composed.meta.sender:
                composed = dataclasses.replace(composed, meta=dataclasses.replace(composed.meta, sender=sender))
            message = approve(verdict.decision, **composed.message.approve_fields(), from_=sender)  # type: ignore[arg-type]
            ready.append(_Ready(attempt.id, attempt.channel, attempt.tries, attempt.borrower_id, composed.message.to,
                                message, self._limits(attempt.channel, sender), payload, composed,
                                cost=float(getattr(composed.message, "segments", None) or 1)))  # providers count segments
        if self.buckets.enabled:  # the tokens are taken right before the lanes start (run_pass)
            if rows:
                self.write("decisions", lambda session: self._write_rows(session, rows, now))
            return ready
        return self._grant(ready, report, rows)[0]

    def _write_later(self, rows: Sequence[VerdictRow]) -> None:
        """The decisions :meth:`_grant` left for later (what found no token): planned again, lease given back."""
        if rows:
            self.write("rate limited", functools.partial(self._write_rows, rows=rows, now=self.clock.now()))

    def _write_rows(self, session: Session, rows: Sequence[VerdictRow], now: datetime) -> None:
        lock_ids(session, ContactAttempt, [r.attempt_id for r in rows])  # the lock order: ids ascending
        self.store.write_verdicts(session, rows, now)

    def _grant(self, ready: Sequence[_Ready], report: DispatchReport,
               rows: Sequence[VerdictRow] = ()) -> tuple[list[_Ready], list[VerdictRow]]:
        """One short write transaction: rate-limit tokens, then the decisions (``rows``: those of the
        batch's attempts not being sent; with rate limits on they were written when it was checked).

        Attempts of a channel whose provider can be asked after a crash (SMS) are marked
        ``sending`` here, all at once; the others one by one in their lane.  With rate limits on
        this runs right before the batch's lanes start, so a grant is used at once (a lane that
        gets to a message later than the send tolerance does not send it: ``_late``), and the
        decisions of the messages that found no token are returned to be written once the lanes
        are under way (a crash before leaves them claimed until the lease ends: later, not
        lost).  Run again as a whole after a deadlock, so it changes nothing outside the session."""
        if not ready and not rows:
            return [], []

        def write(session: Session) -> tuple[list[_Ready], list[_Ready], set[int], list[VerdictRow]]:
            go: list[_Ready] = []
            limited: list[_Ready] = []
            written = list(rows)
            later: list[VerdictRow] = []
            # The clock is read once the buckets are locked: the grant's instant, a lane's tolerance counts from it.
            waits = self.buckets.take(session, self.clock.now, [r.limits for r in ready], [r.cost for r in ready])
            now = self.buckets.taken_at or self.clock.now()
            for item, wait in zip(ready, waits, strict=True):
                if wait is None:
                    item.granted_at = now if self.buckets.enabled else None
                    go.append(item)
                    status = AttemptStatus.SENDING.value if item.channel in self.early else AttemptStatus.PLANNED.value
                    written.append(VerdictRow(item.attempt_id, status, None if item.channel in self.early else now,
                                              item.decision, release=False, meta=item.composed.meta))
                else:
                    meta = dataclasses.replace(item.composed.meta, rate_limited_until=wait)
                    (later if self.buckets.enabled else written).append(
                        VerdictRow(item.attempt_id, AttemptStatus.PLANNED.value, wait, item.decision, release=True,
                                   meta=meta))
                    limited.append(item)
            self._write_rows(session, written, now)
            early = [g.attempt_id for g in go if g.channel in self.early]
            marked = self.store.still_mine(session, early, AttemptStatus.SENDING.value)
            by_channel: dict[str, list[tuple[int, str, Composed]]] = {}
            for g in go:
                by_channel.setdefault(g.channel, []).append((g.attempt_id, g.borrower_id, g.composed))
            for channel, items in by_channel.items():
                self._steps(channel).on_marked(session, items, now)
            return go, limited, marked, later

        go, limited, marked, later = self.write("decisions", write)
        for item in limited:
            report.add(item.channel, "rate_limited")
        kept = []
        for item in go:
            if item.channel in self.early and item.attempt_id not in marked:
                report.add(item.channel, "lost_lease")
            else:
                kept.append(item)
        return kept, later

    def _steps(self, channel: str) -> ChannelSteps:
        """What this channel does differently (bot.dispatch.steps)."""
        steps = self.steps.get(channel)
        return steps if steps is not None else STEPS.get(channel, ChannelSteps())

    def _sender(self, attempt: ContactAttempt, to: str, replied_to: str | None) -> str | None:
        """Who sends the attempt's message: an SMS's number, a call's caller id (bot.dispatch.steps)."""
        return self._steps(attempt.channel).sender(self.channels.get(attempt.channel), self.settings, to, replied_to)

    def _limits(self, channel: str, sender: str | None) -> tuple[Limit, ...]:
        """The buckets a message of ``channel`` from ``sender`` passes, granting with the burst
        the send tolerance leaves (bot.ratelimit.Limit.granting)."""
        tolerance = self.options.send_tolerance.total_seconds()
        return tuple(limit.granting(tolerance) for limit in self._steps(channel).limits(self.settings, sender))

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, ready: Sequence[_Ready], report: DispatchReport,
                    started: asyncio.Event | None = None) -> None:
        """Send ``ready`` in lanes; ``started`` is set once every lane has called the adapter
        for its first message (or ended)."""
        if not ready:
            if started is not None:
                started.set()
            return
        queues: dict[str, deque[_Ready]] = {}
        for item in ready:
            queues.setdefault(item.channel, deque()).append(item)
        lanes = {c: self._lanes(c, self.channels[c], len(q)) for c, q in queues.items()}
        waiting = sum(n for c, n in lanes.items() if c not in self.early)
        writer = GroupWriter(lambda writes: self._apply(writes, report), waiting_lanes=waiting)
        pending = [sum(lanes.values())]  # lanes that have not yet called the adapter

        def lane_started() -> None:
            pending[0] -= 1
            if pending[0] <= 0 and started is not None:
                started.set()

        try:
            async with asyncio.TaskGroup() as group:
                for channel, queue in queues.items():
                    adapter = self.channels[channel]
                    for _ in range(lanes[channel]):
                        group.create_task(self._lane(adapter, queue, writer, report, lane_started))
        finally:
            if started is not None:
                started.set()
            await writer.close()

    def _lanes(self, channel: str, adapter: Channel, queued: int) -> int:
        """Concurrent sends for a channel: never more than the adapter itself runs at
        once (its ``concurrency`` or SMTP ``pool_size``), so no attempt sits marked
        ``sending`` in the adapter's queue (a crash would leave it in doubt for nothing)."""
        own = getattr(adapter, "concurrency", None) or getattr(adapter, "pool_size", None)
        limit = self.options.channel_concurrency.get(channel, self.options.concurrency)
        if isinstance(own, int) and own > 0:
            limit = min(limit, own)
        return max(1, min(limit, queued))

    async def _lane(self, adapter: Channel, queue: deque[_Ready], writer: GroupWriter,
                    report: DispatchReport, started: Callable[[], None] = lambda: None) -> None:
        """Send one message at a time.

        Channels marked ``sending`` in advance (their provider can be asked after a
        crash) hand each result to the writer and go on.  For the others the
        previous result and the next ``sending`` mark share a commit that the lane
        waits for before calling the adapter, so a crash leaves at most one message
        per lane in doubt.
        """
        early = adapter.name in self.early
        previous: Outcome | None = None
        recorded: list[asyncio.Future[bool]] = []
        waited_for = True  # the pass waits for this lane's first call to the adapter (``started``)
        try:
            while queue:
                item = queue.popleft()
                if not early:
                    marked = await writer.submit(Write(record=previous, mark=item.attempt_id))
                    previous = None
                    if not marked:
                        report.add(item.channel, "lost_lease")
                        continue
                if writer.failed is not None:
                    raise writer.failed
                result = self._late(item)
                if result is None:
                    if waited_for:  # the pass goes on once this call is under way (it runs till it waits)
                        waited_for = False
                        started()
                    result = await self._send_one(adapter, item)
                if isinstance(result, _Stuck):
                    log.warning("attempt %d: %s; left sending for reconciliation", item.attempt_id, result.error)
                    self._expire_soon(item.attempt_id)
                elif early:
                    recorded.append(writer.enqueue(Write(record=result)))
                else:
                    previous = result
        finally:
            if waited_for:  # ended (or failed) before calling the adapter
                started()
        if previous is not None:
            await writer.submit(Write(record=previous))
        if recorded:
            await asyncio.gather(*recorded)

    def _late(self, item: _Ready) -> Late | None:
        """``Late`` when the lane reached ``item`` more than the send tolerance after its grant:
        sent now, it would reach the provider together with grants made after it.  Its
        tokens are not given back (the bucket may have refilled to its burst meanwhile,
        so returning them could overfill it); it takes new ones when claimed again."""
        if item.granted_at is None:
            return None
        now = self.clock.now()
        if now - item.granted_at <= self.options.send_tolerance:
            return None
        return Late(item.attempt_id, item.channel, now)

    async def _send_one(self, adapter: Channel, item: _Ready) -> Outcome | _Stuck:
        try:
            result = await adapter.send(item.message)
        except TransientDeliveryError as exc:
            provider_error(item.channel, exc.code if exc.code is not None else "transient")
            if getattr(exc, "outcome_unknown", False):
                return _Stuck(item.attempt_id, item.channel, error_text("transient, outcome unknown", exc, exc.code))
            tries = item.tries + 1
            if tries >= self.options.max_tries:
                return Failed(item.attempt_id, item.channel, error_text(f"gave up after {tries} tries", exc,
                                                                        exc.code))
            delay = backoff_delay(tries, self.options, self.rng)
            return Retry(item.attempt_id, item.channel, self.clock.now() + delay,
                         error_text("transient", exc, exc.code))
        except PermanentDeliveryError as exc:
            provider_error(item.channel, exc.code if exc.code is not None else "permanent")
            configuration = isinstance(exc, ConfigurationDeliveryError)
            if configuration:
                configuration_problem(item.channel, exc)
            return Failed(item.attempt_id, item.channel,
                          error_text("configuration" if configuration else "permanent", exc, exc.code),
                          effect=failure_effect(exc), code=None if exc.code is None else str(exc.code),
                          borrower_id=item.borrower_id, address=item.address)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug: the provider may have the message, so do not guess
            return _Stuck(item.attempt_id, item.channel, error_text("adapter error", exc))
        return Sent(item.attempt_id, item.channel, result.provider_id, result.status)

    def _expire_soon(self, attempt_id: int) -> None:
        """Let reconciliation look at an attempt whose send ended in doubt, after a short wait."""
        now = self.clock.now()
        self.write("lease", lambda session: self.store.expire_soon(
            session, attempt_id, until=now + self.options.backoff_base, now=now))

    def _apply(self, writes: Sequence[Write], report: DispatchReport) -> set[int]:
        """One group: record results, mark the next attempts ``sending``, commit."""
        now = self.clock.now()
        outcomes = [w.record for w in writes if w.record is not None]
        marks = [w.mark for w in writes if w.mark is not None]

        def write(session: Session) -> tuple[int, set[int]]:
            lock_ids(session, ContactAttempt, [o.attempt_id for o in outcomes] + marks)  # ids ascending
            return (self.store.record(session, outcomes, now, steps=self.steps),
                    self.store.mark_sending(session, marks, now))

        written, marked = self.write("record", write)
        for outcome in outcomes:
            report.add(outcome.channel, _outcome_name(outcome))
        if written < len(outcomes):  # another worker took some over meanwhile (it will reconcile them)
            log.warning("dispatch: %d results not recorded: the lease was lost", len(outcomes) - written)
        return marked

    # --- reconciliation --------------------------------------------------------------------

    async def check_statuses(self, report: DispatchReport) -> None:
        """Fetch the status of sent messages and placed calls whose status callbacks never came
        (each channel's :meth:`~bot.dispatch.steps.ChannelSteps.check_statuses`)."""
        for steps in self.steps.values():
            await steps.check_statuses(self, report)

    async def reconcile(self, report: DispatchReport) -> None:
        """Settle every attempt left ``sending`` by a worker whose lease expired, ``batch_size`` at a time.

        All of them in this pass: a batch claims the next stuck attempts, asks the provider,
        records what it learnt.  An attempt the provider could not be asked about keeps a
        short lease, so a later batch of the same pass does not take it again."""
        now = self.clock.now()
        seen: set[int] = set()
        while not self.options.stopping:
            ids = self.write("reconcile claim", lambda session: self.store.claim_stuck(
                session, now=now, limit=self.options.batch_size))
            if not ids or seen.issuperset(ids):
                break
            seen.update(ids)
            await self._reconcile_batch(ids, now, report)

    async def _reconcile_batch(self, ids: Sequence[int], now: datetime, report: DispatchReport) -> None:
        with self.db.sessions() as session:
            attempts = list(session.scalars(select(ContactAttempt).where(ContactAttempt.id.in_(ids))))
            known = known_provider_ids(session, attempts)
        limit = asyncio.Semaphore(min(self.options.concurrency, 16))

        async def one(attempt: ContactAttempt) -> Resolution:
            async with limit:
                return await resolve(stuck_from(attempt, known.get(attempt.address or "", frozenset())),
                                     self.lookup if attempt.channel in self.channels else None,
                                     now=now, give_up_after=self.options.max_age)

        resolutions = sorted(await asyncio.gather(*(one(a) for a in attempts)), key=lambda r: r.attempt_id)

        def write(session: Session) -> list[Resolution]:
            lock_ids(session, ContactAttempt, [r.attempt_id for r in resolutions])
            settled = []
            for r in resolutions:
                if r.status == AttemptStatus.SENDING.value:
                    self.store.extend_stuck(session, r.attempt_id, until=now + self.options.backoff_base,
                                              error=r.error or "", now=now)
                    continue
                if self.store.resolve_stuck(session, r.attempt_id, status=r.status, now=now,
                                            provider_id=r.provider_id, error=r.error, sent_at=r.sent_at):
                    settled.append(r)
                    if r.provider_id:
                        self._steps(r.channel).on_reconciled(session, r.attempt_id, r.provider_id, now)
            return settled

        for r in self.write("reconcile", write):
            report.add(r.channel, r.outcome)
        for r in resolutions:
            if r.outcome:
                log.info("attempt %d reconciled after a crash: %s", r.attempt_id, r.outcome)


def _outcome_name(outcome: Outcome) -> str:
    if isinstance(outcome, Sent):
        return "sent"
    if isinstance(outcome, Retry):
        return "retry"
    if isinstance(outcome, Late):
        return "late"
    return "failed"


__all__ = ["Dispatcher"]
