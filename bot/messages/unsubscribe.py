"""Email unsubscribe tokens and the headers built from them.

**The token** goes into the link ``{public_base_url}/unsubscribe/{token}`` of every
email.  The endpoint (bot/web) must learn from it, without a database lookup and
without trusting the request, *which borrower* and *which address* asked to stop:
an opt-out belongs to an address (docs/compliance.md), and a borrower may have
changed address since.  A link is also copied, forwarded and logged by mail
systems, so it must not show the address in clear text.  Hence a small
deterministic authenticated encryption (SIV style, encrypt-then-MAC):

* keys: ``enc = HMAC-SHA256(secret, "bot/unsubscribe/v1/enc")`` and
  ``mac = HMAC-SHA256(secret, "bot/unsubscribe/v1/mac")`` (``secret`` is the
  setting ``unsubscribe_secret``);
* ``plaintext = borrower_id + NUL + address`` (UTF-8, the address exactly as stored);
* ``iv = HMAC-SHA256(mac, "iv" + plaintext)[:16]`` -- deterministic, so the same
  borrower and address always get the same token and a message re-sent after a
  crash is byte-for-byte the same;
* ``ciphertext = AES-256-CTR(enc, iv, plaintext)``;
* ``tag = HMAC-SHA256(mac, version + iv + ciphertext)[:16]``;
* ``token = base64url(version + iv + ciphertext + tag)`` without padding
  (version byte ``0x01``).

Reading checks the tag with :func:`hmac.compare_digest` (constant time) before
decrypting, then recomputes the synthetic IV from the plaintext (constant time
again).  Anything wrong -- bad base64, truncated, another secret, a flipped bit,
another version -- gives ``None``, never an exception: the endpoint answers
"link not valid" and learns nothing else.  Tokens do not expire: an unsubscribe
link must keep working (CAN-SPAM: at least 30 days after sending).  Rotating the
secret invalidates the links of emails already sent; keep the old one until they
are old enough.

**Message-ID** is derived from the attempt (``<attempt-{id}.{hash}@{domain}>``,
hash = first 16 hex digits of SHA-256 of the dedupe key), so an email re-sent
after a crash carries the same Message-ID and receiving systems drop the copy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from email.utils import parseaddr
from functools import lru_cache
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "list_unsubscribe_headers",
    "make_message_id",
    "make_unsubscribe_token",
    "one_click_allowed",
    "public_url_warnings",
    "read_unsubscribe_token",
    "unsubscribe_url",
]

VERSION = b"\x01"
IV_BYTES = 16
TAG_BYTES = 16
_MIN_TOKEN_BYTES = len(VERSION) + IV_BYTES + 2 + TAG_BYTES  # at least "x" NUL "y"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")


@lru_cache(maxsize=8)  # derived once per secret (every email of a pass uses the same one)
def _keys(secret: str) -> tuple[bytes, bytes]:
    key = secret.encode("utf-8")
    enc = hmac.digest(key, b"bot/unsubscribe/v1/enc", "sha256")
    mac = hmac.digest(key, b"bot/unsubscribe/v1/mac", "sha256")
    return enc, mac


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-256-CTR; the same call encrypts and decrypts."""
    cipher = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cipher.update(data) + cipher.finalize()


def _iv(mac_key: bytes, plaintext: bytes) -> bytes:
    return hmac.digest(mac_key, b"iv" + plaintext, "sha256")[:IV_BYTES]


