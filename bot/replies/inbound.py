"""One inbound SMS, from the verified webhook to its effects and the queued answer.

:func:`process_inbound_sms` is what the ``/twilio/sms`` route calls.  In ONE
transaction it:

1. stops if the MessageSid was seen before (a Twilio retry changes nothing and
   answers nothing);
2. finds the borrower(s) with the sending number (:func:`find_senders`);
3. classifies the text in the borrower's locale, with ``today`` the date of
   the message in the borrower's primary zone;
4. stores the message with the redacted body and the interpretation;
5. applies the statement's effects (:func:`bot.replies.statement.apply_statement`,
   the same for every channel) — an opt-out is written here, before anything is queued;
6. queues the automatic answer (:func:`bot.replies.answer.queue_answer`, the same
   checks for every channel) as a ``ContactAttempt`` (source ``reply``,
   status ``planned``, ``dedupe_key`` ``reply:<MessageSid>``) that the
   dispatcher sends, unless the number is opted out (except the opt-out
   confirmation, the opt-in answer and HELP) or the borrower already
   got :data:`MAX_AUTO_REPLIES_PER_DAY` answers in 24 hours (a phone's
   auto-responder must not talk to the bot forever).

Satisfaction survey (the policy's ``survey`` block, :mod:`bot.replies.surveys`): a digit 1-5
alone from a borrower with a survey pending on that number is a ``survey_response``
(recorded, thanked with ``reply_survey_thanks``, nothing else done); without a
pending survey it is read as before.  A promise or a payment claim whose answer was
queued may be followed by the survey question, queued the same way (source
``reply``, dedupe key ``survey:<id>``).

A message from a number that belongs to no borrower is stored with
``borrower_id`` NULL; only STOP and HELP are answered, directly in the
webhook's TwiML (there is no borrower to attach an attempt to), the STOP
confirmation once per number.

Who answers the carrier keywords is the ``sms_keyword_replies`` setting:
``bot`` (the bot answers them; the provider's own keyword answers must be off) or
``provider`` (the provider's opt-out handling, Twilio's Advanced Opt-Out,
answers a message that is exactly one of :data:`PROVIDER_KEYWORDS`: the bot
records it and its effects, and queues no answer of its own, so HELP is not
answered twice).  A message the provider does not answer ("please stop texting
me") is answered by the bot either way.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import date, datetime

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.channels.events import InboundText
from bot.compliance.zones import resolve_zones
from bot.db import Database
from bot.db.models import Borrower, ContactAttempt, InboundMessage
from bot.domain import Channel, Intent
from bot.events import emit
from bot.nlu import Interpretation, classify
from bot.privacy import mask_phone
from bot.policy import SurveySettings
from bot.replies.answer import MAX_AUTO_REPLIES_PER_DAY, REPLY_KINDS, Answer, queue_answer
from bot.replies.records import audit
from bot.replies.redaction import redact_reply
from bot.replies.statement import Applied, Statement, apply_statement
from bot.replies.surveys import THANKS_KIND, ask_by_sms, pending_rating, record_rating

__all__ = [
    "KEYWORD_REPLIES",
    "MAX_AUTO_REPLIES_PER_DAY",
    "PROVIDER_KEYWORDS",
    "REPLY_KINDS",
    "InboundOptions",
    "InboundOutcome",
    "find_senders",
    "handle_inbound_sms",
    "process_inbound_sms",
    "provider_answers",
    "reply_dedupe_key",
]

log = logging.getLogger(__name__)

#: The keywords a provider's default opt-out handling answers (Twilio: the whole message,
#: any case); with ``sms_keyword_replies = "provider"`` the bot does not answer them.
PROVIDER_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
                               "START", "YES", "UNSTOP", "HELP", "INFO"})
KEYWORD_REPLIES = ("bot", "provider")
DEFAULT_LOCALE = "en-US"
_LOCALE_BY_CALLING_CODE = {86: "zh-CN", 82: "ko-KR"}
SOURCE = "sms"


@dataclass(frozen=True, slots=True)
class InboundOptions:
    """What answering a text depends on besides the message: the zone and country assumed for a
    sender without their own, who answers STOP/HELP (``keyword_replies``: ``bot`` or ``provider``),
    and the policy's satisfaction survey (None: none is asked)."""

    default_timezone: str = "America/New_York"
    default_country: str = "US"
    keyword_replies: str = "bot"
    survey: SurveySettings | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """A borrower whose phone number sent the message."""

    id: str
    locale: str
    country: str
    region: str | None
    timezone: str | None
    phone: str
    email: str | None


@dataclass
class InboundOutcome:
    """What processing one message did (nothing personal: safe to log and return)."""

    provider_id: str
    duplicate: bool = False
    inbound_id: int | None = None
    borrower_id: str | None = None
    intent: str | None = None
    locale: str = DEFAULT_LOCALE
    effects: list[str] = field(default_factory=list)
    reply_template: str | None = None  # the queued answer's template
    reply_attempt_id: int | None = None
    survey_id: int | None = None  # the satisfaction survey queued after this message's answer
    suppressed: str | None = None  # why an answer was not queued
    direct_reply: str | None = None  # unknown sender: template to answer in the webhook's TwiML


