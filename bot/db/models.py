"""SQLAlchemy 2.0 typed models.

Conventions:

* external identifiers from the lender's files (``borrower_id``, ``loan_id``...)
  are the primary keys, so re-importing a file is an upsert by id;
* money is an integer count of minor units (cents, fen) with an ISO 4217
  currency on the loan; never a float;
* instants are :class:`~bot.db.types.UTCDateTime` (UTC, timezone-aware);
  calendar days (due dates) are plain ``Date`` in the borrower's own zone,
  which is stored separately on the borrower.

The schema is created and upgraded by Alembic (``bot init``); a test checks that
these models and the migrations agree on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Borrower(Base):
    __tablename__ = "borrowers"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    full_name: Mapped[str] = mapped_column(Text)
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)  # inbound SMS lookup
    email: Mapped[str | None] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(2))
    # Set when the borrower asked for no further communication at all.
    cease_communication_at: Mapped[datetime | None]
    # The lender's own risk score (0-1000, higher is riskier) and segment; a loan's override
    # them (docs/risk.md).
    risk_score: Mapped[int | None] = mapped_column(Integer)
    segment: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    loans: Mapped[list[Loan]] = relationship(back_populates="borrower", order_by="Loan.id")
    consents: Mapped[list[Consent]] = relationship(
        back_populates="borrower", order_by="(Consent.channel, Consent.address)"
    )


class Consent(Base):
    """Consent and opt-out per borrower, channel and address.

    The lender's import sets ``granted``; a borrower's opt-out sets
    ``opted_out_at`` and is never cleared by an import, only by the borrower
    opting back in.  A new phone number or email gets a new row, so an opt-out
    stays with the address it was given for.
    """

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("borrower_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(254))
    granted: Mapped[bool] = mapped_column(Boolean)
    opted_out_at: Mapped[datetime | None]
    opt_out_source: Mapped[str | None] = mapped_column(String(32))
    # e.g. wrong_number, landline, invalid: the address must not be used.
    address_flag: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime]

    borrower: Mapped[Borrower] = relationship(back_populates="consents")


class Loan(Base):
    __tablename__ = "loans"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    borrower_id: Mapped[str] = mapped_column(
        ForeignKey("borrowers.id", ondelete="CASCADE"), index=True
    )
    product: Mapped[str] = mapped_column(Text)
    principal_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    opened_on: Mapped[date] = mapped_column(Date)
    # Written by bot.ledger.settle_loans only (docs/formats.md "What counts as paid"):
    # the sum of the installments' amount_paid when last settled, the instant that
    # statement last changed, and the overpayment left after allocation.
    paid_stated_minor: Mapped[int | None] = mapped_column(BigInteger)
    paid_stated_at: Mapped[datetime | None]
    credit_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The lender's risk score and segment for this loan; when set they override the borrower's.
    risk_score: Mapped[int | None] = mapped_column(Integer)
    segment: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    borrower: Mapped[Borrower] = relationship(back_populates="loans")
    installments: Mapped[list[Installment]] = relationship(
        back_populates="loan", order_by="(Installment.due_date, Installment.id)"
    )
    payments: Mapped[list[Payment]] = relationship(
        back_populates="loan", order_by="(Payment.paid_at, Payment.id)"
    )


class Installment(Base):
    __tablename__ = "installments"
    __table_args__ = (Index(None, "due_date", "loan_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    due_date: Mapped[date] = mapped_column(Date)
    amount_due_minor: Mapped[int] = mapped_column(BigInteger)
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger)  # the lender's statement
    # What is paid of it by the rule (the statement and the loan's payments): written
    # by bot.ledger.settle_loans only; every reader uses it, not amount_paid_minor.
    covered_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    loan: Mapped[Loan] = relationship(back_populates="installments")

    @property
    def outstanding_minor(self) -> int:
        return max(self.amount_due_minor - self.covered_minor, 0)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    loan_id: Mapped[str] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"), index=True)
    paid_at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    loan: Mapped[Loan] = relationship(back_populates="payments")


class ContactAttempt(Base):
    """One contact: imported history, or an attempt the bot planned and sent.

    ``dedupe_key`` makes every path idempotent: imported rows use their natural
    key, planned attempts one key per installment, step and channel.
    """

    __tablename__ = "contact_attempts"
    __table_args__ = (
        Index(None, "borrower_id", "occurred_at"),
        Index(None, "loan_id", "channel", "occurred_at"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "updated_at", "id"),  # GET /api/v1/attempts pages by (updated_at, id)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    loan_id: Mapped[str | None] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    installment_id: Mapped[str | None] = mapped_column(
        ForeignKey("installments.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    step: Mapped[str | None] = mapped_column(String(64))
    template: Mapped[str | None] = mapped_column(String(128))
    address: Mapped[str | None] = mapped_column(String(254))
    occurred_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    decision: Mapped[dict[str, Any] | None]
    # Dispatch: a lease (claimed_by/claimed_until) so that one worker sends an
    # attempt; tries and last_error for retries; provider_status is the delivery
    # status reported by the provider's callbacks (never moved backwards).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    tries: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(255))
    provider_status: Mapped[str | None] = mapped_column(String(16))
    sent_at: Mapped[datetime | None]
    # What the dispatcher stored when it sent (bot.dispatch.attempts.DispatchMeta): the
    # sender number, the body's SHA-256 (crash reconciliation), a call's script and locale,
    # and until when the rate limit held it back.
    sender: Mapped[str | None] = mapped_column(String(32))
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    call_script: Mapped[str | None] = mapped_column(String(64))
    call_locale: Mapped[str | None] = mapped_column(String(16))
    rate_limited_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Promise(Base):
    """A promise to pay; reminders pause until the day after ``promised_date``."""

    __tablename__ = "promises"
    __table_args__ = (Index(None, "borrower_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    loan_id: Mapped[str | None] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    promised_date: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class Survey(Base):
    """One satisfaction question after a conversation (bot.replies.surveys, docs/metrics.md "csat").

    ``attempt_id`` is the SMS that asks it (source ``reply``, template ``reply_survey``)
    or the call whose keypad question it was.  An SMS survey is pending from the moment
    its SMS was sent until ``answered_at`` or ``expires_at``; ``score`` is 1..5.
    """

    __tablename__ = "surveys"
    __table_args__ = (Index(None, "borrower_id", "asked_at"), Index(None, "answered_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))  # sms | voice: how the question is asked
    trigger: Mapped[str] = mapped_column(String(32))  # promise | paid | dispute_resolved
    address: Mapped[str | None] = mapped_column(String(254))  # the number asked (its reply must come from it)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("contact_attempts.id", ondelete="SET NULL"))
    asked_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    score: Mapped[int | None] = mapped_column(Integer)


class AuditEvent(Base):
    """Who did what and when.  ``detail`` never holds raw personal data."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]


