"""Read models of the console pages: what each page shows, masked.

Every function takes a SQLAlchemy session and plain, already validated
values (:mod:`bot.console.filters`); filters become bound parameters, never
SQL text.  Names, phone numbers and email addresses leave this module masked
(:mod:`bot.privacy`); stored free text (transcripts, replies, notes, task
notes), which is redacted before it is stored, is redacted once more.

Instants are returned as aware datetimes in the zone the page shows:
``default_timezone`` for lists and the dashboard, the borrower's primary zone
on the borrower page.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session

from bot.compliance.zones import resolve_zones
from bot.console import review
from bot.console.i18n import N_, Code, IntentCode, Message
from bot.console.filters import KNOWN_OUTCOMES, AuditFilters, CallFilters, TaskFilters
from bot.console.review import ReviewRules, readback_nodes
from bot.db.models import (
    AuditEvent,
    Borrower,
    CallSession,
    CallTurn,
    Consent,
    ContactAttempt,
    InboundMessage,
    Loan,
    Note,
    Promise,
    Survey,
    Task,
    User,
)
from bot.domain import AttemptSource, Channel, PromiseStatus, TaskStatus
from bot.effectiveness.report import csat
from bot.portfolio import format_money, installment_status
from bot.privacy import mask_address, mask_email, mask_name, mask_phone, redact
from bot.risk import load_facts, summary

__all__ = [
    "Page",
    "borrower_page",
    "call_outcomes",
    "cached_policy",
    "dashboard",
    "day_bounds",
    "list_audit",
    "list_calls",
    "list_tasks",
    "load_call",
    "masked_address",
    "users_for_assignment",
    "why_not_today",
]

DELIVERED = ("delivered", "read", "partially_delivered")
NOT_DELIVERED = ("undelivered", "failed", "canceled")
TIMELINE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(math.ceil(self.total / self.page_size), 1)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, as aware instants."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def masked_address(channel: str | None, address: str | None) -> str:
    return mask_address(address, channel)


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone) if value is not None else None


def _source(source: str | None) -> Message:
    """``source console`` in a timeline row's details (the source named in the reader's language)."""
    return Message(N_("source %(source)s"), source=Code(source or "-"))


def _text(value: str | None) -> str:
    return redact(value) if value else ""


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    return redact(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _lang(locale: str | None) -> str:
    """The ``lang`` attribute of text in a borrower's language (``zh-CN``, ``ko-KR``, ``en-US``)."""
    return locale if locale and len(locale) <= 16 and locale.replace("-", "").isalnum() else ""


def _paged(total: int, page: int, page_size: int) -> tuple[int, int]:
    pages = max(math.ceil(total / page_size), 1)
    page = min(page, pages)
    return page, (page - 1) * page_size


#: The zone the console shows instants in for a user without a zone of their own (``users.timezone``);
#: each page states its zone, with the borrower's local time beside where one applies.
DISPLAY_ZONE = "UTC"


@lru_cache(maxsize=64)
def display_zone(user_zone: str | None = None) -> str:
    """The zone a console user reads times in: theirs when they have one (and it is a known
    zone: ``bot user add --timezone`` checks it), else UTC."""
    if not user_zone:
        return DISPLAY_ZONE
    try:
        ZoneInfo(user_zone)
    except (ValueError, ZoneInfoNotFoundError):
        return DISPLAY_ZONE
    return user_zone


def borrower_zone(borrower: Borrower, default_timezone: str) -> ZoneInfo:
    """The borrower's primary local zone (as the planner and compliance rules resolve it)."""
    return resolve_zones(borrower.country, borrower.region, borrower.timezone, borrower.phone_e164,
                         default_timezone).primary


def _machine(column: Any) -> ColumnElement[bool]:
    return and_(column.is_not(None), (column.startswith("machine")) | (column == "fax"))


def _answered_by_person() -> ColumnElement[bool]:
    """A person took the call: AMD said human, or it could not tell and the borrower answered."""
    c, t = CallSession, CallTurn
    conversation = exists().where(t.session_id == c.id, t.speaker == "borrower", t.source.in_(("speech", "dtmf")))
    return (c.answered_by == "human") | (
        and_(c.answered_at.is_not(None), c.answered_by.is_(None) | (c.answered_by == "unknown"), conversation))


