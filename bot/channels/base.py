"""The channel adapter contract.

Only :mod:`bot.dispatch` calls adapters.  An adapter's :meth:`Channel.send` takes an
:class:`ApprovedMessage`, which only :func:`approve` can build, and only from a
compliance :class:`~bot.compliance.types.Decision` that allowed the contact at the
moment of sending: there is no way to send a message the rules did not allow.

``send`` returns a :class:`SendResult` or raises
:class:`~bot.errors.TransientDeliveryError` (retry later with backoff) or
:class:`~bot.errors.PermanentDeliveryError` (record, never retry).  Adapters log
only masked addresses and never the message text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from bot.compliance.types import Decision
from bot.domain import Channel as ChannelName

_APPROVAL = object()  # only approve() has it


class NotApproved(Exception):
    """approve() was asked to approve a contact the rules did not allow."""


@dataclass(frozen=True, slots=True)
class ApprovedMessage:
    """A rendered message the compliance check allowed; built only by :func:`approve`."""

    attempt_id: int
    channel: ChannelName
    to: str  # E.164 phone number or email address
    body: str  # SMS text, or the email's text part
    idempotency_key: str  # the attempt's dedupe key; providers that support it get it
    decision: Decision
    subject: str | None = None  # email only
    html: str | None = None  # email only
    headers: Mapping[str, str] = field(default_factory=dict)  # email only (List-Unsubscribe, ...)
    status_callback: str | None = None  # SMS/voice: our webhook URL for delivery status
    from_: str | None = None  # sender number/address; None: the adapter's default
    _approval: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._approval is not _APPROVAL:
            raise NotApproved("ApprovedMessage can only be built by bot.channels.base.approve()")


def approve(decision: Decision, **fields: object) -> ApprovedMessage:
    """Build an :class:`ApprovedMessage` from an allowing decision (else :class:`NotApproved`)."""
    if not decision.allowed:
        raise NotApproved("the compliance decision does not allow this contact: " + ", ".join(decision.reasons))
    return ApprovedMessage(decision=decision, _approval=_APPROVAL, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str  # Twilio's SM.../CA... sid, or the email's Message-ID
    status: str  # the provider's status at acceptance: queued, accepted, ...
    segments: int | None = None  # SMS only


class Channel(ABC):
    """An adapter for one channel.  Capabilities are class attributes."""

    name: ClassVar[ChannelName]

    @abstractmethod
    async def send(self, message: ApprovedMessage) -> SendResult:
        """Deliver one message; raise Transient/PermanentDeliveryError on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections (SMTP session, HTTP pool)."""
