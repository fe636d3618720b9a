"""Token buckets in the database, shared by every dispatcher worker.

Why in the database: the limits are the provider's (about one SMS segment per
second per long code, a per-account ceiling, one call per second per account;
docs/dispatch.md), so they must hold for the sum of all workers, which only share
the database.  Each bucket is one ``rate_buckets`` row (``key``, ``tokens``,
``updated_at``).

A *take* locks the buckets it needs inside the caller's write transaction (on
PostgreSQL ``SELECT ... FOR UPDATE`` in key order, so two workers never deadlock;
on SQLite the first statement is a write, which takes the database's single write
lock before anything is read), refills them for the time elapsed since
``updated_at`` (never above ``burst``), grants what they hold and writes them
back.  A message that finds a bucket empty is not waited for: the take returns
the instant at which the bucket should hold a token for it, and the dispatcher
stores that as the attempt's ``next_attempt_at``.  Nobody sleeps; time comes
from the caller (an injectable clock).

A pass at a simulated instant (``bot tick --at``, ``bot run --once --at``, ``bot
call --at``) must not touch the shared buckets: stamped at a future instant they
would hold every live message (STOP confirmations included) until the real clock
got there, and stamped in the past they would hand out tokens the live service
already spent.  ``TokenBuckets(shared=False)`` keeps the buckets in memory for
the life of the object instead (new ones start full): the simulated run is
rate-limited against itself and never reads or writes ``rate_buckets``.

A grant holds at the provider only if it is sent soon after it is made: the
dispatcher grants with :meth:`Limit.granting` (a burst reduced by ``rate x
tolerance``) and does not send a message whose lane reaches it more than the
tolerance after its grant (bot.dispatch.runner; docs/dispatch.md, "Rate limits").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.models import RateBucket

__all__ = ["Limit", "TokenBuckets", "refill"]


@dataclass(frozen=True, slots=True)
class Limit:
    """One bucket: ``rate`` tokens per second, holding at most ``burst`` tokens."""

    key: str  # e.g. "sms:number:+15005550006", "sms:account:AC...", "email:relay:smtp.example.com"
    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate limit {self.key}: the rate must be positive")
        if self.burst < 1:
            raise ValueError(f"rate limit {self.key}: the burst must hold at least one token")

    @classmethod
    def per_second(cls, key: str, rate: float, burst_seconds: float = 1.0) -> Limit:
        """A limit of ``rate`` per second that may burst ``burst_seconds`` worth (at least one)."""
        return cls(key, rate, max(1.0, rate * burst_seconds))

    def granting(self, tolerance: float) -> Limit:
        """The limit to grant with when a grant may be sent up to ``tolerance`` seconds after it
        is made: the burst less what the tolerance lets through (``burst - rate * tolerance``,
        never below one token), so grants shifted by up to ``tolerance`` still never put more
        than ``burst + rate * T`` into any window of ``T`` seconds at the provider."""
        if tolerance < 0:
            raise ValueError(f"rate limit {self.key}: the send tolerance cannot be negative")
        return Limit(self.key, self.rate, max(1.0, self.burst - self.rate * tolerance))


def refill(tokens: float, updated_at: datetime, now: datetime, limit: Limit) -> float:
    """The bucket's tokens at ``now``: a clock that went backwards adds nothing."""
    elapsed = max((now - updated_at).total_seconds(), 0.0)
    return min(limit.burst, tokens + elapsed * limit.rate)


@dataclass
class _Bucket:
    limit: Limit
    tokens: float
    updated_at: datetime
    waiting: float = 0.0  # tokens owed to messages of this take already sent back for lack of them


