"""``bot why``: what the planner would do for one borrower, and why, step by step.

It runs the planner's own decision code (:mod:`bot.scheduler.decide`) on all of
the borrower's outstanding installments, without writing anything, and adds
what is already recorded.  The result holds no raw personal data: phone, email
and name are masked, rule details are redacted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import Borrower, ContactAttempt, Installment, Loan, Task
from bot.errors import NotFoundError
from bot.ledger import OPEN, PAID_REASON
from bot.policy import Policy, step_label
from bot.privacy import mask_email, mask_name, mask_phone, redact
from bot.scheduler.contexts import ContextLoader, default_loader
from bot.scheduler.decide import (
    ATTACHED,
    SKIP_CONVERSATION,
    SKIP_LOCALE,
    SKIP_MIN_OUTSTANDING,
    SKIP_NO_CONTEXT,
    SKIP_NO_LADDER,
    SKIP_NO_STEP,
    CheckFn,
    InstallmentRow,
    LocalDates,
    Placement,
    place,
    plan_placements,
)
from bot.policy_risk import SKIP_RISK_SCORE, SKIP_SEGMENT
from bot.risk import load_facts, summary
from bot.scheduler.planner import default_check, history_since, selection


def explain(
    session: Session,
    borrower_id: str,
    at: datetime,
    *,
    policy: Policy,
    check: CheckFn | None = None,
    default_timezone: str = "America/New_York",
    load_contexts: ContextLoader | None = None,
    check_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready explanation; raises :class:`NotFoundError` for an unknown borrower."""
    at = at.astimezone(UTC)
    borrower = session.get(Borrower, borrower_id)
    if borrower is None:
        raise NotFoundError(f"no borrower with id {borrower_id!r}")
    if check is None:
        check = default_check()
        check_options = {"explain": True, **(check_options or {})}
    load = load_contexts or default_loader()
    rows = [InstallmentRow(*r) for r in session.execute(selection(policy, at, borrower_id=borrower_id))]
    dates = LocalDates(at, default_timezone)
    facts = load_facts(session, {borrower_id}, at, default_timezone)
    placements = place(rows, policy=policy, dates=dates, risk=facts)
    contexts = load(session, {borrower_id}, history_since(at, policy, (check_options or {}).get("config")))
    plan_placements(placements, contexts, policy=policy, at=at, check=check, check_options=check_options)

    keys = [p.contact.dedupe_key for p in placements if p.contact] + [p.task.dedupe_key for p in placements if p.task]
    existing = _existing(session, keys)
    arm = placements[0].arm if placements else policy.arm_for(borrower_id)
    return {
        "at": at.isoformat(),
        "policy": policy.source,
        "experiment": policy.experiment.name if policy.experiment else None,
        "arm": arm,
        "borrower": {
            "id": borrower.id,
            "name": mask_name(borrower.full_name),
            "phone": mask_phone(borrower.phone_e164),
            "email": mask_email(borrower.email),
            "locale": borrower.locale,
            "message_locale": policy.locale_for(borrower.locale),
            "country": borrower.country,
            "region": borrower.region,
            "timezone": borrower.timezone,
        },
        "risk": summary(facts[borrower_id]),
        "steps": [f"{step_label(s.day)}:{s.channel}" for s in policy.arms[arm].steps] if arm in policy.arms else [],
        "installments": [_installment(p, policy, existing) for p in placements],
        # Paid in full by the rule of bot.ledger: never contacted about (reason ``paid``).
        "paid_installments": [
            {"installment_id": iid, "loan_id": loan_id, "due_date": due.isoformat(), "reason": PAID_REASON}
            for iid, loan_id, due in session.execute(
                select(Installment.id, Installment.loan_id, Installment.due_date)
                .join(Loan, Loan.id == Installment.loan_id)
                .where(Loan.borrower_id == borrower_id, ~OPEN)
                .order_by(Installment.due_date, Installment.id)
            )
        ],
    }


def _existing(session: Session, keys: list[str]) -> dict[str, dict[str, Any]]:
    if not keys:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for key, status, next_at in session.execute(
        select(ContactAttempt.dedupe_key, ContactAttempt.status, ContactAttempt.next_attempt_at).where(
            ContactAttempt.dedupe_key.in_(keys)
        )
    ):
        found[key] = {"status": status, "next_attempt_at": next_at.isoformat() if next_at else None}
    for key, status in session.execute(select(Task.dedupe_key, Task.status).where(Task.dedupe_key.in_(keys))):
        found[key] = {"status": status}
    return found


