"""``X-Twilio-Signature``: how Twilio signs every webhook it sends.

The signed string is the full URL Twilio requested (scheme, host, port,
path and query string exactly as configured) followed, for a
form-encoded POST, by every parameter name immediately followed by its
value, names sorted; a name that occurs several times contributes each of
its distinct values in sorted order.  The signature is the base64 of the
HMAC-SHA1 of that string keyed with the account's auth token.

That is what ``twilio.request_validator.RequestValidator.validate`` checks,
and the tests check the sandbox against that validator rather than
against this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Twilio-Signature"


def signing_string(url: str, params: Iterable[tuple[str, str]]) -> str:
    """The string Twilio signs: the URL then ``name + value`` pairs in sorted order."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(grouped):
        for value in sorted(grouped[name]):
            parts.append(name + value)
    return "".join(parts)


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The ``X-Twilio-Signature`` value for a request to *url* carrying *params* as its POST body."""
    digest = hmac.new(auth_token.encode("utf-8"), signing_string(url, params).encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
