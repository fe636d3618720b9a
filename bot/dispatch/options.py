"""The dispatcher's knobs, read once from the settings, and the retry backoff.

Kept apart from the pass so tests build options directly (a lease of a few
seconds, a seeded random generator) without a settings object.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any


def default_worker_id() -> str:
    """``host:pid``: tells the operator which process holds a lease."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


@dataclass(frozen=True)
class DispatchOptions:
    batch_size: int = 500
    concurrency: int = 32  # concurrent sends per channel (bounded again by the adapter's own limit)
    channel_concurrency: Mapping[str, int] = field(default_factory=dict)  # per-channel overrides, e.g. email
    lease: timedelta = timedelta(seconds=300)
    max_tries: int = 5
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_cap: timedelta = timedelta(hours=1)
    min_backoff: timedelta = timedelta(seconds=1)
    max_age: timedelta = timedelta(hours=24)  # planner attempts planned on an earlier local day
    reply_max_age: timedelta = timedelta(hours=72)
    rate_limits: bool = True
    # A message whose lane reaches it later than this after its rate-limit grant is not sent
    # but planned again; buckets grant a burst reduced by rate x this (bot.ratelimit.Limit.granting).
    send_tolerance: timedelta = timedelta(milliseconds=500)
    # The pass runs at a simulated instant (--at): its rate buckets live in memory for the
    # pass and the shared rate_buckets table is neither read nor written (bot.ratelimit).
    simulated: bool = False
    worker_id: str = field(default_factory=default_worker_id)
    # How long a pass keeps going while work comes due (rate-limited attempts due in a
    # few seconds); 0: one sweep of what is due now.  Only meaningful with a real clock.
    keep_running_for: float = 0.0
    max_idle_wait: float = 2.0
    # A sent SMS with no final status and no news this long is asked at the provider (bot.dispatch.statuses).
    status_check_after: timedelta = timedelta(minutes=60)  # longest single wait for the next due attempt within keep_running_for
    # Set when the service stops (bot.scheduler.service): the pass sends no further batch.
    stop: threading.Event | None = None

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> DispatchOptions:
        options = cls(
            batch_size=settings.dispatch_batch_size,
            concurrency=settings.dispatch_concurrency,
            lease=timedelta(seconds=settings.dispatch_lease_seconds),
            max_tries=settings.dispatch_max_tries,
            backoff_base=timedelta(seconds=settings.dispatch_backoff_base_seconds),
            backoff_cap=timedelta(seconds=settings.dispatch_backoff_cap_seconds),
            max_age=timedelta(hours=settings.dispatch_max_age_hours),
            reply_max_age=timedelta(hours=settings.dispatch_reply_max_age_hours),
            rate_limits=settings.rate_limits_enabled,
            send_tolerance=timedelta(milliseconds=settings.rate_limit_tolerance_ms),
            status_check_after=timedelta(minutes=settings.status_check_after_minutes),
        )
        return replace(options, **overrides) if overrides else options


def backoff_delay(tries: int, options: DispatchOptions, rng: random.Random) -> timedelta:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(tries-1))].

    Full jitter (rather than a fixed exponential schedule) spreads the retries of a
    burst that failed together (a 429 storm) so they do not come back together.
    ``min_backoff`` keeps a retry out of the pass that just failed it.
    """
    ceiling = min(options.backoff_cap.total_seconds(),
                  options.backoff_base.total_seconds() * 2 ** max(tries - 1, 0))
    return max(options.min_backoff, timedelta(seconds=rng.uniform(0.0, ceiling)))
