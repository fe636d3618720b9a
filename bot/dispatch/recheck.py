"""The send-time check: may this claimed attempt go out *now*?

The planner checked compliance when it planned, possibly hours ago; much can
change since (an opt-out by reply, a payment, a dispute, the evening coming), so
the dispatcher checks again at the moment of sending, with the same engine and
the same loader, and records that decision.  A contact the rules do not allow
now is never sent: it becomes ``deferred`` (with the next allowed instant) or
``blocked`` (with the reasons).

Before the rules, :func:`judge` drops attempts that must not go at all any more:

* an attempt about an installment that is now paid (or, about nothing in particular,
  of a borrower who owes nothing) is cancelled with the reason ``paid``
  (:mod:`bot.ledger`), whatever else holds;
* **stale** planner attempts: the installment's current step is no longer the
  one the attempt was planned for (the days moved on during an outage), or it was
  planned on an earlier local day and longer ago than ``max_age``.  So a restart
  after an outage never sends a backlog: only what the planner plans *now* goes;
* a planner attempt whose address is no longer the borrower's current one is
  blocked (``address_changed``; the planner re-plans it with the new address);
* replies older than ``reply_max_age``.

Replies are answers to the borrower's own message, with exceptions from the
contact rules (docs/dispatch.md):

* the opt-out confirmation (``reply_opt_out``) is sent once and immediately,
  whatever the hour and although the channel is now opted out (TCPA and CTIA
  expect one immediate confirmation).  A second confirmation for the same opt-out
  is cancelled (``opt_out_already_confirmed``);
* the HELP answer (``reply_help``) is sent although the channel is opted out:
  carriers (CTIA) require HELP to be answered whatever the opt-out state.  It
  is otherwise checked like the replies below (cease-communication, consent and
  the time windows hold it back);
* every other reply is checked like any contact, but a reply is not an initiated
  communication: the history (frequency caps, the wait after a conversation) is
  left out, and so are the pauses the reply is itself about (a pending promise it
  confirms, a dispute it acknowledges, a payment it thanks for, a wrong number it
  apologises to).  Opt-out, cease-communication, consent, unusable address and
  every time window (quiet hours, rest days, holidays, inconvenient times) still
  apply: outside contact hours a reply waits (``deferred``);
* the satisfaction survey's question (``reply_survey``, bot.replies.surveys) is a
  communication of the bot's own: it is checked like any contact, the history
  included (frequency caps, the wait after a conversation), except for the pauses
  of what it follows (a pending promise, a payment).  It is cancelled
  (``survey_expired``) when it could not go before its survey expired.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.compliance import ComplianceConfig, check
from bot.compliance.loader import history_since, load_contexts
from bot.compliance.types import Decision, HistoryEntry, RuleResult, StopState, Subject
from bot.compliance.zones import resolve_zones
from bot.db.models import Consent, ContactAttempt, InboundMessage, Installment, Loan
from bot.domain import PHONE_CHANNELS, AttemptSource, AttemptStatus, Channel, ContactOutcome, PlanKey
from bot.ledger import COVERED, OPEN, PAID_REASON
from bot.policy import Policy

Context = tuple[Subject, list[HistoryEntry], StopState]

SEND = "send"
DEFERRED = AttemptStatus.DEFERRED.value
BLOCKED = AttemptStatus.BLOCKED.value
CANCELLED = AttemptStatus.CANCELLED.value

STALE = "stale"
PAID = PAID_REASON
ADDRESS_CHANGED = "address_changed"
NO_ADDRESS = "no_address"
NOT_LOADED = "borrower_not_found"
ALREADY_CONFIRMED = "opt_out_already_confirmed"
OPT_OUT_REPLY = "reply_opt_out"
HELP_REPLY = "reply_help"
OPT_OUT_RULE = "reply.opt_out_confirmation"
SURVEY_REPLY = "reply_survey"
SURVEY_EXPIRED = "survey_expired"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the dispatcher does with one claimed attempt, and the decision behind it."""

    action: str  # send | deferred | blocked | cancelled
    decision: Decision | None = None
    reasons: tuple[str, ...] = ()
    next_at: datetime | None = None  # deferred: when the rules allow it

    @property
    def allowed(self) -> bool:
        return self.action == SEND


