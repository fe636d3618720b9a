"""SMS in the sandbox: the Messages resource, delivery, opt-outs, inbound texts.

Outbound (``POST .../Messages.json``)
    The request is checked in Twilio's order (21604 To, 21603 From, 21602
    Body, the spec's types and enums, 21617 length, 21211 To, 21212/21606
    From, 21609 StatusCallback, then the destination: 21211 invalid,
    21614 landline, 21610 opted out, 21611 queue full).  An accepted
    message is ``queued``; its timeline is scheduled from the destination's
    persona: ``queued`` callback at once, ``sent`` after
    ``timing.sms_sent_after`` seconds, then ``delivered`` (or ``undelivered``
    with 30003/30005/30006/30007...) ``timing.sms_delivered_after`` seconds
    later, or ``failed`` straight from queued.  A delivered message may
    trigger the phone's scripted reply.

Inbound (a simulated phone texts a sandbox number)
    The message is recorded as ``received``; opt-out keywords update the
    (number, phone) opt-out as Twilio's default handling does and get an
    automatic confirmation; the number's ``sms_url`` gets a signed webhook
    and the ``<Message>`` verbs of its TwiML answer become
    ``outbound-reply`` messages to the phone (blocked with 21610 when the
    phone has opted out).

No webhook is ever sent from a REST handler: they are events, fired by
``Sandbox.run_pending()`` or the real-time thread.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.privacy import mask_phone
from bot.sandbox import spec
from bot.sandbox.callbacks import deliver_status
from bot.sandbox.config import E164
from bot.sandbox.errors import DELIVERY_ERRORS, SandboxError, TwilioApiError
from bot.sandbox.params import FormValues, date_filters, date_matches, first
from bot.sandbox.resources import DEFAULT_PAGE_SIZE, account_uri, message_json, page_json
from bot.sandbox.segments import count_segments
from bot.sandbox.state import API_VERSION, Message, OwnedNumber, new_sid
from bot.sandbox.twiml import TwimlError, TwimlMessage, parse_messages
from bot.sandbox.webhooks import WebhookAttempt, WebhookRefused

if TYPE_CHECKING:
    from bot.sandbox.host import Host

log = logging.getLogger("bot.sandbox.messaging")

MAX_BODY = 1600
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
AUTO_REPLIES = {
    "stop": "You have successfully been unsubscribed. You will not receive any more messages from this number. "
    "Reply START to resubscribe.",
    "start": "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
    "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "help": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}


def keyword_of(body: str) -> str | None:
    """``stop``, ``start`` or ``help`` when the whole body is one of Twilio's default keywords."""
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "stop"
    if word in OPT_IN_KEYWORDS:
        return "start"
    if word in HELP_KEYWORDS:
        return "help"
    return None


@dataclass
class InboundResult:
    """What happened when a phone texted a sandbox number."""

    message: Message
    webhook: WebhookAttempt | None
    replies: list[Message] = field(default_factory=list)
    automatic_reply: Message | None = None


