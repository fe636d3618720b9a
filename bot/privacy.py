"""Masking and redaction of personal data; pure functions plus a logging filter.

Display forms follow docs/privacy.md:

=========  ===========================  =======================
data       example input                masked
=========  ===========================  =======================
phone      +12125551234                 ``+1 ***-***-1234``
phone CN   +8613812341234               ``+86 138****1234``
email      jane.doe@example.com         ``j***@example.com``
name       Jane Doe / 张伟              ``J*** D***`` / ``张*``
card       4111 1111 1111 1111          ``411111******1111``
ID / SSN   123-45-6789                  ``***-**-6789``
=========  ===========================  =======================

:func:`redact` finds phone numbers, emails, card numbers (Luhn-checked) and
SSN/ID-like numbers in free text; :class:`RedactingFilter` applies it to every
log record once installed with :func:`install_log_filter`; :func:`quiet_libraries`
keeps third-party loggers (which log whole emails and requests) at WARNING.
"""

from __future__ import annotations

import logging
import re
import unicodedata

__all__ = [
    "LIBRARY_LOGGERS",
    "LibraryFilter",
    "RedactingFilter",
    "csv_safe",
    "csv_unescape",
    "install_log_filter",
    "mask_address",
    "mask_card",
    "mask_email",
    "mask_id",
    "mask_name",
    "mask_phone",
    "quiet_libraries",
    "redact",
]

MASK = "*"


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def mask_phone(phone: str | None) -> str:
    """Keep the country code and the last four digits.

    ``+12125551234`` → ``+1 ***-***-1234``; Chinese mobiles keep the
    customary 3+4 form: ``+8613812341234`` → ``+86 138****1234``.  A number
    without ``+`` keeps its last four digits; text with fewer than six digits
    keeps at most its last two.
    """
    if not phone:
        return ""
    digits = _digits(phone)
    if phone.strip().startswith("+") and len(digits) >= 8:
        if digits.startswith("1") and len(digits) == 11:
            return f"+1 ***-***-{digits[-4:]}"
        if digits.startswith("86") and len(digits) == 13:
            return f"+86 {digits[2:5]}****{digits[-4:]}"
        cc_len = _country_code_length(digits)
        cc = digits[:cc_len]
        hidden = len(digits) - cc_len - 4
        return f"+{cc} {MASK * max(hidden, 1)}{digits[-4:]}"
    if len(digits) >= 6:
        return MASK * (len(digits) - 4) + digits[-4:]
    return MASK * max(len(digits) - 2, 1) + digits[-2:]


def _country_code_length(digits: str) -> int:
    try:
        import phonenumbers
    except ImportError:  # pragma: no cover - phonenumbers is a dependency
        return 1
    for length in (1, 2, 3):
        if phonenumbers.region_code_for_country_code(int(digits[:length])) != "ZZ":
            return length
    return 1


def mask_address(address: str | None, channel: str | None = None) -> str:
    """A contact address masked as what it is: an email (``channel`` ``email``, or an ``@`` in
    it) by :func:`mask_email`, else a phone number by :func:`mask_phone`; ``""`` for none."""
    if not address:
        return ""
    return mask_email(address) if channel == "email" or "@" in address else mask_phone(address)


def mask_email(email: str | None) -> str:
    """``jane.doe@example.com`` → ``j***@example.com``."""
    if not email:
        return ""
    local, sep, domain = email.rpartition("@")
    if not sep:
        return (email[:1] + MASK * 3) if email else ""
    return f"{local[:1]}{MASK * 3}@{domain}"


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in {"W", "F"} and ch.isalpha()


def mask_name(name: str | None) -> str:
    """``Jane Doe`` → ``J*** D***``; ``张伟`` → ``张*``; ``김민준`` → ``김**``."""
    if not name:
        return ""
    name = name.strip()
    if name and all(_is_cjk(ch) or ch.isspace() for ch in name):
        compact = name.replace(" ", "")
        return compact[0] + MASK * max(len(compact) - 1, 1)
    parts = name.split()
    return " ".join(part[0] + MASK * 3 for part in parts if part)


def mask_card(number: str | None) -> str:
    """At most the first six and last four digits (PCI DSS 3.4.1).

    Only a number of card length (13 digits or more) keeps its first six: on
    a shorter one, six plus four would show (nearly) every digit, so it keeps
    the last four, and nothing at all when it has fewer than eight digits.
    """
    digits = _digits(number or "")
    if len(digits) >= 13:
        return digits[:6] + MASK * (len(digits) - 10) + digits[-4:]
    if len(digits) >= 8:
        return MASK * (len(digits) - 4) + digits[-4:]
    return MASK * len(digits)


