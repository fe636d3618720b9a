"""Twilio's status words, ranked: the one table the webhooks, the voice service and the
dispatcher's status checks read.

Twilio may send a message's or a call's status callbacks more than once and in any
order; a status is applied only over a lower-ranked one (bot.dispatch.delivery,
bot.voice.service read the ranks through the functions below, and rank nothing themselves).  Messages::

    accepted, scheduled, queued  <  sending  <  sent  <  delivered | undelivered | failed | canceled  <  read

Calls::

    queued < initiated < ringing < in-progress < completed | busy | failed | no-answer | canceled
"""

from __future__ import annotations

from bot.domain import ContactOutcome

__all__ = [
    "CALL_FINAL",
    "CALL_STATUS_RANK",
    "FAILURE_STATUSES",
    "MESSAGE_FINAL",
    "MESSAGE_OUTCOME",
    "STATUS_RANK",
    "answered_kind",
    "call_status_advances",
    "is_call_status",
    "lower_call_statuses",
    "lower_statuses",
]

#: Message statuses, ranked.
STATUS_RANK: dict[str, int] = {
    "accepted": 1, "scheduled": 1, "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4, "partially_delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4,
    "read": 5,
}
#: Message statuses that mean it did not arrive.
FAILURE_STATUSES = frozenset({"undelivered", "failed", "canceled"})
#: The contact outcome a message status records.
MESSAGE_OUTCOME = {
    "delivered": ContactOutcome.DELIVERED.value, "partially_delivered": ContactOutcome.DELIVERED.value,
    "read": ContactOutcome.DELIVERED.value,
    "undelivered": ContactOutcome.FAILED.value, "failed": ContactOutcome.FAILED.value,
    "canceled": ContactOutcome.FAILED.value,
}
#: Message statuses after which nothing more is expected.
MESSAGE_FINAL = ("delivered", "partially_delivered", "undelivered", "failed", "canceled", "read")

#: Call statuses, ranked.
CALL_STATUS_RANK: dict[str, int] = {
    "queued": 1, "initiated": 2, "ringing": 3, "in-progress": 4,
    "completed": 5, "busy": 5, "failed": 5, "no-answer": 5, "canceled": 5,
}
#: Call statuses after which nothing more is expected.
CALL_FINAL = ("completed", "busy", "failed", "no-answer", "canceled")


def lower_statuses(status: str) -> frozenset[str]:
    """The stored message statuses a callback with ``status`` may replace (``read`` only a non-failure)."""
    rank = STATUS_RANK[status]
    lower = {name for name, r in STATUS_RANK.items() if r < rank}
    if status == "read":
        lower -= FAILURE_STATUSES
    return frozenset(lower)


def is_call_status(status: str) -> bool:
    """Whether ``status`` is a call status word this table knows."""
    return status in CALL_STATUS_RANK


def lower_call_statuses(status: str) -> list[str]:
    """The stored call statuses ``status`` may replace, sorted (empty for an unknown word)."""
    rank = CALL_STATUS_RANK.get(status)
    if rank is None:
        return []
    return sorted(s for s, r in CALL_STATUS_RANK.items() if r < rank)


def call_status_advances(current: str | None, status: str) -> bool:
    """Whether a call at ``current`` moves forward to ``status`` (an unknown ``status`` never does)."""
    rank = CALL_STATUS_RANK.get(status)
    return rank is not None and CALL_STATUS_RANK.get(current or "", 0) < rank


def answered_kind(word: str | None) -> str:
    """Who answered, from Twilio's ``AnsweredBy`` word: ``person`` (``human``), ``machine``
    (``machine_start``, ``machine_end_beep``, ...), ``fax`` or ``unknown``."""
    word = (word or "").strip().lower()
    if word == "human":
        return "person"
    if word.startswith("machine"):
        return "machine"
    if word == "fax":
        return "fax"
    return "unknown"
