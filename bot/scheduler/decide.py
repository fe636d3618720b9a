"""What the planner does with one batch of installments: pure logic, no database.

Given the selected installment rows, the borrowers' compliance contexts and the
policy, :func:`decide_batch` places every installment:

1. its day offset in the borrower's local date (the primary zone of the
   compliance engine: the borrower's timezone column, else region, phone, country,
   else the configured default);
2. the borrower's policy arm (with ``ladders``: the first ladder whose ``when``
   holds) and the step current at that offset (one step per installment; never a
   backlog of earlier steps);
3. the step's conditions (minimum outstanding amount, the lender's segment and
   the risk score band (bot.policy_risk), locales, no recent conversation);
4. grouping: one contact per borrower and channel per run; the oldest installment
   (earliest due date, then id) carries it and the others are *attached* (listed in
   the carrier's decision under ``covers``); human steps open one hand-off task per
   loan;
5. the compliance check at the planning instant → planned / deferred / blocked.

Both the planner (``bot plan``) and the explainer (``bot why``) call it, so what
``why`` says is exactly what ``plan`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from bot.compliance.types import Decision, HistoryEntry, StopState, Subject
from bot.compliance.zones import phone_zone_names, resolve_zones
from bot.domain import AttemptStatus, Channel, ContactOutcome, PlanKey
from bot.policy import Policy, Step, step_label
from bot.risk import RiskFacts

CheckFn = Callable[..., Decision]
Context = tuple[Subject, list[HistoryEntry], StopState]

# Reasons the planner itself gives (compliance reasons come from the engine).
SKIP_NO_STEP = "no_current_step"
SKIP_NO_LADDER = "no_ladder"  # ``ladders``: no ladder's ``when`` holds for the borrower
SKIP_MIN_OUTSTANDING = "condition_min_outstanding"
SKIP_LOCALE = "condition_locale"
SKIP_CONVERSATION = "condition_recent_conversation"
SKIP_NO_CONTEXT = "borrower_not_loaded"
ATTACHED = "attached"
NO_ADDRESS = "no_address"


class InstallmentRow(NamedTuple):
    """One selected installment with what the planner needs of its loan and borrower.

    A named tuple: the planner makes one per selected row straight from the row's
    first ten columns (``tuple.__new__``), several times cheaper than a dataclass."""

    installment_id: str
    loan_id: str
    borrower_id: str
    due_date: date
    amount_due_minor: int
    covered_minor: int  # what is paid, by the rule of bot.ledger
    timezone: str | None
    region: str | None
    country: str
    phone_e164: str | None

    @property
    def outstanding_minor(self) -> int:
        return max(self.amount_due_minor - self.covered_minor, 0)


@dataclass(slots=True)
class PlannedContact:
    """One contact attempt to record (a row of ``contact_attempts``)."""

    dedupe_key: str
    borrower_id: str
    loan_id: str
    installment_id: str
    channel: str
    step: str  # "<arm>:<D+n>:<channel>"
    template: str | None
    address: str | None
    status: str
    next_attempt_at: datetime | None
    decision: Decision | None
    decision_json: dict[str, Any]
    covers: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return list(self.decision_json.get("reasons", []))


@dataclass(slots=True)
class PlannedTask:
    """A hand-off to a person (a row of ``tasks``), one per loan."""

    dedupe_key: str
    borrower_id: str
    loan_id: str
    step: str
    installments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Placement:
    """How one installment was placed; ``why`` shows these, ``plan`` counts them."""

    row: InstallmentRow
    zone: str
    local_date: date
    offset: int
    arm: str
    step: Step | None = None
    skip: str | None = None  # a SKIP_* / ATTACHED reason when no contact of its own
    contact: PlannedContact | None = None
    task: PlannedTask | None = None
    attached_to: str | None = None  # the carrier's dedupe key
    risk: dict[str, Any] | None = None  # a step with risk conditions: the segment/score compared, what held


# --- local dates -------------------------------------------------------------------


class LocalDates:
    """Borrower-local "today" at one instant, cached per zone.

    Uses the compliance engine's zone resolution (primary candidate zone) so the
    planner's day and the rules' hours agree; results that cannot depend on the
    phone number (an explicit timezone, a mapped region) are cached without it.
    """

    def __init__(self, at: datetime, default_timezone: str) -> None:
        self.at = at
        self.default_timezone = default_timezone
        self._dates: dict[str, date] = {}
        self._by_key: dict[tuple[str | None, str | None, str], str] = {}

    def zone_name(self, row: InstallmentRow) -> str:
        key = (row.timezone, row.region, row.country)
        name = self._by_key.get(key)
        if name is not None:
            return name
        name, phone_independent = _primary_zone(row.country, row.region, row.timezone, None, self.default_timezone)
        if phone_independent:
            self._by_key[key] = name
            return name
        return _primary_zone(row.country, row.region, row.timezone, row.phone_e164, self.default_timezone)[0]

    def today(self, zone_name: str) -> date:
        found = self._dates.get(zone_name)
        if found is None:
            found = self._dates[zone_name] = self.at.astimezone(ZoneInfo(zone_name)).date()
        return found


@lru_cache(maxsize=65_536)
def _primary_zone(country: str, region: str | None, timezone: str | None, phone: str | None,
                  default_timezone: str) -> tuple[str, bool]:
    """(primary zone name, whether it came from timezone/region and so ignores the phone)."""
    zones = resolve_zones(country or "", region, timezone, phone, default_timezone)
    return zones.names[0], zones.sources[0] in ("timezone", "region")


# --- one check per distinct input ----------------------------------------------------------


class CheckMemo:
    """The compliance engine's ``check`` called once per distinct input in one pass.

    The engine is a pure function of what this key holds, so a borrower whose
    inputs equal another's gets the very same :class:`Decision` (and the same
    decision payload): the country and region (the rule sets, the region's zones),
    the explicit zone and the phone number's zones (the candidate zones), whether
    there is a phone number and an email (the address checks), the channel and the
    stop state.  No rule reads anything else of the subject (its id, name, locale,
    the address itself), and without history none reads the loan either.  A subject
    with a history of its own is checked on its own (its key would cost more than a
    miss, and rarely hit).  Most borrowers without history share a handful of keys:
    consent everywhere, a zone of their state.

    One memo serves one instant and one configuration (``check_options``).
    """

    __slots__ = ("_check", "_decisions", "_options", "_payloads", "at")

    def __init__(self, check: CheckFn, at: datetime, check_options: Mapping[str, Any] | None = None) -> None:
        self._check = check
        self._options = dict(check_options or {})
        self.at = at
        self._decisions: dict[tuple[Any, ...], Decision] = {}
        self._payloads: dict[int, tuple[Decision, dict[str, Any]]] = {}

    def __call__(self, subject: Subject, channel: Channel, at: datetime, history: list[HistoryEntry],
                 state: StopState, *, loan_id: str | None = None, **options: Any) -> Decision:
        if history or at != self.at or options != self._options:  # a history of its own, another pass
            return self._check(subject, channel, at, history, state, loan_id=loan_id, **options)
        key = (subject.country, subject.region, subject.timezone, phone_zone_names(subject.phone_e164),
               not subject.phone_e164, not subject.email, channel, state)
        try:
            found = self._decisions.get(key)
        except TypeError:  # an unhashable state (a list of inconvenient times): judged on its own
            return self._check(subject, channel, at, history, state, loan_id=loan_id, **options)
        if found is None:
            found = self._decisions[key] = self._check(subject, channel, at, history, state, loan_id=loan_id,
                                                       **options)
        return found

    def payload(self, decision: Decision, *, at_iso: str,
                cache: dict[tuple[Any, ...], list[dict[str, Any]]] | None) -> dict[str, Any]:
        """:func:`decision_payload` of ``decision`` (a fresh dict whose lists are shared
        with the other payloads of the same decision: nothing edits them)."""
        found = self._payloads.get(id(decision))
        if found is None or found[0] is not decision:
            found = self._payloads[id(decision)] = (
                decision, decision_payload(decision, at=self.at, at_iso=at_iso, cache=cache))
        return dict(found[1])


# --- the batch -------------------------------------------------------------------------


def attempt_key(installment_id: str, arm: str, day: int, channel: str) -> str:
    return PlanKey(installment_id, arm, day, channel).to_str()


def handoff_key(loan_id: str) -> str:
    return f"handoff:{loan_id}"


def decide_batch(
    rows: Iterable[InstallmentRow],
    contexts: Mapping[str, Context],
    *,
    policy: Policy,
    at: datetime,
    check: CheckFn,
    dates: LocalDates,
    check_options: Mapping[str, Any] | None = None,
    risk: Mapping[str, RiskFacts] | None = None,
) -> list[Placement]:
    """Place every row (see the module docstring).  ``contexts`` must hold every
    borrower of ``rows`` that has a current step; others are skipped with
    :data:`SKIP_NO_CONTEXT`.  ``risk`` holds the borrowers' bot.risk facts when the
    policy has risk conditions."""
    placements = place(rows, policy=policy, dates=dates, risk=risk)
    plan_placements(placements, contexts, policy=policy, at=at, check=check, check_options=check_options)
    return placements


def place(rows: Iterable[InstallmentRow], *, policy: Policy, dates: LocalDates,
          risk: Mapping[str, RiskFacts] | None = None) -> list[Placement]:
    """Steps 1-2, the amount and the risk conditions: needs no compliance context.
    ``risk``: the borrowers' bot.risk facts (a borrower without any: no segment, score 0)."""
    out: list[Placement] = []
    arms: dict[str, tuple[str | None, dict[str, Any] | None]] = {}
    horizon = policy.horizon_days
    for row in rows:
        zone = dates.zone_name(row)
        local = dates.today(zone)
        offset = (local - row.due_date).days
        chosen = arms.get(row.borrower_id)
        if chosen is None:
            chosen = arms[row.borrower_id] = policy.choose_ladder(risk.get(row.borrower_id) if risk else None) \
                if policy.chooses_ladders else (policy.arm_for(row.borrower_id), None)
        arm, ladder_risk = chosen
        if arm is None:  # ``ladders`` and none whose ``when`` holds
            out.append(Placement(row, zone, local, offset, "none", None, SKIP_NO_LADDER, risk=ladder_risk))
            continue
        step = policy.arms[arm].current_step(offset, horizon)
        p = Placement(row, zone, local, offset, arm, step, risk=ladder_risk)
        if step is None:
            p.skip = SKIP_NO_STEP
        elif step.when.min_outstanding_minor and row.outstanding_minor < step.when.min_outstanding_minor:
            p.skip = SKIP_MIN_OUTSTANDING
        elif step.when.risk is not None:
            p.skip, step_risk = step.when.risk.evaluate(risk.get(row.borrower_id) if risk else None, row.loan_id)
            p.risk = {**(ladder_risk or {}), **step_risk}
        out.append(p)
    return out


def needs_context(placements: Iterable[Placement]) -> set[str]:
    """Borrowers whose compliance context the batch needs (channel steps only)."""
    return {p.row.borrower_id for p in placements if p.skip is None and p.step is not None
            and p.step.channel != "human"}


def plan_placements(
    placements: list[Placement],
    contexts: Mapping[str, Context],
    *,
    policy: Policy,
    at: datetime,
    check: CheckFn,
    check_options: Mapping[str, Any] | None = None,
) -> None:
    """Steps 3-5, filling ``contact`` / ``task`` / ``skip`` of each placement in place.

    ``check`` may be a :class:`CheckMemo` (the planner's, one per pass)."""
    check_options = check_options or {}
    locales: dict[str | None, str] = {}
    at_iso = at.isoformat()
    results_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    groups: dict[tuple[str, str], list[Placement]] = {}
    tasks: dict[str, PlannedTask] = {}
    for p in placements:
        if p.skip is not None or p.step is None:
            continue
        step = p.step
        if step.channel == "human":
            task = tasks.get(p.row.loan_id)
            if task is None:
                task = tasks[p.row.loan_id] = PlannedTask(
                    handoff_key(p.row.loan_id), p.row.borrower_id, p.row.loan_id,
                    f"{p.arm}:{step_label(step.day)}:human",
                )
                p.task = task
            else:
                p.skip, p.attached_to = ATTACHED, task.dedupe_key
            task.installments.append(p.row.installment_id)
            continue
        ctx = contexts.get(p.row.borrower_id)
        if ctx is None:
            p.skip = SKIP_NO_CONTEXT
            continue
        subject, history, _state = ctx
        locale = locales.get(subject.locale)
        if locale is None:
            locale = locales[subject.locale] = policy.locale_for(subject.locale)
        if step.when.locales is not None and locale not in step.when.locales:
            p.skip = SKIP_LOCALE
            continue
        if step.when.no_conversation_within_days and _recent_conversation(
            history, at - timedelta(days=step.when.no_conversation_within_days)
        ):
            p.skip = SKIP_CONVERSATION
            continue
        groups.setdefault((p.row.borrower_id, step.channel), []).append(p)

    for group in groups.values():
        group.sort(key=lambda p: (p.row.due_date, p.row.installment_id))
        carrier = group[0]
        contact = _contact(carrier, contexts[carrier.row.borrower_id], policy=policy, at=at, check=check,
                           check_options=check_options, locale=locales[contexts[carrier.row.borrower_id][0].locale],
                           at_iso=at_iso, results_cache=results_cache)
        contact.covers = [p.row.installment_id for p in group[1:]]
        if contact.covers:
            contact.decision_json["covers"] = contact.covers
        carrier.contact = contact
        for other in group[1:]:
            other.skip, other.attached_to = ATTACHED, contact.dedupe_key


def _recent_conversation(history: Iterable[HistoryEntry], since: datetime) -> bool:
    return any(h.outcome == ContactOutcome.CONVERSATION.value and h.occurred_at >= since for h in history)


def _contact(p: Placement, ctx: Context, *, policy: Policy, at: datetime, check: CheckFn,
             check_options: Mapping[str, Any], locale: str, at_iso: str,
             results_cache: dict[tuple[Any, ...], list[dict[str, Any]]] | None = None) -> PlannedContact:
    assert p.step is not None
    step = p.step
    subject, history, state = ctx
    channel = Channel(step.channel)
    address = subject.email if channel is Channel.EMAIL else subject.phone_e164
    paid = p.row.covered_minor >= p.row.amount_due_minor
    if state.paid != paid:  # the loader leaves paid False; it is per installment
        state = dataclasses.replace(state, paid=paid)
    decision = check(subject, channel, at, history, state, loan_id=p.row.loan_id, **check_options)
    memo = check if isinstance(check, CheckMemo) else None  # its decisions' payloads are shared
    if address is None and decision.allowed:  # the engine should say so; never plan to nowhere
        decision = dataclasses.replace(decision, allowed=False, reasons=(NO_ADDRESS,), next_allowed_at=None)
        memo = None
    if decision.allowed:
        status, next_at = AttemptStatus.PLANNED.value, at
    elif decision.next_allowed_at is not None:
        status, next_at = AttemptStatus.DEFERRED.value, decision.next_allowed_at
    else:
        status, next_at = AttemptStatus.BLOCKED.value, None
    label = f"{p.arm}:{step_label(step.day)}:{step.channel}"
    if memo is not None:
        payload = memo.payload(decision, at_iso=at_iso, cache=results_cache)
    else:
        payload = decision_payload(decision, at=at, at_iso=at_iso, cache=results_cache)
    payload["planner"] = {
        "at": at_iso,
        "arm": p.arm,
        "experiment": policy.experiment.name if policy.experiment else None,
        "step": label,
        "offset": p.offset,
        "local_date": p.local_date.isoformat(),
        "zone": p.zone,
        "locale": locale,
    }
    if p.risk is not None:
        payload["planner"]["risk"] = p.risk
    return PlannedContact(
        dedupe_key=attempt_key(p.row.installment_id, p.arm, step.day, step.channel),
        borrower_id=p.row.borrower_id,
        loan_id=p.row.loan_id,
        installment_id=p.row.installment_id,
        channel=step.channel,
        step=label,
        template=step.template,
        address=address,
        status=status,
        next_attempt_at=next_at,
        decision=decision,
        decision_json=payload,
    )


def decision_payload(
    decision: Decision,
    *,
    at: datetime | None = None,
    at_iso: str = "",
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """``Decision.to_json()`` plus every rule's verdict (compact: empty fields left out).

    Most decisions of a pass have identical rule results (everything allowed, the
    same rules): ``cache`` shares one ``results`` list between them, which the
    planner's writer also encodes to JSON only once.  ``at``/``at_iso`` save
    formatting the planning instant again and again.
    """
    payload: dict[str, Any] = decision.to_json()
    results = cache.get(decision.results) if cache is not None else None
    if results is None:
        results = []
        for r in decision.results:
            item: dict[str, Any] = {"rule": r.rule, "allowed": r.allowed}
            if r.reason:
                item["reason"] = r.reason
            if r.next_allowed_at is not None:
                item["next_allowed_at"] = at_iso if at is not None and r.next_allowed_at == at else \
                    r.next_allowed_at.isoformat()
            if r.detail:
                item["detail"] = r.detail
            results.append(item)
        if cache is not None:
            cache[decision.results] = results
    payload["results"] = results
    return payload
