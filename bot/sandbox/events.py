"""The sandbox's timeline: things that will happen at a given instant.

Status changes, status callbacks, scripted replies and call progress are
all :class:`Event` s in one :class:`EventQueue`, ordered by due instant and
then by the order they were scheduled.  Nothing fires by itself: in manual
mode a test calls ``Sandbox.advance()`` / ``run_pending()``; in real-time
mode a background thread waits on :meth:`EventQueue.wait` and fires what is
due.  Firing runs the event's action in the caller's thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(order=True)
class Event:
    due: datetime
    seq: int
    label: str = field(compare=False)
    action: Callable[[], None] = field(compare=False, repr=False)


class EventQueue:
    """A thread-safe priority queue of events with a wake-up for the real-time thread."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._counter = itertools.count()
        self._changed = threading.Condition(threading.Lock())

    def schedule(self, due: datetime, label: str, action: Callable[[], None]) -> Event:
        event = Event(due, next(self._counter), label, action)
        with self._changed:
            heapq.heappush(self._heap, event)
            self._changed.notify_all()
        return event

    def pop_due(self, now: datetime) -> Event | None:
        """Remove and return the earliest event due at or before *now*."""
        with self._changed:
            if self._heap and self._heap[0].due <= now:
                return heapq.heappop(self._heap)
            return None

    def next_due(self) -> datetime | None:
        with self._changed:
            return self._heap[0].due if self._heap else None

    def pending(self) -> list[Event]:
        with self._changed:
            return sorted(self._heap)

    def wait(self, timeout: float) -> None:
        """Block up to *timeout* seconds or until an event is scheduled (or :meth:`wake` is called)."""
        with self._changed:
            self._changed.wait(timeout)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._heap.clear()
            self._changed.notify_all()

    def __len__(self) -> int:
        with self._changed:
            return len(self._heap)
