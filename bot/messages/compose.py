"""Compose the message of one contact attempt: the text that will be sent, and how.

The dispatcher calls :func:`compose` for each attempt it is about to send, then
builds an :class:`~bot.channels.base.ApprovedMessage` from the result and the
compliance decision (``approve(decision, **composed.approve_fields())``).  Compose
owns everything about *content*: which template and locale, the context, the SMS
rules (segments, opt-out instruction) and the email's unsubscribe link and
headers.  It never sends and never logs the text.

Data: ``compose(session, attempt, ...)`` loads what it needs (three small queries
per attempt); a dispatcher sending a batch loads everything at once with
:func:`load_message_data_many` (a fixed number of queries per batch) and passes
each :class:`MessageData` instead of the session.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db.models import Borrower, Consent, ContactAttempt, InboundMessage, Installment, Loan
from bot.domain import AttemptSource, Channel
from bot.messages.checks import ComposeError, check_sms, with_opt_out
from bot.messages.unsubscribe import (
    list_unsubscribe_headers,
    make_message_id,
    make_unsubscribe_token,
    unsubscribe_url,
)
from bot.paylinks import lender_url, make_code, short_url
from bot.ledger import OPEN, OUTSTANDING
from bot.rendering import Renderer, first_name, money, reminder_context

__all__ = [
    "REPLY_FOOTER_KINDS",
    "REPLY_KINDS",
    "REPLY_VARIABLES",
    "AttemptLike",
    "ComposedMessage",
    "MessageData",
    "compose",
    "first_texts",
    "load_message_data",
    "load_message_data_many",
    "reply_context",
    "sms_status_callback",
    "verified_numbers",
    "template_locale",
]

#: ``reply_<kind>`` templates (docs/channels.md); written by bot.replies as the
#: attempt's ``template``.
REPLY_KINDS = ("opt_out", "opt_in", "help", "paid", "promise", "dispute", "wrong_number", "hardship",
               "callback", "other", "identity", "balance", "survey", "survey_thanks", "payment_link")
#: Replies whose wording depends on whether the number is verified (:func:`verified_numbers`).
VERIFIED_KINDS = frozenset({"identity", "balance"})
#: Replies that must end with the opt-out instruction: they (re)start or describe
#: the programme, or ask something of their own (the satisfaction survey, bot.replies.surveys).  The others answer the borrower's own message once.
REPLY_FOOTER_KINDS = frozenset({"opt_in", "help", "survey", "payment_link"})
#: Variables a reply template may use.
REPLY_VARIABLES: dict[str, str] = {
    "lender_name": "setting lender_name",
    "lender_phone": "setting lender_phone",
    "lender_email": "setting lender_email",
    "first_name": "the borrower's short name (bot.rendering.first_name)",
    "locale": "the message locale; pass it to the date filter",
    "promise_date": "reply_promise: the promised date (a date) or None when the reply gave none",
    "verified": "reply_identity / reply_balance: the number is the borrower's own, with SMS consent (say the "
                "reason for contact or the balance only then)",
    "balances": "reply_balance, verified numbers only: the remaining balance of each open loan, formatted "
                "(empty otherwise)",
    "payment_url": "reply_payment_link: the installment's payment link (bot.paylinks; the short link with "
                   "payment_short_links); empty for the other kinds",
}
DEFAULT_LOCALE = "en-US"
_BATCH = 500  # ids per IN (...) query


class AttemptLike(Protocol):
    """The fields of :class:`~bot.db.models.ContactAttempt` that compose reads."""

    id: int
    dedupe_key: str
    borrower_id: str
    installment_id: str | None
    channel: str
    source: str
    template: str | None
    address: str | None
    decision: dict[str, Any] | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageData:
    """What compose needs from the database besides the attempt itself.

    Reminders need the installment fields; replies the promise date.  Build one
    with :func:`load_message_data` / :func:`load_message_data_many`, or by hand
    in tests.
    """

    borrower_id: str
    full_name: str
    locale: str  # the borrower's stored locale (a reply's language)
    timezone: str | None = None  # the borrower's explicit IANA zone, if any
    loan_id: str | None = None
    currency: str | None = None
    due_date: date | None = None
    outstanding_minor: int | None = None
    promise_date: date | None = None  # reply_promise only
    verified: bool = False  # reply_identity / reply_balance: see verified_numbers
    balances: tuple[tuple[int, str], ...] = ()  # reply_balance to a verified number: (minor units, currency) per loan


@dataclass(frozen=True, slots=True)
class ComposedMessage:
    """A rendered message with everything the adapter and the records need."""

    attempt_id: int
    channel: str  # "sms" | "email"
    to: str
    body: str  # SMS text, or the email's plain-text part
    idempotency_key: str  # the attempt's dedupe key
    template: str
    locale: str
    subject: str | None = None  # email
    html: str | None = None  # email
    headers: Mapping[str, str] = field(default_factory=dict)  # email: Message-ID, List-Unsubscribe, ...
    status_callback: str | None = None  # SMS: our delivery-status webhook for this attempt
    segments: int | None = None  # SMS
    encoding: str | None = None  # SMS: "GSM-7" | "UCS-2"
    unsubscribe_url: str | None = None  # email

    @property
    def message_id(self) -> str | None:
        return self.headers.get("Message-ID")

    def approve_fields(self) -> dict[str, Any]:
        """Keyword arguments of ``bot.channels.base.approve(decision, **fields)``."""
        return {
            "attempt_id": self.attempt_id,
            "channel": Channel(self.channel),
            "to": self.to,
            "body": self.body,
            "idempotency_key": self.idempotency_key,
            "subject": self.subject,
            "html": self.html,
            "headers": dict(self.headers),
            "status_callback": self.status_callback,
        }


def sms_status_callback(public_base_url: str, attempt_id: int) -> str:
    """Delivery-status webhook of an SMS; the attempt id lets callbacks and
    crash reconciliation find the attempt without trusting the provider id."""
    return f"{public_base_url.rstrip('/')}/twilio/status?attempt={attempt_id}"


# --- loading --------------------------------------------------------------------------


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _BATCH):
        yield values[start : start + _BATCH]


def answered_promise(decision: Any) -> date | None:
    """The promise date an answer confirms, as :func:`bot.replies.answer.queue_answer` gave it."""
    answer = decision.get("answer") if isinstance(decision, Mapping) else None
    day = answer.get("promise_date") if isinstance(answer, Mapping) else None
    try:
        return date.fromisoformat(day) if isinstance(day, str) else None
    except ValueError:
        return None


def _reply_sid(dedupe_key: str) -> str | None:
    prefix, sep, rest = dedupe_key.partition(":")
    return rest if sep and prefix == "reply" and rest else None


def first_texts(session: Session, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The ``(number, sender)`` pairs to which no SMS has gone yet: no SMS attempt to the
    number that reached the provider (``provider_id`` or ``sent_at`` set) records that
    sender (its ``sender`` column).  Rows without a recorded sender (imported
    history) do not count, so a doubt gives the opt-out line rather than leaves it out."""
    wanted = set(pairs)
    numbers = sorted({number for number, _sender in wanted})
    used: set[tuple[str, str]] = set()
    for chunk in _chunks(numbers):
        rows = session.execute(
            select(ContactAttempt.address, ContactAttempt.sender)
            .where(ContactAttempt.channel == Channel.SMS.value, ContactAttempt.address.in_(chunk),
                   (ContactAttempt.provider_id.is_not(None)) | (ContactAttempt.sent_at.is_not(None)),
                   ContactAttempt.sender.is_not(None))
        )
        for number, sender in rows:
            if number is not None:
                used.add((number, sender))
    return wanted - used


