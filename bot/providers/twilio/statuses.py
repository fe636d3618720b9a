"""Twilio's status words, ranked: the one table the webhooks, the voice service and the
dispatcher's status checks read.

Twilio may send a message's or a call's status callbacks more than once and in any
order; a status is applied only over a lower-ranked one (bot.web.status,
bot.voice.service).  Messages::

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
