"""What every outgoing SMS must satisfy, checked on the rendered text.

* **Opt-out instruction last.** Carriers (CTIA) and the TCPA expect every
  recurring text to say how to stop; the shipped templates end with it
  (docs/policy.md).  A template edited without it is refused at compose time
  instead of reaching a borrower.  Accepted endings, per language of the
  message locale (English ones are accepted in every locale, since STOP is
  the keyword carriers act on everywhere):

  ========  ==============================================
  en        "Reply STOP to opt out", "Text STOP to opt out",
            "Reply STOP to unsubscribe"
  zh        "回T退订", "回复T退订", "退订回T"
  ko        "수신거부: STOP 회신", "무료수신거부"
  ========  ==============================================

  Trailing spaces and a final ``.`` / ``。`` / ``!`` are ignored, case too.
* **The first text to a number carries it too.** A reply (a promise
  confirmation after a call, an answer) can be the first SMS a number ever gets
  from a sender; CTIA wants the first message of a programme to say how to stop,
  so :func:`with_opt_out` appends the locale's :data:`OPT_OUT_LINES` line to a
  text that does not end with an instruction already.
* **Segment limit.** ``sms_max_segments`` (default 4) bounds cost and keeps
  messages readable; longer ones are refused.

:class:`ComposeError` names the template, the locale and what is wrong, never
the text.
"""

from __future__ import annotations

from bot.errors import BotError
from bot.messages.segments import SmsSegments, sms_segments

__all__ = ["OPT_OUT_ENDINGS", "OPT_OUT_LINES", "ComposeError", "check_sms", "ends_with_opt_out", "with_opt_out"]

OPT_OUT_ENDINGS: dict[str, tuple[str, ...]] = {
    "en": ("reply stop to opt out", "text stop to opt out", "reply stop to unsubscribe"),
    "zh": ("回t退订", "回复t退订", "退订回t"),
    "ko": ("수신거부: stop 회신", "무료수신거부"),
    "es": ("responda alto para cancelar", "responda stop para cancelar"),
}

#: The line appended to a first text that lacks an instruction, per language (en: every other).
OPT_OUT_LINES: dict[str, str] = {"en": "Reply STOP to opt out.", "zh": "回T退订", "ko": "수신거부: STOP 회신",
                                 "es": "Responda ALTO para cancelar."}

_TRAILING = " \t\r\n.。!！"


class ComposeError(BotError):
    """A message that cannot be composed or must not be sent as composed.

    ``reason`` is a short code for the attempt's ``last_error``:

    ============================  =================================================
    ``no_address``                the attempt has no phone number / email address
    ``no_template``               the attempt names no template
    ``unknown_reply``             ``reply_<kind>`` with a kind that does not exist
    ``unsupported_channel``       not SMS or email (voice has scripts, not templates)
    ``missing_data``              borrower, loan or installment not in the database
    ``paid``                      the installment has nothing outstanding any more
    ``no_date``                   no instant to compute the borrower's local date
    ``template_error``            the template does not render (names file and line)
    ``sms_too_long``              more segments than ``sms_max_segments``
    ``no_opt_out``                the SMS does not end with the opt-out instruction
    ``no_unsubscribe_link``       an email part lacks the unsubscribe link
    ============================  =================================================

    None of these improves by retrying: the dispatcher records the reason and
    does not send (a template fix and a new plan do).
    """

    def __init__(self, reason: str, message: str, *, template: str | None = None, locale: str | None = None) -> None:
        where = []
        if template:
            where.append(f"template '{template}'")
        if locale:
            where.append(f"locale {locale}")
        super().__init__((" for ".join(where) + ": " if where else "") + message)
        self.reason = reason
        self.template = template
        self.locale = locale


def ends_with_opt_out(body: str, locale: str) -> bool:
    """Whether ``body`` ends with an opt-out instruction for ``locale`` (or English)."""
    tail = body.rstrip(_TRAILING).casefold()
    language = locale.split("-")[0].lower()
    endings = OPT_OUT_ENDINGS.get(language, ()) + OPT_OUT_ENDINGS["en"]
    return any(tail.endswith(ending) for ending in endings)


def with_opt_out(body: str, locale: str) -> str:
    """``body`` ending with an opt-out instruction: as it is when it does, else with the
    locale's :data:`OPT_OUT_LINES` line appended (after a space; none after CJK text)."""
    if ends_with_opt_out(body, locale):
        return body
    language = locale.split("-")[0].lower()
    line = OPT_OUT_LINES.get(language, OPT_OUT_LINES["en"])
    text = body.rstrip()
    joiner = "" if language == "zh" else " "
    return f"{text}{joiner}{line}"


def check_sms(body: str, *, template: str, locale: str, max_segments: int, needs_opt_out: bool) -> SmsSegments:
    """Segments of ``body``; :class:`ComposeError` when it breaks a rule above."""
    if not body.strip():
        raise ComposeError("template_error", "the SMS body is empty", template=template, locale=locale)
    info = sms_segments(body)
    if info.segments > max_segments:
        raise ComposeError(
            "sms_too_long",
            f"{info.segments} segments ({info.encoding}, {info.units} units) exceed "
            f"sms_max_segments={max_segments}",
            template=template,
            locale=locale,
        )
    if needs_opt_out and not ends_with_opt_out(body, locale):
        raise ComposeError(
            "no_opt_out",
            "the SMS must end with the opt-out instruction (e.g. 'Reply STOP to opt out.')",
            template=template,
            locale=locale,
        )
    return info
