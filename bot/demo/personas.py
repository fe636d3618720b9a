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

Calls.  Each borrower also has a :class:`~bot.demo.calls.CallStyle`, how they
answer the bot's calls (D+3, D+7): it follows from their kind (a promise
keeper promises a day, an opt-out asks not to be called, a borrower who
ignores everything lets a machine take the call or does not pick up...).  The
first borrowers the bot actually calls get the call showcase round, dealt at
dial time (:class:`CallShowcase`): one of each way a call can go, and to the
first Korean borrowers called a promise, "it is paid" and "it is not my debt"
said aloud.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.demo.calls import CallStyle, spoken_locale
from bot.policy import Policy
from bot.sandbox import CallBehaviour, Persona

__all__ = [
    "CALL_SHOWCASE_ROUND",
    "CallShowcase",
    "KINDS_WITH_REPLIES",
    "SPOKEN_SHOWCASE_ROUND",
    "SHOWCASE_ROUND",
    "WEIGHTS",
    "Cast",
    "Kind",
    "Reachable",
    "cast",
    "first_calls",
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

#: How each kind answers a call (borrowers who ignore everything: see :data:`SILENT_CALLS`).
CALL_STYLES: dict[Kind, CallStyle] = {
    Kind.PAYS: CallStyle.PAID,
    Kind.PROMISE_KEPT: CallStyle.PROMISE,
    Kind.PROMISE_BROKEN: CallStyle.PROMISE,
    Kind.OPT_OUT: CallStyle.OPT_OUT,
    Kind.DISPUTE: CallStyle.DISPUTE,
    Kind.HARDSHIP: CallStyle.HANG_UP,
    Kind.INVALID: CallStyle.FAILED,
    Kind.LANDLINE: CallStyle.WRONG_PARTY,   # a shared line: somebody else answers
    Kind.UNREACHABLE: CallStyle.FAILED,
}
#: Borrowers who ignore everything let the call ring out, or a machine take it, or are busy.
SILENT_CALLS: tuple[tuple[CallStyle, int], ...] = (
    (CallStyle.VOICEMAIL, 5), (CallStyle.NO_ANSWER, 3), (CallStyle.BUSY, 2),
)

#: Dealt at dial time, in this order, to the first borrowers the bot calls (:class:`CallShowcase`).
CALL_SHOWCASE_ROUND: tuple[tuple[Kind, CallStyle], ...] = (
    (Kind.SILENT, CallStyle.VOICEMAIL),
    (Kind.LANDLINE, CallStyle.WRONG_PARTY),
    (Kind.OPT_OUT, CallStyle.OPT_OUT),
    (Kind.PROMISE_KEPT, CallStyle.PROMISE),
    (Kind.HARDSHIP, CallStyle.HANG_UP),
    (Kind.SILENT, CallStyle.NO_ANSWER),
    (Kind.PROMISE_BROKEN, CallStyle.PROMISE),
    (Kind.SILENT, CallStyle.BUSY),
)
#: ... and these to the first Korean borrowers called, who say it aloud (on the keypad there is no
#: key for "it is paid" or "it is not my debt").
SPOKEN_SHOWCASE_ROUND: tuple[tuple[Kind, CallStyle], ...] = (
    (Kind.PROMISE_KEPT, CallStyle.PROMISE),
    (Kind.PAYS, CallStyle.PAID),
    (Kind.DISPUTE, CallStyle.DISPUTE),
)


def reply_text(kind: Kind, locale: str) -> str | None:
    texts = _TEXTS.get(kind)
    if texts is None:
        return None
    return texts.get(locale.split("-")[0], texts["en"])


def persona_for(kind: Kind, locale: str, reply_after: float, call: CallBehaviour | None = None, *,
                texts: bool = True) -> Persona:
    """The sandbox persona of a borrower's phone: one scripted reply to the first message it gets
    (none without ``texts``), and ``call``: how it answers a call (default: a person who says nothing)."""
    call = call or CallBehaviour()
    label = f"demo: {kind.value}"
    if kind is Kind.INVALID:
        return Persona(label=label, line_type="invalid", call=CallBehaviour(answer="failed"))
    if kind is Kind.LANDLINE:
        return Persona(label=label, line_type="landline", landline_sms="reject", call=call)
    if kind is Kind.UNREACHABLE:
        return Persona(label=label, delivery="undelivered", error_code=30003, call=call)
    text = reply_text(kind, locale) if texts else None
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
    voice: bool = False  # has a phone with consent to calls


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


def first_calls(borrowers: Iterable[Reachable], policy: Policy, start: date, days: int) -> dict[str, date]:
    """The first date in ``[start - 1, start + days)`` on which a borrower's voice step is current
    (the same approximation as :func:`first_contacts`)."""
    found: dict[str, date] = {}
    for b in borrowers:
        if not (b.voice and b.phone):
            continue
        ladder = policy.ladder_for(b.borrower_id)
        for n in range(-1, days):
            today = start + timedelta(days=n)
            if any((step := ladder.current_step((today - due).days, policy.horizon_days)) is not None
                   and step.channel == "voice" for due in b.due_dates):
                found[b.borrower_id] = today
                break
    return found


@dataclass(frozen=True)
class Cast:
    kinds: dict[str, Kind]                 # borrower id -> kind (the call showcase may change a few)
    reply_after: Mapping[str, float]       # borrower id -> seconds from delivery to reply
    calls: dict[str, CallStyle] = field(default_factory=dict)      # borrower id -> how they answer calls
    call_day: Mapping[str, date] = field(default_factory=dict)     # borrower id -> first call expected
    showcase: frozenset[str] = frozenset()  # the borrowers the texting showcase round went to

    def of(self, kind: Kind) -> list[str]:
        return sorted(b for b, k in self.kinds.items() if k is kind)


#: Kinds that say what the line is (they keep their call style): not dealt again at dial time.
LINE_KINDS = frozenset({Kind.INVALID, Kind.LANDLINE, Kind.UNREACHABLE})


class CallShowcase:
    """The call showcase round, dealt at dial time: the first calls the bot places get one of each
    way a call can go (:data:`CALL_SHOWCASE_ROUND`), whatever the rules let through; the first
    Korean borrowers called get :data:`SPOKEN_SHOWCASE_ROUND` first.

    Borrowers of the texting showcase round and those whose kind is about the line itself are
    left as they are.  :meth:`deal` returns the new kind and call style, or None.
    """

    def __init__(self, the_cast: Cast) -> None:
        self.cast = the_cast
        self.spoken = list(SPOKEN_SHOWCASE_ROUND)
        self.slots = list(CALL_SHOWCASE_ROUND)
        self.dealt: set[str] = set()

    def deal(self, borrower_id: str, locale: str) -> tuple[Kind, CallStyle] | None:
        if borrower_id in self.dealt or borrower_id in self.cast.showcase:
            return None
        self.dealt.add(borrower_id)
        if self.cast.kinds.get(borrower_id) in LINE_KINDS:
            return None
        if spoken_locale(locale) and self.spoken:
            return self.spoken.pop(0)
        return self.slots.pop(0) if self.slots else None


def cast(borrowers: list[Reachable], policy: Policy, start: date, days: int, seed: int) -> Cast:
    """Deal a kind to every borrower: the showcase round first to those texted first, the call
    showcase round to the first called before being texted; and how each answers calls."""
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

    # How each answers calls: from the kind, with a generator of its own for those who ignore
    # everything, so that the texting cast stays what it was without calls.
    calls_rng = random.Random(f"demo-calls:{seed}")
    called = first_calls(borrowers, policy, start, days)
    calls: dict[str, CallStyle] = {}
    silent = [style for style, _ in SILENT_CALLS]
    silent_weights = [w for _, w in SILENT_CALLS]
    for borrower_id in sorted(kinds):
        if kinds[borrower_id] is Kind.SILENT:
            calls[borrower_id] = calls_rng.choices(silent, silent_weights)[0]
        else:
            calls[borrower_id] = CALL_STYLES[kinds[borrower_id]]
    showcase = frozenset(texted[:len(SHOWCASE_ROUND)])
    return Cast(kinds, reply_after, calls, called, showcase)
