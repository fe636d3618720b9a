"""What a person may change from the console, each change audited.

* a call: take it to review (assign) or give it back, mark it reviewed, add a note, confirm or correct the intent and
  promise date a borrower turn was understood as, escalate it to a task;
* a borrower: add a note, reveal one field (with a stated reason);
* a task: assign it, close it with a note.

A correction is stored beside what the bot understood (``corrected_*``
columns), never over it, and then has the effect the corrected meaning would
have had: it is the borrower's statement from the ``console`` channel, applied by
:func:`bot.replies.apply_statement` as any SMS or call turn is (no answer is
queued for a correction):

==================  ==========================================================
corrected to        effect
==================  ==========================================================
promise_to_pay      a pending promise for the (corrected) date; it replaces the
                    borrower's earlier pending promise (``create_promise``)
opt_out             the call's number opted out of calls, for every borrower
                    with that number (``record_opt_out``)
dispute, hardship,  an open task of that kind (``open_task``); an open dispute
callback_request    stops automated contact about the debt
wrong_number        the number flagged ``wrong_number`` for calls and SMS, and
                    a wrong-number task, for every borrower with that number
                    (as an SMS reply would)
paid                a review task when the records do not bear the claim out
anything else       the correction is recorded, nothing else changes
==================  ==========================================================

Nothing is undone by a correction: a call first understood as an opt-out
stays opted out (honouring a stop too widely is never a breach; a person
clears it deliberately).  Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.compliance.zones import resolve_zones
from bot.console.audit import record
from bot.console.i18n import N_, Code, Message, field_message
from bot.db.models import AuditEvent, Borrower, CallSession, CallTurn, ContactAttempt, Note, Task, User
from bot.domain import Channel, Intent, TaskKind, TaskStatus
from bot.policy import SurveySettings
from bot.privacy import redact
from bot.replies import Statement, apply_statement
from bot.replies.surveys import ask_by_sms
from bot.replies.tasks import open_task

__all__ = [
    "ActionError",
    "ESCALATION_KINDS",
    "add_note",
    "assign_call",
    "assign_task",
    "close_task",
    "correct_turn",
    "escalate_call",
    "mark_reviewed",
    "reveal_field",
    "show_revealed",
]

SOURCE = "console"
ESCALATION_KINDS = (TaskKind.REVIEW, TaskKind.DISPUTE, TaskKind.HARDSHIP, TaskKind.CALLBACK, TaskKind.HANDOFF)
#: How far after the call a corrected promise date may lie.
PROMISE_HORIZON_DAYS = 180


class ActionError(Exception):
    """An action that cannot be done: HTTP status and a message naming what is wrong (never a value).

    ``field`` names the form field at fault, if one is: the message is then ``"field: detail"``
    and ``detail`` the part after the field's name (a page shows it beside the field)."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        detail = message if isinstance(message, Message) else Message(message)
        self.message = field_message(field, detail) if field else detail
        super().__init__(self.message)
        self.status = status
        self.field = field
        self.detail = detail


def _call(session: Session, call_id: int) -> CallSession:
    call = session.get(CallSession, call_id)
    if call is None:
        raise ActionError(404, Message(N_("no call %(id)s"), id=call_id))
    return call


def mark_reviewed(session: Session, call_id: int, *, actor: str, at: datetime) -> None:
    call = _call(session, call_id)
    first = call.reviewed_at is None
    call.reviewed_at = at
    call.reviewed_by = actor
    call.updated_at = at
    record(session, at, actor=actor, action="call.reviewed", subject_type="call", subject_id=call_id,
           detail={"borrower_id": call.borrower_id, "first_review": first})


def add_note(session: Session, subject_type: str, subject_id: str, text: str, *, actor: str, at: datetime) -> Note:
    """A note, stored redacted (phone numbers, emails, card and ID numbers, long numbers masked)."""
    if subject_type == "call":
        _call(session, int(subject_id))
    elif subject_type == "borrower" and session.get(Borrower, subject_id) is None:
        raise ActionError(404, N_("no such borrower"))
    elif subject_type == "task" and session.get(Task, int(subject_id)) is None:
        raise ActionError(404, Message(N_("no task %(id)s"), id=subject_id))
    note = Note(subject_type=subject_type, subject_id=str(subject_id), author=actor, text_redacted=redact(text, every_number=True),
                created_at=at)
    session.add(note)
    session.flush()
    record(session, at, actor=actor, action="note.added", subject_type=subject_type, subject_id=subject_id,
           detail={"note_id": note.id})
    return note


def _borrower_today(session: Session, borrower_id: str, at: datetime, default_timezone: str) -> date:
    b = session.get(Borrower, borrower_id)
    assert b is not None
    zone = resolve_zones(b.country, b.region, b.timezone, b.phone_e164, default_timezone).primary
    return at.astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class Correction:
    turn_id: int
    intent: str
    promise_date: date | None
    effects: tuple[str, ...]


