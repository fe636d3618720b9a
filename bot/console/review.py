"""The review queue: which calls need a person, why, and in what order (docs/console.md).

Every reason is an SQL condition on the stored call (its outcome, flags, the
script's facts) and its turns (intents, corrections, confidences, silences,
read-back answers), so the list, the queue and "Next" compute them for a whole
page, or the whole table, in one query each, never call by call in Python.

A reason has a code (stable, in the JSON API), a human label and an urgency
rank (lower first): what can breach a rule or hurt the borrower if nobody looks
(an opt-out, a dispute, a paid claim) comes before a wrong party, which comes
before the quality of the conversation (an unfinished disclosure, an
unconfirmed promise, a refused read-back, a spoken answer recognised with a margin
barely above the acceptance threshold, low confidence, silences).

A call nobody took part in — a voicemail, busy, unanswered, failed or cancelled
call, an answering machine or a fax — has no reason at all, whatever its flags:
it never enters the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, cast, exists, false, func, not_, or_, select, update
from sqlalchemy.orm import Session

from bot.console.i18n import N_
from bot.db.models import CallSession, CallTurn

__all__ = [
    "NOBODY_OUTCOMES",
    "NOBODY_STATUSES",
    "REASONS",
    "Reason",
    "ReviewRules",
    "claim_next",
    "labels",
    "queue_conditions",
    "readback_nodes",
    "reasons_for",
    "urgency",
]

#: Outcomes of calls nobody took part in: never to review.
NOBODY_OUTCOMES = ("voicemail", "no_answer", "busy", "failed", "canceled")
#: Final call statuses of calls nobody answered.
NOBODY_STATUSES = ("busy", "no-answer", "failed", "canceled")
#: Silences (no answer to a question) in one call from which a person should listen to it.
SILENCES_FOR_REVIEW = 2


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    label: str
    rank: int  # urgency: lower first


#: Every reason, most urgent first (the order of the ranks).
REASONS: tuple[Reason, ...] = (
    Reason("opt_out", N_("asked to stop calls"), 0),
    Reason("dispute", N_("disputes the debt"), 1),
    Reason("paid_claim", N_("says it is paid"), 2),
    Reason("paid_during_call", N_("paid during the call"), 3),
    Reason("compliance_at_answer", N_("not allowed any more at the answer"), 4),
    Reason("wrong_party", N_("wrong person"), 5),
    Reason("disclosure_not_completed", N_("disclosure not completed"), 6),
    Reason("unconfirmed_promise", N_("promise date not confirmed"), 7),
    Reason("readback_refused", N_("said no to a read-back"), 8),
    Reason("low_margin", N_("barely recognised (low margin)"), 9),
    Reason("low_confidence", N_("low recognition confidence"), 10),
    Reason("silences", N_("silences"), 11),
    Reason("flagged", N_("flagged"), 12),
)
_BY_CODE = {r.code: r for r in REASONS}
#: Flags the voice service sets that are reasons of their own.
_FLAG_CODES = ("opt_out", "dispute", "paid_claim", "paid_during_call", "compliance_at_answer", "wrong_party",
               "low_confidence")


@dataclass(frozen=True, slots=True)
class ReviewRules:
    """What the reasons depend on besides the data: the confidence below which a turn is low,
    the script nodes that are read-back questions, and the recognition margin below which a
    spoken turn is low (None: no "low margin" reason)."""

    low_confidence: float
    readback_nodes: tuple[str, ...] = ()
    low_margin: float | None = None


def labels(codes: Iterable[str]) -> list[str]:
    return [_BY_CODE[c].label if c in _BY_CODE else c for c in codes]


@lru_cache(maxsize=8)
def readback_nodes(scripts_dir: str | None) -> tuple[str, ...]:
    """The read-back question nodes (``check: readback``) of every script in ``scripts_dir``."""
    from bot.config import DEFAULT_VOICE_SCRIPTS_DIR
    from bot.scripts.loader import ScriptError, load_script

    root = Path(scripts_dir) if scripts_dir else DEFAULT_VOICE_SCRIPTS_DIR
    nodes: set[str] = set()
    for file in sorted(root.glob("*/*.yaml")):
        try:
            script = load_script(file.parent.name, file.stem, scripts_dir=root)
        except ScriptError:
            continue  # a broken script places no call; `bot scripts check` reports it
        nodes.update(script.readback.values())
    return tuple(sorted(nodes))


def _nobody() -> ColumnElement[bool]:
    c = CallSession
    machine = and_(c.answered_by.is_not(None), c.answered_by.startswith("machine") | (c.answered_by == "fax"))
    # coalesced: a call without an outcome yet (NULL) is not "nobody's" (NOT (NULL IN ...) is NULL, not true)
    return or_(func.coalesce(c.outcome, "").in_(NOBODY_OUTCOMES), func.coalesce(c.status, "").in_(NOBODY_STATUSES),
               machine)


def _flag(code: str) -> ColumnElement[bool]:
    # flags is {"reasons": [...]}: a quoted code in its JSON text (PostgreSQL's json keeps the text as written).
    return and_(CallSession.flagged.is_(True), cast(CallSession.flags, String).like(f'%"{code}"%'))


def _turn(*where: Any) -> ColumnElement[bool]:
    t = CallTurn
    return exists().where(t.session_id == CallSession.id, t.speaker == "borrower", *where)


def _meant(*intents: str) -> ColumnElement[bool]:
    t = CallTurn
    return _turn(func.coalesce(t.corrected_intent, t.intent).in_(intents))


def _fact(name: str) -> Any:
    return CallSession.state[("facts", name)]


def _conditions(rules: ReviewRules) -> dict[str, ColumnElement[bool]]:
    """Each reason as a condition on a ``call_sessions`` row (before the nobody exclusion)."""
    c, t = CallSession, CallTurn
    known_flags = or_(*[_flag(code) for code in _FLAG_CODES])
    silences = (select(func.count()).where(t.session_id == c.id, t.speaker == "borrower", t.source == "silence")
                .correlate(c).scalar_subquery())
    return {
        "opt_out": or_(c.outcome == "opt_out", _meant("opt_out")),
        "dispute": or_(c.outcome == "dispute", _flag("dispute"), _meant("dispute")),
        "paid_claim": or_(c.outcome == "paid_claim", _flag("paid_claim"), _meant("paid")),
        "paid_during_call": _flag("paid_during_call"),
        "compliance_at_answer": _flag("compliance_at_answer"),
        "wrong_party": or_(c.outcome == "wrong_party", _meant("wrong_number")),
        "disclosure_not_completed": and_(_fact("right_party_confirmed").as_boolean().is_(True),
                                         func.coalesce(_fact("disclosed").as_boolean(), False).is_(False)),
        "unconfirmed_promise": and_(_fact("promise_date").as_string().is_not(None),
                                    func.coalesce(_fact("promise_confirmed").as_boolean(), False).is_(False)),
        "readback_refused": (_turn(t.node.in_(rules.readback_nodes),
                                   func.coalesce(t.corrected_intent, t.intent) == "deny")
                             if rules.readback_nodes else false()),
        "low_margin": (_turn(t.source == "speech", t.margin.is_not(None), t.margin < rules.low_margin)
                       if rules.low_margin is not None else false()),
        "low_confidence": or_(c.min_confidence < rules.low_confidence, _flag("low_confidence"),
                              _turn(t.confidence < rules.low_confidence)),
        "silences": silences >= SILENCES_FOR_REVIEW,
        "flagged": and_(c.flagged.is_(True), not_(known_flags)),
    }


def _any(conditions: dict[str, ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(not_(_nobody()), or_(*conditions.values()))


def urgency(rules: ReviewRules) -> ColumnElement[int]:
    """The rank of a call's most urgent reason (100 when it has none): the queue's first sort key."""
    conditions = _conditions(rules)
    return case(*[(conditions[r.code], r.rank) for r in REASONS], else_=100)


def queue_conditions(rules: ReviewRules) -> list[ColumnElement[bool]]:
    """The calls in the queue: not reviewed, somebody took part, at least one reason."""
    return [CallSession.reviewed_at.is_(None), _any(_conditions(rules))]


def queue_order(rules: ReviewRules) -> list[Any]:
    """Most urgent first, then the call waiting longest."""
    return [urgency(rules), CallSession.started_at, CallSession.id]


def reasons_for(session: Session, ids: Sequence[int], rules: ReviewRules) -> dict[int, list[str]]:
    """Each call's reason codes, most urgent first, in one query (a call with none maps to [])."""
    if not ids:
        return {}
    conditions = _conditions(rules)
    columns = [case((and_(not_(_nobody()), cond), 1), else_=0).label(code) for code, cond in conditions.items()]
    found: dict[int, list[str]] = {}
    for row in session.execute(select(CallSession.id, *columns).where(CallSession.id.in_(list(ids)))):
        flags = row._mapping
        found[row[0]] = [r.code for r in REASONS if flags[r.code]]
    return found


