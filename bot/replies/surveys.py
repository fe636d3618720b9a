"""The satisfaction survey: one 1-5 question after a conversation that ended well.

The policy's optional ``survey`` block (:class:`bot.policy.SurveySettings`,
docs/policy.md) turns it on.  After a conversation that ended with a promise, a
payment claim or a resolved dispute (its ``after`` list):

* **SMS** (``channels`` holds ``sms``): :func:`ask_by_sms` records a ``surveys`` row
  and queues the question like every answer of the bot: a ``ContactAttempt`` of
  source ``reply``, template ``reply_survey``, status ``planned``, that the
  dispatcher sends under the send-time checks (opt-out, cease-communication,
  consent, contact hours and the frequency caps: docs/dispatch.md), so outside
  contact hours it waits and to an opted-out number it never goes.  Its dedupe key
  is ``survey:<survey id>``.  Nothing is queued for a number opted out of SMS, a
  borrower who asked for no more communication, or a borrower asked already in the
  last ``min_days_between`` days (whatever became of that survey).
* **voice** (``channels`` holds ``voice``): the call script's optional ``survey`` node
  asks for a key 1-5 at the end of a qualifying call; :func:`record_keypad` stores
  the answered survey (docs/voice-scripts.md).  The 30-day cap holds there too
  (:func:`may_ask`).

An SMS survey is *pending* from the moment its text was sent until it is answered
or ``expires_hours`` after it was queued (the dispatcher cancels a question not
sent by then: ``survey_expired``).  Only while one is pending for the borrower and
the number is a reply that is a digit 1-5 alone (:func:`read_score`: optional
spaces and punctuation, full-width digits too) a ``survey_response``: recorded
once, answered with ``reply_survey_thanks``.  Any other time "5" is read as before
(bot.nlu), and STOP always wins (a digit is never an opt-out, an opt-out never a
rating).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.models import Borrower, Consent, ContactAttempt, Survey
from bot.domain import AttemptSource, AttemptStatus, Channel
from bot.policy import SURVEY_TRIGGERS, SurveySettings
from bot.replies.records import audit

__all__ = [
    "SURVEY_TEMPLATE",
    "THANKS_KIND",
    "ask_by_sms",
    "may_ask",
    "pending_rating",
    "pending_survey",
    "read_score",
    "record_keypad",
    "record_rating",
    "survey_dedupe_key",
]

SURVEY_TEMPLATE = "reply_survey"
#: The reply kind of the thank-you (template ``reply_survey_thanks``).
THANKS_KIND = "survey_thanks"
ACTOR = "survey"

# A digit 1-5 alone, with optional spaces and punctuation around it ("5", " 4. ", "5!").
_SCORE_RE = re.compile(r"^[\s\W_]*([1-5])[\s\W_]*$")


def read_score(text: str) -> int | None:
    """The rating a reply gives, or None: a digit 1-5 alone (NFKC: full-width "５" is 5),
    with optional spaces and punctuation; "five", "4 or 5", "10" and "5 tomorrow" are not."""
    match = _SCORE_RE.match(unicodedata.normalize("NFKC", text or ""))
    return int(match.group(1)) if match else None


def survey_dedupe_key(survey_id: int) -> str:
    return f"survey:{survey_id}"


def may_ask(session: Session, survey: SurveySettings | None, borrower_id: str, trigger: str, channel: str,
            at: datetime) -> str | None:
    """Why no survey may be asked now (a reason code), or None when one may."""
    if trigger not in SURVEY_TRIGGERS:
        raise ValueError(f"unknown survey trigger {trigger!r} (expected {', '.join(SURVEY_TRIGGERS)})")
    if survey is None:
        return "disabled"
    if trigger not in survey.after:
        return "not_after_" + trigger
    if channel not in survey.channels:
        return "channel_off"
    ceased = session.scalar(select(Borrower.cease_communication_at).where(Borrower.id == borrower_id))
    if ceased is not None:
        return "cease_communication"
    since = at - timedelta(days=survey.min_days_between)
    recent = session.scalar(select(Survey.id).where(Survey.borrower_id == borrower_id, Survey.asked_at > since)
                            .limit(1))
    return "recent_survey" if recent is not None else None


def _opted_out(session: Session, borrower_id: str, address: str) -> bool:
    return session.scalar(
        select(Consent.id).where(Consent.borrower_id == borrower_id, Consent.channel == Channel.SMS.value,
                                 Consent.address == address, Consent.opted_out_at.is_not(None))
    ) is not None


def ask_by_sms(session: Session, survey: SurveySettings | None, *, borrower_id: str, trigger: str,
               address: str | None, at: datetime) -> int | None:
    """Record a survey and queue its question to ``address``; the survey id, or None
    (the reason is in the audit event ``survey.skipped``).  The caller commits."""
    reason = may_ask(session, survey, borrower_id, trigger, Channel.SMS.value, at)
    if reason is None and not address:
        reason = "no_address"
    if reason is None and _opted_out(session, borrower_id, address or ""):
        reason = "opted_out"
    if reason is not None:
        if reason != "disabled":
            audit(session, at, actor=ACTOR, action="survey.skipped", borrower_id=borrower_id,
                  detail={"trigger": trigger, "channel": Channel.SMS.value, "reason": reason})
        return None
    assert survey is not None and address
    expires = at + timedelta(hours=survey.expires_hours)
    row = Survey(borrower_id=borrower_id, channel=Channel.SMS.value, trigger=trigger, address=address,
                 asked_at=at, expires_at=expires)
    session.add(row)
    session.flush()
    attempt = ContactAttempt(
        dedupe_key=survey_dedupe_key(row.id), borrower_id=borrower_id, loan_id=None, installment_id=None,
        channel=Channel.SMS.value, source=AttemptSource.REPLY.value, status=AttemptStatus.PLANNED.value,
        step="survey", template=SURVEY_TEMPLATE, address=address, next_attempt_at=at, tries=0,
        decision={"survey": {"id": row.id, "expires_at": expires.isoformat()}}, created_at=at, updated_at=at,
    )
    session.add(attempt)
    session.flush()
    row.attempt_id = attempt.id
    audit(session, at, actor=ACTOR, action="survey.queued", borrower_id=borrower_id,
          detail={"survey_id": row.id, "attempt_id": attempt.id, "trigger": trigger, "channel": Channel.SMS.value})
    return row.id


def pending_survey(session: Session, borrower_id: str, address: str, at: datetime) -> Survey | None:
    """The borrower's SMS survey to ``address`` that was sent and still waits for its answer at ``at``."""
    return session.scalars(
        select(Survey).join(ContactAttempt, ContactAttempt.id == Survey.attempt_id)
        .where(Survey.borrower_id == borrower_id, Survey.channel == Channel.SMS.value, Survey.address == address,
               Survey.answered_at.is_(None), Survey.expires_at > at,
               ContactAttempt.sent_at.is_not(None), ContactAttempt.sent_at <= at)
        .order_by(Survey.asked_at.desc(), Survey.id.desc()).limit(1)
    ).first()


