"""Group commit: the sends of a pass share transactions, each send still ordered.

Every send needs two durable writes: ``sending`` before the adapter is called
and the result after.  One transaction per write would cap throughput at the
database's commit rate; so concurrent send lanes hand their writes to one
:class:`GroupWriter`, which commits whatever has queued up since its last commit
in a single transaction, then wakes the lanes whose writes it carried.

A lane submits "record the result of my previous message + mark my next one
``sending``" as one request and waits for its commit before calling the
adapter, so the order that makes crashes safe holds per message: the mark is
durable before the provider sees the message, and a lane has at most one
message whose fate is not yet recorded.  A crash loses at most the writes of the
group being committed; docs/dispatch.md walks through each window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.dispatch.records import Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Write:
    """One lane's request: a result to record and/or an attempt to mark ``sending``."""

    record: Outcome | None = None
    mark: int | None = None


#: Applies a group in one transaction; returns the ids it marked ``sending``.
ApplyFn = Callable[[Sequence[Write]], set[int]]


class GroupWriter:
    """Collects :class:`Write` requests and commits them in groups (see the module docstring)."""

    def __init__(self, apply: ApplyFn, *, linger: float = 0.02, max_group: int = 128,
                 waiting_linger: float = 0.005, waiting_lanes: int = 1) -> None:
        self._apply = apply
        self.linger = linger
        self.max_group = max_group
        self.waiting_linger = waiting_linger
        self.waiting_lanes = max(waiting_lanes, 1)  # lanes that wait for their writes (email)
        self._queue: list[tuple[Write, asyncio.Future[bool]]] = []
        self._urgent = 0  # writes of the queue a lane waits for
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.groups = 0
        self.writes = 0
        self.failed: BaseException | None = None  # the first failed commit: nothing more is sent

    async def submit(self, write: Write) -> bool:
        """Queue ``write`` and wait for its commit; True if ``write.mark`` was marked (or none was asked).

        A lane waits: the group is committed at the next turn of the loop."""
        return await self.enqueue(write, urgent=True)

    def enqueue(self, write: Write, *, urgent: bool = False) -> asyncio.Future[bool]:
        """Queue ``write``; the future resolves at its commit.  Writes nobody waits for
        linger up to ``linger`` seconds (or ``max_group`` writes) to share a commit: every
        commit costs a few round trips through the interpreter lock."""
        if self.failed is not None:
            raise self.failed
        self._urgent += urgent
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dispatch-writer")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        self._wake.set()
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # one turn of the loop: lanes that are ready join this group
            # Nobody waits: linger for company.  Some lanes wait: a moment for the other
            # waiting lanes (the pass is CPU-bound: fewer commits, more messages), but
            # never past the moment all of them wait.
            started = loop.time()
            while len(self._queue) < self.max_group:
                limit = started + (self.waiting_linger if self._urgent else self.linger)
                if self._urgent >= self.waiting_lanes or loop.time() >= limit:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), limit - loop.time())
                except TimeoutError:
                    break
            group, self._queue, self._urgent = self._queue, [], 0
            if not group:
                continue
            try:
                marked = self._apply([w for w, _ in group])
            except BaseException as exc:  # the transaction failed: every waiting lane learns it
                self.failed = self.failed or exc
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.groups += 1
            self.writes += len(group)
            for write, future in group:
                if not future.done():
                    future.set_result(write.mark is None or write.mark in marked)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue = []
