"""The request and response bodies of the REST API (pydantic: the OpenAPI schemas come from here).

Write bodies carry the CSV columns of docs/formats.md as JSON fields, as text
(amounts are decimal strings in the loan's currency, dates ``YYYY-MM-DD``,
instants ISO 8601 with an offset), because the importer's own checkers
validate them: the same rules and the same messages as ``bot import``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from bot.domain import Channel, StrEnum

# No NUL (PostgreSQL text refuses it); lengths bound what the columns hold.
_NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(max_length=512, pattern=_NO_NUL)]
Short = Annotated[str, StringConstraints(max_length=64, pattern=_NO_NUL)]


class HoldKind(StrEnum):
    DISPUTE = "dispute"
    BANKRUPTCY = "bankruptcy"
    DECEASED = "deceased"
    CEASE_COMMUNICATION = "cease_communication"
    LEGAL = "legal"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- writes ---------------------------------------------------------------------------------


class BorrowerIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "full_name": "Jane Doe", "phone": "+12125551234", "email": "jane@example.com", "locale": "en-US",
        "timezone": "America/New_York", "region": "NY", "country": "US",
        "consent_sms": True, "consent_voice": True, "consent_email": False}]})

    full_name: Text
    phone: Short | None = Field(default=None, description="E.164 or national format for the country.")
    email: Text | None = None
    locale: Short | None = Field(default=None, description="BCP 47, e.g. en-US (default: the country's).")
    timezone: Short | None = Field(default=None, description="IANA zone (default: from country/region/phone).")
    region: Short | None = Field(default=None, description="State or province code, e.g. NY.")
    country: Short = Field(description="ISO 3166 alpha-2, e.g. US.")
    consent_sms: bool
    consent_voice: bool
    consent_email: bool
    risk_score: StrictInt | None = Field(default=None,
                                         description="The lender's risk score, 0-1000 (higher is riskier).")
    segment: Short | None = Field(default=None, description="The lender's segment, e.g. prime.")


class LoanIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "borrower_id": "B1", "product": "personal", "principal": "1200.00", "currency": "USD",
        "opened_on": "2026-01-15"}]})

    borrower_id: Short
    product: Text | None = None
    principal: Short = Field(description="Decimal amount in the currency, e.g. 1200.00.")
    currency: Short = Field(description="ISO 4217, e.g. USD.")
    opened_on: Short = Field(description="YYYY-MM-DD.")
    risk_score: StrictInt | None = Field(default=None, description="The lender's risk score for this loan, 0-1000; "
                                   "overrides the borrower's.")
    segment: Short | None = Field(default=None, description="The lender's segment for this loan; overrides the "
                                  "borrower's.")


class InstallmentIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "loan_id": "L1", "due_date": "2026-12-01", "amount_due": "100.00", "amount_paid": "0"}]})

    loan_id: Short
    due_date: Short = Field(description="YYYY-MM-DD, the borrower's calendar day.")
    amount_due: Short = Field(description="Decimal amount in the loan's currency.")
    amount_paid: Short | None = Field(default=None, description="Paid according to the lender (default 0).")


class PaymentIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "payment_id": "P1", "loan_id": "L1", "paid_at": "2026-12-01T10:30:00+00:00", "amount": "100.00"}]})

    payment_id: Short
    loan_id: Short
    paid_at: Short = Field(description="ISO 8601 instant with an offset.")
    amount: Short = Field(description="Decimal amount in the loan's currency, > 0.")


class ConsentIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "channel": "sms", "action": "opt_out", "source": "lender_crm"}]})

    channel: Channel
    action: Literal["opt_out", "opt_in"]
    source: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        description="Where the request came from (stored with the opt-out and in the audit log).")


class HoldIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"kind": "bankruptcy"}]})

    kind: HoldKind


# --- responses -------------------------------------------------------------------------------


class WriteResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "borrower", "id": "B1", "result": "created"}]})

    kind: Literal["borrower", "loan", "installment", "payment"]
    id: str
    result: Literal["created", "updated", "unchanged"]


class Money(BaseModel):
    minor: int = Field(description="Integer minor units (cents; whole won for KRW).")
    currency: str | None
    text: str = Field(description="Formatted in the borrower's locale.")


class Payment(BaseModel):
    payment_id: str
    loan_id: str
    paid_at: datetime
    amount: Money


class Cover(BaseModel):
    installment_id: str
    due_date: str
    amount_due_minor: int
    covered_minor: int = Field(description="What the ledger's rule counts as paid of the installment.")
    outstanding_minor: int
    paid: bool


class Settlement(BaseModel):
    """The loan after the payment, by the ledger's rule (docs/formats.md "What counts as paid")."""

    loan_id: str
    currency: str
    stated_minor: int = Field(description="The sum of the installments' amount_paid (the lender's statement).")
    payments_minor: int = Field(description="The sum of the loan's payments.")
    total_paid_minor: int
    credit_minor: int = Field(description="Paid beyond every installment (an overpayment).")
    installments: list[Cover] = Field(description="Allocation, oldest due date first.")
    newly_paid: list[str] = Field(description="Installments this payment made fully paid.")
    cancelled_attempts: list[int] = Field(description="Waiting contact attempts cancelled because now paid.")


class PaymentResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "payment": {"payment_id": "P1", "loan_id": "L1", "paid_at": "2026-12-01T10:30:00Z",
                    "amount": {"minor": 10000, "currency": "USD", "text": "$100.00"}},
        "settlement": {"loan_id": "L1", "currency": "USD", "stated_minor": 0, "payments_minor": 10000,
                       "total_paid_minor": 10000, "credit_minor": 0,
                       "installments": [{"installment_id": "I1", "due_date": "2026-12-01", "amount_due_minor": 10000,
                                         "covered_minor": 10000, "outstanding_minor": 0, "paid": True}],
                       "newly_paid": ["I1"], "cancelled_attempts": [41]}}]})

    payment: Payment
    settlement: Settlement


class Decision(BaseModel):
    allowed: bool
    reasons: list[str] = Field(description="Reason codes of docs/compliance.md, e.g. hold, quiet_hours.")
    next_allowed_at: datetime | None


class LoanState(BaseModel):
    id: str
    currency: str
    outstanding: Money
    overdue: Money
    days_past_due: int


class Promise(BaseModel):
    id: int
    loan_id: str | None
    promised_date: str
    amount: Money | None
    source: str


class OpenTask(BaseModel):
    id: int
    kind: str
    loan_id: str | None
    source: str
    created_at: datetime


class Hold(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 3, "borrower_id": "B1", "kind": "bankruptcy", "active": True, "created_at": "2026-12-01T10:30:00Z",
        "created_by": "api:0a1b2c3d4e5f", "lifted_at": None, "lifted_by": None}]})

    id: int
    borrower_id: str
    kind: str
    active: bool
    created_at: datetime
    created_by: str
    lifted_at: datetime | None
    lifted_by: str | None


class ConsentState(BaseModel):
    channel: str
    address: str = Field(description="Masked unless the key has pii:read.")
    granted: bool
    opted_out_at: datetime | None
    opt_out_source: str | None
    address_flag: str | None


class RiskReason(BaseModel):
    points: int
    code: str
    text: str


class EarlyWarning(BaseModel):
    score: int = Field(description="0-1000, the sum of the reasons' points (docs/risk.md).")
    source: Literal["early_warning"]
    reasons: list[RiskReason]


class Risk(BaseModel):
    score: int = Field(description="What a policy condition compares: the lender's score, else the early warning.")
    source: Literal["lender", "early_warning"]
    lender_score: int | None = Field(description="The highest of the loans' risk_score, else the borrower's.")
    segment: str | None = Field(description="The borrower's segment (a loan's may differ).")
    early_warning: EarlyWarning


class Borrower(BaseModel):
    id: str
    masked: bool = Field(description="True unless the key has pii:read.")
    name: str
    phone: str | None
    email: str | None
    locale: str
    country: str
    region: str | None
    timezone: str | None
    zones: list[str]
    local_today: str
    outstanding: list[Money] = Field(description="Per currency.")
    overdue: list[Money] = Field(description="Per currency: outstanding on installments past their due date.")
    days_past_due: int = Field(description="Of the oldest overdue installment (0: none).")
    loans: list[LoanState]
    pending_promise: Promise | None
    open_tasks: list[OpenTask]
    holds: list[Hold] = Field(description="Active holds.")
    consents: list[ConsentState]
    contact: dict[str, Decision] = Field(description="Per channel (sms, voice, email): may the bot contact now?")
    risk: Risk = Field(description="The risk score and its reasons (docs/risk.md).")


class ConsentResult(BaseModel):
    borrower_id: str
    channel: Channel
    address: str = Field(description="Masked unless the key has pii:read.")
    opted_out: bool
    changed: bool = Field(description="False when the address was already in that state.")


class TimelineItem(BaseModel):
    id: str = Field(description="kind:id, unique in the timeline.")
    kind: Literal["attempt", "reply", "promise", "task", "hold"]
    at: datetime
    channel: str | None
    summary: str
    data: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")


class Attempt(BaseModel):
    id: int
    borrower_id: str
    loan_id: str | None
    installment_id: str | None
    channel: str
    source: str
    status: str
    outcome: str | None
    step: str | None
    template: str | None
    address: str | None = Field(description="Masked unless the key has pii:read.")
    occurred_at: datetime | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    provider_status: str | None
    reasons: list[str]
    created_at: datetime
    updated_at: datetime


class AttemptPage(BaseModel):
    items: list[Attempt]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end.")