class TokenBuckets:
    """Takes tokens for a batch of messages; ``enabled=False`` grants everything.

    ``shared=False`` keeps the buckets in this object instead of the database
    (a simulated instant: see the module docstring)."""

    def __init__(self, *, enabled: bool = True, shared: bool = True) -> None:
        self.enabled = enabled
        self.shared = shared
        self._memory: dict[str, tuple[float, datetime]] = {}  # key -> (tokens, updated_at) when not shared
        self.taken_at: datetime | None = None  # the instant the last take took its tokens at (None: it took none)

    def take(self, session: Session, now: datetime | Callable[[], datetime], requests: Sequence[Sequence[Limit]],
             costs: Sequence[float] | None = None) -> list[datetime | None]:
        """For each request (the limits one message must pass, most urgent first):
        ``None`` when it may go now (its cost in tokens is spent from each of its
        buckets), else the instant to try again.  ``costs`` (default 1 each) is what
        a message weighs: an SMS of three segments costs three, because providers
        count segments.  A message may go when each bucket holds its cost, or the
        whole burst for a cost above the burst; the bucket then runs into debt that
        the refill pays back before the next message goes.  Runs in ``session``'s
        transaction; the caller commits.

        ``now`` may be a function giving the instant: it is then read once the buckets
        are locked (another worker's take may hold them a while), and :attr:`taken_at`
        is the instant the tokens were taken at."""
        self.taken_at = None
        if costs is not None and len(costs) != len(requests):
            raise ValueError("one cost per request")
        if not self.enabled or not requests:
            return [None] * len(requests)
        limits: dict[str, Limit] = {}
        for request in requests:
            for limit in request:
                known = limits.setdefault(limit.key, limit)
                if known != limit:
                    raise ValueError(f"rate limit {limit.key} is given with two different settings")
        if self.shared:
            locked = self._lock(session, limits, now() if callable(now) else now)
            self.taken_at = now = (now() if callable(now) else now).astimezone(UTC)
            buckets = {key: _Bucket(limits[key], refill(tokens, updated_at, now, limits[key]), updated_at)
                       for key, (tokens, updated_at) in locked.items()}
        else:
            self.taken_at = now = (now() if callable(now) else now).astimezone(UTC)
            buckets = self._recall(now, limits)
        out: list[datetime | None] = []
        for index, request in enumerate(requests):
            cost = 1.0 if costs is None else float(costs[index])
            if not cost > 0:
                raise ValueError(f"request {index}: the cost must be positive")
            held = [buckets[limit.key] for limit in request]
            short = [b for b in held if b.tokens < min(cost, b.limit.burst)]
            if not short:
                for b in held:
                    b.tokens -= cost
                out.append(None)
                continue
            # Tokens only go down during a take, so a bucket that is short now stays
            # short: this message queues behind the ones already sent back on it.
            wait = max((b.waiting + min(cost, b.limit.burst) - b.tokens) / b.limit.rate for b in short)
            for b in short:
                b.waiting += cost
            out.append(now + timedelta(seconds=math.ceil(wait * 1000) / 1000))
        if not self.shared:
            self._memory.update({b.limit.key: (b.tokens, max(b.updated_at, now)) for b in buckets.values()})
            return out
        table = RateBucket.__table__
        session.execute(  # a Core executemany (the ORM's bulk update wants primary-key names)
            update(table).where(table.c.key == bindparam("k")).values(tokens=bindparam("t"), updated_at=bindparam("u")),
            [{"k": b.limit.key, "t": b.tokens, "u": max(b.updated_at, now)} for b in buckets.values()],
        )
        return out

    def _recall(self, now: datetime, limits: dict[str, Limit]) -> dict[str, _Bucket]:
        """The in-memory buckets, refilled to ``now`` (new ones full)."""
        buckets: dict[str, _Bucket] = {}
        for key, limit in limits.items():
            tokens, updated_at = self._memory.get(key, (limit.burst, now))
            buckets[key] = _Bucket(limit, refill(tokens, updated_at, now, limit), updated_at)
        return buckets

    @staticmethod
    def _lock(session: Session, limits: dict[str, Limit], now: datetime) -> dict[str, tuple[float, datetime]]:
        """Lock the buckets (creating new ones full) and read them: key -> (tokens, updated_at)."""
        keys = sorted(limits)
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # New buckets start full.  On SQLite this write also takes the write lock
        # before the buckets are read, so a concurrent take cannot read stale tokens.
        session.execute(
            insert(RateBucket).values([{"key": k, "tokens": limits[k].burst, "updated_at": now.astimezone(UTC)}
                                       for k in keys])
            .on_conflict_do_nothing(index_elements=[RateBucket.key])
        )
        stmt = select(RateBucket.key, RateBucket.tokens, RateBucket.updated_at).where(RateBucket.key.in_(keys))
        if dialect == "postgresql":
            stmt = stmt.order_by(RateBucket.key).with_for_update()
        return {key: (float(tokens), updated_at) for key, tokens, updated_at in session.execute(stmt)}
