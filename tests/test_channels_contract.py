"""The adapter contract: only approve() builds an ApprovedMessage, and only from an allowing decision."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.channels.base import ApprovedMessage, NotApproved, approve
from bot.compliance.types import Decision
from bot.config import Settings
from bot.domain import Channel
from bot.messages import MessageData, compose
from bot.rendering import Renderer

ALLOWED = Decision(True, (), None, "us", ("America/New_York",))
NIGHT = Decision(False, ("quiet_hours",), datetime(2026, 1, 16, 13, 0, tzinfo=UTC), "us", ("America/New_York",))
OPTED_OUT = Decision(False, ("opted_out",), None, "us", ("America/New_York",))


def test_approved_message_cannot_be_built_directly() -> None:
    with pytest.raises(NotApproved):
        ApprovedMessage(attempt_id=1, channel=Channel.SMS, to="+12125551234", body="x", idempotency_key="k",
                        decision=ALLOWED)
    with pytest.raises(NotApproved):  # nor with a forged approval token
        ApprovedMessage(attempt_id=1, channel=Channel.SMS, to="+12125551234", body="x", idempotency_key="k",
                        decision=ALLOWED, _approval=object())


@pytest.mark.parametrize("decision", [NIGHT, OPTED_OUT], ids=["deferring", "blocking"])
def test_approve_refuses_a_decision_that_does_not_allow(decision: Decision) -> None:
    with pytest.raises(NotApproved) as info:
        approve(decision, attempt_id=1, channel=Channel.SMS, to="+12125551234", body="x", idempotency_key="k")
    assert decision.reasons[0] in str(info.value)


class _Attempt:
    id = 5
    dedupe_key = "plan:I1:main:0:email"
    borrower_id = "B1"
    installment_id = "I1"
    channel = "email"
    source = "planner"
    template = "reminder_due"
    address = "jane@example.com"
    decision = {"planner": {"locale": "en-US", "zone": "America/New_York"}}
    next_attempt_at = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)


def test_composed_fields_build_an_approved_message() -> None:
    data = MessageData("B1", "Jane Doe", "en-US", None, "L-1", "USD", date(2026, 1, 15), 5000)
    composed = compose(data, _Attempt(), Settings(), renderer=Renderer())
    message = approve(ALLOWED, **composed.approve_fields(), from_="Example <reminders@example.com>")
    assert message.channel is Channel.EMAIL and message.attempt_id == 5
    assert (message.to, message.subject, message.body, message.html) == (composed.to, composed.subject,
                                                                         composed.body, composed.html)
    assert dict(message.headers) == dict(composed.headers) and message.idempotency_key == _Attempt.dedupe_key
    assert message.decision is ALLOWED