@dataclass(frozen=True, slots=True)
class InstallmentFacts:
    due_date: date
    paid: bool


@dataclass
class BatchFacts:
    """Everything the check needs for a batch, loaded with a fixed number of queries."""

    contexts: dict[str, Context] = field(default_factory=dict)
    installments: dict[str, InstallmentFacts] = field(default_factory=dict)
    # borrowers of the batch's attempts about no installment who still owe something
    owing: set[str] = field(default_factory=set)
    # reply_opt_out attempts: (borrower, channel, address) -> when the address opted out
    opted_out_at: dict[tuple[str, str, str], datetime | None] = field(default_factory=dict)
    # (channel, address) -> instants at which an opt-out confirmation was sent or is being sent
    confirmations: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)


def load_facts(session: Session, attempts: Sequence[ContactAttempt], now: datetime,
               config: ComplianceConfig | None) -> BatchFacts:
    """Load the compliance contexts, installments and opt-out facts of a batch."""
    facts = BatchFacts()
    borrowers = sorted({a.borrower_id for a in attempts})
    facts.contexts = load_contexts(session, borrowers, history_since(now, config))
    installment_ids = sorted({a.installment_id for a in attempts if a.installment_id})
    for start in range(0, len(installment_ids), 500):
        chunk = installment_ids[start:start + 500]
        for iid, due, amount, paid in session.execute(
            select(Installment.id, Installment.due_date, Installment.amount_due_minor,
                   COVERED).where(Installment.id.in_(chunk))
        ):
            facts.installments[iid] = InstallmentFacts(due, paid >= amount)
    general = sorted({a.borrower_id for a in attempts if not a.installment_id})
    for start in range(0, len(general), 500):
        facts.owing.update(session.scalars(
            select(Loan.borrower_id).distinct().join(Installment, Installment.loan_id == Loan.id)
            .where(Loan.borrower_id.in_(general[start:start + 500]), OPEN)
        ))
    confirmations = [a for a in attempts if a.template == OPT_OUT_REPLY and a.address]
    if confirmations:
        keys = {(a.borrower_id, a.channel, a.address) for a in confirmations}
        for borrower_id, channel, address, opted in session.execute(
            select(Consent.borrower_id, Consent.channel, Consent.address, Consent.opted_out_at).where(
                Consent.borrower_id.in_(sorted({k[0] for k in keys})))
        ):
            if (borrower_id, channel, address) in keys:
                facts.opted_out_at[(borrower_id, channel, address)] = opted
        sent: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for channel, address, at in session.execute(
            select(ContactAttempt.channel, ContactAttempt.address, ContactAttempt.occurred_at).where(
                ContactAttempt.template == OPT_OUT_REPLY,
                ContactAttempt.address.in_(sorted({a.address for a in confirmations if a.address})),
                ContactAttempt.status.in_((AttemptStatus.SENDING.value, AttemptStatus.SENT.value,
                                           AttemptStatus.UNKNOWN.value)),
            )
        ):
            if at is not None:
                sent[(channel, address)].append(at)
        facts.confirmations = dict(sent)
    return facts


def reply_senders(session: Session, attempt_ids: Iterable[int]) -> dict[int, str]:
    """For reply attempts: the number the borrower wrote to (the reply goes from it)."""
    ids = sorted(set(attempt_ids))
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        for attempt_id, to in session.execute(
            select(InboundMessage.reply_attempt_id, InboundMessage.to_address).where(
                InboundMessage.reply_attempt_id.in_(ids[start:start + 500]))
        ):
            if attempt_id is not None:
                out[attempt_id] = to
    return out


# --- the verdict ----------------------------------------------------------------------


