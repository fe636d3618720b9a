"""What the sandbox's resources need of the ``Sandbox`` that owns them.

Messaging, voice, the call flows and the status callbacks are built by
:class:`bot.sandbox.sandbox.Sandbox` and handed it; they use only its clock,
scheduler, store, phone book, webhook sender, settings, faults, opt-outs and auth tokens.  They
name that surface (:class:`Host`), not the class, so the owner imports them and
they never import the owner back (no import cycle; tests/test_structure.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bot.sandbox.config import SandboxConfig
from bot.sandbox.events import Event
from bot.sandbox.faults import Faults
from bot.sandbox.phones import PhoneBook
from bot.sandbox.state import Call, Store
from bot.sandbox.webhooks import WebhookSender

__all__ = ["CallEnds", "Host"]


class Host(Protocol):
    """The owning sandbox, as its resources see it."""

    config: SandboxConfig
    faults: Faults
    store: Store
    phones: PhoneBook
    webhooks: WebhookSender
    base_url: str | None

    def now(self) -> datetime: ...

    def schedule(self, delay: float, label: str, action: Callable[[], None]) -> Event: ...

    def auth_token(self, account_sid: str) -> str: ...

    def is_opted_out(self, sender: str, phone: str) -> bool: ...


class CallEnds(Protocol):
    """The voice resource, as a call flow sees it: a call's webhook parameters and its end."""

    def call_params(self, call: Call, call_status: str) -> list[tuple[str, str]]: ...

    def _end(self, call: Call, status: str) -> None: ...
