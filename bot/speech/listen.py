"""``understand``: one recorded answer -> what the borrower meant (docs/speech.md).

With a prompt kind (``expect``) the expected replies come in groups, one per
intent (:func:`bot.speech.grammars.phrase_groups`).  Each group is decoded as
a grammar of its own and the group whose phrases fit the audio best wins; the
classifier (:func:`bot.nlu.classify`, context ``yes_no`` after a yes/no
question, ``voice`` otherwise) then reads the words heard with that group,
which gives the promise date and confirms the intent.  Among groups within
:data:`AGREEMENT_MARGIN` of the best score, the first whose words the
classifier confirms wins (a short reply such as "예" otherwise loses to the
tail of a longer phrase, "중이에요").  Without ``expect``, or when no group
heard anything, free recognition and the classifier decide.

Confidence: the winning intent's share of a softmax over the group scores
(temperature :data:`CONFIDENCE_TEMPERATURE`; groups of one intent add up),
times the classifier's confidence when it agrees with the group (times 0.6
when it does not: the group still says what was meant, but the words heard
were only part of a phrase).

Acceptance ("not in any grammar" is a result): the competition can also
decode the audio with a filler grammar (common syllables following one another
freely, :func:`bot.speech.grammars.filler_for`), a garbage model for words
outside every group.  :attr:`bot.speech.stt.Competition.margin` is the best
group's score minus ``GARBAGE_WEIGHT`` times the filler's (fitted: 0.5), per
second of audio decoded.  Below ``accept_margin``, or below
``accept_confidence``, the answer is intent ``other`` with confidence 0: the
script asks again, it never acts on a forced match.  Both defaults,
:data:`ACCEPT_MARGIN` and :data:`ACCEPT_CONFIDENCE`, are fitted on the tuning
clips of ``bench/voice_bench.py --accuracy`` (never on the held-out set) and
are the ``speech_accept_margin`` and ``speech_accept_confidence`` settings.
``Heard.accepted`` says whether the bot would act: an intent other than
``other`` (a promise with a date) at ``min_confidence`` or more.

The call flow calls this once per recording; it never logs what was said.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from bot.domain import Intent
from bot.speech.audio import Pcm
from bot.speech.grammars import EXPECTS, filler_for, grammar_for, intent_of, phrase_groups
from bot.speech.stt import GARBAGE_WEIGHT, Competition, GroupResult, ModelRegistry, Recognizer

if TYPE_CHECKING:
    from bot.nlu import Interpretation

__all__ = ["ACCEPT_MARGIN", "HeardAlternative", "Heard", "understand"]

DISAGREEMENT_FACTOR = 0.6
CONFIDENCE_TEMPERATURE = 0.5  # group scores -> shares; calibrated on the clips of docs/speech.md
DATE_MARGIN = 3.0  # how much worse a dated promise may score than an undated one and still win
AGREEMENT_MARGIN = 1.0  # score units (log-likelihood at the decoding acoustic scale); measured in docs/speech.md
ACCEPT_MARGIN = 2.39  # Competition.margin (per second) below it: not understood (speech_accept_margin); docs/speech.md
ACCEPT_CONFIDENCE = 0.85  # below it: not understood; fitted with ACCEPT_MARGIN (setting speech_accept_confidence)
MIN_CONFIDENCE = 0.5  # the voice scripts' default min_confidence: below it the bot asks again
SHORTLIST = 3  # groups decoded on their own after one decode with all of them (bounded work per turn)


@dataclass(frozen=True, slots=True)
class HeardAlternative:
    """One reading of the answer: the intent of a group, the words heard with its grammar, the decoder's score."""

    intent: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Heard:
    """What an answer meant.

    ``text`` is the recognised words the decision rests on (the borrower's own
    words: never log them); ``confidence`` is 0..1; ``promise_date`` is set
    only on ``promise_to_pay`` with a date inside the promise window.
    ``matched`` is the classifier's rule name (safe to log), ``source`` the
    decode that produced the text (``grammar``, ``free`` or ``silence``) and
    ``recognition_confidence`` the recogniser's mean word confidence.
    """

    text: str
    confidence: float
    intent: Intent
    promise_date: date | None
    duration_s: float
    matched: str = ""
    source: str = ""
    recognition_confidence: float = 0.0
    alternatives: tuple[HeardAlternative, ...] = ()  # every group decoded, best first; the filler last
    accepted: bool = False  # the bot would act on it (see the module docstring)
    margin: float | None = None  # best group minus the filler grammar, per second (None: no filler decode)
    decoded_s: float = 0.0  # length of the audio the groups were decoded on (silence around the speech trimmed)


def _intent_share(results: tuple[GroupResult, ...], intent: str, reference: float) -> float:
    """The intent's share of a softmax over the group scores (groups of one intent add up)."""
    weights = [(intent_of(r.label), math.exp((r.score - reference) / CONFIDENCE_TEMPERATURE)) for r in results]
    total = sum(w for _, w in weights)
    return sum(w for label, w in weights if label == intent) / total if total else 0.0