@dataclass
class Judge:
    """Judges the attempts of one batch at one instant (keeps the batch's own sends as history)."""

    facts: BatchFacts
    now: datetime
    policy: Policy | None
    config: ComplianceConfig | None
    max_age: timedelta
    reply_max_age: timedelta
    default_timezone: str = "America/New_York"
    _sent_now: dict[str, list[HistoryEntry]] = field(default_factory=dict)

    def share_history(self, sent_now: dict[str, list[HistoryEntry]]) -> None:
        """Use (and add to) the sends of earlier batches of the same pass."""
        self._sent_now = sent_now

    def __call__(self, attempt: ContactAttempt) -> Verdict:
        verdict = self._judge(attempt)
        if verdict.allowed:
            # Later attempts of the same batch for this borrower see this one as sent,
            # so two attempts in one batch cannot both use the last allowed contact.
            self._sent_now.setdefault(attempt.borrower_id, []).append(HistoryEntry(
                channel=Channel(attempt.channel), occurred_at=self.now,
                outcome=ContactOutcome.ATTEMPTED.value, loan_id=attempt.loan_id))
        return verdict

    def _judge(self, attempt: ContactAttempt) -> Verdict:
        if not attempt.address:
            return Verdict(BLOCKED, reasons=(NO_ADDRESS,))
        ctx = self.facts.contexts.get(attempt.borrower_id)
        if ctx is None:
            return Verdict(BLOCKED, reasons=(NOT_LOADED,))
        subject, history, state = ctx
        if attempt.source == AttemptSource.REPLY.value and attempt.template == SURVEY_REPLY:
            return self._survey(attempt, subject, history, state)
        if attempt.source == AttemptSource.REPLY.value:
            return self._reply(attempt, subject, state)
        installment = self.facts.installments.get(attempt.installment_id or "")
        if installment.paid if installment is not None else attempt.borrower_id not in self.facts.owing:
            # What it is about is paid (bot.ledger): it never goes, whatever else holds.
            return Verdict(CANCELLED, reasons=(PAID,))
        stale = self._stale(attempt, subject)
        if stale:
            return Verdict(CANCELLED, reasons=(stale,))
        if attempt.source == AttemptSource.PLANNER.value and not _is_current_address(attempt, subject):
            return Verdict(BLOCKED, reasons=(ADDRESS_CHANGED,))
        full_history = history + self._sent_now.get(attempt.borrower_id, [])
        decision = self._check(subject, attempt, full_history, state)
        return _from_decision(decision)

    # replies

    def _reply(self, attempt: ContactAttempt, subject: Subject, state: StopState) -> Verdict:
        created = attempt.created_at or self.now
        if self.now - created > self.reply_max_age:
            return Verdict(CANCELLED, reasons=(STALE,))
        if attempt.template == OPT_OUT_REPLY:
            return self._opt_out_confirmation(attempt)
        relaxed = dataclasses.replace(state, paid=False, promise_until=None, dispute_open=False, wrong_number=False)
        if attempt.template == HELP_REPLY and Channel(attempt.channel) in relaxed.opted_out:
            # Carriers require HELP to be answered even after STOP: the opt-out of this
            # channel does not hold the HELP answer back (cease-communication, consent
            # and the time windows still do).  Nothing else is sent to an opted-out number.
            relaxed = dataclasses.replace(relaxed, opted_out=relaxed.opted_out - {Channel(attempt.channel)})
        return _from_decision(self._check(subject, attempt, [], relaxed))

    def _survey(self, attempt: ContactAttempt, subject: Subject, history: list[HistoryEntry],
                state: StopState) -> Verdict:
        decision = attempt.decision if isinstance(attempt.decision, Mapping) else {}
        survey = decision.get("survey")
        expires = _instant(survey.get("expires_at")) if isinstance(survey, Mapping) else None
        if expires is None or self.now >= expires:
            return Verdict(CANCELLED, reasons=(SURVEY_EXPIRED,))
        relaxed = dataclasses.replace(state, paid=False, promise_until=None)
        full_history = history + self._sent_now.get(attempt.borrower_id, [])
        return _from_decision(self._check(subject, attempt, full_history, relaxed))

    def _opt_out_confirmation(self, attempt: ContactAttempt) -> Verdict:
        assert attempt.address is not None
        opted = self.facts.opted_out_at.get((attempt.borrower_id, attempt.channel, attempt.address))
        earlier = self.facts.confirmations.get((attempt.channel, attempt.address), [])
        if opted is not None and any(at >= opted for at in earlier):
            return Verdict(CANCELLED, reasons=(ALREADY_CONFIRMED,))
        self.facts.confirmations.setdefault((attempt.channel, attempt.address), []).append(self.now)
        decision = Decision(
            allowed=True, reasons=(), next_allowed_at=self.now, rule_set="reply", zones=(),
            results=(RuleResult(OPT_OUT_RULE, True, detail="one immediate confirmation of an opt-out"),),
        )
        return Verdict(SEND, decision)

    # planner attempts

    def _stale(self, attempt: ContactAttempt, subject: Subject) -> str | None:
        """``stale`` when the attempt's step is no longer current or it is too old."""
        if attempt.source != AttemptSource.PLANNER.value:
            return None
        planner = _planner(attempt)
        zone = _zone(planner.get("zone")) or _zone(resolve_zones(
            subject.country, subject.region, subject.timezone, subject.phone_e164,
            self._default_zone()).names[0])
        assert zone is not None
        today = self.now.astimezone(zone).date()
        key = PlanKey.parse(attempt.dedupe_key)
        installment = self.facts.installments.get(attempt.installment_id or "")
        if key is not None and installment is not None and self.policy is not None:
            arm = key.arm
            ladder = self.policy.arms.get(arm)
            # With ``ladders`` the ladder is the borrower's by risk: the next planning pass re-chooses it
            # (superseding this row if another ladder is chosen); here its step must still be current.
            chosen_elsewhere = not self.policy.chooses_ladders and self.policy.arm_for(attempt.borrower_id) != arm
            if ladder is None or chosen_elsewhere:
                return STALE
            step = ladder.current_step((today - installment.due_date).days, self.policy.horizon_days)
            if step is None or step.day != key.day or step.channel != key.channel:
                return STALE
        planned_at = _instant(planner.get("at")) or attempt.updated_at or self.now
        planned_day = _day(planner.get("local_date")) or planned_at.astimezone(zone).date()
        if planned_day < today and self.now - planned_at > self.max_age:
            return STALE
        return None

    def _default_zone(self) -> str:
        return self.config.default_timezone if self.config is not None else self.default_timezone

    def _check(self, subject: Subject, attempt: ContactAttempt, history: Sequence[HistoryEntry],
               state: StopState) -> Decision:
        options: dict[str, Any] = {} if self.config is None else {"config": self.config}
        return check(subject, Channel(attempt.channel), self.now, history, state, loan_id=attempt.loan_id,
                     **options)


