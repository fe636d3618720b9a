"""Who the simulated borrowers are: what each one does when the bot writes.

Every borrower of the demo portfolio gets a :class:`Kind`.  The phone side of
a kind is a sandbox :class:`~bot.sandbox.Persona` (line type, delivery, the
text it sends back and after how long, how it would answer a call), set on the
borrower's number; the rest (paying, keeping a promise, clicking an email's
unsubscribe link) is done by :mod:`bot.demo.actions`.

Casting.  A short run contacts only the borrowers whose installments reach a
reminder step in its days, so kinds are dealt in the order of each borrower's
first expected text message (computed from the policy's ladder and the due
dates, :func:`first_contacts`): the first borrowers to be texted get one of
each interesting kind (:data:`SHOWCASE_ROUND`), later ones a weighted random
kind from the seed.  The same portfolio and seed always give the same cast.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from bot.policy import Policy
from bot.sandbox import CallBehaviour, Persona

__all__ = [
    "KINDS_WITH_REPLIES",
    "SHOWCASE_ROUND",
    "WEIGHTS",
    "Cast",
    "Kind",
    "Reachable",
    "cast",
    "first_contacts",
    "persona_for",
    "reply_text",
]


class Kind(str, enum.Enum):
    PAYS = "pays"                       # pays when the reminder arrives, then texts "I already paid"
    PROMISE_KEPT = "promise_kept"       # promises a date and pays on it
    PROMISE_BROKEN = "promise_broken"   # promises "tomorrow" and does not pay
    OPT_OUT = "opt_out"                 # texts STOP (退订, 수신거부), clicks unsubscribe in emails
    DISPUTE = "dispute"                 # "this is not my loan"
    HARDSHIP = "hardship"               # "I lost my job"
    SILENT = "silent"                   # reads and ignores everything
    INVALID = "invalid_number"          # the number does not exist (Twilio 21211)
    LANDLINE = "landline"               # a landline: no SMS (Twilio 21614)
    UNREACHABLE = "unreachable"         # a mobile that is off: SMS undelivered (30003)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Kind.PAYS: "pays, then says so",
    Kind.PROMISE_KEPT: "promises a day, keeps it",
    Kind.PROMISE_BROKEN: "promises tomorrow, does not pay",
    Kind.OPT_OUT: "opts out (STOP, unsubscribe link)",
    Kind.DISPUTE: "disputes the debt",
    Kind.HARDSHIP: "reports hardship",
    Kind.SILENT: "ignores everything",
    Kind.INVALID: "invalid number",
    Kind.LANDLINE: "landline",
    Kind.UNREACHABLE: "phone off (undelivered)",
}

#: Dealt first, in this order, to the first borrowers the bot will text.
SHOWCASE_ROUND: tuple[Kind, ...] = (
    Kind.PROMISE_KEPT, Kind.OPT_OUT, Kind.DISPUTE, Kind.PAYS, Kind.INVALID, Kind.PROMISE_BROKEN,
    Kind.LANDLINE, Kind.SILENT, Kind.HARDSHIP, Kind.UNREACHABLE,
)

#: Shares of the kinds after the showcase round (and for borrowers never texted).
WEIGHTS: tuple[tuple[Kind, int], ...] = (
    (Kind.SILENT, 34), (Kind.PAYS, 14), (Kind.PROMISE_KEPT, 11), (Kind.PROMISE_BROKEN, 9),
    (Kind.OPT_OUT, 8), (Kind.DISPUTE, 5), (Kind.HARDSHIP, 4), (Kind.INVALID, 5), (Kind.LANDLINE, 5),
    (Kind.UNREACHABLE, 4),
)

#: What each kind texts back, per language (en-GB uses the English texts).
_TEXTS: dict[Kind, dict[str, str]] = {
    Kind.PAYS: {"en": "I already paid", "zh": "已经还了", "ko": "이미 갚았어요"},
    Kind.PROMISE_KEPT: {"en": "I'll pay Friday", "zh": "下周五还", "ko": "금요일에 갚을게요"},
    Kind.PROMISE_BROKEN: {"en": "I will pay tomorrow", "zh": "明天还", "ko": "내일 갚을게요"},
    Kind.OPT_OUT: {"en": "STOP", "zh": "退订", "ko": "수신거부"},
    Kind.DISPUTE: {"en": "This is not my loan, I dispute it", "zh": "这笔钱不是我借的", "ko": "대출한 적 없어요"},
    Kind.HARDSHIP: {"en": "I lost my job and cannot pay right now", "zh": "我失业了，现在还不上",
                    "ko": "실직해서 지금은 갚을 수 없어요"},
}
KINDS_WITH_REPLIES = frozenset(_TEXTS)

#: How each kind would answer a call (used once the voice channel dials).
_CALLS: dict[Kind, CallBehaviour] = {
    Kind.SILENT: CallBehaviour(answer="no-answer", ring_seconds=30),
    Kind.UNREACHABLE: CallBehaviour(answer="failed"),
    Kind.OPT_OUT: CallBehaviour(answer="machine"),
}


def reply_text(kind: Kind, locale: str) -> str | None:
    texts = _TEXTS.get(kind)
    if texts is None:
        return None
    return texts.get(locale.split("-")[0], texts["en"])


def persona_for(kind: Kind, locale: str, reply_after: float) -> Persona:
    """The sandbox persona of a borrower's phone: one scripted reply to the first message it gets."""
    call = _CALLS.get(kind, CallBehaviour())
    label = f"demo: {kind.value}"
    if kind is Kind.INVALID:
        return Persona(label=label, line_type="invalid", call=CallBehaviour(answer="failed"))
    if kind is Kind.LANDLINE:
        return Persona(label=label, line_type="landline", landline_sms="reject")
    if kind is Kind.UNREACHABLE:
        return Persona(label=label, delivery="undelivered", error_code=30003, call=call)
    text = reply_text(kind, locale)
    replies = [{"text": text, "after": reply_after}] if text else []
    return Persona(label=label, replies=replies, call=call)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Reachable:
    """What casting needs to know of a borrower (from the database after the import)."""

    borrower_id: str
    locale: str
    phone: str | None
    sms: bool          # has a phone with SMS consent
    due_dates: tuple[date, ...]  # outstanding installments


