"""Micro-benchmark of bot.compliance.check: prints calls per second per scenario.

    python bench/compliance_bench.py [--calls N] [--repeat R]

The planner calls check() once per installment and channel (up to a million per
run), so the common allowed case must stay around 10-20 microseconds.  Each
scenario runs N calls R times and reports the best run (the least disturbed by
other work on the machine).  Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.compliance import Decision, HistoryEntry, StopState, Subject, check
from bot.domain import Channel, ContactOutcome

AT = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # a Friday, 11:00 in New York, 00:00 in Beijing
CN_AT = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
CONSENT = StopState(consent=frozenset(Channel))
OPTED_OUT_SMS = StopState(consent=frozenset(Channel), opted_out=frozenset({Channel.SMS}))


def _history(n: int, channel: Channel, loan: str = "L1") -> list[HistoryEntry]:
    return [
        HistoryEntry(channel, AT - timedelta(days=2 * i + 1, hours=3), ContactOutcome.DELIVERED, loan)
        for i in range(n)
    ]


def _scenarios() -> dict[str, Callable[[], Decision]]:
    ny = Subject("B1", "US", "NY", None, "+12125551234", "jane@example.com")
    ma = Subject("B2", "US", "MA", None, "+16175551234", "jane@example.com")
    fl = Subject("B3", "US", "FL", "America/New_York", "+13055551234", "jane@example.com")
    cn = Subject("C1", "CN", "BJ", "Asia/Shanghai", "+8613812341234", None, "zh-CN")
    hist_voice = _history(3, Channel.VOICE)
    hist_mixed = _history(2, Channel.SMS) + _history(3, Channel.VOICE)
    night = AT - timedelta(hours=12)  # 23:00 the day before in New York
    seven_calls = [
        HistoryEntry(Channel.VOICE, AT - timedelta(hours=20 * i + 1), ContactOutcome.ATTEMPTED, "L1")
        for i in range(7)
    ]
    return {
        "allowed: NY sms, no history": lambda: check(ny, Channel.SMS, AT, (), CONSENT, loan_id="L1"),
        "allowed: NY voice, 3 calls": lambda: check(ny, Channel.VOICE, AT, hist_voice, CONSENT, loan_id="L1"),
        "allowed: MA email, 5 attempts": lambda: check(ma, Channel.EMAIL, AT, hist_mixed, CONSENT, loan_id="L1"),
        "allowed: FL voice (2 zones), 3 calls": lambda: check(fl, Channel.VOICE, AT, hist_voice, CONSENT,
                                                               loan_id="L1"),
        "allowed: CN sms, 3 calls": lambda: check(cn, Channel.SMS, CN_AT, hist_voice, CONSENT),
        "blocked: NY voice at 23:00 (quiet hours)": lambda: check(ny, Channel.VOICE, night, hist_voice, CONSENT,
                                                                  loan_id="L1"),
        "blocked: NY voice after 7 calls": lambda: check(ny, Channel.VOICE, AT, seven_calls, CONSENT,
                                                         loan_id="L1"),
        "blocked: opted out (no search)": lambda: check(ny, Channel.SMS, AT, (), OPTED_OUT_SMS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'scenario':45} {'calls/s':>10} {'us/call':>8}")
    for name, fn in _scenarios().items():
        fn()  # warm the caches
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            for _ in range(args.calls):
                fn()
            best = min(best, time.perf_counter() - start)
        per_call = best / args.calls
        print(f"{name:45} {1 / per_call:10,.0f} {per_call * 1e6:8.1f}")


if __name__ == "__main__":
    main()