def review_rules(low_confidence: float, scripts_dir: Path | str | None = None,
                 low_margin: float | None = None) -> ReviewRules:
    """What the review reasons depend on besides the data (:mod:`bot.console.review`)."""
    return ReviewRules(low_confidence, readback_nodes(str(scripts_dir) if scripts_dir else None), low_margin)


def _review(reasons: list[str], call: CallSession) -> dict[str, Any]:
    return {"review_reasons": reasons, "review_labels": review.labels(reasons),
            "to_review": call.reviewed_at is None and bool(reasons),
            "assigned_to": call.assigned_to}


# --- dashboard ------------------------------------------------------------------------------


def _in(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _per_day(session: Session, column: Any, days: list[tuple[str, datetime, datetime]], *where: Any,
             group: Any = None) -> dict[tuple[str, str], int]:
    """Counts per local day (and per ``group`` column), one query; the CASE sits in a subquery
    so GROUP BY names a column (PostgreSQL binds each date separately)."""
    bucket = case(*[(_in(column, s, e), label) for label, s, e in days], else_="").label("day")
    cols = [bucket] + ([group.label("grp")] if group is not None else [])
    sub = select(*cols).where(column >= days[0][1], column < days[-1][2], *where).subquery()
    keys = [sub.c.day] + ([sub.c.grp] if group is not None else [])
    rows = session.execute(select(*keys, func.count()).group_by(*keys)).all()
    if group is None:
        return {(day, ""): int(n) for day, n in rows}
    return {(day, grp or ""): int(n) for day, grp, n in rows}


def dashboard(session: Session, at: datetime, *, zone_name: str, low_confidence: float) -> dict[str, Any]:
    """Today's numbers (in ``zone_name``) and the last seven days for the charts."""
    zone = ZoneInfo(zone_name)
    today = at.astimezone(zone).date()
    start, end = day_bounds(today, zone)
    a = ContactAttempt

    plan: dict[str, dict[str, int]] = {}
    for channel, status, n in session.execute(
        select(a.channel, a.status, func.count())
        .where(a.source.in_([AttemptSource.PLANNER.value, AttemptSource.REPLY.value]), _in(a.created_at, start, end))
        .group_by(a.channel, a.status)
    ):
        plan.setdefault(channel, {})[status] = int(n)

    sends: dict[str, dict[str, int]] = {}
    for channel, n, delivered, failed in session.execute(
        select(a.channel, func.count(),
               func.sum(case((a.provider_status.in_(DELIVERED), 1), else_=0)),
               func.sum(case((a.provider_status.in_(NOT_DELIVERED), 1), else_=0)))
        .where(_in(a.sent_at, start, end)).group_by(a.channel)
    ):
        sends[channel] = {"sent": int(n), "delivered": int(delivered or 0), "failed": int(failed or 0)}

    c = CallSession
    calls_row = session.execute(
        select(func.count(), func.sum(case((_answered_by_person(), 1), else_=0)),
               func.sum(case((_machine(c.answered_by), 1), else_=0)),
               func.sum(case((c.flagged.is_(True), 1), else_=0)),
               func.sum(case((c.min_confidence < low_confidence, 1), else_=0)))
        .where(_in(c.started_at, start, end))
    ).one()
    flagged_open = session.scalar(
        select(func.count()).select_from(c).where(c.flagged.is_(True), c.reviewed_at.is_(None))) or 0

    p = Promise
    promises_made = session.scalar(select(func.count()).select_from(p).where(_in(p.created_at, start, end))) or 0
    resolved = dict(session.execute(
        select(p.status, func.count()).where(_in(p.resolved_at, start, end)).group_by(p.status)).all())
    pending = session.scalar(
        select(func.count()).select_from(p).where(p.status == PromiseStatus.PENDING.value)) or 0
    opt_outs = {ch: int(n) for ch, n in session.execute(
        select(Consent.channel, func.count()).where(_in(Consent.opted_out_at, start, end)).group_by(Consent.channel))}
    replies = session.scalar(
        select(func.count()).select_from(InboundMessage).where(_in(InboundMessage.received_at, start, end))) or 0
    open_tasks = session.scalar(
        select(func.count()).select_from(Task).where(Task.status == TaskStatus.OPEN.value)) or 0

    days = []
    for back in range(6, -1, -1):
        day = today - timedelta(days=back)
        s, e = day_bounds(day, zone)
        days.append((day.isoformat(), s, e))
    sent_week = _per_day(session, a.sent_at, days, group=a.channel)
    made_week = _per_day(session, p.created_at, days)
    kept_week = _per_day(session, p.resolved_at, days, p.status == PromiseStatus.KEPT.value)
    calls_week = _per_day(session, c.started_at, days)
    labels = [label for label, _, _ in days]
    channels = [ch.value for ch in Channel]
    scores = dict(session.execute(
        select(Survey.score, func.count()).where(_in(Survey.answered_at, days[0][1], days[-1][2]))
        .group_by(Survey.score)).all())

    sms = sends.get(Channel.SMS.value, {"sent": 0, "delivered": 0, "failed": 0})
    total_calls, answered, machine, flagged_today, low_today = (int(v or 0) for v in calls_row)
    return {
        "today": today.isoformat(),
        "zone": zone_name,
        "plan": {ch: plan[ch] for ch in sorted(plan)},
        "plan_total": sum(sum(v.values()) for v in plan.values()),
        "sends": {ch: sends[ch] for ch in sorted(sends)},
        "sent_total": sum(v["sent"] for v in sends.values()),
        "delivery": {"delivered": sms["delivered"], "final": sms["delivered"] + sms["failed"], "sent": sms["sent"]},
        # "answered" counts people only; answering machines are counted apart.
        "calls": {"started": total_calls, "answered": answered, "machine": machine, "flagged": flagged_today,
                  "low_confidence": low_today, "flagged_unreviewed": int(flagged_open)},
        "promises": {"made": int(promises_made), "kept": int(resolved.get(PromiseStatus.KEPT.value, 0)),
                     "broken": int(resolved.get(PromiseStatus.BROKEN.value, 0)), "pending": int(pending)},
        "opt_outs": opt_outs,
        "opt_outs_total": sum(opt_outs.values()),
        "replies": int(replies),
        "open_tasks": int(open_tasks),
        # satisfaction answers of the last seven days (docs/metrics.md "csat")
        "csat": csat([int(scores.get(score, 0)) for score in range(1, 6)]),
        "week": {
            "labels": labels,
            "short_labels": [label[5:] for label in labels],  # MM-DD
            "sent": {ch: [sent_week.get((label, ch), 0) for label in labels] for ch in channels},
            "promises_made": [made_week.get((label, ""), 0) for label in labels],
            "promises_kept": [kept_week.get((label, ""), 0) for label in labels],
            "calls": [calls_week.get((label, ""), 0) for label in labels],
        },
    }


# --- calls ----------------------------------------------------------------------------------


def call_outcomes(session: Session) -> list[str]:
    """The outcomes a filter may ask for: the scripts' kinds and any stored one."""
    stored = session.scalars(select(CallSession.outcome).distinct().where(CallSession.outcome.is_not(None)))
    return sorted(set(KNOWN_OUTCOMES) | {o for o in stored if o})


def call_locales(session: Session) -> list[str]:
    return sorted(session.scalars(select(CallSession.locale).distinct()))


def _call_conditions(f: CallFilters, zone: ZoneInfo, rules: ReviewRules) -> list[Any]:
    c, t = CallSession, CallTurn
    low_confidence = rules.low_confidence
    where: list[Any] = review.queue_conditions(rules) if f.queue else []
    if f.date_from:
        where.append(c.started_at >= day_bounds(f.date_from, zone)[0])
    if f.date_to:
        where.append(c.started_at < day_bounds(f.date_to, zone)[1])
    if f.outcome:
        where.append(c.outcome == f.outcome)
    if f.intent:
        where.append(exists().where(t.session_id == c.id, func.coalesce(t.corrected_intent, t.intent) == f.intent))
    if f.flagged is not None:
        where.append(c.flagged.is_(f.flagged))
    if f.low_confidence:
        where.append(c.min_confidence < low_confidence)
    if f.locale:
        where.append(c.locale == f.locale)
    if f.reviewed is True:
        where.append(c.reviewed_at.is_not(None))
    elif f.reviewed is False:
        where.append(c.reviewed_at.is_(None))
    return where


@dataclass(frozen=True, slots=True)
class CallPage(Page):
    """A page of calls, and how the calls of the whole filtered list were answered."""

    answered: dict[str, int] = dataclasses.field(default_factory=dict)


def list_calls(session: Session, f: CallFilters, *, zone_name: str, low_confidence: float,
               page_size: int, default_timezone: str = "UTC", rules: ReviewRules | None = None) -> CallPage:
    """A page of calls, newest first; the review queue (``f.queue``) most urgent first."""
    zone = ZoneInfo(zone_name)
    c = CallSession
    rules = rules or review_rules(low_confidence)
    where = _call_conditions(f, zone, rules)
    total, person, machine = (int(v or 0) for v in session.execute(
        select(func.count(), func.sum(case((_answered_by_person(), 1), else_=0)),
               func.sum(case((_machine(c.answered_by), 1), else_=0))).select_from(c).where(*where)).one())
    answered = {"person": person, "machine": machine, "other": total - person - machine}
    page, offset = _paged(total, f.page, page_size)
    rows = session.execute(
        select(c, Borrower).join(Borrower, Borrower.id == c.borrower_id).where(*where)
        .order_by(*(review.queue_order(rules) if f.queue else (c.started_at.desc(), c.id.desc())))
        .limit(page_size).offset(offset)
    ).all()
    ids = [row[0].id for row in rows]
    reasons = review.reasons_for(session, ids, rules)
    intents: dict[int, list[str]] = {}
    if ids:
        for session_id, intent in session.execute(
            select(CallTurn.session_id, func.coalesce(CallTurn.corrected_intent, CallTurn.intent)).distinct()
            .where(CallTurn.session_id.in_(ids), CallTurn.speaker == "borrower",
                   func.coalesce(CallTurn.corrected_intent, CallTurn.intent).is_not(None))
        ):
            intents.setdefault(session_id, []).append(intent)
    items = []
    for call, borrower in rows:
        local_zone = borrower_zone(borrower, default_timezone)
        items.append({
            "id": call.id,
            "started_at": _local(call.started_at, zone),
            "started_local": _local(call.started_at, local_zone),
            "borrower_zone": local_zone.key,
            "borrower_id": call.borrower_id,
            "name": mask_name(borrower.full_name),
            "name_lang": _lang(borrower.locale),
            "locale": call.locale,
            "status": call.status,
            "answered_by": call.answered_by,
            "outcome": call.outcome,
            "promise_date": call.promise_date,
            "min_confidence": call.min_confidence,
            "low_confidence": call.min_confidence is not None and call.min_confidence < low_confidence,
            "flagged": bool(call.flagged),
            "flag_reasons": [redact(str(r)) for r in ((call.flags or {}).get("reasons") or [])],
            "reviewed": call.reviewed_at is not None,
            "reviewed_by": call.reviewed_by,
            **_review(reasons.get(call.id, []), call),
            "duration_s": call.duration_s,
            "intents": sorted(intents.get(call.id, [])),
        })
    return CallPage(items, total, page, page_size, answered)


def _decision(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    if not decision:
        return None
    rules = decision.get("rules") or decision.get("results") or []
    known = {"allowed", "reasons", "next_allowed_at", "rule_set", "zones", "rules", "results"}
    return {
        "allowed": bool(decision.get("allowed")),
        "reasons": [redact(str(r)) for r in decision.get("reasons") or []],
        "rule_set": redact(str(decision.get("rule_set") or "")),
        "zones": [str(z) for z in decision.get("zones") or []],
        "next_allowed_at": decision.get("next_allowed_at"),
        "rules": [
            {"rule": redact(str(r.get("rule", ""))), "allowed": bool(r.get("allowed")),
             "reason": redact(str(r.get("reason") or "")), "detail": redact(str(r.get("detail") or ""))}
            for r in rules if isinstance(r, dict)
        ],
        "other": {k: _json_text(v) for k, v in sorted(decision.items()) if k not in known},
    }


def load_call(session: Session, call_id: int, *, zone_name: str, low_confidence: float,
              default_timezone: str = "UTC", rules: ReviewRules | None = None) -> dict[str, Any] | None:
    zone = ZoneInfo(zone_name)
    row = session.execute(
        select(CallSession, Borrower).join(Borrower, Borrower.id == CallSession.borrower_id)
        .where(CallSession.id == call_id)
    ).first()
    if row is None:
        return None
    call, borrower = row
    address = None
    if call.attempt_id is not None:
        address = session.scalar(select(ContactAttempt.address).where(ContactAttempt.id == call.attempt_id))
    turns = session.scalars(select(CallTurn).where(CallTurn.session_id == call.id).order_by(CallTurn.seq)).all()
    notes = session.scalars(
        select(Note).where(Note.subject_type == "call", Note.subject_id == str(call.id)).order_by(Note.created_at, Note.id)
    ).all()
    promise = session.scalar(
        select(Promise).where(Promise.borrower_id == borrower.id, Promise.status == PromiseStatus.PENDING.value)
        .order_by(Promise.created_at.desc(), Promise.id.desc()).limit(1)
    )
    state = call.state if isinstance(call.state, dict) else {}
    local_zone = borrower_zone(borrower, default_timezone)
    shift = _recording_shift(call)
    rules = rules or review_rules(low_confidence)
    reasons = review.reasons_for(session, [call.id], rules).get(call.id, [])
    return {
        "id": call.id,
        "call_sid": call.call_sid,
        "borrower": {"id": borrower.id, "name": mask_name(borrower.full_name), "locale": borrower.locale,
                     "lang": _lang(borrower.locale), "zone": local_zone.key},
        "lang": _lang(call.locale),
        **_review(reasons, call),
        "assigned_at": _local(call.assigned_at, zone),
        "address": masked_address(Channel.VOICE.value, address or borrower.phone_e164),
        "loan_id": call.loan_id,
        "locale": call.locale,
        "script": call.script,
        "status": call.status,
        "answered_by": call.answered_by,
        "outcome": call.outcome,
        "promise_date": call.promise_date,
        "speech": bool(call.speech),
        "flagged": bool(call.flagged),
        "flag_reasons": [redact(str(r)) for r in ((call.flags or {}).get("reasons") or [])],
        "min_confidence": call.min_confidence,
        "low_confidence": call.min_confidence is not None and call.min_confidence < low_confidence,
        "decision": _decision(call.decision),
        "path": [redact(str(node)) for node in (state.get("path") or [])],
        "facts": {k: _json_text(v) for k, v in sorted((state.get("facts") or {}).items())}
        if isinstance(state.get("facts"), dict) else {},
        "started_at": _local(call.started_at, zone),
        "started_local": _local(call.started_at, local_zone),
        "answered_at": _local(call.answered_at, zone),
        "ended_at": _local(call.ended_at, zone),
        "duration_s": call.duration_s,
        "reviewed_at": _local(call.reviewed_at, zone),
        "reviewed_by": call.reviewed_by,
        "recording": bool(call.recording_ref),
        "recording_channels": call.recording_channels,
        "pending_promise": {"date": promise.promised_date, "source": promise.source} if promise else None,
        "turns": [
            {
                "id": t.id, "seq": t.seq, "speaker": t.speaker, "node": t.node, "at": _local(t.at, zone),
                "source": t.source, "text": _text(t.text_redacted), "confidence": t.confidence,
                "low_confidence": t.confidence is not None and t.confidence < low_confidence,
                "margin": t.margin,
                "low_margin": t.margin is not None and rules.low_margin is not None and t.margin < rules.low_margin,
                "intent": t.intent, "promise_date": t.promise_date, "audio": bool(t.audio_ref),
                "flagged": bool(t.flagged), "corrected_intent": t.corrected_intent,
                "corrected_promise_date": t.corrected_promise_date, "corrected_by": t.corrected_by,
                "corrected_at": _local(t.corrected_at, zone),
                "offset": _offset(t, shift),
            }
            for t in turns
        ],
        "notes": [{"author": n.author, "at": _local(n.created_at, zone), "text": _text(n.text_redacted)}
                  for n in notes],
    }


def _recording_shift(call: CallSession) -> float:
    """Seconds the recording ran before the bot heard of the answer (answering-machine detection
    answers the webhook a few seconds after the pick-up, when the recording starts)."""
    if call.recording_started_at is None or call.answered_at is None:
        return 0.0
    return min(max((call.answered_at - call.recording_started_at).total_seconds(), 0.0), 60.0)


def _offset(turn: CallTurn, shift: float) -> float | None:
    """Where a turn starts in the call's recording (seconds), or None when it is not known."""
    return None if turn.offset_s is None else round(turn.offset_s + shift, 2)


def call_recording(session: Session, call_id: int) -> str | None:
    """The whole call's recording (relative to the media directory), or None."""
    return session.scalar(select(CallSession.recording_ref).where(CallSession.id == call_id))


def turn_audio(session: Session, turn_id: int) -> tuple[str, str, int] | None:
    """(audio_ref, speaker, call id) of a turn with audio, or None."""
    row = session.execute(
        select(CallTurn.audio_ref, CallTurn.speaker, CallTurn.session_id).where(CallTurn.id == turn_id)
    ).first()
    if row is None or not row[0]:
        return None
    return row[0], row[1], row[2]


# --- borrower ---------------------------------------------------------------------------------


def borrower_page(session: Session, borrower_id: str, at: datetime, *, default_timezone: str,
                  zone_name: str = DISPLAY_ZONE) -> dict[str, Any] | None:
    """A borrower and everything that happened with them, most recent first (masked)."""
    borrower = session.get(Borrower, borrower_id)
    if borrower is None:
        return None
    zones = resolve_zones(borrower.country, borrower.region, borrower.timezone, borrower.phone_e164,
                          default_timezone)
    zone = zones.primary
    shown = ZoneInfo(zone_name)
    today = at.astimezone(zone).date()
    locale = borrower.locale

    loans = []
    for loan in session.scalars(select(Loan).where(Loan.borrower_id == borrower_id).order_by(Loan.id)):
        outstanding = overdue = 0
        worst = 0
        for inst in loan.installments:
            _, dpd = installment_status(inst, today)
            outstanding += inst.outstanding_minor
            if dpd:
                overdue += inst.outstanding_minor
                worst = max(worst, dpd)
        loans.append({"id": loan.id, "product": loan.product, "currency": loan.currency,
                      "outstanding": format_money(outstanding, loan.currency, locale),
                      "overdue": format_money(overdue, loan.currency, locale), "days_past_due": worst})

    consents = session.scalars(
        select(Consent).where(Consent.borrower_id == borrower_id).order_by(Consent.channel, Consent.id)).all()
    events: list[dict[str, Any]] = []

    def event(when: datetime | None, kind: str, channel: str | None, title: Message, detail: Sequence[str] = (),
              link: str | None = None, reasons: list[str] | None = None) -> None:
        """One timeline row: ``title`` and the ``detail`` parts are shown in the reader's language
        (a :class:`Message` translated, a :class:`Code` by its label, any other text as it is)."""
        if when is not None:
            events.append({"at": when.astimezone(shown), "local": when.astimezone(zone), "kind": kind,
                           "channel": channel or "", "title": title, "detail": [x for x in detail if x],
                           "link": link, "reasons": reasons or []})

    a = ContactAttempt
    when = func.coalesce(a.sent_at, a.occurred_at, a.next_attempt_at, a.created_at)
    for attempt in session.scalars(
        select(a).where(a.borrower_id == borrower_id).order_by(when.desc(), a.id.desc()).limit(TIMELINE_LIMIT)
    ):
        decision = attempt.decision or {}
        verdict = None if not decision else Message(N_("allowed") if decision.get("allowed") else N_("not allowed"))
        title = (Message("%(status)s, %(outcome)s", status=Code(attempt.status), outcome=Code(attempt.outcome))
                 if attempt.outcome else Message("%(status)s", status=Code(attempt.status)))
        event(attempt.sent_at or attempt.occurred_at or attempt.next_attempt_at or attempt.created_at, "contact",
              attempt.channel, title,
              (Code(attempt.source or ""), attempt.step or "", masked_address(attempt.channel, attempt.address),
               Message(N_("decision %(verdict)s"), verdict=verdict) if verdict else "",
               Code(attempt.provider_status or "")),
              reasons=[redact(str(r)) for r in decision.get("reasons") or []])
    for message in session.scalars(
        select(InboundMessage).where(InboundMessage.borrower_id == borrower_id)
        .order_by(InboundMessage.received_at.desc()).limit(TIMELINE_LIMIT)
    ):
        meant = IntentCode(message.intent) if message.intent else Message(N_("unclassified"))
        title = (Message(N_("reply: %(intent)s for %(day)s"), intent=meant, day=message.promise_date)
                 if message.promise_date else Message(N_("reply: %(intent)s"), intent=meant))
        event(message.received_at, "reply", message.channel, title, (_text(message.body_redacted),))
    for promise in session.scalars(select(Promise).where(Promise.borrower_id == borrower_id).order_by(Promise.id)):
        event(promise.created_at, "promise", None,
              Message(N_("promise to pay on %(day)s"), day=promise.promised_date),
              (_source(promise.source), Message(N_("loan %(loan)s"), loan=promise.loan_id) if promise.loan_id else ""))
        if promise.resolved_at is not None:
            event(promise.resolved_at, "promise", None, Message(N_("promise of %(day)s %(status)s"),
                                                                day=promise.promised_date, status=Code(promise.status)))
    for consent in consents:
        if consent.opted_out_at is not None:
            event(consent.opted_out_at, "opt_out", consent.channel,
                  Message(N_("opted out of %(channel)s"), channel=Code(consent.channel)),
                  (masked_address(consent.channel, consent.address), _source(consent.opt_out_source or "-")))
    for task in session.scalars(select(Task).where(Task.borrower_id == borrower_id).order_by(Task.id)):
        event(task.created_at, "task", None, Message(N_("task opened: %(kind)s"), kind=Code(task.kind)),
              (_text(task.note), _source(task.source)), link=f"/console/tasks?status=all&kind={task.kind}")
        if task.closed_at is not None:
            event(task.closed_at, "task", None, Message(N_("task closed: %(kind)s"), kind=Code(task.kind)),
                  (Message(N_("task %(id)s"), id=task.id),))
    for call in session.scalars(
        select(CallSession).where(CallSession.borrower_id == borrower_id)
        .order_by(CallSession.started_at.desc()).limit(TIMELINE_LIMIT)
    ):
        decision = call.decision or {}
        event(call.started_at, "call", Channel.VOICE.value,
              Message(N_("call: %(outcome)s"), outcome=Code(call.outcome or call.status)),
              (Code(call.answered_by or ""), Message(N_("flagged")) if call.flagged else "",
               Message(N_("reviewed")) if call.reviewed_at else ""),
              link=f"/console/calls/{call.id}", reasons=[redact(str(r)) for r in decision.get("reasons") or []])
    for note in session.scalars(
        select(Note).where(Note.subject_type == "borrower", Note.subject_id == borrower_id).order_by(Note.id)
    ):
        event(note.created_at, "note", None, Message(N_("note by %(author)s"), author=note.author),
              (_text(note.text_redacted),))
    events.sort(key=lambda e: e["at"], reverse=True)
    facts = load_facts(session, [borrower_id], at, default_timezone)[borrower_id]

    return {
        "id": borrower.id,
        "risk": summary(facts),
        "name": mask_name(borrower.full_name),
        "lang": _lang(borrower.locale),
        "phone": mask_phone(borrower.phone_e164) if borrower.phone_e164 else "",
        "email": mask_email(borrower.email) if borrower.email else "",
        "has": {"name": bool(borrower.full_name), "phone": bool(borrower.phone_e164), "email": bool(borrower.email)},
        "locale": borrower.locale,
        "country": borrower.country,
        "region": borrower.region,
        "zone": zone.key,
        "local_today": today,
        "ceased_at": _local(borrower.cease_communication_at, zone),
        "loans": loans,
        "consents": [{"channel": c.channel, "address": masked_address(c.channel, c.address), "granted": c.granted,
                      "opted_out_at": _local(c.opted_out_at, zone), "source": c.opt_out_source,
                      "flag": c.address_flag} for c in consents],
        "events": events,
    }


@lru_cache(maxsize=8)
def cached_policy(policy_file: str | None, templates_dir: str | None, scripts_dir: str | None = None) -> Any:
    """The treatment policy, loaded (and its templates checked) once per file for the process."""
    from bot.policy import load_policy

    return load_policy(policy_file, templates_dir=templates_dir, scripts_dir=scripts_dir)


@lru_cache(maxsize=8)
def _compliance(path: str) -> Any:
    from bot.compliance import load_compliance_config

    return load_compliance_config(path)


def why_not_today(session: Session, borrower_id: str, at: datetime, *, default_timezone: str,
                  policy_file: Path | None, templates_dir: Path | None,
                  compliance_file: Path | None, scripts_dir: Path | None = None) -> dict[str, Any]:
    """``bot why`` for the borrower page: per installment, what the planner does today and why.

    Never raises: a policy or compliance file that cannot be loaded gives
    ``{"error": <kind>}`` so the rest of the page still shows.
    """
    from bot.scheduler.explain import explain

    try:
        policy = cached_policy(str(policy_file) if policy_file else None, str(templates_dir) if templates_dir else None,
                         str(scripts_dir) if scripts_dir else None)
        options: dict[str, Any] = {}
        if compliance_file:
            options["config"] = _compliance(str(compliance_file))
        data = explain(session, borrower_id, at, policy=policy, default_timezone=default_timezone,
                       check_options=options)
    except Exception as exc:  # the page must show even if the policy is broken
        return {"error": type(exc).__name__, "installments": []}
    items = []
    for item in data["installments"]:
        compliance = item.get("compliance") or {}
        items.append({
            "installment_id": item["installment_id"],
            "loan_id": item["loan_id"],
            "due_date": item["due_date"],
            "day": item["day"],
            "step": item.get("step"),
            "action": redact(item["action"]),
            "allowed": compliance.get("allowed"),
            "reasons": list(compliance.get("reasons") or []),
            "next_allowed_at_local": compliance.get("next_allowed_at_local"),
            "blocking": [{"rule": r["rule"], "reason": r["reason"], "detail": r["detail"]}
                         for r in compliance.get("rules") or [] if not r["allowed"]],
        })
    return {"error": None, "at": data["at"], "steps": data["steps"], "arm": data["arm"], "installments": items}


# --- tasks ------------------------------------------------------------------------------------


def list_tasks(session: Session, f: TaskFilters, *, me: str, zone_name: str, page_size: int) -> Page:
    zone = ZoneInfo(zone_name)
    where: list[Any] = []
    if f.status != "all":
        where.append(Task.status == f.status)
    if f.kind:
        where.append(Task.kind == f.kind)
    if f.assigned == "me":
        where.append(Task.assigned_to == me)
    elif f.assigned == "none":
        where.append(Task.assigned_to.is_(None))
    elif f.assigned:
        where.append(Task.assigned_to == f.assigned)
    total = int(session.scalar(select(func.count()).select_from(Task).where(*where)) or 0)
    page, offset = _paged(total, f.page, page_size)
    rows = session.execute(
        select(Task, Borrower.full_name).join(Borrower, Borrower.id == Task.borrower_id).where(*where)
        .order_by(Task.created_at, Task.id).limit(page_size).offset(offset)
    ).all()
    ids = [str(task.id) for task, _ in rows]
    notes: dict[str, list[dict[str, Any]]] = {}
    if ids:
        for note in session.scalars(
            select(Note).where(Note.subject_type == "task", Note.subject_id.in_(ids)).order_by(Note.id)
        ):
            notes.setdefault(note.subject_id, []).append(
                {"author": note.author, "at": _local(note.created_at, zone), "text": _text(note.text_redacted)})
    items = [{
        "id": task.id, "borrower_id": task.borrower_id, "name": mask_name(full_name), "loan_id": task.loan_id,
        "kind": task.kind, "status": task.status, "source": task.source, "assigned_to": task.assigned_to,
        "note": _text(task.note), "created_at": _local(task.created_at, zone),
        "closed_at": _local(task.closed_at, zone), "notes": notes.get(str(task.id), []),
    } for task, full_name in rows]
    return Page(items, total, page, page_size)


def users_for_assignment(session: Session) -> list[str]:
    return list(session.scalars(
        select(User.name).where(User.disabled.is_(False), User.role.in_(["supervisor", "admin"])).order_by(User.name)))


# --- audit ------------------------------------------------------------------------------------


def list_audit(session: Session, f: AuditFilters, *, zone_name: str, page_size: int) -> Page:
    zone = ZoneInfo(zone_name)
    where: list[Any] = []
    if f.action:
        where.append(AuditEvent.action.startswith(f.action, autoescape=True))
    if f.actor:
        where.append(AuditEvent.actor == f.actor)
    if f.subject:
        where.append(AuditEvent.subject_id == f.subject)
    total = int(session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0)
    page, offset = _paged(total, f.page, page_size)
    events = session.scalars(
        select(AuditEvent).where(*where).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(page_size).offset(offset)
    ).all()
    items = [{"id": e.id, "at": _local(e.at, zone), "actor": e.actor, "action": e.action,
              "subject_type": e.subject_type or "", "subject_id": e.subject_id or "",
              "detail": _json_text(e.detail)} for e in events]
    return Page(items, total, page, page_size)
