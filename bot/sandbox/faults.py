"""Fault injection at the account level: what a flaky Twilio looks like.

* ``rate_limit(n)``: the next *n* REST requests get 429 / 20429.
* ``server_errors(n, status)``: the next *n* REST requests get 500 / 20500
  or 503 / 20503.
* ``slow(seconds, count)``: the next *count* REST requests (all of them when
  *count* is None) wait *seconds* before being answered: the only place the
  sandbox spends real time on purpose.
* ``callbacks(duplicate, out_of_order)``: every status callback is sent
  twice, and/or a resource's callbacks are held back until its last status
  change and then sent newest first.
* ``queue_overflow(n)``: the next *n* messages are accepted and then fail
  with 30001; ``queue_full(n)``: the next *n* are refused with 21611.

Faults are counted down under a lock: each request takes at most one
request fault (rate limit first, then server errors), plus the delay.

:class:`Latency` is not a fault but how far the provider is: every REST
request waits ``latency_ms`` plus or minus up to ``jitter_ms`` (uniform,
drawn from a generator seeded with ``seed``, so a run is repeatable) before
it is handled, as Twilio answers in 100-300 ms.  The wait is asynchronous:
other requests are handled meanwhile.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.sandbox.errors import TwilioApiError


class FaultSpec(BaseModel):
    """The faults to switch on, as given in a personas file or to ``POST /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: int = Field(default=0, ge=0)
    server_errors: int = Field(default=0, ge=0)
    server_error_status: Literal[500, 503] = 500
    slow_seconds: float = Field(default=0.0, ge=0, le=60)
    slow_count: int | None = Field(default=None, ge=0)
    duplicate_callbacks: bool = False
    out_of_order_callbacks: bool = False
    queue_overflow: int = Field(default=0, ge=0)
    queue_full: int = Field(default=0, ge=0)


class LatencySpec(BaseModel):
    """The provider's latency on every REST request, in milliseconds (0: answer at once)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, le=60_000)
    jitter_ms: float = Field(default=0.0, ge=0, le=60_000)
    seed: int = 0


class Latency:
    """Draws each REST request's wait: ``latency_ms`` +/- up to ``jitter_ms``, never below zero.

    The draws come from one generator seeded with the spec's ``seed`` and taken
    under a lock, so the same requests in the same order wait the same times.
    """

    def __init__(self, spec: LatencySpec | None = None) -> None:
        self._lock = threading.Lock()
        self.apply(spec or LatencySpec())

    def apply(self, spec: LatencySpec) -> None:
        with self._lock:
            self.spec = spec
            self._rng = random.Random(spec.seed)

    def draw(self) -> float:
        """The next request's wait in seconds."""
        with self._lock:
            spec = self.spec
            if not spec.latency_ms and not spec.jitter_ms:
                return 0.0
            jitter = self._rng.uniform(-spec.jitter_ms, spec.jitter_ms) if spec.jitter_ms else 0.0
        return max(spec.latency_ms + jitter, 0.0) / 1000


@dataclass
class RequestFault:
    error: TwilioApiError | None
    delay: float


@dataclass
class Faults:
    rate_limited: int = 0
    server_error_count: int = 0
    server_error_status: int = 500
    slow_seconds: float = 0.0
    slow_remaining: int | None = 0
    duplicate_callbacks: bool = False
    out_of_order_callbacks: bool = False
    overflow_remaining: int = 0
    queue_full_remaining: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- switching faults on ------------------------------------------------

    def rate_limit(self, count: int) -> None:
        with self._lock:
            self.rate_limited = count

    def server_errors(self, count: int, status: int = 500) -> None:
        if status not in (500, 503):
            raise ValueError("status must be 500 or 503")
        with self._lock:
            self.server_error_count = count
            self.server_error_status = status

    def slow(self, seconds: float, count: int | None = None) -> None:
        with self._lock:
            self.slow_seconds = seconds
            self.slow_remaining = count

    def callbacks(self, *, duplicate: bool = False, out_of_order: bool = False) -> None:
        with self._lock:
            self.duplicate_callbacks = duplicate
            self.out_of_order_callbacks = out_of_order

    def queue_overflow(self, count: int) -> None:
        with self._lock:
            self.overflow_remaining = count

    def queue_full(self, count: int) -> None:
        with self._lock:
            self.queue_full_remaining = count

    def apply(self, spec: FaultSpec) -> None:
        """Switch on what *spec* names (fields left at their defaults switch that fault off)."""
        self.rate_limit(spec.rate_limit)
        self.server_errors(spec.server_errors, spec.server_error_status)
        self.slow(spec.slow_seconds, spec.slow_count if spec.slow_seconds else 0)
        self.callbacks(duplicate=spec.duplicate_callbacks, out_of_order=spec.out_of_order_callbacks)
        self.queue_overflow(spec.queue_overflow)
        self.queue_full(spec.queue_full)

    def clear(self) -> None:
        self.apply(FaultSpec())

    def snapshot(self) -> FaultSpec:
        with self._lock:
            return FaultSpec(
                rate_limit=self.rate_limited,
                server_errors=self.server_error_count,
                server_error_status=self.server_error_status,  # type: ignore[arg-type]
                slow_seconds=self.slow_seconds,
                slow_count=self.slow_remaining,
                duplicate_callbacks=self.duplicate_callbacks,
                out_of_order_callbacks=self.out_of_order_callbacks,
                queue_overflow=self.overflow_remaining,
                queue_full=self.queue_full_remaining,
            )

    # --- taking faults ------------------------------------------------------

    def take_request_fault(self) -> RequestFault:
        """What the next REST request suffers (counting it down)."""
        with self._lock:
            delay = 0.0
            if self.slow_seconds and (self.slow_remaining is None or self.slow_remaining > 0):
                delay = self.slow_seconds
                if self.slow_remaining is not None:
                    self.slow_remaining -= 1
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return RequestFault(
                    TwilioApiError(20429, "Too Many Requests: the sandbox injected a rate-limit fault"), delay
                )
            if self.server_error_count > 0:
                self.server_error_count -= 1
                code = 20500 if self.server_error_status == 500 else 20503
                return RequestFault(TwilioApiError(code, status=self.server_error_status), delay)
            return RequestFault(None, delay)

    def take_queue_full(self) -> bool:
        with self._lock:
            if self.queue_full_remaining > 0:
                self.queue_full_remaining -= 1
                return True
            return False

    def take_overflow(self) -> bool:
        with self._lock:
            if self.overflow_remaining > 0:
                self.overflow_remaining -= 1
                return True
            return False

    def callback_modes(self) -> tuple[bool, bool]:
        with self._lock:
            return self.duplicate_callbacks, self.out_of_order_callbacks