def _local(instant: datetime | None, zone: str) -> str | None:
    return instant.astimezone(ZoneInfo(zone)).isoformat() if instant else None


def _installment(p: Placement, policy: Policy, existing: dict[str, dict[str, Any]]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "installment_id": p.row.installment_id,
        "loan_id": p.row.loan_id,
        "due_date": p.row.due_date.isoformat(),
        "outstanding_minor": p.row.outstanding_minor,
        "zone": p.zone,
        "local_date": p.local_date.isoformat(),
        "offset": p.offset,
        "day": step_label(p.offset),
        "step": None,
        "conditions": [],
    }
    if p.step is not None:
        item["step"] = f"{p.arm}:{step_label(p.step.day)}:{p.step.channel}"
        item["template"] = p.step.template
        item["conditions"] = p.step.when.describe()
        if p.risk is not None:
            item["risk"] = p.risk
    if p.contact is not None:
        c = p.contact
        d = c.decision
        item["compliance"] = {
            "allowed": d.allowed if d else False,
            "rule_set": d.rule_set if d else None,
            "zones": list(d.zones) if d else [],
            "reasons": c.reasons,
            "next_allowed_at": c.next_attempt_at.isoformat() if c.next_attempt_at else None,
            "next_allowed_at_local": _local(c.next_attempt_at, p.zone),
            "rules": [
                {
                    "rule": r.rule,
                    "allowed": r.allowed,
                    "reason": r.reason,
                    "next_allowed_at_local": _local(r.next_allowed_at, p.zone),
                    "detail": redact(r.detail) if r.detail else "",
                }
                for r in (d.results if d else ())
            ],
        }
        item["covers"] = list(c.covers)
        item["dedupe_key"] = c.dedupe_key
        item["action"] = _contact_action(c.status, c.channel, c.next_attempt_at, p.zone, c.reasons)
        item["recorded"] = existing.get(c.dedupe_key)
        if item["recorded"] and item["recorded"]["status"] not in ("planned", "deferred", "blocked"):
            item["action"] += f"; already {item['recorded']['status']}: re-planning leaves it alone"
    elif p.task is not None:
        item["dedupe_key"] = p.task.dedupe_key
        item["recorded"] = existing.get(p.task.dedupe_key)
        item["action"] = "open a hand-off task for a person (one per loan)"
        if item["recorded"]:
            item["action"] += f"; the task exists ({item['recorded']['status']})"
    else:
        item["action"] = _skip_action(p, policy)
    return item


def _contact_action(status: str, channel: str, next_at: datetime | None, zone: str, reasons: list[str]) -> str:
    if status == "planned":
        return f"plan the {channel} contact now (status planned)"
    if status == "deferred":
        return f"defer the {channel} contact until {_local(next_at, zone)} (status deferred: {', '.join(reasons)})"
    return f"record the {channel} contact as blocked ({', '.join(reasons) or 'no reason given'})"


def _skip_action(p: Placement, policy: Policy) -> str:
    if p.skip == SKIP_NO_LADDER:
        return "nothing: no ladder's condition holds for the borrower"
    ladder = policy.arms[p.arm]
    if p.skip == SKIP_NO_STEP:
        if p.offset < ladder.steps[0].day:
            return f"nothing yet: the first step is {step_label(ladder.steps[0].day)}"
        return f"nothing: past the last step and its {policy.horizon_days}-day horizon"
    if p.skip == ATTACHED:
        return f"no contact of its own: attached to {p.attached_to} (one contact per borrower and channel)"
    reasons = {
        SKIP_MIN_OUTSTANDING: "nothing: the outstanding amount is below the step's minimum",
        SKIP_LOCALE: "nothing: the step does not serve the borrower's locale",
        SKIP_CONVERSATION: "nothing: there was a conversation recently (step condition)",
        SKIP_NO_CONTEXT: "nothing: the borrower's compliance data could not be loaded",
        SKIP_SEGMENT: "nothing: the lender's segment is not one the step serves",
        SKIP_RISK_SCORE: "nothing: the risk score is outside the step's band",
    }
    return reasons.get(p.skip or "", f"nothing ({p.skip})")