def provider_answers(body: str, keyword_replies: str) -> bool:
    """True when the provider answers this message itself (``keyword_replies="provider"``
    and the whole message is one of :data:`PROVIDER_KEYWORDS`)."""
    if keyword_replies not in KEYWORD_REPLIES:
        raise ValueError(f"sms_keyword_replies must be one of {', '.join(KEYWORD_REPLIES)}")
    return keyword_replies == "provider" and body.strip().rstrip(".!").strip().upper() in PROVIDER_KEYWORDS


def reply_dedupe_key(provider_id: str) -> str:
    return f"reply:{provider_id}"


# --- who sent it ---------------------------------------------------------------------


def find_senders(session: Session, number: str) -> tuple[Sender, ...]:
    """The borrowers whose phone is ``number``, the chosen one first.

    Several borrowers can share a number.  The chosen one is the borrower the
    bot last contacted on that number (latest ``sent_at``, else
    ``occurred_at``, of an SMS or voice attempt to it): the reply most likely
    answers that message.  Ties and borrowers never contacted fall back to the
    smallest borrower id, so the choice is deterministic.
    """
    rows = session.execute(
        select(Borrower.id, Borrower.locale, Borrower.country, Borrower.region, Borrower.timezone,
               Borrower.phone_e164, Borrower.email)
        .where(Borrower.phone_e164 == number).order_by(Borrower.id)
    ).all()
    senders = [Sender(*row) for row in rows]
    if len(senders) > 1:
        last = dict(session.execute(
            select(ContactAttempt.borrower_id,
                   func.max(func.coalesce(ContactAttempt.sent_at, ContactAttempt.occurred_at)))
            .where(ContactAttempt.borrower_id.in_([s.id for s in senders]),
                   ContactAttempt.address == number,
                   ContactAttempt.channel.in_([Channel.SMS.value, Channel.VOICE.value]))
            .group_by(ContactAttempt.borrower_id)
        ).all())
        latest = max((v for v in last.values() if v is not None), default=None)
        if latest is not None:
            chosen = next(s for s in senders if last.get(s.id) == latest)
            senders.remove(chosen)
            senders.insert(0, chosen)
    return tuple(senders)


def _guess_locale(number: str) -> str:
    try:
        code = phonenumbers.parse(number, None).country_code
    except phonenumbers.NumberParseException:
        return DEFAULT_LOCALE
    return _LOCALE_BY_CALLING_CODE.get(code, DEFAULT_LOCALE)


def _number_country(number: str, default: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return default
    return region if region and region != "ZZ" else default


def _local_date(at: datetime, sender: Sender | None, number: str, default_timezone: str,
                default_country: str) -> date:
    if sender is not None:
        zones = resolve_zones(sender.country, sender.region, sender.timezone, sender.phone, default_timezone)
    else:
        zones = resolve_zones(_number_country(number, default_country), None, None, number, default_timezone)
    return at.astimezone(zones.primary).date()


def _classify(body: str, locale: str, today: date) -> tuple[Interpretation, str]:
    try:
        return classify(body, locale=locale, today=today, context="sms"), locale
    except ValueError:  # a locale tag Babel does not know: the English rules and the keywords
        return classify(body, locale=DEFAULT_LOCALE, today=today, context="sms"), DEFAULT_LOCALE


# --- the answer ------------------------------------------------------------------------


def _unknown_sender_answer(session: Session, number: str, intent: Intent, inbound_id: int) -> str | None:
    """STOP (once per number) and HELP are answered even when no borrower has the number;
    "who is this?" gets the HELP answer (who we are, nothing about anyone's debt)."""
    if intent in (Intent.HELP, Intent.IDENTITY_QUESTION):
        return "reply_help"
    if intent is not Intent.OPT_OUT:
        return None
    previous = session.scalar(
        select(InboundMessage.intent)
        .where(InboundMessage.from_address == number, InboundMessage.borrower_id.is_(None),
               InboundMessage.id != inbound_id,
               InboundMessage.intent.in_([Intent.OPT_OUT.value, Intent.OPT_IN.value]))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()).limit(1)
    )
    return None if previous == Intent.OPT_OUT.value else "reply_opt_out"


# --- the whole thing ---------------------------------------------------------------------