def first_contacts(borrowers: Iterable[Reachable], policy: Policy, start: date, days: int) -> dict[str, date]:
    """The first date in ``[start - 1, start + days)`` on which a borrower's SMS step is current.

    An approximation of what the planner will do (it ignores the rules; a
    borrower west of UTC is still on the day before when a UTC day begins,
    hence the extra day), good enough to deal the interesting kinds to
    borrowers the run will actually text.
    """
    found: dict[str, date] = {}
    for b in borrowers:
        if not b.sms:
            continue
        ladder = policy.ladder_for(b.borrower_id)
        for n in range(-1, days):
            today = start + timedelta(days=n)
            if any((step := ladder.current_step((today - due).days, policy.horizon_days)) is not None
                   and step.channel == "sms" for due in b.due_dates):
                found[b.borrower_id] = today
                break
    return found


@dataclass(frozen=True)
class Cast:
    kinds: Mapping[str, Kind]              # borrower id -> kind
    reply_after: Mapping[str, float]       # borrower id -> seconds from delivery to reply

    def of(self, kind: Kind) -> list[str]:
        return sorted(b for b, k in self.kinds.items() if k is kind)


def cast(borrowers: list[Reachable], policy: Policy, start: date, days: int, seed: int) -> Cast:
    """Deal a kind to every borrower: the showcase round first to those texted first."""
    rng = random.Random(f"demo-cast:{seed}")
    first = first_contacts(borrowers, policy, start, days)
    texted = sorted(first, key=lambda b: (first[b], rng.random()))
    kinds: dict[str, Kind] = {}
    population = [k for k, _ in WEIGHTS]
    weights = [w for _, w in WEIGHTS]
    for index, borrower_id in enumerate(texted):
        kinds[borrower_id] = SHOWCASE_ROUND[index] if index < len(SHOWCASE_ROUND) else \
            rng.choices(population, weights)[0]
    for b in sorted(borrowers, key=lambda b: b.borrower_id):
        if b.borrower_id not in kinds:
            kinds[b.borrower_id] = rng.choices(population, weights)[0]
    reply_after = {b.borrower_id: float(rng.randint(1, 20) * 60) for b in sorted(borrowers, key=lambda b: b.borrower_id)}
    return Cast(kinds, reply_after)
