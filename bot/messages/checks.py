"""What every outgoing SMS must satisfy, checked on the rendered text.

* **Opt-out instruction last.** Carriers (CTIA) and the TCPA expect every
  recurring text to say how to stop; the shipped templates end with it
  (docs/policy.md).  A template edited without it is refused at compose time
  instead of reaching a borrower.  The accepted endings are the locale's own,
  read from ``<templates_dir>/sms/<locale>/locale.yaml`` (:mod:`bot.messages.locales`,
  docs/locales.md), and en-US's, accepted in every locale since STOP is the
  keyword carriers act on everywhere.  Trailing spaces and a final
  ``.`` / ``。`` / ``!`` are ignored, case too.
* **The first text to a number carries it too.** A reply (a promise
  confirmation after a call, an answer) can be the first SMS a number ever gets
  from a sender; CTIA wants the first message of a programme to say how to stop,
  so :func:`with_opt_out` appends the locale's first ``opt_out`` line to a
  text that does not end with an instruction already.
* **Segment limit.** ``sms_max_segments`` (default 4) bounds cost and keeps
  messages readable; longer ones are refused.

:class:`ComposeError` names the template, the locale and what is wrong, never
the text.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.errors import BotError
from bot.messages.locales import accepted_endings, normalise, opt_out_wording
from bot.messages.segments import SmsSegments, sms_segments
from bot.rendering import default_templates_dir

__all__ = ["ComposeError", "check_sms", "ends_with_opt_out", "with_opt_out"]

#: Characters of scripts written without spaces between words: no space before an appended line.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def _templates(templates_dir: Path | str | None) -> Path:
    return Path(templates_dir) if templates_dir is not None else default_templates_dir()


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
    ``no_payment_link``           ``reply_payment_link`` without a link (no
                                  ``payment_url_template``, no installment)
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


def ends_with_opt_out(body: str, locale: str, templates_dir: Path | str | None = None) -> bool:
    """Whether ``body`` ends with an opt-out instruction for ``locale`` (or en-US), as the
    locale files of ``templates_dir`` (default: the shipped templates) word it."""
    tail = normalise(body)
    return any(tail.endswith(ending) for ending in accepted_endings(_templates(templates_dir), locale))


def with_opt_out(body: str, locale: str, templates_dir: Path | str | None = None) -> str:
    """``body`` ending with an opt-out instruction: as it is when it does, else with the
    locale's first ``opt_out`` line appended (after a space; none before CJK text)."""
    if ends_with_opt_out(body, locale, templates_dir):
        return body
    line = opt_out_wording(_templates(templates_dir), locale).line
    text = body.rstrip()
    joiner = "" if _UNSPACED.match(line) else " "
    return f"{text}{joiner}{line}"


def check_sms(body: str, *, template: str, locale: str, max_segments: int, needs_opt_out: bool,
              templates_dir: Path | str | None = None) -> SmsSegments:
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
    if needs_opt_out and not ends_with_opt_out(body, locale, templates_dir):
        raise ComposeError(
            "no_opt_out",
            "the SMS must end with the opt-out instruction "
            f"(e.g. '{opt_out_wording(_templates(templates_dir), locale).line}')",
            template=template,
            locale=locale,
        )
    return info
