"""What is kept of a reply's text: :func:`bot.privacy.redact` plus codes and account numbers.

``redact(text, every_number=True)`` masks emails, phone numbers, card numbers,
SSNs, Chinese ID numbers and any other run of seven or more digits (in a
reply a long number is more likely an account number than a count).  A reply can also
carry things too short for that: a card's security code ("cvv 123"), a PIN, a
one-time code, an account or card number of a few digits after a label
("acct 12345", "卡号 6222"), none of which may be stored (PCI DSS forbids
storing a CVV at all).  Those are replaced by ``*`` whatever their length.
"""

from __future__ import annotations

import re

from bot.privacy import redact

__all__ = ["redact_reply"]

# A label, up to a few separators or words like "is"/"number"/"#", then the code.
_SECRET_LABEL = (
    r"cvv2?|cvc2?|cid|csc|security\s+code|pin(?:\s+code)?|passcode|password|otp|verification\s+code"
    r"|安全码|验证码|校验码|密码|보안\s*코드|비밀번호|인증번호"
)
_ACCOUNT_LABEL = (
    r"acct|account|a/c|card|iban|routing|sort\s+code|loan\s+(?:no|number|#)"
    r"|账号|账户|帐号|帐户|卡号|银行卡|계좌|카드"
)
_FILLER = r"(?:\s*(?:no\.?|number|num|#|is|was|:|：|=|-)\s*)*\s*"
_SECRET_RE = re.compile(rf"(?i)((?:{_SECRET_LABEL}){_FILLER})(\d[\d\s-]{{1,10}}\d|\d)")
_ACCOUNT_RE = re.compile(rf"(?i)((?:{_ACCOUNT_LABEL}){_FILLER})([A-Za-z]{{0,4}}\d[\dA-Za-z\s-]{{2,30}}\d)")


def _stars(match: re.Match[str]) -> str:
    value = match.group(2)
    return match.group(1) + "".join("*" if ch.isalnum() else ch for ch in value)


def _keep_last4(match: re.Match[str]) -> str:
    value = match.group(2)
    digits = [i for i, ch in enumerate(value) if ch.isalnum()]
    keep = set(digits[-4:]) if len(digits) > 6 else set()
    return match.group(1) + "".join(ch if (i in keep or not ch.isalnum()) else "*" for i, ch in enumerate(value))


def redact_reply(text: str) -> str:
    """The reply as it may be stored and shown: personal numbers and codes masked."""
    text = redact(text, every_number=True)
    text = _SECRET_RE.sub(_stars, text)
    return _ACCOUNT_RE.sub(_keep_last4, text)
