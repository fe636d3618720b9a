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
log record once installed with :func:`install_log_filter`.
"""

from __future__ import annotations

import logging
import re
import unicodedata

__all__ = [
    "RedactingFilter",
    "csv_safe",
    "csv_unescape",
    "install_log_filter",
    "mask_card",
    "mask_email",
    "mask_id",
    "mask_name",
    "mask_phone",
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
# that ends just before a letter, a "-" or a decimal point.
_NUMBER_RUN_RE = re.compile(r"(?<![\w.\-])(?:\+|%2[Bb]|\()?\d[\d\s().\-]{5,}\d(?![\w\-]|\.\d)")


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


def _redact_number(match: re.Match[str]) -> str:
    text = match.group(0)
    pieces = _KEEP_RE.split(text)
    if len(pieces) > 1:  # odd positions are the kept dates and amounts
        return "".join(
            piece if i % 2 else _NUMBER_RUN_RE.sub(_redact_number, piece) for i, piece in enumerate(pieces)
        )
    if text.startswith(_URL_PLUS):
        text = "+" + text[3:]
    digits = _digits(text)
    if len(digits) < 7:
        return match.group(0)
    if text.startswith("+"):  # international notation: a phone number, never a card
        return mask_phone("+" + digits)
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return "[card " + mask_card(digits) + "]"
    return MASK * (len(digits) - 4) + digits[-4:]


def redact(text: str) -> str:
    """Mask emails, SSNs, Chinese ID numbers, card numbers and phone numbers."""
    if not text:
        return text
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    text = _SSN_RE.sub(lambda m: mask_id(m.group(0)), text)
    text = _CN_ID_RE.sub(lambda m: mask_id(m.group(0)), text)
    return _NUMBER_RUN_RE.sub(_redact_number, text)


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