class Task(Base):
    """Work for a person: a dispute, hardship, call-back request, wrong number,
    an unclassified reply to review, or a hand-off from the treatment policy.

    An open ``dispute`` task stops automated contact about the borrower's debt.
    """

    __tablename__ = "tasks"
    __table_args__ = (Index(None, "borrower_id", "kind", "status"), Index(None, "status", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    loan_id: Mapped[str | None] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # bot.domain.TaskKind
    status: Mapped[str] = mapped_column(String(16))  # open | closed
    source: Mapped[str] = mapped_column(String(16))  # sms | voice | email | policy | console
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)  # redacted text only
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class InboundMessage(Base):
    """A message a borrower (or anyone) sent us: an SMS reply, an email unsubscribe.

    ``body_redacted`` has card, ID and account numbers removed before storage.
    ``provider_id`` (Twilio's MessageSid) makes webhook retries idempotent.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (Index(None, "borrower_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    borrower_id: Mapped[str | None] = mapped_column(ForeignKey("borrowers.id", ondelete="SET NULL"))
    from_address: Mapped[str] = mapped_column(String(254), index=True)
    to_address: Mapped[str] = mapped_column(String(254))
    body_redacted: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(32))
    promise_date: Mapped[date | None] = mapped_column(Date)
    confidence: Mapped[float | None]
    matched: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime]
    handled_at: Mapped[datetime | None]
    reply_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("contact_attempts.id", ondelete="SET NULL"))


class RateBucket(Base):
    """A token bucket shared by every worker (per sender number, per account)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[float]
    updated_at: Mapped[datetime]


class CallSession(Base):
    """One voice call: its Twilio CallSid, the script's state between webhooks,
    the outcome, flags for review and the review itself (docs/voice.md).

    ``state`` is the dialog engine's JSON state (bot.scripts); ``decision`` the
    compliance decision that allowed the call when it was answered.
    """

    __tablename__ = "call_sessions"
    __table_args__ = (
        Index(None, "borrower_id", "started_at"),
        Index(None, "started_at"),
        Index(None, "flagged", "reviewed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_attempts.id", ondelete="SET NULL"), unique=True
    )
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    loan_id: Mapped[str | None] = mapped_column(ForeignKey("loans.id", ondelete="CASCADE"))
    locale: Mapped[str] = mapped_column(String(16))
    script: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16))  # Twilio CallStatus, never moved backwards
    answered_by: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    promise_date: Mapped[date | None] = mapped_column(Date)
    speech: Mapped[bool] = mapped_column(Boolean, server_default="1")  # False: keypad only
    flagged: Mapped[bool] = mapped_column(Boolean, server_default="0")
    flags: Mapped[dict[str, Any] | None]  # {"reasons": [...]}
    min_confidence: Mapped[float | None]
    decision: Mapped[dict[str, Any] | None]
    recording_dir: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[float | None]
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    #: the supervisor who took the call from the review queue (docs/console.md)
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    assigned_at: Mapped[datetime | None]
    #: the whole call's dual-channel recording, relative to the media directory (docs/voice.md)
    recording_ref: Mapped[str | None] = mapped_column(String(255))
    recording_sid: Mapped[str | None] = mapped_column(String(64))
    recording_started_at: Mapped[datetime | None]
    recording_channels: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CallTurn(Base):
    """One turn of a call: what the bot said or what the borrower answered.

    ``text_redacted`` has card, ID and account numbers removed before storage;
    ``audio_ref`` is a path relative to the media directory (prompt or recording).
    A supervisor's correction is kept beside the detected intent, never over it.
    """

    __tablename__ = "call_turns"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("call_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))  # bot | borrower
    node: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(String(8))  # tts | speech | dtmf | silence
    text_redacted: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None]
    intent: Mapped[str | None] = mapped_column(String(32))
    promise_date: Mapped[date | None] = mapped_column(Date)
    audio_ref: Mapped[str | None] = mapped_column(String(255))
    flagged: Mapped[bool] = mapped_column(Boolean, server_default="0")
    corrected_intent: Mapped[str | None] = mapped_column(String(32))
    corrected_promise_date: Mapped[date | None] = mapped_column(Date)
    corrected_by: Mapped[str | None] = mapped_column(String(64))
    corrected_at: Mapped[datetime | None]
    #: seconds from the answer to the start of the turn: where it lies in the call's recording
    offset_s: Mapped[float | None]
    #: the recogniser's margin for a spoken answer: its best grammar group's score over the filler
    #: (bot.speech.listen.Heard.margin; None for keys, silences, the bot's turns and no filler decode)
    margin: Mapped[float | None]