class Messaging:
    def __init__(self, sandbox: Host) -> None:
        self.sb = sandbox

    # --- REST ------------------------------------------------------------------

    def create(self, account_sid: str, form: FormValues) -> Message:
        op = spec.operation(spec.MESSAGES, "POST")
        to = first(form, "To")
        from_ = first(form, "From")
        service = first(form, "MessagingServiceSid")
        body = first(form, "Body") or ""
        media = [url for url in form.get("MediaUrl", []) if url]
        content = first(form, "ContentSid")
        if not to:
            raise TwilioApiError(21604)
        if not from_ and not service:
            raise TwilioApiError(21603)
        if not body and not media and not content:
            raise TwilioApiError(21602)
        problems, unknown = spec.check_params(op.form_params, form)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        if unknown:
            log.debug("ignoring unknown Messages parameters: %s", ", ".join(unknown))
        if len(body) > MAX_BODY:
            raise TwilioApiError(21617)
        if not E164.match(to):
            raise TwilioApiError(21211)
        status_callback = first(form, "StatusCallback")
        if status_callback:
            self._check_callback(status_callback)
        sb = self.sb
        with sb.store.lock:
            sender = self._sender(account_sid, from_)
            persona = sb.phones.persona(to)
            if persona.line_type == "invalid":
                raise TwilioApiError(21211)
            if persona.line_type == "landline" and persona.landline_sms == "reject":
                raise TwilioApiError(21614)
            if sb.is_opted_out(sender.number, to):
                raise TwilioApiError(21610)
            if sb.faults.take_queue_full():
                raise TwilioApiError(21611)
            now = sb.now()
            duplicate, out_of_order = sb.faults.callback_modes()
            message = Message(
                sid=new_sid("MM" if media else "SM"),
                account_sid=account_sid,
                to=to,
                from_=sender.number,
                body=body,
                direction="outbound-api",
                status="queued",
                date_created=now,
                date_updated=now,
                num_segments=count_segments(body) or (1 if not media else 0),
                media_urls=media,
                messaging_service_sid=service,
                status_callback=status_callback,
                seq=sb.store.next_seq(),
                duplicate_callbacks=duplicate,
                out_of_order_callbacks=out_of_order,
            )
            sb.store.messages[message.sid] = message
            overflow = sb.faults.take_overflow()
            self._schedule_delivery(message, overflow=overflow)
            log.info("message %s queued to %s", message.sid, mask_phone(to))
            return dataclasses.replace(message)

    def fetch(self, account_sid: str, sid: str) -> Message:
        with self.sb.store.lock:
            return dataclasses.replace(self._get(account_sid, sid))

    def list(self, account_sid: str, query: FormValues) -> dict[str, object]:
        op = spec.operation(spec.MESSAGES, "GET")
        problems, _ = spec.check_params(op.query_params, query)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        to, from_ = first(query, "To"), first(query, "From")
        filters = [(name, value) for name in ("To", "From", "DateSent", "DateSent<", "DateSent>") if (value := first(query, name))]
        dates = date_filters(query, ("DateSent", "DateSent<", "DateSent>"))
        with self.sb.store.lock:
            records = [
                dataclasses.replace(m)
                for m in self.sb.store.messages.values()
                if m.account_sid == account_sid
                and (not to or m.to == to)
                and (not from_ or m.from_ == from_)
                and all(date_matches(m.date_sent, name, value) for name, value in dates)
            ]
        records.sort(key=lambda m: (m.date_created, m.seq), reverse=True)
        return page_json(
            key="messages",
            list_uri=f"{account_uri(account_sid)}/Messages.json",
            filters=filters,
            records=records,
            render=message_json,
            sid_of=lambda m: m.sid,
            page_size=int(first(query, "PageSize") or DEFAULT_PAGE_SIZE),
            page=int(first(query, "Page") or 0),
            token=first(query, "PageToken"),
        )

    def update(self, account_sid: str, sid: str, form: FormValues) -> Message:
        op = spec.operation(spec.MESSAGE, "POST")
        problems, _ = spec.check_params(op.form_params, form)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        with self.sb.store.lock:
            message = self._get(account_sid, sid)
            if first(form, "Status") == "canceled":
                # Only scheduled messages can be canceled, and the sandbox schedules none.
                raise TwilioApiError(30409)
            if "Body" in form:
                if first(form, "Body"):
                    raise TwilioApiError(400, "Invalid parameter Body: a message body can only be redacted (set to '')")
                message.body = ""
                message.date_updated = self.sb.now()
            return dataclasses.replace(message)

    def delete(self, account_sid: str, sid: str) -> None:
        with self.sb.store.lock:
            message = self._get(account_sid, sid)
            if not message.is_final:
                raise TwilioApiError(20009)
            del self.sb.store.messages[sid]

    def _get(self, account_sid: str, sid: str) -> Message:
        message = self.sb.store.messages.get(sid)
        if message is None or message.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource /2010-04-01/Accounts/{account_sid}/Messages/{sid}.json was not found")
        return message

    def _sender(self, account_sid: str, from_: str | None) -> OwnedNumber:
        numbers = self.sb.store.numbers
        if from_:
            if not E164.match(from_):
                raise TwilioApiError(21212)
            owned = numbers.get(from_)
            if owned is None or owned.account_sid != account_sid:
                raise TwilioApiError(21606)
            return owned
        for owned in numbers.values():  # a messaging service picks one of the account's numbers
            if owned.account_sid == account_sid:
                return owned
        raise TwilioApiError(21606, "The messaging service has no sender: the account has no sandbox number")

    def _check_callback(self, url: str) -> None:
        try:
            self.sb.webhooks.policy.check(url)
        except WebhookRefused as exc:
            raise TwilioApiError(21609, f"Invalid 'StatusCallback': {exc}") from None

    # --- delivery timeline -------------------------------------------------------

    def _schedule_delivery(self, message: Message, *, overflow: bool = False) -> None:
        """Queue the status changes of an outbound message (store lock held)."""
        timing = self.sb.config.timing
        persona = self.sb.phones.persona(message.to)
        final, error = ("failed", 30001) if overflow else persona.sms_outcome()
        steps: list[tuple[float, str, int | None]] = [(0.0, "queued", None)]
        if final == "failed":
            steps.append((timing.sms_sent_after, "failed", error))
        else:
            steps.append((timing.sms_sent_after, "sent", None))
            steps.append((timing.sms_sent_after + timing.sms_delivered_after, final, error))
        epoch = message.epoch
        for index, (delay, status, code) in enumerate(steps):
            last = index == len(steps) - 1
            self.sb.schedule(
                delay,
                f"sms {message.sid} {status}",
                lambda sid=message.sid, status=status, code=code, last=last: self._transition(sid, epoch, status, code, last),
            )

    def _transition(self, sid: str, epoch: int, status: str, code: int | None, final: bool) -> None:
        sb = self.sb
        with sb.store.lock:
            message = sb.store.messages.get(sid)
            if message is None or message.epoch != epoch:
                return
            now = sb.now()
            if status != message.status:
                message.status = status
                message.date_updated = now
            if status == "sent" or (status == "failed" and message.date_sent is None and code != 30001):
                message.date_sent = message.date_sent or now
            if code is not None:
                message.error_code = code
                message.error_message = DELIVERY_ERRORS.get(code)
            params = status_params(message, status)
            url = message.status_callback
            reply = None
            if status == "delivered" and not message.automatic and message.from_:
                reply = sb.phones.next_reply(message.to)
            phone, number = message.to, message.from_
        deliver_status(sb, message, kind="sms-status", url=url, method="POST", params=params, final=final)
        if reply is not None and number is not None:
            sb.schedule(reply.after or 0.0, f"sms reply from {mask_phone(phone)}", lambda: self._phone_sends(phone, number, reply.text))

    def _phone_sends(self, phone: str, number: str, body: str) -> None:
        try:
            self.receive(phone, number, body)
        except SandboxError as exc:
            log.warning("scripted reply from %s dropped: %s", mask_phone(phone), exc)

    # --- inbound -----------------------------------------------------------------

    def receive(self, phone: str, number: str, body: str, media_urls: list[str] | None = None) -> InboundResult:
        """A simulated *phone* texts the sandbox *number*: record it, signal the bot, record its answer."""
        sb = self.sb
        media = list(media_urls or [])
        if not E164.match(phone):
            raise SandboxError("the sending phone must be an E.164 number")
        with sb.store.lock:
            owned = sb.store.numbers.get(number)
            if owned is None:
                raise SandboxError(f"{mask_phone(number)} is not a sandbox number")
            now = sb.now()
            message = Message(
                sid=new_sid("MM" if media else "SM"),
                account_sid=owned.account_sid,
                to=number,
                from_=phone,
                body=body,
                direction="inbound",
                status="received",
                date_created=now,
                date_updated=now,
                date_sent=now,
                num_segments=max(count_segments(body), 1),
                media_urls=media,
                seq=sb.store.next_seq(),
            )
            sb.store.messages[message.sid] = message
            keyword = keyword_of(body)
            if keyword == "stop":
                sb.store.opt_outs[(number, phone)] = True
            elif keyword == "start":
                sb.store.opt_outs[(number, phone)] = False
            automatic = None
            if keyword and sb.config.auto_replies:
                automatic = self._automatic_reply(owned, phone, AUTO_REPLIES[keyword])
            params = inbound_params(message)
            url, method, token = owned.sms_url, owned.sms_method, sb.auth_token(owned.account_sid)
            log.info("message %s received from %s", message.sid, mask_phone(phone))
        attempt = None
        replies: list[Message] = []
        if url:
            attempt = sb.webhooks.send(
                kind="sms-inbound", sid=message.sid, url=url, params=params, auth_token=token, at=now, method=method
            )
            if attempt.ok:
                try:
                    verbs = parse_messages(attempt.response_text)
                except TwimlError as exc:
                    attempt.error = f"TwiML: {exc}"
                    log.warning("answer to inbound %s is not TwiML: %s", message.sid, exc)
                    verbs = []
                replies = [self._twiml_reply(owned, message, verb) for verb in verbs]
        return InboundResult(dataclasses.replace(message), attempt, replies, automatic)

    def _automatic_reply(self, owned: OwnedNumber, phone: str, text: str) -> Message:
        now = self.sb.now()
        message = Message(
            sid=new_sid("SM"),
            account_sid=owned.account_sid,
            to=phone,
            from_=owned.number,
            body=text,
            direction="outbound-reply",
            status="delivered",
            date_created=now,
            date_updated=now,
            date_sent=now,
            num_segments=count_segments(text),
            seq=self.sb.store.next_seq(),
            automatic=True,
        )
        self.sb.store.messages[message.sid] = message
        return dataclasses.replace(message)

    def _twiml_reply(self, owned: OwnedNumber, inbound: Message, verb: TwimlMessage) -> Message:
        sb = self.sb
        with sb.store.lock:
            now = sb.now()
            to = verb.to or inbound.from_ or ""
            sender = verb.from_ or owned.number
            duplicate, out_of_order = sb.faults.callback_modes()
            message = Message(
                sid=new_sid("MM" if verb.media_urls else "SM"),
                account_sid=owned.account_sid,
                to=to,
                from_=sender,
                body=verb.body,
                direction="outbound-reply",
                status="queued",
                date_created=now,
                date_updated=now,
                num_segments=count_segments(verb.body) or 1,
                media_urls=list(verb.media_urls),
                status_callback=verb.status_callback,
                seq=sb.store.next_seq(),
                duplicate_callbacks=duplicate,
                out_of_order_callbacks=out_of_order,
            )
            sb.store.messages[message.sid] = message
            refusal = None
            if not verb.body and not verb.media_urls:
                refusal = 21602
            elif len(verb.body) > MAX_BODY:
                refusal = 21617
            elif sb.is_opted_out(sender, to):
                refusal = 21610
            if refusal is not None:
                message.status = "failed"
                message.error_code = refusal
                message.error_message = TwilioApiError(refusal).message
                log.info("TwiML reply %s to %s not sent (%d)", message.sid, mask_phone(to), refusal)
            else:
                self._schedule_delivery(message)
            return dataclasses.replace(message)


