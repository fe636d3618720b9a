"""The messaging TwiML a bot answers an inbound SMS with (voice TwiML: :mod:`bot.sandbox.voice_twiml`).

Only ``<Response>`` with ``<Message>`` verbs is understood: the text of a
``<Message>`` (or of its ``<Body>`` child), its ``<Media>`` children and
its ``to`` / ``from`` / ``statusCallback`` attributes.  ``<Redirect>`` is
ignored.  An empty body, ``<Response/>`` or a non-XML answer sends
nothing, as with Twilio.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

MAX_TWIML_BYTES = 64 * 1024


@dataclass(frozen=True)
class TwimlMessage:
    body: str
    media_urls: list[str] = field(default_factory=list)
    to: str | None = None
    from_: str | None = None
    status_callback: str | None = None


class TwimlError(ValueError):
    """A webhook answer that is not messaging TwiML."""


def parse_response(text: str) -> ET.Element:
    """The ``<Response>`` root of a TwiML document (size-limited, no DTD); :class:`TwimlError` otherwise."""
    if len(text.encode("utf-8")) > MAX_TWIML_BYTES:
        raise TwimlError("TwiML document larger than 64 KiB")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise TwimlError("TwiML may not declare a DOCTYPE or entities")
    try:
        root = ET.fromstring(text)  # noqa: S314 - size-limited, no DTD, bot's own answer
    except ET.ParseError as exc:
        raise TwimlError(f"not well-formed XML (line {exc.position[0]})") from None
    if root.tag != "Response":
        raise TwimlError("the root element must be <Response>")
    return root


def parse_messages(document: str) -> list[TwimlMessage]:
    """The ``<Message>`` verbs of a TwiML document, in order."""
    text = document.strip()
    if not text:
        return []
    root = parse_response(text)
    messages = []
    for verb in root:
        if verb.tag != "Message":
            continue
        body_element = verb.find("Body")
        body = body_element.text if body_element is not None else verb.text
        media = [m.text.strip() for m in verb.findall("Media") if m.text and m.text.strip()]
        messages.append(
            TwimlMessage(
                body=(body or "").strip(),
                media_urls=media,
                to=verb.get("to"),
                from_=verb.get("from"),
                status_callback=verb.get("statusCallback") or verb.get("action"),
            )
        )
    return messages