def correct_turn(
    session: Session,
    call_id: int,
    turn_id: int,
    intent: Intent,
    promise_date: date | None,
    *,
    actor: str,
    at: datetime,
    default_timezone: str,
) -> Correction:
    """Confirm or correct what a borrower turn meant, then apply the effect (module docstring)."""
    call = _call(session, call_id)
    turn = session.get(CallTurn, turn_id)
    if turn is None or turn.session_id != call.id:
        raise ActionError(404, Message(N_("call %(call)s has no turn %(turn)s"), call=call_id, turn=turn_id))
    if turn.speaker != "borrower":
        raise ActionError(400, N_("only what the borrower said can be corrected"))
    if intent is Intent.PROMISE_TO_PAY:
        if promise_date is None:
            raise ActionError(400, N_("a promise to pay needs a date"), field="promise_date")
        earliest = call.started_at.date() - timedelta(days=1)
        if not earliest <= promise_date <= call.started_at.date() + timedelta(days=PROMISE_HORIZON_DAYS):
            raise ActionError(400, Message(N_("must lie between the call's day and %(days)s days after it"),
                                           days=PROMISE_HORIZON_DAYS), field="promise_date")
    elif promise_date is not None:
        raise ActionError(400, N_("only a promise to pay has a date"), field="promise_date")

    previous = (turn.corrected_intent or turn.intent, turn.corrected_promise_date or turn.promise_date)
    turn.corrected_intent = intent.value
    turn.corrected_promise_date = promise_date
    turn.corrected_by = actor
    turn.corrected_at = at
    call.updated_at = at
    borrower_id = call.borrower_id
    number = None
    if call.attempt_id is not None:
        number = session.scalar(select(ContactAttempt.address).where(ContactAttempt.id == call.attempt_id))
    if number is None:
        number = session.scalar(select(Borrower.phone_e164).where(Borrower.id == borrower_id))

    if intent is Intent.OPT_OUT and number is None:
        raise ActionError(400, N_("the call has no number to opt out"))
    applied = apply_statement(session, Statement(
        borrower_id=borrower_id, address=number, channel=SOURCE, intent=intent, at=at,
        today=_borrower_today(session, borrower_id, at, default_timezone), ref=f"console:call:{call_id}",
        detail={"call_session_id": call_id, "turn_id": turn_id}, promise_date=promise_date, scope=Channel.VOICE,
        actor=actor))
    effects = [*applied.done, *([f"promise:{applied.promise_id}"] if applied.promise_id else []),
               *(f"task:{task_id}" for task_id in applied.task_ids)]
    record(session, at, actor=actor, action="call.turn_corrected", subject_type="call", subject_id=call_id,
           detail={"turn_id": turn_id, "borrower_id": borrower_id, "detected_intent": turn.intent,
                   "previous_intent": previous[0], "intent": intent.value,
                   "previous_promise_date": previous[1].isoformat() if previous[1] else None,
                   "promise_date": promise_date.isoformat() if promise_date else None, "effects": effects})
    session.flush()
    return Correction(turn_id, intent.value, promise_date, tuple(effects))


def escalate_call(session: Session, call_id: int, kind: TaskKind, *, actor: str, at: datetime) -> int:
    """Open (or find) the borrower's task of ``kind`` for this call; its id."""
    call = _call(session, call_id)
    task_id = open_task(session, call.borrower_id, kind, f"escalated from call {call_id}",
                        dedupe_key=f"console:escalate:{call_id}:{kind.value}", source=SOURCE, at=at, actor=actor)
    record(session, at, actor=actor, action="call.escalated", subject_type="call", subject_id=call_id,
           detail={"task_id": task_id, "kind": kind.value, "borrower_id": call.borrower_id})
    return task_id


def _task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise ActionError(404, Message(N_("no task %(id)s"), id=task_id))
    return task


def _check_assignee(session: Session, assignee: str | None) -> None:
    if assignee is not None:
        ok = session.scalar(select(User.id).where(User.name == assignee, User.disabled.is_(False),
                                                  User.role.in_(["supervisor", "admin"])))
        if ok is None:
            raise ActionError(400, N_("not an active supervisor or admin"), field="assignee")


def assign_call(session: Session, call_id: int, assignee: str | None, *, actor: str, at: datetime) -> None:
    """Take a call to review (``assignee`` a supervisor or admin) or give it back (``None``)."""
    call = _call(session, call_id)
    _check_assignee(session, assignee)
    previous = call.assigned_to
    if previous == assignee:
        return
    call.assigned_to = assignee
    call.assigned_at = at if assignee else None
    call.updated_at = at
    record(session, at, actor=actor, action="call.assigned", subject_type="call", subject_id=call_id,
           detail={"borrower_id": call.borrower_id, "from": previous, "to": assignee})


