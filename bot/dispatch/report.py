"""What one dispatch pass did: counts per channel and outcome, no personal data."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Outcomes a pass counts, in the order ``bot tick`` prints them.
OUTCOMES = (
    "sent",          # accepted by the provider and recorded
    "deferred",      # the send-time check says later (quiet hours, a pause): status deferred
    "blocked",       # the send-time check says no (opt-out, paid, dispute...): status blocked
    "cancelled",     # stale (its step is no longer current, or too old) or already confirmed
    "rate_limited",  # allowed, but the provider's rate limit sends it a little later
    "retry",         # a transient error: back to planned with backoff
    "late",          # its lane reached it after the rate-limit tolerance: not sent, planned again at once
    "failed",        # a permanent error, too many tries, or the message could not be composed
    "reconciled",    # found at the provider after a crash: recorded as sent, not sent again
    "requeued",      # not found at the provider after a crash: planned again
    "unknown",       # left "sending" by a crash and the provider cannot say: for a person
    "lost_lease",    # another worker took the attempt over (this one was too slow)
    "status_fetched",  # a delivery status whose callback never came, fetched from the provider and recorded
)


@dataclass
class DispatchReport:
    at: datetime
    worker: str
    claimed: int = 0
    batches: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, channel: str, outcome: str, n: int = 1) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown dispatch outcome {outcome!r}")
        self.counts[(channel, outcome)] += n

    def total(self, outcome: str) -> int:
        return sum(n for (_channel, o), n in self.counts.items() if o == outcome)

    @property
    def handled(self) -> int:
        return sum(self.counts.values())

    def by_channel(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (channel, outcome), n in sorted(self.counts.items()):
            out.setdefault(channel, {})[outcome] = n
        return out

    def merge(self, other: DispatchReport) -> None:
        self.claimed += other.claimed
        self.batches += other.batches
        self.counts.update(other.counts)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "worker": self.worker,
            "claimed": self.claimed,
            "batches": self.batches,
            "by_channel": self.by_channel(),
            "totals": {o: self.total(o) for o in OUTCOMES if self.total(o)},
        }
