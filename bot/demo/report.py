"""What happened, day by day: counts from the database, the dispatcher and the servers.

Only counts, borrower ids and kinds are shown: never a number, an address, a
name or a message text.  A day is a UTC calendar day; each borrower was
contacted in their own local hours within it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db.models import (
    CallSession,
    CallTurn,
    Consent,
    ContactAttempt,
    InboundMessage,
    Loan,
    Payment,
    Promise,
    Task,
)

__all__ = ["DayStats", "collect_day", "notable_calls", "print_days", "totals"]

#: reply intents with a column of their own; the rest are counted as "other"
INTENT_COLUMNS = (("paid", "paid"), ("promise_to_pay", "promise"), ("opt_out", "STOP"), ("dispute", "dispute"),
                  ("hardship", "hardship"))
#: outcomes of calls a person answered with a column of their own; the rest are "other"
#: (a call-back asked for, hardship, no date given, the rules said no at the answer...)
CALL_OUTCOME_COLUMNS = (("promise", "promise"), ("paid_claim", "paid"), ("dispute", "dispute"),
                        ("opt_out", "opt-\nout"), ("wrong_party", "wrong\nparty"), ("partial", "partial"))


@dataclass
class DayStats:
    day: date
    planned: Counter[str] = field(default_factory=Counter)        # planner contacts created, by channel
    dispatch: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, outcome) of every pass
    at_sandbox: int = 0         # SMS the sandbox accepted from the bot's REST calls
    at_mailbox: int = 0         # emails the mail server accepted
    delivered: int = 0          # SMS the status callbacks reported delivered
    undelivered: int = 0        # SMS the status callbacks reported undelivered / failed
    failed: Counter[str] = field(default_factory=Counter)         # permanent failures at send, by code
    voice_waiting: int = 0      # voice steps planned that day and not dialled
    answers: int = 0            # SMS the bot sent in answer to a reply
    blocked: int = 0            # contacts planned that day and blocked by a stop (opt-out, dispute, paid...)
    replies: Counter[str] = field(default_factory=Counter)        # SMS replies by intent
    payments: int = 0
    opt_outs: Counter[str] = field(default_factory=Counter)       # by channel
    promises: Counter[str] = field(default_factory=Counter)       # made, kept, broken
    tasks: Counter[str] = field(default_factory=Counter)          # opened, by kind
    #: calls placed that day: "placed", "person", "voicemail", "unanswered" (no answer, busy,
    #: failed after dialling), "outcome:<kind>" of those a person answered, borrower answers
    #: by "speech" and by "keys"
    calls: Counter[str] = field(default_factory=Counter)
    at_sandbox_calls: int = 0   # calls the sandbox accepted from the bot's REST calls
    extra: Counter[str] = field(default_factory=Counter)          # from extensions

    def sent(self, channel: str) -> int:
        return self.dispatch[(channel, "sent")]

    def held(self) -> int:
        return sum(n for (_c, outcome), n in self.dispatch.items() if outcome in ("deferred", "blocked", "cancelled"))

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "planned": dict(self.planned),
            "sent": {"sms": self.sent("sms"), "email": self.sent("email")},
            "at_sandbox": self.at_sandbox,
            "at_mailbox": self.at_mailbox,
            "delivered": self.delivered,
            "undelivered": self.undelivered,
            "failed": dict(self.failed),
            "held_at_send": self.held(),
            "voice_waiting": self.voice_waiting,
            "answers": self.answers,
            "blocked": self.blocked,
            "replies": dict(self.replies),
            "payments": self.payments,
            "opt_outs": dict(self.opt_outs),
            "promises": dict(self.promises),
            "tasks": dict(self.tasks),
            "calls": dict(self.calls),
            "at_sandbox_calls": self.at_sandbox_calls,
            "extra": dict(self.extra),
        }

    def call_outcome(self, kind: str) -> int:
        return self.calls[f"outcome:{kind}"]

    def other_call_outcomes(self) -> int:
        named = {f"outcome:{k}" for k, _ in CALL_OUTCOME_COLUMNS}
        return sum(n for k, n in self.calls.items() if k.startswith("outcome:") and k not in named)


def _grouped(session: Session, column: Any, *where: Any) -> Counter[str]:
    rows = session.execute(select(column, func.count()).where(*where).group_by(column)).all()
    return Counter({str(key): int(n) for key, n in rows})


def collect_day(session: Session, stats: DayStats, start: datetime, end: datetime) -> DayStats:
    """Fill ``stats`` with what the database says happened in ``[start, end)``."""
    A = ContactAttempt
    stats.planned = _grouped(session, A.channel, A.source == "planner", A.created_at >= start, A.created_at < end)
    sms_sent = (A.channel == "sms", A.sent_at >= start, A.sent_at < end)
    stats.delivered = session.scalar(select(func.count()).where(*sms_sent, A.outcome == "delivered")) or 0
    stats.undelivered = session.scalar(select(func.count()).where(*sms_sent, A.outcome == "failed")) or 0
    failed = session.execute(select(A.last_error).where(A.status == "failed", A.updated_at >= start,
                                                        A.updated_at < end)).scalars()
    stats.failed = Counter(_code(text) for text in failed)
    stats.answers = session.scalar(select(func.count()).where(*sms_sent, A.source == "reply")) or 0
    stats.blocked = session.scalar(select(func.count()).where(
        A.source == "planner", A.created_at >= start, A.created_at < end, A.status == "blocked")) or 0
    stats.voice_waiting = session.scalar(select(func.count()).where(
        A.channel == "voice", A.source == "planner", A.created_at >= start, A.created_at < end,
        A.status.in_(("planned", "deferred")))) or 0
    I = InboundMessage
    stats.replies = _grouped(session, I.intent, I.channel == "sms", I.received_at >= start, I.received_at < end)
    stats.payments = session.scalar(select(func.count()).where(
        Payment.id.like("DEMO-P%"), Payment.paid_at >= start, Payment.paid_at < end)) or 0
    stats.opt_outs = _grouped(session, Consent.channel, Consent.opted_out_at >= start, Consent.opted_out_at < end)
    made = session.scalar(select(func.count()).where(Promise.created_at >= start, Promise.created_at < end)) or 0
    resolved = _grouped(session, Promise.status, Promise.resolved_at >= start, Promise.resolved_at < end)
    stats.promises = Counter({"made": made, "kept": resolved["kept"], "broken": resolved["broken"]})
    stats.tasks = _grouped(session, Task.kind, Task.created_at >= start, Task.created_at < end)
    stats.calls = _calls(session, start, end)
    return stats


def _calls(session: Session, start: datetime, end: datetime) -> Counter[str]:
    """The calls placed in ``[start, end)`` and how they went (see :attr:`DayStats.calls`)."""
    C = CallSession
    calls: Counter[str] = Counter()
    rows = session.execute(select(C.answered_by, C.answered_at, C.outcome)
                           .where(C.call_sid.is_not(None), C.created_at >= start, C.created_at < end)).all()
    for answered_by, answered_at, outcome in rows:
        calls["placed"] += 1
        if answered_at is None:
            calls["unanswered"] += 1
        elif (answered_by or "").startswith("machine"):
            calls["voicemail"] += 1
        else:
            calls["person"] += 1
            calls[f"outcome:{outcome or 'none'}"] += 1
    sources = session.execute(
        select(CallTurn.source, func.count()).join(C, C.id == CallTurn.session_id)
        .where(CallTurn.speaker == "borrower", C.created_at >= start, C.created_at < end)
        .group_by(CallTurn.source)).all()
    for source, n in sources:
        if source == "speech":
            calls["speech"] += int(n)
        elif source == "dtmf":
            calls["keys"] += int(n)
    return calls


def _code(last_error: str | None) -> str:
    """``permanent: 21211 TwilioPermanentError`` -> ``21211``."""
    parts = (last_error or "").replace(":", " ").split()
    for part in parts:
        if part.isdigit():
            return part
    return parts[0] if parts else "?"


def totals(days: list[DayStats]) -> DayStats:
    total = DayStats(days[0].day if days else date.min)
    for d in days:
        for name in ("planned", "dispatch", "failed", "replies", "opt_outs", "promises", "tasks", "calls", "extra"):
            getattr(total, name).update(getattr(d, name))
        for name in ("at_sandbox", "at_mailbox", "delivered", "undelivered", "voice_waiting", "payments", "answers",
                     "blocked", "at_sandbox_calls"):
            setattr(total, name, getattr(total, name) + getattr(d, name))
    return total


def _n(value: int) -> str:
    return str(value) if value else "·"


def _table(title: str, headers: list[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
                  collapse_padding=True)
    for index, header in enumerate(headers):
        if index == 0:
            table.add_column(header, justify="left", no_wrap=True, min_width=9)
        else:
            table.add_column(header, justify="right")
    return table


def _fill(table: Table, days: list[DayStats], cells: Callable[[DayStats], list[str]]) -> Table:
    rows = [*days, totals(days)]
    for index, d in enumerate(rows):
        last = index == len(rows) - 1
        table.add_row("total" if last else d.day.strftime("%a %m-%d"), *cells(d),
                      end_section=index == len(rows) - 2, style="bold" if last else None)
    return table


def print_days(console: Console, days: list[DayStats], extra_columns: list[str], *, calls: bool = False) -> None:
    """Compact tables (they fit 80 columns): what the bot sent, what borrowers said, the calls
    (with ``calls``: the voice channel was on), what followed."""
    sent = _table("What the bot sent (UTC days; each borrower in their own local hours)",
                  ["day", "planned", "SMS\nsent", "emails\nsent", "SMS\ndelivered", "failed", "blocked",
                   "calls\nwaiting", *extra_columns])
    console.print(_fill(sent, days, lambda d: [
        _n(sum(d.planned.values())), _n(d.sent("sms")), _n(d.sent("email")), _n(d.delivered),
        _n(sum(d.failed.values()) + d.undelivered), _n(d.blocked), _n(d.voice_waiting),
        *(_n(d.extra[c]) for c in extra_columns)]))

    said = _table("What the borrowers texted back (as the bot read it), and its answers",
                  ["day", "texts", *(label for _k, label in INTENT_COLUMNS), "other", "answers"])
    console.print(_fill(said, days, lambda d: [
        _n(sum(d.replies.values())), *(_n(d.replies[k]) for k, _ in INTENT_COLUMNS),
        _n(sum(d.replies.values()) - sum(d.replies[k] for k, _ in INTENT_COLUMNS)), _n(d.answers)]))

    if calls:
        dialled = _table("The calls (D+3, D+7): who answered, and how the calls a person took ended",
                         ["day", "calls", "person", "voice-\nmail", *(label for _k, label in CALL_OUTCOME_COLUMNS)])
        console.print(_fill(dialled, days, lambda d: [
            _n(d.calls["placed"]), _n(d.calls["person"]), _n(d.calls["voicemail"]),
            *(_n(d.call_outcome(k)) for k, _ in CALL_OUTCOME_COLUMNS)]))

    followed = _table("What followed",
                      ["day", "payments", "SMS\nopt-outs", "email\nopt-outs", "promises\nmade", "kept",
                       "broken", "tasks\nopened"])
    console.print(_fill(followed, days, lambda d: [
        _n(d.payments), _n(d.opt_outs["sms"]), _n(d.opt_outs["email"]), _n(d.promises["made"]),
        _n(d.promises["kept"]), _n(d.promises["broken"]), _n(sum(d.tasks.values()))]))


def promise_states(session: Session) -> Counter[str]:
    """Every promise by its status now."""
    return _grouped(session, Promise.status)


def notable_borrowers(session: Session, cast: Any, kinds: list[Any], *, limit: int = 10) -> list[tuple[str, Any, str]]:
    """For each kind, the first borrower of it the bot wrote to, and what the bot recorded about them.

    Ids and facts only: the rows never carry a number, an address, a name or a text.
    """
    A = ContactAttempt
    written = session.execute(
        select(A.borrower_id, A.channel, func.count())
        .where(A.status.in_(("sent", "failed")), A.source == "planner")
        .group_by(A.borrower_id, A.channel)
    ).all()
    contacts: dict[str, Counter[str]] = {}
    for borrower_id, channel, n in written:
        contacts.setdefault(borrower_id, Counter())[channel] += int(n)
    rows: list[tuple[str, Any, str]] = []
    for kind in kinds:
        candidates = [b for b in sorted(cast.kinds) if cast.kinds[b] is kind and b in contacts]
        if not candidates:
            continue
        borrower_id = candidates[0]
        rows.append((borrower_id, kind, _recorded(session, borrower_id, contacts[borrower_id])))
        if len(rows) >= limit:
            break
    return rows


def _recorded(session: Session, borrower_id: str, contacts: Counter[str]) -> str:
    A = ContactAttempt
    facts: list[str] = []
    reached = ", ".join(_contacts(channel, n) for channel, n in sorted(contacts.items()))
    facts.append(f"contacted: {reached}")
    failed = session.scalars(select(A.last_error).where(A.borrower_id == borrower_id, A.status == "failed",
                                                         A.source == "planner")).all()
    for text in failed:
        facts.append(f"failed {_code(text)}")
    undelivered = session.scalar(select(func.count()).where(A.borrower_id == borrower_id,
                                                            A.outcome == "failed", A.status == "sent")) or 0
    if undelivered:
        facts.append(f"{undelivered} undelivered")
    intents = session.scalars(select(InboundMessage.intent).where(InboundMessage.borrower_id == borrower_id,
                                                                InboundMessage.channel == "sms")
                              .order_by(InboundMessage.received_at, InboundMessage.id)).all()
    if intents:
        facts.append("texted " + ", ".join(str(i) for i in intents))
    for status in session.scalars(select(Promise.status).where(Promise.borrower_id == borrower_id)
                                  .order_by(Promise.id)):
        facts.append(f"promise {status}")
    if session.scalar(select(func.count()).select_from(Payment).join(
            Loan, Loan.id == Payment.loan_id).where(Loan.borrower_id == borrower_id, Payment.id.like("DEMO-P%"))):
        facts.append("paid")
    for channel, flag, opted in session.execute(select(Consent.channel, Consent.address_flag, Consent.opted_out_at)
                                                .where(Consent.borrower_id == borrower_id)
                                                .order_by(Consent.channel)):
        if opted is not None:
            facts.append(f"opted out of {channel}")
        if flag:
            facts.append(f"{channel} address flagged {flag}")
    for kind in session.scalars(select(Task.kind).where(Task.borrower_id == borrower_id).order_by(Task.id)):
        facts.append(f"{kind} task")
    C = CallSession
    for call_id, status, answered_by, answered_at, outcome in session.execute(
            select(C.id, C.status, C.answered_by, C.answered_at, C.outcome)
            .where(C.borrower_id == borrower_id, C.call_sid.is_not(None)).order_by(C.id)):
        facts.append(f"call {call_id}: {_call_result(session, call_id, status, answered_by, answered_at, outcome)}")
    return "; ".join(facts)


def _contacts(channel: str, n: int) -> str:
    if channel == "voice":
        return "1 call" if n == 1 else f"{n} calls"
    return f"{n} {channel}"


def _call_result(session: Session, call_id: int, status: str, answered_by: str | None, answered_at: Any,
                 outcome: str | None) -> str:
    """How a call went, in a few words: ``not answered (busy)``, ``voicemail``, ``promise (spoken)``."""
    if answered_at is None:
        return f"not answered ({status})"
    if (answered_by or "").startswith("machine"):
        return "voicemail"
    sources = set(session.scalars(select(CallTurn.source).where(CallTurn.session_id == call_id,
                                                                CallTurn.speaker == "borrower")))
    how = "spoken" if "speech" in sources else "keys" if "dtmf" in sources else "silent"
    return f"{outcome or 'no outcome'} ({how})"


def notable_calls(session: Session, *, limit: int = 8) -> list[tuple[int, str, str, str]]:
    """The first call of each way a call went: ``(call id, borrower id, locale, result)``; a spoken one first."""
    C = CallSession
    rows = session.execute(select(C.id, C.borrower_id, C.locale, C.status, C.answered_by, C.answered_at, C.outcome)
                           .where(C.call_sid.is_not(None)).order_by(C.id)).all()
    found: dict[str, tuple[int, str, str, str]] = {}
    for call_id, borrower_id, locale, status, answered_by, answered_at, outcome in rows:
        result = _call_result(session, call_id, status, answered_by, answered_at, outcome)
        found.setdefault(result, (call_id, borrower_id, locale, result))
    ordered = sorted(found.values(), key=lambda r: (not r[3].endswith("(spoken)"), r[0]))
    return ordered[:limit]