class User(Base):
    """A console user (``bot user add``): viewer, supervisor or admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    failed_logins: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None]
    disabled: Mapped[bool] = mapped_column(Boolean, server_default="0")
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))  # the zone the console shows times in; None: UTC
    locale: Mapped[str | None] = mapped_column(String(16))  # the console's language (en, zh-CN, ko-KR); None: default


class ConsoleSession(Base):
    """A signed-in console session; the cookie holds a token whose hash is ``id``."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class Note(Base):
    """A person's note on a call, borrower or task (redacted text only)."""

    __tablename__ = "notes"
    __table_args__ = (Index(None, "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    text_redacted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ApiKey(Base):
    """A key of the REST API (``bot apikey create``); only the SHA-256 of the key is kept.

    ``id`` is public (it is part of the key and the audit actor ``api:<id>``);
    ``scopes`` is a JSON list of scope names (docs/api.md).
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Hold(Base):
    """A hold on a borrower (dispute, bankruptcy, deceased, cease_communication, legal).

    While a hold is active (``lifted_at`` is NULL) no contact is planned or sent
    (compliance reason ``hold``).
    """

    __tablename__ = "holds"
    __table_args__ = (Index(None, "borrower_id", "lifted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(64))


class IdempotencyKey(Base):
    """A POST's ``Idempotency-Key`` per API key, with the response to replay (24 h)."""

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)
class WebhookSubscription(Base):
    """A lender's endpoint for events (``bot webhook add``; docs/events.md).

    ``secret`` is the Standard Webhooks signing secret (``whsec_…``), shown once
    when the subscription is added; ``events`` the event types it receives;
    ``pii`` whether payloads carry addresses and reply text unmasked.
    """

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[dict[str, Any]]  # {"types": ["attempt.sent", ...]}
    pii: Mapped[bool] = mapped_column(Boolean, server_default="0")
    created_at: Mapped[datetime]


class OutboxEvent(Base):
    """One event, written in the transaction of the change it reports (bot.events).

    ``data`` is the full payload; masking for subscriptions without ``pii``
    happens when a delivery is sent.  Written only when a subscription wants
    the event type.
    """

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # the webhook-id header
    type: Mapped[str] = mapped_column(String(32))
    borrower_id: Mapped[str | None] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event to one subscription: pending until delivered, or dead once retried for
    ``webhook_max_age_hours`` since ``retry_since``.

    Claimed with a lease (``claimed_by``/``claimed_until``) like contact
    attempts; per subscription and borrower, a delivery waits while an earlier
    event's delivery is pending (``event_id`` orders them).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "subscription_id", "borrower_id", "status", "event_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    borrower_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    tries: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime]
    # Start of the retry window (creation, or the last replay): a failure later than
    # webhook_max_age_hours after it makes the delivery dead.
    retry_since: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- incremental planning (docs/scheduler.md, "Incremental planning") ---------------------


class PlanDirty(Base):
    """A borrower whose planning inputs changed since the planner last planned them.

    Written by database triggers (migration 0009) in the transaction of the change:
    borrowers, loans, installments, payments, consents, promises, holds, tasks and
    contact attempts that really happened.  Append-only (no unique key, so a writer
    never waits for another writer or for the planner); the planner deletes the rows
    it has read (``id`` up to the pass's watermark) in the transaction that records
    those borrowers' plan.
    """

    __tablename__ = "plan_dirty"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    borrower_id: Mapped[str] = mapped_column(ID, index=True)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())


class PlanBulk(Base):
    """While an import run holds a row here on SQLite (inserted and deleted inside its own
    transaction, so no one else ever sees it; on PostgreSQL a transaction-local setting
    ``bot.plan_bulk`` read in the triggers' WHEN), the installments and payments triggers
    do not mark borrowers one row at a time: the run marks the borrowers of the loans it
    changed in one statement at its end (bot.importer.run)."""

    __tablename__ = "plan_bulk"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class PlanBorrower(Base):
    """The zone the planner last placed a borrower in: whose local day turned since the
    last pass is a query on ``zone``."""

    __tablename__ = "plan_borrowers"

    borrower_id: Mapped[str] = mapped_column(ForeignKey("borrowers.id", ondelete="CASCADE"), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64), index=True)


class PlanState(Base):
    """The planner's watermark (one row, id 1): the last pass, the last full pass and the
    hash of what every decision depends on (policy, default zone, compliance rules)."""

    __tablename__ = "plan_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_at: Mapped[datetime]
    last_full_at: Mapped[datetime]
    inputs_hash: Mapped[str] = mapped_column(String(64))
