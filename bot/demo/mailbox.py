"""The demo's mail server: aiosmtpd on 127.0.0.1, keeping every message in memory.

The bot's email adapter talks real SMTP to it (aiosmtplib); the demo counts
what arrived and lets simulated borrowers "click" the unsubscribe link of an
email (:meth:`Mailbox.unsubscribe_links`).  Nothing is relayed anywhere.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

__all__ = ["Mail", "Mailbox"]


@dataclass(frozen=True)
class Mail:
    recipients: tuple[str, ...]
    raw: bytes

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def unsubscribe_url(self) -> str | None:
        """The http(s) URL of the ``List-Unsubscribe`` header (RFC 2369/8058), if any."""
        header = self.message().get("List-Unsubscribe")
        if header is None:
            return None
        for part in str(header).split(","):
            url = part.strip().strip("<>")
            if url.startswith(("http://", "https://")):
                return url
        return None


class Mailbox:
    """An SMTP server in a thread of its own (aiosmtpd's Controller) on a free local port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port  # 0: a free one, chosen at start
        self._mail: list[Mail] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._mail.append(Mail(tuple(a.lower() for a in envelope.rcpt_tos),
                                   envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def start(self) -> Mailbox:
        from aiosmtpd.controller import Controller

        if not self.port:
            with socket.socket() as probe:  # aiosmtpd binds by port number: find a free one
                probe.bind((self.host, 0))
                self.port = int(probe.getsockname()[1])
        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Mailbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self) -> int:
        with self._lock:
            return len(self._mail)

    def mail(self, since: int = 0) -> list[Mail]:
        """Messages received, oldest first, from the ``since``-th on."""
        with self._lock:
            return self._mail[since:]

    def received(self) -> Counter[str]:
        """Messages per recipient address (lower case)."""
        with self._lock:
            return Counter(r for m in self._mail for r in m.recipients)