def _from_decision(decision: Decision) -> Verdict:
    if decision.allowed:
        return Verdict(SEND, decision)
    if decision.next_allowed_at is not None:
        return Verdict(DEFERRED, decision, decision.reasons, decision.next_allowed_at)
    return Verdict(BLOCKED, decision, decision.reasons)


def _is_current_address(attempt: ContactAttempt, subject: Subject) -> bool:
    if attempt.channel in {c.value for c in PHONE_CHANNELS}:
        return attempt.address == subject.phone_e164
    return (attempt.address or "").lower() == (subject.email or "").lower()


def _planner(attempt: ContactAttempt) -> Mapping[str, Any]:
    decision = attempt.decision if isinstance(attempt.decision, Mapping) else {}
    planner = decision.get("planner")
    return planner if isinstance(planner, Mapping) else {}


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def decision_json(decision: Decision | None, verdict: Verdict, now: datetime) -> dict[str, Any]:
    """The send-time decision as stored in the attempt's ``decision`` (compact, no personal data;
    bot.dispatch.attempts.with_decision)."""
    out: dict[str, Any] = {"at": now.isoformat(), "action": verdict.action, "reasons": list(verdict.reasons)}
    if decision is not None:
        out.update(decision.to_json())
        out["action"] = verdict.action
        out["reasons"] = list(verdict.reasons or decision.reasons)
        out["results"] = [
            {k: v for k, v in (("rule", r.rule), ("allowed", r.allowed), ("reason", r.reason)) if v is not None}
            for r in decision.results
        ]
    if verdict.next_at is not None:
        out["next_allowed_at"] = verdict.next_at.isoformat()
    return out
