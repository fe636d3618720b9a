"""Writes of the lender's portfolio: borrowers, loans, installments (PUT) and payments (POST).

Each row goes through the importer's own checker and store
(:func:`bot.importer.write_row`): the same validation, the same messages
(``field`` is the CSV column) and the same upserts as ``bot import``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from bot.api.deps import Caller, KeyToCheck, audit, in_write_turn, require, require_in_write, writing
from bot.api.errors import ApiError, SafeRoute, error_responses
from bot.api.idempotency import idempotent
from bot.api.keys import Scope
from bot.api.schemas import BorrowerIn, InstallmentIn, LoanIn, PaymentIn, PaymentResult, WriteResult
from bot.db.models import AuditEvent, Borrower, Loan, Payment
from bot.importer import Kind, RowError, RowWrite, write_row
from bot.ledger import settle_loans
from bot.portfolio import money

__all__ = ["router"]

router = APIRouter(route_class=SafeRoute, tags=["portfolio"])



def IdPath() -> Any:  # noqa: N802 - reads as the parameter's default, a new one per route
    return Path(pattern=r"^[^\x00/]*$", description="The lender's id (at most 64 characters).")


def IdempotencyHeader() -> Any:  # noqa: N802
    return Header(default=None, alias="Idempotency-Key", max_length=255, pattern=r"^[\x21-\x7e]+$",
                  description="Replays the first response to this key for 24 hours.")

_NOUN = {Kind.BORROWERS: "borrower", Kind.LOANS: "loan", Kind.INSTALLMENTS: "installment",
         Kind.PAYMENTS: "payment"}


def _values(body: BaseModel) -> dict[str, str]:
    """The JSON fields as the importer's cell texts (trimmed; null and absent are empty)."""
    out: dict[str, str] = {}
    for name, value in body.model_dump().items():
        if value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value).strip()
    return out


def _write(session: Session, caller: Caller, kind: Kind, values: dict[str, str]) -> tuple[str, RowWrite]:
    """Check and store one row: ``created``, ``updated`` or ``unchanged`` (422 on a rejected row)."""
    try:
        written = write_row(session.connection(), kind, values, caller.now())
    except RowError as err:
        raise ApiError(422, "invalid", err.reason, err.column) from None
    counts = written.counts
    return ("created" if counts.inserted else "updated" if counts.updated else "unchanged"), written


def _put(caller: Caller, kind: Kind, row_id: str, body: BaseModel) -> JSONResponse:
    noun = _NOUN[kind]
    with writing(caller) as session:
        result, _ = _write(session, caller, kind, {**_values(body), f"{noun}_id": row_id})
        audit(session, caller, f"api.{noun}.put", noun, row_id, {"result": result})
    data = WriteResult(kind=noun, id=row_id, result=result)  # type: ignore[arg-type]
    return JSONResponse(data.model_dump(mode="json"), status_code=201 if result == "created" else 200)


_PUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WriteResult, "description": "Updated, or already as given."},
    201: {"model": WriteResult, "description": "Created."},
    **error_responses(403),
}


@router.put("/borrowers/{borrower_id}", response_model=WriteResult, status_code=200, responses=_PUT_RESPONSES,
            summary="Create or update a borrower",
            description="The columns of borrowers.csv (docs/formats.md). Consent fields set what the lender "
                        "knows; a borrower's opt-out is never cleared by this.")
async def put_borrower(body: BorrowerIn, borrower_id: str = IdPath(),
                 caller: Caller = Depends(require(Scope.PORTFOLIO_WRITE))) -> JSONResponse:
    return await in_write_turn(caller.ctx, _put, caller, Kind.BORROWERS, borrower_id, body)


@router.put("/loans/{loan_id}", response_model=WriteResult, status_code=200, responses=_PUT_RESPONSES,
            summary="Create or update a loan", description="The columns of loans.csv (docs/formats.md).")
async def put_loan(body: LoanIn, loan_id: str = IdPath(),
             caller: Caller = Depends(require(Scope.PORTFOLIO_WRITE))) -> JSONResponse:
    return await in_write_turn(caller.ctx, _put, caller, Kind.LOANS, loan_id, body)