def _tag(mac_key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    return hmac.digest(mac_key, VERSION + iv + ciphertext, "sha256")[:TAG_BYTES]


def make_unsubscribe_token(secret: str, borrower_id: str, address: str) -> str:
    """A URL-safe token that names ``borrower_id`` and ``address`` (encrypted, signed)."""
    if not borrower_id or not address:
        raise ValueError("an unsubscribe token needs a borrower id and an address")
    if "\x00" in borrower_id:
        raise ValueError("borrower id contains a NUL character")
    enc_key, mac_key = _keys(secret)
    plaintext = borrower_id.encode("utf-8") + b"\x00" + address.encode("utf-8")
    iv = _iv(mac_key, plaintext)
    ciphertext = _ctr(enc_key, iv, plaintext)
    raw = VERSION + iv + ciphertext + _tag(mac_key, iv, ciphertext)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str] | None:
    """``(borrower_id, address)`` from a token made with the same secret, else ``None``."""
    if not token or len(token) > 2048 or not _TOKEN_RE.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _MIN_TOKEN_BYTES or raw[:1] != VERSION:
        return None
    iv, ciphertext, tag = raw[1 : 1 + IV_BYTES], raw[1 + IV_BYTES : -TAG_BYTES], raw[-TAG_BYTES:]
    enc_key, mac_key = _keys(secret)
    if not hmac.compare_digest(tag, _tag(mac_key, iv, ciphertext)):
        return None
    plaintext = _ctr(enc_key, iv, ciphertext)
    if not hmac.compare_digest(iv, _iv(mac_key, plaintext)):
        return None
    borrower, sep, address = plaintext.partition(b"\x00")
    if not sep or not borrower or not address:
        return None
    try:
        return borrower.decode("utf-8"), address.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unsubscribe_url(public_base_url: str, token: str) -> str:
    """The link shown in the email and given in ``List-Unsubscribe``."""
    return f"{public_base_url.rstrip('/')}/unsubscribe/{token}"


def list_unsubscribe_headers(url: str, mailto: str | None) -> dict[str, str]:
    """RFC 2369 ``List-Unsubscribe`` and, for an HTTPS link, RFC 8058 ``List-Unsubscribe-Post``.

    The link comes first (RFC 8058 one-click: mail clients POST
    ``List-Unsubscribe=One-Click`` to it); the ``mailto:`` alternative is for
    clients that only do mail.  RFC 8058 requires the one-click URI to be HTTPS,
    so with an ``http://`` link (a public URL without TLS) the message offers no
    one-click: ``List-Unsubscribe`` alone, which clients open as a page.
    """
    value = f"<{url}>"
    if mailto:
        value += f", <mailto:{quote(mailto, safe='@.+-_')}?subject=unsubscribe>"
    headers = {"List-Unsubscribe": value}
    if one_click_allowed(url):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def one_click_allowed(url: str) -> bool:
    """RFC 8058 section 3.1: the one-click URI must be HTTPS."""
    return url[:8].lower() == "https://"


_LOOPBACK_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def public_url_warnings(public_base_url: str) -> list[str]:
    """What the bot should say at start about ``public_base_url``: an ``http://`` URL
    on a host other than loopback (local use) sends email unsubscribe links without
    TLS and, RFC 8058 needing HTTPS, without one-click unsubscribe."""
    parts = urlsplit(public_base_url)
    if parts.scheme.lower() != "http":
        return []
    host = (parts.hostname or "").lower()
    try:
        if ipaddress.ip_address(host).is_loopback:
            return []
    except ValueError:
        if host in _LOOPBACK_HOSTS or host.endswith(".localhost"):
            return []
    return [("public_base_url is http:// on a host that is not this machine: email unsubscribe links go "
             "without TLS and without RFC 8058 one-click unsubscribe (List-Unsubscribe-Post needs "
             "https://); use an https:// public URL in production")]


def make_message_id(attempt_id: int, dedupe_key: str, sender: str) -> str:
    """``<attempt-{id}.{hash}@{sender's domain}>``: stable for an attempt."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:16]
    return f"<attempt-{attempt_id}.{digest}@{_domain_of(sender)}>"


@lru_cache(maxsize=16)
def _domain_of(sender: str) -> str:
    """The domain of ``smtp_from`` (parsed once: the setting does not change)."""
    address = parseaddr(sender)[1] or sender
    return address.rpartition("@")[2] or "localhost"
