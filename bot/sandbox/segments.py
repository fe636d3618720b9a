"""How many SMS segments a body takes, the way carriers count them.

A body that fits the GSM-7 alphabet takes 160 characters in one segment and
153 per segment once concatenated (characters of the extension table such
as ``€`` or ``[`` count twice).  Anything else is sent as UCS-2: 70 UTF-16
code units alone, 67 per segment concatenated (an emoji is two units).
"""

from __future__ import annotations

import math

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
        units = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)