def claim_next(session: Session, rules: ReviewRules, *, me: str, at: datetime) -> int | None:
    """The most urgent call in the queue that is mine or nobody's, assigned to me; None when empty.

    The assignment is a conditional UPDATE (``assigned_to IS NULL``), so two supervisors
    pressing "Next" at once never get the same call: the loser takes the one after.
    """
    from bot.console.audit import record

    c = CallSession
    skip: list[int] = []
    for _ in range(20):
        mine_or_free = or_(c.assigned_to.is_(None), c.assigned_to == me)
        query = (select(c.id, c.assigned_to, c.borrower_id).where(*queue_conditions(rules), mine_or_free,
                                                                  c.id.not_in(skip))
                 .order_by(*queue_order(rules)).limit(1))
        row = session.execute(query).first()
        if row is None:
            return None
        call_id, assigned, borrower_id = row
        if assigned == me:
            return int(call_id)
        taken = session.execute(update(c).where(c.id == call_id, c.assigned_to.is_(None))
                                .values(assigned_to=me, assigned_at=at)).rowcount
        if taken:
            record(session, at, actor=me, action="call.assigned", subject_type="call", subject_id=call_id,
                   detail={"borrower_id": borrower_id, "from": None, "to": me, "via": "next"})
            return int(call_id)
        skip.append(int(call_id))
    return None
