"""The TwiML of one call step: a neutral :class:`~bot.channels.events.CallPlan` (prompts
to play, then listen, or hang up) in Twilio's language (docs/voice.md).

Built with ``twilio.twiml.voice_response.VoiceResponse``.  The prompts are
``<Play>`` of WAV files the bot renders and serves (signed URLs), never
``<Say>``: the text would go to Twilio's own speech engine and into its logs.

How each kind of listening becomes TwiML:

* keypad (``dtmf``): ``<Gather input="dtmf" numDigits actionOnEmptyResult="true">``
  with the prompts inside, so a key interrupts them; no key within ``timeout``
  posts an empty ``Digits`` (silence), and a ``<Redirect>`` to the silence URL
  follows in case the Gather falls through all the same;
* speech (``speech``): the prompts, then ``<Record action timeout maxLength
  playBeep="false" trim="trim-silence">``.  Twilio requests the action only
  when something was recorded, and otherwise goes on with the next verb: a
  ``<Redirect>`` to the same input URL with ``silence=1`` reports the silence;
* speech or keys (``both``): the prompts inside a ``<Gather input="dtmf">``
  that waits :data:`KEY_WAIT_SECONDS` for a key after them (without
  ``actionOnEmptyResult``, so no key falls through), then the ``<Record>`` and
  the ``<Redirect>``.  A key cannot simply end the ``<Record>``: a recording
  that is empty because a key was pressed before anything was said is not
  posted at all;
* ``<Hangup/>`` after the prompts when the script ended the call.

A multi-digit entry (a day of the month: no ``numDigits``, ended by ``#``) needs
time between keys: Twilio's Gather ``timeout`` is also the wait *between* digits,
so with 1 s "1 … 5" would be posted as "1".  Such a Gather waits at least
:data:`KEY_DIGIT_SECONDS`, and the prompts say to end the entry with ``#``, which
posts it at once.  In ``both`` mode the recording then starts only after those
seconds without a key, so it begins with a beep: the spoken answer is given after
the tone, and the speech prompt of such a node says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import Gather, VoiceResponse

from bot.channels.events import CallPlan, ListenPlan

__all__ = ["KEYS", "TWIML_TYPE", "build", "render", "reply"]

#: The media type of a TwiML answer.
TWIML_TYPE = "application/xml"

KEYS = "0123456789*#"
#: ``both``: how long keys are waited for after the prompts before the recording starts.
KEY_WAIT_SECONDS = 1
#: The shortest wait for the next key of a multi-digit entry ended by ``#`` (a date):
#: Twilio's Gather ``timeout`` is the wait between digits too.
KEY_DIGIT_SECONDS = 5


def render(plan: CallPlan) -> str:
    """The TwiML document of one call step."""
    return build(plan.prompts, plan.listen, hangup=plan.hangup)


def build(prompts: Sequence[str], listen: ListenPlan | None, *, hangup: bool) -> str:
    """The TwiML document: ``prompts`` are the URLs to play, in order."""
    response = VoiceResponse()
    multi_digit = listen is not None and not listen.num_digits
    keys: dict[str, object] = ({"finish_on_key": "#"} if multi_digit
                               else {"num_digits": listen.num_digits if listen is not None else None})
    if listen is not None and listen.mode == "dtmf":
        wait = max(listen.timeout_s, KEY_DIGIT_SECONDS if multi_digit else 1)
        gather = Gather(input="dtmf", action=listen.action, method="POST", timeout=wait,
                        action_on_empty_result=True, **keys)
        for url in prompts:
            gather.play(url)
        response.append(gather)
        response.redirect(listen.silence, method="POST")  # only if the Gather fell through after all
    elif listen is not None and listen.mode == "both":
        # Keys first: an empty recording (a key pressed before anything was said) would not
        # be posted at all, so keys are taken by a short Gather around the prompts.
        gather = Gather(input="dtmf", action=listen.action, method="POST",
                        timeout=KEY_DIGIT_SECONDS if multi_digit else KEY_WAIT_SECONDS, **keys)
        for url in prompts:
            gather.play(url)
        response.append(gather)
        response.record(action=listen.action, method="POST", timeout=max(listen.timeout_s, 1),
                        max_length=max(listen.max_length_s, 1), play_beep=multi_digit, trim="trim-silence",
                        finish_on_key=KEYS)
        response.redirect(listen.silence, method="POST")
    else:
        for url in prompts:
            response.play(url)
        if listen is not None:
            response.record(action=listen.action, method="POST", timeout=max(listen.timeout_s, 1),
                            max_length=max(listen.max_length_s, 1), play_beep=False, trim="trim-silence",
                            finish_on_key=KEYS)
            response.redirect(listen.silence, method="POST")
    if hangup or listen is None:
        response.hangup()
    return str(response)


def reply(message: str | None = None) -> str:
    """The TwiML answer to an inbound message: empty, or one ``<Message>`` answering the sender."""
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    if message is None:
        return head + "<Response/>"
    return f"{head}<Response><Message>{escape(message)}</Message></Response>"