def status_params(message: Message, status: str) -> list[tuple[str, str]]:
    """The parameters of an SMS status callback, as Twilio sends them."""
    params = [
        ("AccountSid", message.account_sid),
        ("ApiVersion", API_VERSION),
        ("From", message.from_ or ""),
        ("MessageSid", message.sid),
        ("MessageStatus", status),
        ("SmsSid", message.sid),
        ("SmsStatus", status),
        ("To", message.to),
    ]
    if message.messaging_service_sid:
        params.append(("MessagingServiceSid", message.messaging_service_sid))
    if message.error_code is not None and status in {"failed", "undelivered"}:
        params.append(("ErrorCode", str(message.error_code)))
        params.append(("ErrorMessage", message.error_message or ""))
    return params


def inbound_params(message: Message) -> list[tuple[str, str]]:
    """The parameters of an incoming-SMS webhook, as Twilio sends them."""
    from_country, to_country = region_of(message.from_ or ""), region_of(message.to)
    params = [
        ("AccountSid", message.account_sid),
        ("ApiVersion", API_VERSION),
        ("Body", message.body),
        ("From", message.from_ or ""),
        ("FromCity", ""),
        ("FromCountry", from_country),
        ("FromState", ""),
        ("FromZip", ""),
        ("MessageSid", message.sid),
        ("NumMedia", str(message.num_media)),
        ("NumSegments", str(message.num_segments)),
        ("SmsMessageSid", message.sid),
        ("SmsSid", message.sid),
        ("SmsStatus", "received"),
        ("To", message.to),
        ("ToCity", ""),
        ("ToCountry", to_country),
        ("ToState", ""),
        ("ToZip", ""),
    ]
    for index, url in enumerate(message.media_urls):
        params.append((f"MediaUrl{index}", url))
        params.append((f"MediaContentType{index}", "image/jpeg"))
    return params


def region_of(number: str) -> str:
    """Two-letter country of an E.164 number ('' when unknown)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return "" if region == "ZZ" else region