def pending_rating(session: Session, borrower_id: str, address: str, text: str,
                   at: datetime) -> tuple[int, int] | None:
    """(survey id, score) when ``text`` is a rating and a survey is pending for the borrower
    and the number at ``at``; else None.  Reads only: :func:`record_rating` stores it."""
    score = read_score(text)
    if score is None:
        return None
    pending = pending_survey(session, borrower_id, address, at)
    return None if pending is None else (pending.id, score)


def record_rating(session: Session, borrower_id: str, survey_id: int, score: int, at: datetime) -> bool:
    """Store an SMS survey's answer once (a conditional UPDATE); False when it was answered already."""
    changed = session.execute(
        update(Survey).where(Survey.id == survey_id, Survey.answered_at.is_(None))
        .values(answered_at=at, score=score).execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if changed:
        audit(session, at, actor=ACTOR, action="survey.answered", borrower_id=borrower_id,
              detail={"survey_id": survey_id, "channel": Channel.SMS.value, "score": score})
    return bool(changed)


def record_keypad(session: Session, survey: SurveySettings | None, *, borrower_id: str, trigger: str,
                  attempt_id: int, score: int, at: datetime) -> int | None:
    """Store the answer to a call's keypad question (asked and answered at ``at``); the
    survey id, or None when the policy does not allow a survey now (nothing stored)."""
    if not 1 <= score <= 5:
        raise ValueError(f"a survey score is 1..5, not {score}")
    if may_ask(session, survey, borrower_id, trigger, Channel.VOICE.value, at) is not None:
        return None
    row = Survey(borrower_id=borrower_id, channel=Channel.VOICE.value, trigger=trigger, address=None,
                 attempt_id=attempt_id, asked_at=at, expires_at=at, answered_at=at, score=score)
    session.add(row)
    session.flush()
    audit(session, at, actor=ACTOR, action="survey.answered", borrower_id=borrower_id,
          detail={"survey_id": row.id, "channel": Channel.VOICE.value, "score": score, "attempt_id": attempt_id})
    return row.id