def mask_id(number: str | None) -> str:
    """National ID / SSN: last four only; other characters become ``*``."""
    if not number:
        return ""
    keep = 4
    out = []
    for ch in reversed(number):
        if ch.isalnum() and keep > 0:
            out.append(ch)
            keep -= 1
        elif ch.isalnum():
            out.append(MASK)
        else:
            out.append(ch)
    return "".join(reversed(out))


# --- free-text redaction -------------------------------------------------

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_SSN_RE = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
# CN resident ID: 17 digits + digit or X
_CN_ID_RE = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
# Runs of digits with optional separators, 7 or more characters in all, maybe
# starting with "+", a URL-encoded "+" (%2B) or "(".  A run that starts right
# after a letter, digit, "." or "-" is part of a word, a decimal or an id
# (L0000123, the 1234-5678 groups of a UUID) and is left alone, as is one
# that ends just before a letter, a "-" or a decimal point, and one right after
# "<digit>:" (the seconds and fraction of a time: 15:42:01.221597).
_NUMBER_RUN_RE = re.compile(r"(?<![\w.\-])(?<!\d:)(?:\+|%2[Bb]|\()?\d[\d\s().\-]{5,}\d(?![\w\-]|\.\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


# Calendar dates (2026-11-28, 2026.11.28, 2026/11/28) and plain decimal amounts
# (12500.00) are not personal data.  A run of digits may hold several of them
# ("2026-11-28 120.00", "$1,250.00 (1250.00"): the run is split at each one,
# and only the pieces between them are looked at again.
_KEEP_RE = re.compile(r"((?<![\d.\-/])(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d+\.\d{2})(?![\d.\-/]))")
_URL_PLUS = ("%2B", "%2b")

# What a written phone number looks like without "+" (its digits only):
_PHONE_DIGITS_RE = re.compile(
    r"00[1-9]\d{7,13}"  # international with the 00 prefix: 0044 20 7946 0958
    r"|0[1-9]\d{7,10}"  # national with a trunk 0: 020 7946 0958, 010-1234-5678, 02-123-4567, 0755-1234-5678
    r"|1?[2-9]\d\d[2-9]\d{6}"  # NANP: (212) 555-0147, 1-212-555-0147
    r"|1[3-9]\d{9}"  # Chinese mobile: 138 1234 5678
)
_LOCAL_PHONE_RE = re.compile(r"\(?[2-9]\d\d\)?[ -]\d{4}")  # a local number: 555-0147, 123-4567
# A card number written in groups (4-4-4-4, Amex 4-6-5) is one even when it fails the Luhn check.
_CARD_GROUPS_RE = re.compile(r"\d{4}(?:[ -]\d{4}){3}(?:[ -]\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{5}")


def _last4(digits: str) -> str:
    return MASK * (len(digits) - 4) + digits[-4:]


def _mask_span(text: str, every_number: bool) -> str | None:
    """The masked form of ``text`` (part of a run of digits) if it is personal data, else None."""
    digits = _digits(text)
    if len(digits) < 7:
        return None
    if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_ok(digits):
        return "[card " + mask_card(digits) + "]"
    if _CARD_GROUPS_RE.fullmatch(text):
        return _last4(digits)
    if every_number:
        return _last4(digits)
    if text.count(".") == 1:  # a decimal number, not a phone number written with dots
        return None
    if _PHONE_DIGITS_RE.fullmatch(digits):
        return mask_phone("+" + digits[2:]) if digits.startswith("00") else _last4(digits)
    if _LOCAL_PHONE_RE.fullmatch(text):
        return _last4(digits)
    return None


def _redact_run(text: str, every_number: bool) -> str:
    """Mask what is personal data in a run of digits and separators.

    A run may join a phone number to a neighbouring number ("212-555-0147 3
    times", "2 x 138 1234 5678"), so it is cut at its spaces and the longest
    stretch of pieces that is personal data, from the left, is masked.
    """
    pieces = re.split(r"(\s+)", text)  # even positions are the pieces, odd the spaces between them
    words = pieces[::2]
    out: list[str] = []
    i = 0
    while i < len(words):
        for j in range(len(words), i, -1):
            masked = _mask_span("".join(pieces[2 * i : 2 * j - 1]), every_number)
            if masked is not None:
                out.append(masked)
                break
        else:
            j = i + 1
            out.append(words[i])
        if j < len(words):
            out.append(pieces[2 * j - 1])
        i = j
    return "".join(out)


def _redact_number(match: re.Match[str], every_number: bool = False) -> str:
    text = match.group(0)
    pieces = _KEEP_RE.split(text)
    if len(pieces) > 1:  # odd positions are the kept dates and amounts
        return "".join(
            piece if i % 2 else _NUMBER_RUN_RE.sub(lambda m: _redact_number(m, every_number), piece)
            for i, piece in enumerate(pieces)
        )
    if text.startswith(_URL_PLUS):
        text = "+" + text[3:]
    digits = _digits(text)
    if len(digits) < 7:
        return match.group(0)
    if text.startswith("+"):  # international notation: a phone number, never a card
        return mask_phone("+" + digits)
    return _redact_run(text, every_number)


def redact(text: str, *, every_number: bool = False) -> str:
    """Mask emails, SSNs, Chinese ID numbers, card numbers and phone numbers.

    Other numbers (times, counts, ids, amounts) stay, so that logs stay
    readable.  ``every_number=True`` also masks every other run of seven
    digits or more: for what a person wrote (a reply, a note), where a long
    number is more likely an account number than a count.
    """
    if not text:
        return text
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    text = _SSN_RE.sub(lambda m: mask_id(m.group(0)), text)
    text = _CN_ID_RE.sub(lambda m: mask_id(m.group(0)), text)
    return _NUMBER_RUN_RE.sub(lambda m: _redact_number(m, every_number), text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with :func:`redact` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not crash logging
            message = str(record.msg)
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_filter(logger: logging.Logger | None = None) -> RedactingFilter:
    """Install the filter on a logger (default: root) and on all its handlers.

    Filters on a logger only see records logged to that logger, not those
    propagated from children, so the filter also goes on every handler.
    """
    logger = logger or logging.getLogger()
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    return _FILTER


# Libraries log what passes through them, whatever -v says: aiosmtpd's "mail.log"
# every line of every email at DEBUG (greetings with names, base64 parts, amounts,
# unsubscribe tokens), aiosmtplib the SMTP dialogue, twilio's client and httpx/httpcore
# request URLs, bodies and headers, uvicorn's access log query strings (webhook
# parameters), SQLAlchemy statements with their parameters.  Names and tokens cannot
# be recognised by redact(), so below WARNING only the bot's own loggers speak.
LIBRARY_LOGGERS = (
    "mail.log",  # aiosmtpd
    "aiosmtpd",
    "aiosmtplib",
    "twilio",
    "twilio.http_client",
    "twilio.async_http_client",
    "httpx",
    "httpcore",
    "urllib3",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "uvicorn.asgi",
    "starlette",
    "fastapi",
    "multipart",
    "python_multipart",
    "sqlalchemy",
    "apscheduler",
    "asyncio",
)
OWN_LOGGERS = frozenset({"bot", "alembic"})  # alembic: migration steps, no data


class LibraryFilter(logging.Filter):
    """Lets through records of the bot's own loggers, and the warnings and errors of any other.

    On the handlers this holds even when a library sets its own loggers' levels
    again after start-up (uvicorn does, from its ``log_level``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.partition(".")[0] in OWN_LOGGERS


_LIBRARY_FILTER = LibraryFilter()


def quiet_libraries(logger: logging.Logger | None = None) -> LibraryFilter:
    """Pin :data:`LIBRARY_LOGGERS` at WARNING or higher, and filter the handlers of ``logger`` (default: root).

    Called by the CLI after setting the level from ``-v``, so no verbosity lets
    a library log message bodies, addresses or tokens.
    """
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if library.level < logging.WARNING:
            library.setLevel(logging.WARNING)
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if _LIBRARY_FILTER not in handler.filters:
            handler.addFilter(_LIBRARY_FILTER)
    return _LIBRARY_FILTER


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What may follow the protective quote: a formula start, or another quote (so
# that a value which itself starts with a quote survives the round trip).
_ESCAPED = frozenset("=+-@\t\r'")


def csv_safe(value: object) -> str:
    """A cell value that a spreadsheet will not run as a formula.

    Text starting with ``= + - @`` (or tab/CR) gets a leading ``'``, and so
    does text that already starts with ``'`` followed by one of those or by
    another ``'``.  :func:`csv_unescape` removes exactly that quote, so
    ``csv_unescape(csv_safe(x)) == x`` for every text ``x``.
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) or (len(text) >= 2 and text[0] == "'" and text[1] in _ESCAPED):
        return "'" + text
    return text


def csv_unescape(text: str) -> str:
    """Undo :func:`csv_safe` on a value read from a CSV file.

    A leading ``'`` is removed when the next character is a formula start or
    another ``'``; any other text is returned unchanged.
    """
    if len(text) >= 2 and text[0] == "'" and text[1] in _ESCAPED:
        return text[1:]
    return text
