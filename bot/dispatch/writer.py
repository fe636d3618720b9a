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

    def __init__(self, apply: ApplyFn) -> None:
        self._apply = apply
        self._queue: list[tuple[Write, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.groups = 0
        self.writes = 0
        self.failed: BaseException | None = None  # the first failed commit: nothing more is sent

    async def submit(self, write: Write) -> bool:
        """Queue ``write`` and wait for its commit; True if ``write.mark`` was marked (or none was asked)."""
        return await self.enqueue(write)

    def enqueue(self, write: Write) -> asyncio.Future[bool]:
        """Queue ``write`` without waiting; the future resolves at its commit."""
        if self.failed is not None:
            raise self.failed
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dispatch-writer")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        self._wake.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # one turn of the loop: lanes that are ready join this group
            group, self._queue = self._queue, []
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
