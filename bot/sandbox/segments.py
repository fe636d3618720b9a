"""How many SMS segments a body takes, the way carriers count them.

A body that fits the GSM-7 alphabet takes 160 characters in one segment and
153 per segment once concatenated (characters of the extension table such
as ``€`` or ``[`` count twice).  Anything else is sent as UCS-2: 70 UTF-16
code units alone, 67 per segment concatenated (an emoji is two units).

A segment never splits a character, as Twilio counts: an escaped GSM-7
character (escape + character) or a surrogate pair that does not fit in what
is left of a segment moves whole to the next one, so ``"a"*152 + "[" +
"a"*152`` is 3 segments, not 2.
"""

from __future__ import annotations

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text)


def count_segments(text: str) -> int:
    """Segments needed for *text* (0 for an empty body)."""
    if not text:
        return 0
    if is_gsm7(text):
        sizes = [2 if ch in _GSM_EXTENDED else 1 for ch in text]
        single, multi = 160, 153
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = 70, 67
    if sum(sizes) <= single:
        return 1
    segments, room = 1, multi
    for size in sizes:
        if size > room:  # the character moves whole to the next segment
            segments, room = segments + 1, multi
        room -= size
    return segments
