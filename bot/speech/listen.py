"""``understand``: one recorded answer -> what the borrower meant (docs/speech.md).

Recognition with the grammar for the prompt, then :func:`bot.nlu.classify` on
each hypothesis of the n-best list (context ``yes_no`` after a yes/no
question, ``voice`` otherwise).  Every hypothesis votes for its intent with
its weight (``exp(score - best)``), so that an intent several close
hypotheses agree on beats a single lucky one; a hypothesis the classifier
cannot place (``other``) does not vote unless nothing else does.  The
confidence is the winning intent's share of the vote times the classifier's
confidence in its best hypothesis.

The call flow calls this once per recording; it never logs what was said.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from bot.domain import Intent
from bot.speech.audio import Pcm
from bot.speech.grammars import EXPECTS, grammar_for
from bot.speech.stt import SCORE_TEMPERATURE, Alternative, ModelRegistry, Recognizer

if TYPE_CHECKING:
    from bot.nlu import Interpretation

__all__ = ["Heard", "understand"]


@dataclass(frozen=True, slots=True)
class Heard:
    """What an answer meant.

    ``text`` is the recognised words the decision rests on (personal data:
    show it to the borrower's own case, never log it); ``confidence`` is 0..1;
    ``promise_date`` only on ``promise_to_pay`` with a date inside the promise
    window.  ``matched`` is the classifier's rule name (safe to log),
    ``source`` the decode that produced the text (``grammar``, ``free`` or
    ``silence``) and ``recognition_confidence`` the recogniser's word confidence.
    """

    text: str
    confidence: float
    intent: Intent
    promise_date: date | None
    duration_s: float
    matched: str = ""
    source: str = ""
    recognition_confidence: float = 0.0


def understand(
    pcm: Pcm,
    locale: str,
    *,
    expect: str | None,
    today: date,
    recognizer: Recognizer | None = None,
    registry: ModelRegistry | None = None,
) -> Heard:
    """Recognise ``pcm`` with the grammar for ``expect`` and classify it with :mod:`bot.nlu`.

    ``expect`` is ``yes_no``, ``date``, ``intent``, ``digits`` or None (free
    recognition); ``today`` is the borrower's local date (promise dates are
    resolved against it).  Raises :class:`bot.speech.errors.NoModelError` for
    a locale without a speech model (check ``has_model`` first and use the
    keypad), ValueError for an unknown ``expect`` or locale.
    """
    from bot.nlu import classify

    if expect is not None and expect not in EXPECTS:
        raise ValueError(f"unknown expect {expect!r}; use one of {', '.join(EXPECTS)} or None")
    if recognizer is None:
        recognizer = Recognizer(registry) if registry is not None else Recognizer()
    recognition = recognizer.recognize(pcm, locale, grammar=grammar_for(locale, expect))
    context = "yes_no" if expect == "yes_no" else "voice"
    hypotheses = recognition.alternatives or (Alternative(recognition.text, 0.0),)
    best_score = hypotheses[0].score
    mass: dict[Intent, float] = defaultdict(float)
    first: dict[Intent, tuple[str, Interpretation]] = {}
    for alternative in hypotheses:
        interpretation = classify(alternative.text, locale=locale, today=today, context=context)
        weight = math.exp((alternative.score - best_score) / SCORE_TEMPERATURE)
        mass[interpretation.intent] += weight
        first.setdefault(interpretation.intent, (alternative.text, interpretation))
    voting = {intent: m for intent, m in mass.items() if intent is not Intent.OTHER} or dict(mass)
    winner = max(voting, key=lambda intent: voting[intent])
    text, interpretation = first[winner]
    share = mass[winner] / sum(mass.values())
    confidence = round(min(1.0, share * interpretation.confidence), 2)
    if not recognition.text:
        confidence = 0.0
    return Heard(
        text=text,
        confidence=confidence,
        intent=winner,
        promise_date=interpretation.promise_date,
        duration_s=round(pcm.duration_s, 3),
        matched=interpretation.matched,
        source=recognition.source,
        recognition_confidence=recognition.confidence,
    )
