"""Opt-out, opt-in and address flags: the consent facts a borrower's message changes.

Each function changes one ``consents`` row, identified by (borrower, channel,
address), creating it when the lender's import never did (``granted`` False: an
opt-out is recorded even for an address we had no consent for, so that it is
honoured if consent is imported later).  Every change is one conditional
``UPDATE`` whose ``WHERE`` says what must still be true (``opted_out_at IS
NULL`` for an opt-out), so the row count tells whether *this* call made the
change.  That is what makes "exactly one confirmation" race-free: two STOPs
processed at the same time both run the UPDATE, the second waits for the first
(PostgreSQL row lock, SQLite's single writer), re-reads the row and changes
nothing, so only the first queues a confirmation.  A change (and only a
change) emits ``consent.changed`` (docs/events.md) in the same transaction.

The dispatcher uses :func:`record_opt_out` too, for Twilio's error 21610
("the recipient replied STOP").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.db.models import Consent
from bot.events import emit
from bot.replies.records import audit, insert_ignore

__all__ = ["flag_address", "record_opt_in", "record_opt_out"]


def _ensure_row(session: Session, borrower_id: str, channel: str, address: str, at: datetime) -> None:
    insert_ignore(
        session,
        Consent,
        {"borrower_id": borrower_id, "channel": channel, "address": address, "granted": False,
         "opted_out_at": None, "opt_out_source": None, "address_flag": None, "updated_at": at},
        ["borrower_id", "channel", "address"],
    )


def _where(borrower_id: str, channel: str, address: str) -> tuple:  # type: ignore[type-arg]
    return (Consent.borrower_id == borrower_id, Consent.channel == channel, Consent.address == address)


def _changed(session: Session, borrower_id: str, channel: str, address: str, change: str, source: str,
             at: datetime, *, flag: str | None = None) -> None:
    """The ``consent.changed`` event of a change this call made (docs/events.md)."""
    emit(session, "consent.changed", borrower_id=borrower_id, at=at, data={
        "channel": channel, "address": address, "change": change, "flag": flag, "source": source[:32],
    })


def record_opt_out(
    session: Session, borrower_id: str, channel: str, address: str, source: str, at: datetime, *,
    actor: str | None = None,
) -> bool:
    """Opt ``address`` out of ``channel`` for the borrower; True if it was not opted out before.

    ``source`` says where the opt-out came from (``sms``, ``unsubscribe``,
    ``one_click``, ``carrier_21610``, ...); it is stored on the consent row and
    in the audit event.  Never clears ``granted``: an opt-in later restores the
    lender's consent as it was.
    """
    _ensure_row(session, borrower_id, channel, address, at)
    result = session.execute(
        update(Consent)
        .where(*_where(borrower_id, channel, address), Consent.opted_out_at.is_(None))
        .values(opted_out_at=at, opt_out_source=source[:32], updated_at=at)
        .execution_options(synchronize_session=False)
    )
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    audit(session, at, actor=actor or source, action="consent.opt_out", borrower_id=borrower_id,
          detail={"channel": channel, "changed": changed})
    if changed:
        _changed(session, borrower_id, channel, address, "opt_out", source, at)
    return changed


def record_opt_in(
    session: Session, borrower_id: str, channel: str, address: str, source: str, at: datetime, *,
    actor: str | None = None,
) -> bool:
    """Clear an opt-out of ``address`` on ``channel``; True if there was one to clear.

    Only the opt-out is cleared: whether the lender has consent (``granted``)
    stays what the import said.
    """
    result = session.execute(
        update(Consent)
        .where(*_where(borrower_id, channel, address), Consent.opted_out_at.is_not(None))
        .values(opted_out_at=None, opt_out_source=None, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    audit(session, at, actor=actor or source, action="consent.opt_in", borrower_id=borrower_id,
          detail={"channel": channel, "changed": changed})
    if changed:
        _changed(session, borrower_id, channel, address, "opt_in", source, at)
    return changed


def flag_address(
    session: Session, borrower_id: str, channel: str, address: str, flag: str, source: str, at: datetime, *,
    actor: str | None = None,
) -> bool:
    """Mark ``address`` unusable on ``channel`` (``wrong_number``, ``landline``, ``invalid``).

    The compliance loader turns the flag into a stop (``wrong_number`` stops
    every phone channel).  True if the flag was not already set to ``flag``.
    """
    _ensure_row(session, borrower_id, channel, address, at)
    result = session.execute(
        update(Consent)
        .where(*_where(borrower_id, channel, address),
               (Consent.address_flag.is_(None)) | (Consent.address_flag != flag))
        .values(address_flag=flag[:32], updated_at=at)
        .execution_options(synchronize_session=False)
    )
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    audit(session, at, actor=actor or source, action="consent.flag", borrower_id=borrower_id,
          detail={"channel": channel, "flag": flag, "changed": changed})
    if changed:
        _changed(session, borrower_id, channel, address, "flag", source, at, flag=flag[:32])
    return changed
