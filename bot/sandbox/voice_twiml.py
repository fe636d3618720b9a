"""Voice TwiML as the call flow executes it: parsed and checked into plain verbs.

Supported: ``<Say>`` (text, SSML children read as text, ``voice``,
``language``, ``loop``), ``<Play>`` (URL, ``loop``), ``<Pause length>``,
``<Gather>`` (``input``, ``numDigits``, ``timeout``, ``finishOnKey``,
``action``, ``method``, ``actionOnEmptyResult``, ``speechTimeout``,
``language``; nested ``<Say>``/``<Play>``/``<Pause>``), ``<Record>``
(``action``, ``method``, ``timeout``, ``maxLength``, ``finishOnKey``,
``playBeep``, ``trim``, ``recordingStatusCallback`` + ``Method``,
``transcribe``), ``<Redirect method>URL</Redirect>`` and ``<Hangup/>``.

Verbs Twilio has but the sandbox does not emulate (``<Dial>``,
``<Connect>``, ``<Start>``, ...) become :class:`Unsupported` (the flow
records an error and skips them).  Anything else that is not valid TwiML
(not XML, a root other than ``<Response>``, an unknown element, a bad
attribute value, a verb nested where it may not be) raises
:class:`VoiceTwimlError`, which ends the call like Twilio's 12100
"Document parse failure".  Messages name the verb and attribute, never the
document's text (a ``<Say>`` can carry personal data).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from bot.sandbox.twiml import TwimlError, parse_response

#: verbs of Twilio's voice TwiML that the sandbox knows but does not emulate
UNSUPPORTED = frozenset(
    {"Dial", "Enqueue", "Leave", "Queue", "Connect", "Start", "Stop", "Pay", "Prompt", "Refer", "Reject", "Sms", "Message", "Echo"}
)
GATHER_CHILDREN = frozenset({"Say", "Play", "Pause"})
KEYS = "0123456789*#"
#: ``loop="0"`` means "until the call ends"; the sandbox repeats that many times
LOOP_FOREVER = 1000


class VoiceTwimlError(TwimlError):
    """A document Twilio would refuse to execute (12100 Document parse failure)."""


@dataclass(frozen=True)
class Say:
    text: str
    voice: str | None = None
    language: str | None = None
    loop: int = 1
    ssml: bool = False
    nested: bool = False


@dataclass(frozen=True)
class Play:
    url: str
    loop: int = 1
    nested: bool = False


@dataclass(frozen=True)
class Pause:
    length: int = 1
    nested: bool = False


@dataclass(frozen=True)
class Gather:
    input: frozenset[str] = frozenset({"dtmf"})
    num_digits: int | None = None
    timeout: int = 5
    finish_on_key: str = "#"
    action: str | None = None
    method: str = "POST"
    action_on_empty_result: bool = False
    speech_timeout: str | None = None
    language: str | None = None
    children: tuple[Say | Play | Pause, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Record:
    action: str | None = None
    method: str = "POST"
    timeout: int = 5
    max_length: int = 3600
    finish_on_key: str = KEYS
    play_beep: bool = True
    trim: str = "trim-silence"
    recording_status_callback: str | None = None
    recording_status_callback_method: str = "POST"
    transcribe: bool = False


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str = "POST"


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Unsupported:
    tag: str


Verb = Say | Play | Pause | Gather | Record | Redirect | Hangup | Unsupported


def parse_voice(document: str) -> list[Verb]:
    """The verbs of a voice TwiML document, in order; :class:`VoiceTwimlError` if Twilio would refuse it."""
    text = document.strip()
    if not text:
        raise VoiceTwimlError("the document is empty")
    try:
        root = parse_response(text)
    except VoiceTwimlError:
        raise
    except TwimlError as exc:
        raise VoiceTwimlError(str(exc)) from None
    return [_verb(element, f"<{element.tag}> #{index + 1}") for index, element in enumerate(root)]


def _verb(element: ET.Element, where: str) -> Verb:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions are skipped by ElementTree
        raise VoiceTwimlError(f"{where}: not an element")
    if tag == "Say":
        return _say(element, where)
    if tag == "Play":
        return _play(element, where)
    if tag == "Pause":
        _no_children(element, where)
        return Pause(length=_int(element, "length", 1, where, minimum=0))
    if tag == "Gather":
        return _gather(element, where)
    if tag == "Record":
        return _record(element, where)
    if tag == "Redirect":
        _no_children(element, where)
        url = (element.text or "").strip()
        if not url:
            raise VoiceTwimlError(f"{where}: <Redirect> needs a URL")
        return Redirect(url=url, method=_method(element, "method", where))
    if tag == "Hangup":
        _no_children(element, where)
        return Hangup()
    if tag in UNSUPPORTED:
        return Unsupported(tag)
    raise VoiceTwimlError(f"{where}: <{tag}> is not a TwiML voice verb")


def _say(element: ET.Element, where: str) -> Say:
    text = " ".join("".join(element.itertext()).split())
    return Say(
        text=text,
        voice=element.get("voice"),
        language=element.get("language"),
        loop=_loop(element, where),
        ssml=len(element) > 0,
    )


def _play(element: ET.Element, where: str) -> Play:
    _no_children(element, where)
    url = (element.text or "").strip()
    if not url:
        if element.get("digits"):
            raise VoiceTwimlError(f"{where}: <Play digits> (sending tones) is not emulated by the sandbox")
        raise VoiceTwimlError(f"{where}: <Play> needs a URL")
    return Play(url=url, loop=_loop(element, where))


def _gather(element: ET.Element, where: str) -> Gather:
    raw_input = (element.get("input") or "dtmf").split()
    if not raw_input or any(token not in ("dtmf", "speech") for token in raw_input):
        raise VoiceTwimlError(f"{where}: input must be dtmf, speech or both")
    finish = element.get("finishOnKey", "#")
    if len(finish) > 1 or (finish and finish not in KEYS):
        raise VoiceTwimlError(f"{where}: finishOnKey must be one of 0-9, * or # (or empty)")
    num_digits = element.get("numDigits")
    speech_timeout = element.get("speechTimeout")
    if speech_timeout is not None and speech_timeout != "auto" and not speech_timeout.isdigit():
        raise VoiceTwimlError(f"{where}: speechTimeout must be a whole number of seconds or auto")
    children = []
    for index, child in enumerate(element):
        child_where = f"{where} > <{child.tag}> #{index + 1}"
        if child.tag not in GATHER_CHILDREN:
            raise VoiceTwimlError(f"{child_where}: <Gather> may only contain <Say>, <Play> and <Pause>")
        verb = _verb(child, child_where)
        children.append(_nested(verb))
    return Gather(
        input=frozenset(raw_input),
        num_digits=None if num_digits is None else _int(element, "numDigits", 1, where, minimum=1),
        timeout=_int(element, "timeout", 5, where, minimum=0),
        finish_on_key=finish,
        action=_url(element, "action"),
        method=_method(element, "method", where),
        action_on_empty_result=_bool(element, "actionOnEmptyResult", False, where),
        speech_timeout=speech_timeout,
        language=element.get("language"),
        children=tuple(children),
    )


def _record(element: ET.Element, where: str) -> Record:
    _no_children(element, where)
    finish = element.get("finishOnKey", KEYS)
    if any(key not in KEYS for key in finish):
        raise VoiceTwimlError(f"{where}: finishOnKey may only contain 0-9, * and #")
    trim = element.get("trim", "trim-silence")
    if trim not in ("trim-silence", "do-not-trim"):
        raise VoiceTwimlError(f"{where}: trim must be trim-silence or do-not-trim")
    return Record(
        action=_url(element, "action"),
        method=_method(element, "method", where),
        timeout=_int(element, "timeout", 5, where, minimum=0),
        max_length=_int(element, "maxLength", 3600, where, minimum=1),
        finish_on_key=finish,
        play_beep=_bool(element, "playBeep", True, where),
        trim=trim,
        recording_status_callback=_url(element, "recordingStatusCallback"),
        recording_status_callback_method=_method(element, "recordingStatusCallbackMethod", where),
        transcribe=_bool(element, "transcribe", False, where),
    )


def _nested(verb: Verb) -> Say | Play | Pause:
    if isinstance(verb, Say):
        return Say(verb.text, verb.voice, verb.language, verb.loop, verb.ssml, nested=True)
    if isinstance(verb, Play):
        return Play(verb.url, verb.loop, nested=True)
    assert isinstance(verb, Pause)
    return Pause(verb.length, nested=True)


def _no_children(element: ET.Element, where: str) -> None:
    if len(element):
        raise VoiceTwimlError(f"{where}: <{element.tag}> may not contain other elements")


def _url(element: ET.Element, name: str) -> str | None:
    value = element.get(name)
    return value.strip() if value and value.strip() else None


_INT = re.compile(r"^\s*\d+\s*$")


def _int(element: ET.Element, name: str, default: int, where: str, *, minimum: int) -> int:
    raw = element.get(name)
    if raw is None:
        return default
    if not _INT.match(raw) or int(raw) < minimum:
        raise VoiceTwimlError(f"{where}: {name} must be a whole number of at least {minimum}")
    return int(raw)


def _loop(element: ET.Element, where: str) -> int:
    loop = _int(element, "loop", 1, where, minimum=0)
    return LOOP_FOREVER if loop == 0 else loop


def _bool(element: ET.Element, name: str, default: bool, where: str) -> bool:
    raw = element.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise VoiceTwimlError(f"{where}: {name} must be true or false")
    return raw.lower() == "true"


def _method(element: ET.Element, name: str, where: str) -> str:
    raw = (element.get(name) or "POST").upper()
    if raw not in ("GET", "POST"):
        raise VoiceTwimlError(f"{where}: {name} must be GET or POST")
    return raw
