"""Helpers shared by the dispatcher's tests (tests/test_dispatch*.py): replies, reads, adapters, servers.

Borrowers and loans come from tests/builders.py.

Not a test module: pytest collects nothing here.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from email.message import Message
from typing import Any

from sqlalchemy import select

from builders import AT

from bot.channels.base import ApprovedMessage, Channel, SendResult
from bot.db import Database
from bot.db.models import Borrower, Consent, ContactAttempt, InboundMessage
from bot.demo.mailbox import Mailbox
from bot.domain import Channel as ChannelName

TODAY = date(2026, 11, 28)


def due_in(days: int, today: date = TODAY) -> date:
    """A due date ``days`` after ``today`` (D-``days`` today)."""
    return today + timedelta(days=days)


def add_reply(db: Database, borrower_id: str, kind: str, *, at: datetime = AT, sid: str | None = None,
              to_number: str = "+15005550006", address: str | None = None) -> int:
    """A reply attempt as bot.replies writes it (with its inbound message); its id."""
    sid = sid or f"SM{abs(hash((borrower_id, kind, at))) % 10**32:032d}"
    with db.session() as s:
        borrower = s.get(Borrower, borrower_id)
        assert borrower is not None
        attempt = ContactAttempt(
            dedupe_key=f"reply:{sid}", borrower_id=borrower_id, channel="sms", source="reply", status="planned",
            step="reply", template=f"reply_{kind}", address=address or borrower.phone_e164, next_attempt_at=at,
            created_at=at, updated_at=at)
        s.add(attempt)
        s.flush()
        s.add(InboundMessage(provider_id=sid, channel="sms", borrower_id=borrower_id,
                             from_address=address or borrower.phone_e164 or "", to_address=to_number,
                             body_redacted=kind, intent=kind, received_at=at, handled_at=at,
                             reply_attempt_id=attempt.id))
        return attempt.id


def attempts(db: Database) -> list[ContactAttempt]:
    with db.sessions() as s:
        return list(s.scalars(select(ContactAttempt).order_by(ContactAttempt.id)))


def attempt(db: Database, attempt_id: int) -> ContactAttempt:
    with db.sessions() as s:
        found = s.get(ContactAttempt, attempt_id)
        assert found is not None
        return found


def consent(db: Database, borrower_id: str, channel: str) -> Consent:
    with db.sessions() as s:
        row = s.scalars(select(Consent).where(Consent.borrower_id == borrower_id, Consent.channel == channel)).one()
        return row


# --- an in-test adapter -----------------------------------------------------------------


@dataclass
class FakeChannel(Channel):
    """A channel adapter that records what it is given; ``script[address]`` lists
    exceptions (or None for success) to produce for that address's next sends."""

    channel: str = "sms"
    script: dict[str, list[BaseException | None]] = field(default_factory=dict)
    sent: list[ApprovedMessage] = field(default_factory=list)
    calls: int = 0
    delay: float = 0.0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.name = ChannelName(self.channel)  # type: ignore[misc]

    async def send(self, message: ApprovedMessage) -> SendResult:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        queue = self.script.get(message.to)
        if queue:
            outcome = queue.pop(0)
            if outcome is not None:
                raise outcome
        self.sent.append(message)
        prefix = "SM" if self.channel == "sms" else "<m"
        return SendResult(f"{prefix}{next(self._ids):032d}", "queued", 1)

    def count_to(self, address: str) -> int:
        return sum(1 for m in self.sent if m.to == address)


# --- a local SMTP server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink(Mailbox):
    """The demo's mail server (aiosmtpd on 127.0.0.1) with a fixed port chosen up front,
    ``refuse``: RCPT to an address in it is answered with its ``code``, and ``drop``: RCPT
    to an address in it closes the connection instead of answering, that many times."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port=port or free_port())
        self.refuse: dict[str, int] = {}
        self.refused_count: Counter[str] = Counter()
        self.drop: Counter[str] = Counter()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.drop[address.lower()] > 0:
            self.drop[address.lower()] -= 1
            server.transport.abort()
            return "250 OK"
        code = self.refuse.get(address.lower())
        if code is not None:
            self.refused_count[address.lower()] += 1
            return f"{code} 5.1.1 mailbox unavailable" if code >= 500 else f"{code} 4.2.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    @property
    def messages(self) -> list[Message]:
        return [message_from_bytes(m.raw, policy=policy.default) for m in self.mail()]

    def _headers(self, name: str) -> list[str]:
        parser = BytesHeaderParser()
        return [str(parser.parsebytes(m.raw)[name]) for m in self.mail()]

    def received(self) -> Counter[str]:
        """Messages per recipient (the To header)."""
        return Counter(self._headers("To"))

    def message_ids(self) -> Counter[str]:
        return Counter(self._headers("Message-ID"))