def load_message_data_many(session: Session, attempts: Iterable[AttemptLike]) -> dict[int, MessageData]:
    """:class:`MessageData` for each attempt id, with a fixed number of queries per 500 attempts.

    Attempts whose borrower is gone are left out (compose then says ``missing_data``).
    """
    attempts = list(attempts)
    borrower_ids = sorted({a.borrower_id for a in attempts})
    installment_ids = sorted({a.installment_id for a in attempts if a.installment_id})
    replies = [a for a in attempts if a.source == AttemptSource.REPLY.value]

    # Columns, not ORM entities: a batch of 500 loads in a fraction of the time.
    borrowers: dict[str, Any] = {}
    for chunk in _chunks(borrower_ids):
        borrowers.update((b.id, b) for b in session.execute(
            select(Borrower.id, Borrower.full_name, Borrower.locale, Borrower.timezone)
            .where(Borrower.id.in_(chunk))))

    installments: dict[str, Any] = {}
    for chunk in _chunks(installment_ids):
        rows = session.execute(
            select(Installment.id, Installment.due_date, Installment.amount_due_minor, Installment.covered_minor,
                   Loan.id.label("loan_id"), Loan.currency)
            .join(Loan, Installment.loan_id == Loan.id).where(Installment.id.in_(chunk))
        )
        installments.update((row.id, row) for row in rows)

    promise_by_attempt: dict[int, date | None] = {}
    promise_by_sid: dict[str, date | None] = {}
    reply_ids = [a.id for a in replies]
    sids = sorted({sid for a in replies if (sid := _reply_sid(a.dedupe_key))})
    for chunk in _chunks(reply_ids):
        stmt = select(InboundMessage.reply_attempt_id, InboundMessage.promise_date).where(
            InboundMessage.reply_attempt_id.in_(chunk)
        )
        promise_by_attempt.update((aid, day) for aid, day in session.execute(stmt) if aid is not None)
    for chunk in _chunks(sids):
        stmt = select(InboundMessage.provider_id, InboundMessage.promise_date).where(
            InboundMessage.provider_id.in_(chunk)
        )
        promise_by_sid.update((sid, day) for sid, day in session.execute(stmt) if sid is not None)

    asking = [a for a in replies if (a.template or "").removeprefix("reply_") in VERIFIED_KINDS and a.address]
    verified = verified_numbers(session, {(a.borrower_id, a.address) for a in asking if a.address})
    balances = _balances(session, sorted({b for b, _ in verified}))

    out: dict[int, MessageData] = {}
    for attempt in attempts:
        borrower = borrowers.get(attempt.borrower_id)
        if borrower is None:
            continue
        fields: dict[str, Any] = {}
        row = installments.get(attempt.installment_id) if attempt.installment_id else None
        if row is not None:
            fields = {
                "loan_id": row.loan_id,
                "currency": row.currency,
                "due_date": row.due_date,
                "outstanding_minor": max(row.amount_due_minor - row.covered_minor, 0),
            }
        if attempt.source == AttemptSource.REPLY.value:
            promise = answered_promise(attempt.decision)
            if promise is None:  # an answer queued before the answer carried its promise date
                promise = promise_by_attempt.get(attempt.id)
            if promise is None and (sid := _reply_sid(attempt.dedupe_key)):
                promise = promise_by_sid.get(sid)
            fields["promise_date"] = promise
            if (attempt.borrower_id, attempt.address) in verified:
                fields["verified"] = True
                if attempt.template == "reply_balance":
                    fields["balances"] = balances.get(attempt.borrower_id, ())
        out[attempt.id] = MessageData(
            borrower_id=borrower.id,
            full_name=borrower.full_name,
            locale=borrower.locale,
            timezone=borrower.timezone,
            **fields,
        )
    return out


