"""A policy step's risk conditions: ``when: {segments, min_risk_score, max_risk_score, score}``.

Parsed and validated with the rest of the policy (bot.policy), in a module of its own:

* ``segments``: the lender's segments the step serves (the loan's segment, else the
  borrower's; a borrower without one matches no list);
* ``min_risk_score`` / ``max_risk_score``: inclusive bounds 0-1000 on the score;
* ``score``: which score is compared: ``lender`` (the lender's risk_score; none: the
  step does not apply), ``early_warning`` (bot.risk), or left out: the lender's score
  when there is one, else the early-warning score.

docs/policy.md "Risk and segments" describes them; docs/risk.md the scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr

from bot.risk import MAX_SCORE, RiskFacts, score_for

__all__ = ["SKIP_RISK_SCORE", "SKIP_SEGMENT", "RiskCondition", "RiskWhenFields", "build_condition"]

SKIP_SEGMENT = "condition_segment"
SKIP_RISK_SCORE = "condition_risk_score"

Score = Annotated[StrictInt, Field(ge=0, le=MAX_SCORE)]


class RiskWhenFields(BaseModel):
    """The risk keys of a step's ``when`` (mixed into the policy's own ``when`` model)."""

    segments: Annotated[list[StrictStr], Field(min_length=1)] | None = None
    min_risk_score: Score | None = None
    max_risk_score: Score | None = None
    score: Literal["lender", "early_warning"] | None = None


@dataclass(frozen=True, slots=True)
class RiskCondition:
    segments: frozenset[str] | None = None
    min_score: int | None = None
    max_score: int | None = None
    source: str | None = None  # None: lender when present, else early_warning

    @property
    def uses_score(self) -> bool:
        return self.min_score is not None or self.max_score is not None

    def describe(self) -> list[str]:
        out = []
        if self.segments is not None:
            out.append("segment in " + ", ".join(sorted(self.segments)))
        if self.uses_score:
            which = {"lender": "the lender's risk score", "early_warning": "the early-warning score"}.get(
                self.source or "", "risk score (lender's, else early warning)")
            low = self.min_score if self.min_score is not None else 0
            high = self.max_score if self.max_score is not None else MAX_SCORE
            out.append(f"{which} {low}-{high}")
        return out

    def evaluate(self, facts: RiskFacts | None, loan_id: str) -> tuple[str | None, dict[str, Any]]:
        """``(skip reason or None, what matched)`` for the installment's loan."""
        facts = facts or RiskFacts()
        matched: dict[str, Any] = {}
        if self.segments is not None:
            segment = facts.lender_segment(loan_id)
            matched["segment"] = segment
            if segment not in self.segments:
                return SKIP_SEGMENT, matched
        if self.uses_score:
            found = score_for(facts, loan_id, self.source)
            matched["risk_score"] = None if found is None else found.score
            matched["score_source"] = None if found is None else found.source
            if found is None:
                return SKIP_RISK_SCORE, matched
            if self.min_score is not None and found.score < self.min_score:
                return SKIP_RISK_SCORE, matched
            if self.max_score is not None and found.score > self.max_score:
                return SKIP_RISK_SCORE, matched
        matched["when"] = self.describe()
        return None, matched


def build_condition(raw: RiskWhenFields, error: Callable[[tuple[str, ...], str], None]) -> RiskCondition | None:
    """The condition of a parsed ``when`` (None without risk keys); ``error(key path, message)``
    reports what the types alone cannot (min above max, a key that needs another)."""
    if raw.min_risk_score is not None and raw.max_risk_score is not None and raw.min_risk_score > raw.max_risk_score:
        error(("min_risk_score",), f"when.min_risk_score {raw.min_risk_score} is above when.max_risk_score "
                                   f"{raw.max_risk_score}")
    if raw.score is not None and raw.min_risk_score is None and raw.max_risk_score is None:
        error(("score",), "when.score needs when.min_risk_score or when.max_risk_score")
    if raw.segments is not None:
        for index, name in enumerate(raw.segments):
            if not name.strip():
                error(("segments", index), f"when.segments[{index}]: empty segment name")
    if raw.segments is None and raw.min_risk_score is None and raw.max_risk_score is None:
        return None
    return RiskCondition(frozenset(raw.segments) if raw.segments is not None else None,
                         raw.min_risk_score, raw.max_risk_score, raw.score)