def assign_task(session: Session, task_id: int, assignee: str | None, *, actor: str, at: datetime) -> None:
    """Assign to a supervisor or admin (``None``: unassign)."""
    task = _task(session, task_id)
    if task.status != TaskStatus.OPEN.value:
        raise ActionError(409, Message(N_("task %(id)s is closed"), id=task_id))
    _check_assignee(session, assignee)
    previous = task.assigned_to
    task.assigned_to = assignee
    record(session, at, actor=actor, action="task.assigned", subject_type="task", subject_id=task_id,
           detail={"borrower_id": task.borrower_id, "from": previous, "to": assignee})


def close_task(session: Session, task_id: int, note: str, *, actor: str, at: datetime,
               survey: SurveySettings | None = None) -> None:
    """Close an open task; closing a dispute resolves it, which the satisfaction survey may follow
    (bot.replies.surveys: queued to the borrower's phone under the same checks as any text)."""
    task = _task(session, task_id)
    if task.status != TaskStatus.OPEN.value:
        raise ActionError(409, Message(N_("task %(id)s is closed already"), id=task_id))
    task.status = TaskStatus.CLOSED.value
    task.closed_at = at
    add_note(session, "task", str(task_id), note, actor=actor, at=at)
    record(session, at, actor=actor, action="task.closed", subject_type="task", subject_id=task_id,
           detail={"borrower_id": task.borrower_id, "kind": task.kind})
    if task.kind == TaskKind.DISPUTE.value and survey is not None:
        phone = session.scalar(select(Borrower.phone_e164).where(Borrower.id == task.borrower_id))
        ask_by_sms(session, survey, borrower_id=task.borrower_id, trigger="dispute_resolved", address=phone, at=at)


_FIELDS = {"phone": "phone_e164", "email": "email", "name": "full_name"}


def reveal_field(session: Session, borrower_id: str, field: str, reason: str, *, actor: str, at: datetime) -> int:
    """Write the audit row of a reveal (who, what, when, why) and return its id.

    The reason is stored redacted; the value never is.  The caller commits,
    then sends the browser to the page that shows the value once
    (:func:`show_revealed`): no audit row, no reveal.
    """
    if field not in _FIELDS:
        raise ActionError(400, N_("must be phone, email or name"), field="field")
    borrower = session.get(Borrower, borrower_id)
    if borrower is None:
        raise ActionError(404, N_("no such borrower"))
    value = getattr(borrower, _FIELDS[field])
    if not value:
        raise ActionError(404, Message(N_("the borrower has no %(field)s to reveal"), field=Code(field)))
    event = record(session, at, actor=actor, action="reveal", subject_type="borrower", subject_id=borrower_id,
                   detail={"fields": [field], "reason": redact(reason), "via": "console"})
    return event.id


#: How long after the reveal its value may be fetched (by the redirect that follows the POST).
REVEAL_SHOW_WITHIN = timedelta(minutes=2)


def show_revealed(session: Session, borrower_id: str, reveal_id: int, *, actor: str,
                  at: datetime) -> tuple[str, str] | None:
    """(field, value) of the reveal ``reveal_id``, once: the GET after the reveal's POST.

    Only for the person who revealed, for that borrower, within
    :data:`REVEAL_SHOW_WITHIN`, and only the first time: showing it writes
    ``reveal.shown`` (subject the reveal's audit row), and a reload finds that
    row and shows nothing, nor audits anything again.  The reveal row is locked
    first (PostgreSQL), so two requests racing show it once between them.
    """
    event = session.scalar(select(AuditEvent).where(AuditEvent.id == reveal_id).with_for_update())
    if (event is None or event.action != "reveal" or event.actor != actor or event.subject_type != "borrower"
            or event.subject_id != borrower_id or not isinstance(event.detail, dict)):
        return None
    at_utc, event_at = at.astimezone(UTC), event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    if not timedelta(0) <= at_utc - event_at <= REVEAL_SHOW_WITHIN:
        return None
    shown = session.scalar(select(AuditEvent.id).where(
        AuditEvent.action == "reveal.shown", AuditEvent.subject_type == "audit",
        AuditEvent.subject_id == str(reveal_id)).limit(1))
    if shown is not None:
        return None
    fields = event.detail.get("fields") or []
    field = fields[0] if len(fields) == 1 and fields[0] in _FIELDS else None
    borrower = session.get(Borrower, borrower_id)
    if field is None or borrower is None or not getattr(borrower, _FIELDS[field]):
        return None
    record(session, at, actor=actor, action="reveal.shown", subject_type="audit", subject_id=reveal_id,
           detail={"borrower": borrower_id, "fields": [field]})
    return field, str(getattr(borrower, _FIELDS[field]))