def handle_inbound_sms(session: Session, text: InboundText, options: InboundOptions = InboundOptions()
                       ) -> InboundOutcome:
    """Process one message inside the caller's transaction (see the module docstring).

    Raises :class:`sqlalchemy.exc.IntegrityError` when another transaction
    stored the same MessageSid meanwhile; :func:`process_inbound_sms` turns
    that into a duplicate.
    """
    outcome = InboundOutcome(provider_id=text.message_id)
    if session.scalar(select(InboundMessage.id).where(InboundMessage.provider_id == text.message_id)) is not None:
        outcome.duplicate = True
        return outcome
    at = text.received_at
    senders = find_senders(session, text.sender)
    chosen = senders[0] if senders else None
    locale = chosen.locale if chosen else _guess_locale(text.sender)
    today = _local_date(at, chosen, text.sender, options.default_timezone, options.default_country)
    interp, outcome.locale = _classify(text.body, locale, today)
    rating = None
    if chosen is not None and interp.intent is Intent.OTHER:  # STOP, HELP ... always win over a rating
        rating = pending_rating(session, chosen.id, text.sender, text.body, at)
        if rating is not None:
            interp = dataclasses.replace(interp, intent=Intent.SURVEY_RESPONSE, confidence=1.0,
                                         matched=f"survey:{rating[1]}")
    outcome.intent = interp.intent.value
    outcome.borrower_id = chosen.id if chosen else None
    message = InboundMessage(
        provider_id=text.message_id, channel=Channel.SMS.value, borrower_id=outcome.borrower_id,
        from_address=text.sender, to_address=text.recipient, body_redacted=redact_reply(text.body),
        intent=interp.intent.value, promise_date=interp.promise_date, confidence=interp.confidence,
        matched=interp.matched[:64], received_at=at, handled_at=at,
    )
    session.add(message)
    session.flush()  # the unique MessageSid: a concurrent duplicate fails here, before any effect
    outcome.inbound_id = message.id
    audit(session, at, actor=SOURCE, action="reply.received", borrower_id=outcome.borrower_id,
          detail={"inbound_id": message.id, "intent": interp.intent.value, "matched": interp.matched,
                  "confidence": interp.confidence, "senders": len(senders)})
    emit(session, "reply.received", borrower_id=outcome.borrower_id, at=at, data={
        "inbound_id": message.id, "channel": Channel.SMS.value, "intent": interp.intent.value,
        "confidence": interp.confidence, "promise_date": interp.promise_date, "address": text.sender,
        "text": message.body_redacted,
    })
    if chosen is None:
        if provider_answers(text.body, options.keyword_replies):
            outcome.suppressed = "provider_answers"
        else:
            outcome.direct_reply = _unknown_sender_answer(session, text.sender, interp.intent, message.id)
        log.info("sms %s from an unknown number %s: %s", text.message_id, mask_phone(text.sender), interp.intent.value)
        return outcome
    if rating is not None:
        recorded = record_rating(session, chosen.id, *rating, at)
        # a concurrent copy of the same answer recorded it first: thanked once
        effects = Applied(reply=THANKS_KIND if recorded else None,
                          done=[f"survey_response:{rating[1]}" if recorded else "survey_response:already_answered"])
    else:
        effects = apply_statement(session, Statement(
            borrower_id=chosen.id, address=text.sender, channel=Channel.SMS.value, intent=interp.intent, at=at,
            today=today, ref=reply_dedupe_key(text.message_id), detail={"inbound_id": message.id},
            promise_date=interp.promise_date, amount=interp.amount, confidence=interp.confidence,
            scope=interp.scope, all_channels=interp.all_channels))
    outcome.effects = effects.done
    if effects.reply is not None:
        queued = queue_answer(session, Answer(
            borrower_id=chosen.id, address=text.sender, kind=effects.reply, at=at,
            dedupe_key=reply_dedupe_key(text.message_id), actor=SOURCE, detail={"inbound_id": message.id},
            promise_date=interp.promise_date,
            provider_answers=provider_answers(text.body, options.keyword_replies)))
        if queued.attempt_id is not None:
            outcome.reply_template, outcome.reply_attempt_id = queued.template, queued.attempt_id
        outcome.suppressed = queued.suppressed
        message.reply_attempt_id = outcome.reply_attempt_id
    trigger = effects.reply if effects.reply in ("promise", "paid") else None  # the survey's triggers by SMS
    if options.survey is not None and trigger is not None and outcome.reply_attempt_id is not None:
        outcome.survey_id = ask_by_sms(session, options.survey, borrower_id=chosen.id, trigger=trigger,
                                       address=text.sender, at=at)
    log.info("sms %s from %s (borrower %s): %s -> %s, answer %s", text.message_id, mask_phone(text.sender),
             outcome.borrower_id, interp.intent.value, ",".join(effects.done) or "-",
             outcome.reply_template or outcome.suppressed or "none")
    return outcome


def process_inbound_sms(db: Database, text: InboundText, options: InboundOptions = InboundOptions()
                        ) -> InboundOutcome:
    """:func:`handle_inbound_sms` in a transaction of its own; a concurrent duplicate is a duplicate."""
    try:
        with db.session() as session:
            return handle_inbound_sms(session, text, options)
    except IntegrityError:
        with db.session() as session:
            seen = session.scalar(select(InboundMessage.id).where(InboundMessage.provider_id == text.message_id))
        if seen is None:
            raise
        return InboundOutcome(provider_id=text.message_id, duplicate=True)
