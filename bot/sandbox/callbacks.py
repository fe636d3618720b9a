"""Delivering a resource's status callbacks, including the callback fault modes.

Normally each status change is posted once, when it happens.  With
``duplicate_callbacks`` every post is sent twice; with
``out_of_order_callbacks`` the posts of one message or call are held back
until its last status change and then sent newest first, so a receiver
sees ``delivered`` before ``sent`` before ``queued``.  Both modes are
frozen on the record when it is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.sandbox.state import Call, Message

if TYPE_CHECKING:
    from bot.sandbox.host import Host


def deliver_status(
    sandbox: Host,
    record: Message | Call,
    *,
    kind: str,
    url: str | None,
    method: str,
    params: Sequence[tuple[str, str]] | None,
    final: bool,
) -> None:
    """Post (or hold) one status callback; *params* None means "not subscribed", only flushes on *final*."""
    with sandbox.store.lock:
        batch: list[list[tuple[str, str]]]
        if record.out_of_order_callbacks:
            if params is not None:
                record.held_callbacks.append(list(params))
            if not final:
                return
            batch = list(reversed(record.held_callbacks))
            record.held_callbacks.clear()
        else:
            batch = [list(params)] if params is not None else []
        copies = 2 if record.duplicate_callbacks else 1
        token = sandbox.auth_token(record.account_sid)
    if not url:
        return
    for payload in batch:
        for _ in range(copies):
            sandbox.webhooks.send(
                kind=kind, sid=record.sid, url=url, params=payload, auth_token=token, at=sandbox.now(), method=method
            )