def understand(
    pcm: Pcm,
    locale: str,
    *,
    expect: str | None,
    today: date,
    recognizer: Recognizer | None = None,
    registry: ModelRegistry | None = None,
    accept_margin: float | None = ACCEPT_MARGIN,
    accept_confidence: float = ACCEPT_CONFIDENCE,
    min_confidence: float = MIN_CONFIDENCE,
    shortlist: int | None = SHORTLIST,
    garbage: bool | None = None,
) -> Heard:
    """Recognise ``pcm`` with the grammar for ``expect`` and classify it with :mod:`bot.nlu`.

    ``expect`` is ``yes_no``, ``date``, ``intent``, ``digits`` or None (free
    recognition); ``today`` is the borrower's local date (promise dates are
    resolved against it).  ``accept_margin`` (None: never reject), ``accept_confidence``, ``min_confidence``
    and ``shortlist`` (None: decode every group) are explained in the module
    docstring.  ``garbage`` says whether to decode the filler grammar; None: only
    when it counts (:data:`bot.speech.stt.GARBAGE_WEIGHT` above 0), True to see
    its score among the alternatives and fit acceptance (``bot transcribe``, the
    benchmark).  Raises :class:`bot.speech.errors.NoModelError` for
    a locale without a speech model (check ``has_model`` first and use the
    keypad), ValueError for an unknown ``expect`` or locale.
    """
    from bot.nlu import classify

    if expect is not None and expect not in EXPECTS:
        raise ValueError(f"unknown expect {expect!r}; use one of {', '.join(EXPECTS)} or None")
    if recognizer is None:
        recognizer = Recognizer(registry) if registry is not None else Recognizer()
    context = "yes_no" if expect == "yes_no" else "voice"
    duration = round(pcm.duration_s, 3)
    groups = phrase_groups(locale, expect)
    if groups is not None and expect != "digits":
        decode_filler = GARBAGE_WEIGHT > 0 if garbage is None else garbage
        competition = recognizer.compete(pcm, locale, groups, filler=filler_for(locale) if decode_filler else None,
                                         shortlist=shortlist)
        if competition is not None:
            heard = _from_competition(competition, lambda text: classify(text, locale=locale, today=today,
                                                                         context=context), duration)
            margin = competition.margin
            if margin is not None and accept_margin is not None and margin < accept_margin:
                heard = replace(heard, intent=Intent.OTHER, confidence=0.0, promise_date=None, matched="garbage")
            elif heard.confidence < accept_confidence:
                heard = replace(heard, intent=Intent.OTHER, confidence=0.0, promise_date=None, matched="unsure")
            return _decided(replace(heard, margin=margin, decoded_s=competition.seconds), min_confidence)
    recognition = recognizer.recognize(pcm, locale, grammar=grammar_for(locale, expect))
    interpretation = classify(recognition.text, locale=locale, today=today, context=context)
    confidence = 0.0 if not recognition.text else min(recognition.confidence, interpretation.confidence)
    if confidence < accept_confidence:  # free recognition has no margin: confidence alone decides
        interpretation = replace(interpretation, intent=Intent.OTHER, promise_date=None, matched="unsure")
        confidence = 0.0
    return _decided(Heard(
        text=recognition.text,
        confidence=round(confidence, 2),
        intent=interpretation.intent,
        promise_date=interpretation.promise_date,
        duration_s=duration,
        matched=interpretation.matched,
        source=recognition.source,
        recognition_confidence=recognition.confidence,
        alternatives=tuple(HeardAlternative(classify(a.text, locale=locale, today=today, context=context).intent.value,
                                            a.text, a.score) for a in recognition.alternatives),
    ), min_confidence)


def _decided(heard: Heard, min_confidence: float) -> Heard:
    """``heard`` with ``accepted``: what the voice scripts act on (an intent, dated if a promise, confident enough)."""
    acts = heard.intent is not Intent.OTHER and heard.confidence >= min_confidence and (
        heard.intent is not Intent.PROMISE_TO_PAY or heard.promise_date is not None)
    return replace(heard, accepted=acts)


def _from_competition(competition: Competition, read: Callable[[str], Interpretation], duration: float) -> Heard:
    """The answer a competition of phrase groups gives (see the module docstring)."""
    best = competition.results[0].score
    readings = [(r, read(r.text)) for r in competition.results if r.score >= best - AGREEMENT_MARGIN]
    # within the margin, a group whose words the classifier confirms beats one heard only in part
    winner, interpretation = next(((r, i) for r, i in readings if i.intent.value == intent_of(r.label)), readings[0])
    group_intent = Intent(intent_of(winner.label))
    text = winner.text
    if group_intent is Intent.PROMISE_TO_PAY and interpretation.promise_date is None:
        text, interpretation = _dated_promise(competition, read, best) or (text, interpretation)
    agrees = interpretation.intent is group_intent
    share = _intent_share(competition.results, group_intent.value, winner.score)
    confidence = share * (interpretation.confidence if agrees else DISAGREEMENT_FACTOR)
    return Heard(
        text=text,
        confidence=round(min(1.0, confidence), 2),
        intent=group_intent,
        promise_date=interpretation.promise_date if agrees else None,
        duration_s=duration,
        matched=interpretation.matched if agrees else f"group:{group_intent.value}",
        source="grammar",
        recognition_confidence=competition.recognition.confidence,
        alternatives=(*(HeardAlternative(intent_of(r.label), r.text, round(r.score, 3)) for r in competition.results),
                      *((HeardAlternative("other", competition.garbage.text, round(competition.garbage.score, 3)),)
                        if competition.garbage is not None else ())),
    )


def _dated_promise(competition: Competition, read: Callable[[str], Interpretation],
                   best: float) -> tuple[str, Interpretation] | None:
    """A dated promise heard a little less clearly (within :data:`DATE_MARGIN` of the best score), if any."""
    for result in competition.results:
        if intent_of(result.label) != Intent.PROMISE_TO_PAY.value:
            continue
        for alternative in result.alternatives:
            if alternative.score < best - DATE_MARGIN:
                break
            reading = read(alternative.text)
            if reading.intent is Intent.PROMISE_TO_PAY and reading.promise_date is not None:
                return alternative.text, reading
    return None
