"""SMS encoding and segment count, the way carriers and Twilio count them.

Why our own tables: the segment count decides what a message costs and whether
it is refused (setting ``sms_max_segments``), and one character decides the
encoding.  A body whose characters all belong to the GSM 03.38 alphabet
(3GPP TS 23.038) is sent in GSM-7: 160 septets in a single message, 153 per part
once concatenated (7 septets go to the user data header).  Characters of the
extension table (``€ [ ] { } \\ ^ ~ |`` and form feed) are an escape plus a
character: two septets.  Anything else (Chinese, Korean, emoji, a curly quote)
makes the whole message UCS-2: 70 UTF-16 code units alone, 67 per part.

A part never ends in the middle of a character: an escaped GSM character and a
UTF-16 surrogate pair (most emoji) move whole to the next part, as Twilio's
segment calculator does, so ``[`` at septet 153 starts a new part.

(``bot/sandbox/segments.py`` counts the same way but without that rule; it is
the other side of the wire and deliberately shares no code with the bot.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SmsSegments", "is_gsm7", "sms_segments"]

ESCAPE = "\x1b"

#: The GSM 03.38 default alphabet in code-point order (0x00-0x7F).  0x1B is the
#: escape to the extension table and is not a character of its own.
GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_BASIC = frozenset(GSM7_BASIC_TABLE) - {ESCAPE}

#: The extension table: each of these is sent as ESC + one septet.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True, slots=True)
class SmsSegments:
    """How a body travels: its encoding, its size in that encoding and its parts."""

    encoding: Encoding
    segments: int  # 0 for an empty body
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    characters: int  # Python characters (code points)

    @property
    def per_segment(self) -> int:
        """Capacity of one part for this message (single or concatenated)."""
        if self.encoding == "GSM-7":
            return GSM7_SINGLE if self.segments <= 1 else GSM7_PART
        return UCS2_SINGLE if self.segments <= 1 else UCS2_PART


_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return _GSM7_ALL.issuperset(text)


def _units(text: str, gsm: bool) -> int:
    """``sum(_sizes(text, gsm))`` without a list: characters, plus one for each
    escaped GSM-7 character or each character outside the BMP."""
    if gsm:
        return len(text) + sum(text.count(ch) for ch in GSM7_EXTENSION.intersection(text))
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _sizes(text: str, gsm: bool) -> list[int]:
    """The size of each character in units of the chosen encoding."""
    if gsm:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _parts(sizes: list[int], capacity: int) -> int:
    """Parts needed when no character may straddle two parts."""
    parts, room = 1, capacity
    for size in sizes:
        if size > room:
            parts += 1
            room = capacity
        room -= size
    return parts


def sms_segments(text: str) -> SmsSegments:
    """Encoding, units and parts of ``text`` as an SMS body."""
    gsm = is_gsm7(text)
    units = _units(text, gsm)
    single, part = (GSM7_SINGLE, GSM7_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    else:
        segments = _parts(_sizes(text, gsm), part)
    return SmsSegments("GSM-7" if gsm else "UCS-2", segments, units, len(text))
