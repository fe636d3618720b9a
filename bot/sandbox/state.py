"""The sandbox's records: accounts, its phone numbers, messages, calls, opt-outs.

Everything lives in memory behind one re-entrant lock (:attr:`Store.lock`):
the REST handlers run on the server's event loop thread while tests and
the real-time dispatcher fire events from theirs.  Code holds the lock
only to read or change records, never while it sends a webhook, so a bot
that calls the REST API from inside a webhook cannot deadlock the sandbox.

:class:`Call` carries more than the REST part needs: ``instructions``,
``twiml_log``, and what the call flow (:mod:`bot.sandbox.callflow`) records:
``spoken``, ``events``, ``recording_sids``.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

API_VERSION = "2010-04-01"

FINAL_MESSAGE_STATUSES = frozenset({"delivered", "undelivered", "failed", "received", "canceled", "read"})
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: two letters and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass
class Account:
    sid: str
    auth_token: str
    #: API key SID (SK...) -> secret; usable as Basic-auth username/password
    api_keys: dict[str, str] = field(default_factory=dict)


@dataclass
class OwnedNumber:
    """A number the sandbox holds for an account, like a Twilio IncomingPhoneNumber."""

    number: str
    account_sid: str
    sid: str = field(default_factory=lambda: new_sid("PN"))
    sms_url: str | None = None
    sms_method: str = "POST"
    voice_url: str | None = None
    voice_method: str = "POST"


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    direction: str
    status: str
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    num_segments: int = 1
    media_urls: list[str] = field(default_factory=list)
    error_code: int | None = None
    error_message: str | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    #: creation order, to sort records created within the same clock tick
    seq: int = 0
    #: set by the sandbox for its own STOP/START/HELP confirmations
    automatic: bool = False
    #: callback fault modes frozen at creation so one message behaves consistently
    duplicate_callbacks: bool = False
    out_of_order_callbacks: bool = False
    held_callbacks: list[list[tuple[str, str]]] = field(default_factory=list)
    #: bumped when the message is canceled, so its pending events turn into no-ops
    epoch: int = 0

    @property
    def num_media(self) -> int:
        return len(self.media_urls)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_MESSAGE_STATUSES


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    status: str
    date_created: datetime
    date_updated: datetime
    direction: str = "outbound-api"
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_at: datetime | None = None
    duration: int | None = None
    answered_by: str | None = None
    parent_call_sid: str | None = None
    phone_number_sid: str | None = None
    #: where the call's TwiML comes from: {"url", "method", "twiml", "application_sid", ...}
    instructions: dict[str, str | None] = field(default_factory=dict)
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    timeout: int = 60
    time_limit: int = 14400
    machine_detection: str | None = None
    async_amd: bool = False
    async_amd_status_callback: str | None = None
    async_amd_status_callback_method: str = "POST"
    record: bool = False
    #: the whole-call recording asked for on create: ``mono`` or ``dual`` and where its status goes
    recording_channels: str = "mono"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    #: next SequenceNumber of a status callback
    sequence: int = 0
    #: bumped whenever the call's future changes (hang-up, redirect): stale events are dropped
    epoch: int = 0
    #: TwiML documents the call received, in order (fetched from Url, or given as Twiml)
    twiml_log: list[str] = field(default_factory=list)
    duplicate_callbacks: bool = False
    out_of_order_callbacks: bool = False
    held_callbacks: list[list[tuple[str, str]]] = field(default_factory=list)
    seq: int = 0
    #: what the bot said and played, in order (:class:`bot.sandbox.callflow.Spoken`)
    spoken: list[Any] = field(default_factory=list)
    #: what happened on the call, in order (:class:`bot.sandbox.callflow.CallEvent`)
    events: list[Any] = field(default_factory=list)
    #: SIDs of the recordings ``<Record>`` made on this call (and its whole-call recording)
    recording_sids: list[str] = field(default_factory=list)
    #: what the whole-call recording will hold: (channel, seconds after the answer, WAV bytes)
    tracks: list[tuple[int, float, bytes]] = field(default_factory=list)
    #: room for the voice sandbox (the running call flow, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES

    @property
    def errors(self) -> list[Any]:
        """The ``error`` events of the call (Twilio debugger-style codes such as 11200, 12100)."""
        return [event for event in self.events if event.type == "error"]


@dataclass
class Recording:
    """A recording a ``<Record>`` verb made: the persona's clip, served as it is."""

    sid: str
    account_sid: str
    call_sid: str
    date_created: datetime
    start_time: datetime
    duration: int
    audio: bytes
    content_type: str = "audio/x-wav"
    source: str = "RecordVerb"
    status: str = "completed"
    channels: int = 1
    seq: int = 0


@dataclass
class Store:
    """All records of one sandbox."""

    accounts: dict[str, Account] = field(default_factory=dict)
    numbers: dict[str, OwnedNumber] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    calls: dict[str, Call] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    #: (sender number, phone) -> opted out?  Absent: the persona's ``opted_out`` decides.
    opt_outs: dict[tuple[str, str], bool] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _seq: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def next_seq(self) -> int:
        return next(self._seq)

    def account_for_key(self, username: str) -> tuple[Account, str] | None:
        """The account and the secret expected for a Basic-auth username (account SID or API key)."""
        account = self.accounts.get(username)
        if account is not None:
            return account, account.auth_token
        for account in self.accounts.values():
            if username in account.api_keys:
                return account, account.api_keys[username]
        return None

    def clear_records(self) -> None:
        self.messages.clear()
        self.calls.clear()
        self.recordings.clear()
        self.opt_outs.clear()