@router.put("/installments/{installment_id}", response_model=WriteResult, status_code=200,
            responses=_PUT_RESPONSES, summary="Create or update an installment",
            description="The columns of installments.csv (docs/formats.md); amounts in the loan's currency.")
async def put_installment(body: InstallmentIn, installment_id: str = IdPath(),
                    caller: Caller = Depends(require(Scope.PORTFOLIO_WRITE))) -> JSONResponse:
    return await in_write_turn(caller.ctx, _put, caller, Kind.INSTALLMENTS, installment_id, body)


_PAYMENT = (  # built once: every POST reads it
    select(Payment.loan_id, Payment.paid_at, Payment.amount_minor, Loan.currency, Borrower.locale)
    .join(Loan, Loan.id == Payment.loan_id).join(Borrower, Borrower.id == Loan.borrower_id)
    .where(Payment.id == bindparam("payment_id"))
)


def _payment(session: Session, payment_id: str) -> dict[str, Any]:
    row = session.execute(_PAYMENT, {"payment_id": payment_id}).one()
    return {"payment_id": payment_id, "loan_id": row.loan_id, "paid_at": row.paid_at.isoformat(),
            "amount": money(row.amount_minor, row.currency, row.locale)}


def _new_payment(written: RowWrite) -> dict[str, Any]:
    """:func:`_payment` of the payment this request inserted, from the row written and its loan's
    settlement (currency, the borrower's locale): no read back."""
    row = written.inserted
    assert row is not None
    settled = written.settled[row["loan_id"]]
    return {"payment_id": row["id"], "loan_id": row["loan_id"], "paid_at": row["paid_at"].astimezone(UTC).isoformat(),
            "amount": money(row["amount_minor"], settled.currency, settled.locale)}


def _first_settlement(session: Session, payment_id: str, loan_id: str, caller: Caller) -> dict[str, Any]:
    """The settlement answered when the payment was recorded (kept in its audit event), so a repeat of
    the request gets the same body; for a payment that came in by file, the loan as it stands now."""
    detail = session.scalars(
        select(AuditEvent.detail)
        .where(AuditEvent.action == "api.payment.post", AuditEvent.subject_type == "payment",
               AuditEvent.subject_id == payment_id)
        .order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    if detail and "settlement" in detail:
        return dict(detail["settlement"])
    return settle_loans(session.connection(), [loan_id], at=caller.now())[loan_id].to_json()


@router.post("/payments", response_model=PaymentResult, status_code=201, responses={
    200: {"model": PaymentResult, "description": "This payment_id was recorded before with the same values."},
    201: {"model": PaymentResult, "description": "Recorded."},
    **error_responses(403, 409)},
    summary="Record a payment",
    description="The columns of payments.csv. The same payment_id again with the same values answers 200 "
                "with the same body; with different values 409. An unknown loan is 422 (field loan_id). The "
                "payment settles its loan in the same transaction (the ledger's rule, as an import does): the "
                "body gives the allocation per installment and the attempts cancelled because now paid.")
async def post_payment(body: PaymentIn, key: KeyToCheck = Depends(require_in_write(Scope.PAYMENTS_WRITE)),
                 idempotency_key: str | None = IdempotencyHeader()) -> JSONResponse:
    # the key is checked on the payment's own transaction (one connection and thread-pool hop fewer)
    def run(session: Session, caller: Caller) -> tuple[int, dict[str, Any]]:
        values = _values(body)
        payment_id = values["payment_id"]
        result, written = _write(session, caller, Kind.PAYMENTS, values)
        if result == "updated":  # rolled back with the transaction
            raise ApiError(409, "conflict", f"payment {payment_id} was recorded with other values", "payment_id")
        payment = _payment(session, payment_id) if written.inserted is None else _new_payment(written)
        if result == "created":
            settlement = written.settled[payment["loan_id"]].to_json()
            audit(session, caller, "api.payment.post", "payment", payment_id,
                  {"loan_id": payment["loan_id"], "settlement": settlement})
        else:
            settlement = _first_settlement(session, payment_id, payment["loan_id"], caller)
        data = {"payment": payment, "settlement": settlement}
        return (201 if result == "created" else 200), PaymentResult.model_validate(data).model_dump(mode="json")

    return await in_write_turn(key.ctx, idempotent, key, idempotency_key, "/payments", body, run)