def verified_numbers(session: Session, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The ``(borrower_id, number)`` pairs where the number is verified: it is the borrower's
    phone on file, no other borrower has it (a shared phone is a third party's too), and the
    borrower's SMS consent for it is granted, not opted out and not flagged (wrong number,
    landline ...).  Only to such a number does a reply say why we write or what is owed."""
    wanted = set(pairs)
    if not wanted:
        return set()
    numbers = sorted({number for _, number in wanted})
    owners: dict[str, list[str]] = {}
    consented: set[tuple[str, str]] = set()
    for chunk in _chunks(numbers):
        for borrower_id, number in session.execute(
                select(Borrower.id, Borrower.phone_e164).where(Borrower.phone_e164.in_(chunk))):
            owners.setdefault(number, []).append(borrower_id)
        consented.update((borrower_id, number) for borrower_id, number in session.execute(
            select(Consent.borrower_id, Consent.address)
            .where(Consent.channel == Channel.SMS.value, Consent.address.in_(chunk), Consent.granted.is_(True),
                   Consent.opted_out_at.is_(None), Consent.address_flag.is_(None))))
    return {(b, n) for b, n in wanted if owners.get(n) == [b] and (b, n) in consented}


def _balances(session: Session, borrower_ids: Sequence[str]) -> dict[str, tuple[tuple[int, str], ...]]:
    """What each open loan of these borrowers still owes (every open installment), per loan."""
    out: dict[str, list[tuple[int, str]]] = {}
    for chunk in _chunks(borrower_ids):
        rows = session.execute(
            select(Loan.borrower_id, Loan.id, Loan.currency, func.sum(OUTSTANDING))
            .join(Installment, Installment.loan_id == Loan.id)
            .where(Loan.borrower_id.in_(chunk), OPEN)
            .group_by(Loan.borrower_id, Loan.id, Loan.currency).order_by(Loan.borrower_id, Loan.id)
        )
        for borrower_id, _loan_id, currency, owed in rows:
            out.setdefault(borrower_id, []).append((int(owed), currency))
    return {k: tuple(v) for k, v in out.items()}


def load_message_data(session: Session, attempt: AttemptLike) -> MessageData:
    """:class:`MessageData` for one attempt (:class:`ComposeError` ``missing_data`` if the borrower is gone)."""
    data = load_message_data_many(session, [attempt]).get(attempt.id)
    if data is None:
        raise ComposeError("missing_data", f"attempt {attempt.id}: its borrower is not in the database",
                           template=attempt.template)
    return data


# --- contexts ---------------------------------------------------------------------------


def reply_context(settings: Settings, data: MessageData, locale: str, payment_url: str = "") -> dict[str, Any]:
    """The context of a ``reply_<kind>`` template (see :data:`REPLY_VARIABLES`)."""
    return {
        "lender_name": settings.lender_name,
        "lender_phone": settings.lender_phone,
        "lender_email": settings.lender_email,
        "first_name": first_name(data.full_name),
        "locale": locale,
        "promise_date": data.promise_date,
        "verified": data.verified,
        "balances": [money(minor, currency, locale) for minor, currency in data.balances],
        "payment_url": payment_url,
    }


def _planner(attempt: AttemptLike) -> Mapping[str, Any]:
    decision = attempt.decision if isinstance(attempt.decision, Mapping) else {}
    planner = decision.get("planner")
    return planner if isinstance(planner, Mapping) else {}


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local_today(attempt: AttemptLike, data: MessageData, settings: Settings, at: datetime | None) -> date:
    """The borrower's local date at the sending instant (``at``, else when the attempt was due)."""
    planner = _planner(attempt)
    instant = at or attempt.next_attempt_at
    if instant is None:
        local = planner.get("local_date")
        if isinstance(local, str):
            try:
                return date.fromisoformat(local)
            except ValueError:
                pass
        raise ComposeError("no_date", f"attempt {attempt.id}: no sending instant to compute the local date",
                           template=attempt.template)
    zone = _zone(planner.get("zone")) or _zone(data.timezone) or ZoneInfo(settings.default_timezone)
    return instant.astimezone(zone).date()


def template_locale(renderer: Renderer, channel: str, template: str, wanted: str | None) -> str:
    """The locale to render ``template`` in: ``wanted`` if its files exist, else a
    locale of the same language that has them, else en-US."""
    def available(locale: str) -> bool:
        try:
            paths = renderer.paths_for(channel, template, locale)
        except ValueError:
            return False
        return all((renderer.templates_dir / p).is_file() for p in paths)

    tag = (wanted or DEFAULT_LOCALE).replace("_", "-")
    if available(tag):
        return tag
    language = tag.split("-")[0].lower()
    root = renderer.templates_dir / channel
    if root.is_dir():
        for candidate in sorted(p.name for p in root.iterdir() if p.is_dir()):
            if candidate.split("-")[0].lower() == language and available(candidate):
                return candidate
    return DEFAULT_LOCALE


def _render(action: Any, template: str, locale: str) -> Any:
    """Run a render call, turning Jinja and filter errors into ``template_error``."""
    try:
        return action()
    except jinja2.TemplateNotFound as exc:
        raise ComposeError("template_error", f"template file {exc.name} does not exist",
                           template=template, locale=locale) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ComposeError("template_error", f"syntax error at line {exc.lineno}: {exc.message}",
                           template=template, locale=locale) from None
    except jinja2.UndefinedError as exc:
        raise ComposeError("template_error", f"undefined variable: {exc.message}",
                           template=template, locale=locale) from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ComposeError("template_error", f"{type(exc).__name__} while rendering",
                           template=template, locale=locale) from None


# --- compose -----------------------------------------------------------------------------


def compose(
    source: Session | MessageData,
    attempt: AttemptLike,
    settings: Settings,
    *,
    renderer: Renderer,
    at: datetime | None = None,
    first_text: bool = False,
) -> ComposedMessage:
    """Render ``attempt`` into a :class:`ComposedMessage`, or raise :class:`ComposeError`.

    ``source``: a SQLAlchemy session (the data is loaded here) or the attempt's
    :class:`MessageData` (loaded in bulk by the caller).  ``attempt``: a
    :class:`~bot.db.models.ContactAttempt` (or anything with its fields, see
    :class:`AttemptLike`).  ``renderer``: the shared :class:`~bot.rendering.Renderer`.
    ``at``: the sending instant, for the borrower's local date in reminders
    ("3 days late"); default: the attempt's ``next_attempt_at``.  ``first_text``:
    this SMS is the first to its number from its sender (:func:`first_texts`), so it
    must carry the opt-out instruction whatever its kind (appended when missing).

    * **planner / manual** attempts render the attempt's ``template`` in the
      planner's locale (``decision.planner.locale``; else the borrower's) with the
      reminder context of its installment (bot.rendering.reminder_context).
    * **reply** attempts render ``templates/sms/<locale>/<template>.txt.j2``
      (``template`` is ``reply_<kind>``) in the borrower's locale, falling back to
      another locale of the same language, then en-US, with :data:`REPLY_VARIABLES`.
    * **SMS**: segments and encoding are reported; more than ``sms_max_segments``
      is refused; the text must end with the opt-out instruction (except replies
      other than ``reply_opt_in`` / ``reply_help``).  ``status_callback`` is
      ``{public_base_url}/twilio/status?attempt={id}``.
    * **email**: the unsubscribe link ``{public_base_url}/unsubscribe/{token}``
      is passed to the templates as ``unsubscribe_url`` and must appear in both the
      text and the HTML part; ``headers`` hold ``Message-ID`` (derived from the
      dedupe key), ``List-Unsubscribe`` (link and ``mailto:`` lender_email) and
      ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
    """
    data = source if isinstance(source, MessageData) else load_message_data(source, attempt)
    template = attempt.template
    if not template:
        raise ComposeError("no_template", f"attempt {attempt.id} names no template")
    if not attempt.address:
        raise ComposeError("no_address", f"attempt {attempt.id} has no address", template=template)
    channel = attempt.channel
    if channel not in (Channel.SMS.value, Channel.EMAIL.value):
        raise ComposeError("unsupported_channel", f"channel {channel!r} has no message templates", template=template)

    if attempt.source == AttemptSource.REPLY.value:
        return _compose_reply(data, attempt, template, settings, renderer, first_text=first_text)
    return _compose_reminder(data, attempt, template, settings, renderer, at)


def _compose_reply(data: MessageData, attempt: AttemptLike, template: str, settings: Settings,
                   renderer: Renderer, *, first_text: bool = False) -> ComposedMessage:
    kind = template.removeprefix("reply_")
    if not template.startswith("reply_") or kind not in REPLY_KINDS:
        raise ComposeError("unknown_reply", "reply templates are reply_<kind> with kind one of "
                           + ", ".join(REPLY_KINDS), template=template)
    if attempt.channel != Channel.SMS.value:
        raise ComposeError("unsupported_channel", "replies are sent by SMS only", template=template)
    locale = template_locale(renderer, "sms", template, data.locale)
    context = reply_context(settings, data, locale, _reply_link(data, attempt, template, settings, kind))
    body = _render(lambda: renderer.render_sms(template, locale, context), template, locale)
    # The number's first text from this sender says how to stop (CTIA); not the opt-out
    # confirmation, the last text the number gets.
    first_text = first_text and kind != "opt_out"
    if first_text:
        body = with_opt_out(body, locale, renderer.templates_dir)
    return _sms(attempt, template, locale, body, settings, renderer,
                needs_opt_out=first_text or kind in REPLY_FOOTER_KINDS)


def _reply_link(data: MessageData, attempt: AttemptLike, template: str, settings: Settings, kind: str) -> str:
    """``reply_payment_link``'s link to the attempt's installment ('' for the other kinds); never
    composed without a link or for an installment with nothing outstanding."""
    if kind != "payment_link":
        return ""
    if data.loan_id is None or data.outstanding_minor is None:
        raise ComposeError("no_payment_link", f"attempt {attempt.id}: a payment link needs the attempt's "
                           "installment", template=template)
    if data.outstanding_minor <= 0:
        raise ComposeError("paid", f"attempt {attempt.id}: the installment has nothing outstanding", template=template)
    link = payment_link(settings, attempt, data.loan_id, None)
    if not link:
        raise ComposeError("no_payment_link", f"attempt {attempt.id}: no payment link (payment_url_template is "
                           "not set)", template=template)
    return link


def _compose_reminder(data: MessageData, attempt: AttemptLike, template: str, settings: Settings,
                      renderer: Renderer, at: datetime | None) -> ComposedMessage:
    if data.due_date is None or data.currency is None or data.loan_id is None or data.outstanding_minor is None:
        raise ComposeError("missing_data", f"attempt {attempt.id}: its installment or loan is not in the database",
                           template=template)
    if data.outstanding_minor <= 0:
        raise ComposeError("paid", f"attempt {attempt.id}: the installment has nothing outstanding", template=template)
    planned_locale = _planner(attempt).get("locale")
    locale = planned_locale if isinstance(planned_locale, str) and planned_locale else \
        template_locale(renderer, attempt.channel, template, data.locale)
    today = _local_today(attempt, data, settings, at)
    common: dict[str, Any] = {
        "full_name": data.full_name,
        "locale": locale,
        "amount_minor": data.outstanding_minor,
        "currency": data.currency,
        "due_date": data.due_date,
        "today": today,
        "loan_id": data.loan_id,
        "lender_name": settings.lender_name,
        "lender_phone": settings.lender_phone,
        "lender_email": settings.lender_email,
        "payment_url": payment_link(settings, attempt, data.loan_id, at),
    }
    if attempt.channel == Channel.SMS.value:
        context = reminder_context(**common)
        body = _render(lambda: renderer.render_sms(template, locale, context), template, locale)
        return _sms(attempt, template, locale, body, settings, renderer, needs_opt_out=True)
    return _email(attempt, template, locale, common, settings, renderer)


def payment_link(settings: Settings, attempt: AttemptLike, loan_id: str, at: datetime | None) -> str:
    """The reminder's payment link (bot.paylinks), or '' without ``payment_url_template``.

    Deterministic for one attempt: the token is issued as of the attempt's creation,
    so a message composed again (a retry, after a crash) is the same text."""
    if not settings.payment_url_template or not attempt.installment_id:
        return ""
    if settings.payment_short_links:
        return short_url(settings.public_base_url, make_code(settings.payment_link_secret, attempt.id))
    issued = getattr(attempt, "created_at", None) or at or attempt.next_attempt_at
    if issued is None:
        return ""
    return lender_url(settings, installment_id=attempt.installment_id, loan_id=loan_id, attempt_id=attempt.id,
                      issued_at=issued)


def _sms(attempt: AttemptLike, template: str, locale: str, body: str, settings: Settings, renderer: Renderer, *,
         needs_opt_out: bool) -> ComposedMessage:
    info = check_sms(body, template=template, locale=locale, max_segments=settings.sms_max_segments,
                     needs_opt_out=needs_opt_out, templates_dir=renderer.templates_dir)
    assert attempt.address is not None
    return ComposedMessage(
        attempt_id=attempt.id,
        channel=Channel.SMS.value,
        to=attempt.address,
        body=body,
        idempotency_key=attempt.dedupe_key,
        template=template,
        locale=locale,
        status_callback=sms_status_callback(settings.public_base_url, attempt.id),
        segments=info.segments,
        encoding=info.encoding,
    )


def _email(attempt: AttemptLike, template: str, locale: str, common: dict[str, Any], settings: Settings,
           renderer: Renderer) -> ComposedMessage:
    assert attempt.address is not None
    token = make_unsubscribe_token(settings.unsubscribe_secret, attempt.borrower_id, attempt.address)
    url = unsubscribe_url(settings.public_base_url, token)
    context = reminder_context(**common, unsubscribe_url=url)
    content = _render(lambda: renderer.render_email(template, locale, context), template, locale)
    if url not in content.text:
        raise ComposeError("no_unsubscribe_link", "the plain-text part must show unsubscribe_url",
                           template=template, locale=locale)
    if url not in content.html and html_lib.escape(url) not in content.html:
        raise ComposeError("no_unsubscribe_link", "the HTML part must show unsubscribe_url",
                           template=template, locale=locale)
    headers = {"Message-ID": make_message_id(attempt.id, attempt.dedupe_key, settings.smtp_from)}
    headers.update(list_unsubscribe_headers(url, settings.lender_email))
    return ComposedMessage(
        attempt_id=attempt.id,
        channel=Channel.EMAIL.value,
        to=attempt.address,
        body=content.text,
        idempotency_key=attempt.dedupe_key,
        template=template,
        locale=locale,
        subject=content.subject,
        html=content.html,
        headers=headers,
        unsubscribe_url=url,
    )
