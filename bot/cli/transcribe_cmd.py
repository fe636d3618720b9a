"""``bot transcribe``: what the bot hears and understands in a recorded answer (docs/speech.md).

The file is the user's own, so the recognised text is printed (to stdout,
never to a log).  Speech recognition is imported inside the command: loading
Vosk and a model takes seconds and hundreds of megabytes, and every ``bot``
invocation imports this module.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from bot.cli.common import App, out_console, pass_app, print_json
from bot.errors import UsageError

EXPECTS = ("intent", "yes_no", "date", "digits", "free")  # bot.speech.grammars.EXPECTS, and free recognition


@click.command("transcribe")
@click.argument("file", metavar="FILE.wav")
@click.option("--locale", "locale_tag", required=True, metavar="TAG", help="Language of the recording, e.g. ko-KR.")
@click.option(
    "--expect",
    type=click.Choice(EXPECTS),
    default="intent",
    show_default=True,
    help="The kind of question answered: its grammar guides recognition (free: no grammar).",
)
@click.option("--today", "today_text", metavar="YYYY-MM-DD", help="Date promise dates are read against; default: today (UTC).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: text, confidence, intent, duration_s, accepted, alternatives (intent, text, score).")
@pass_app
def transcribe_cmd(app: App, file: str, locale_tag: str, expect: str, today_text: str | None, as_json: bool) -> None:
    """Recognise FILE.wav (PCM, mu-law or A-law WAV) and classify what was said.

    Uses the Vosk model configured for the locale (vosk_models,
    BOT_VOSK_MODEL_<LOCALE>; ko-KR has a built-in one).  Audio longer than the
    max_audio_seconds setting (default 60 s) is refused (exit status 2).
    """
    from bot.nlu import locale_info
    from bot.speech.audio import read_wav
    from bot.speech.listen import understand
    from bot.speech.stt import ModelRegistry, Recognizer

    try:
        locale_info(locale_tag)
    except ValueError:
        raise UsageError("--locale: not a locale tag Babel knows; use e.g. ko-KR, en-US or zh-CN") from None
    if today_text is not None:
        try:
            today = date.fromisoformat(today_text.strip())
        except ValueError:
            raise UsageError("--today: expected a calendar date written YYYY-MM-DD, e.g. 2026-11-25") from None
    else:
        today = app.clock.now().date()
    # AudioError names the file and the problem (exit status 2); audio longer than
    # max_audio_seconds is refused from the WAV header, before anything is decoded.
    pcm = read_wav(Path(file), max_seconds=app.settings.max_audio_seconds)
    registry = ModelRegistry(app.settings)
    heard = understand(pcm, locale_tag, expect=None if expect == "free" else expect, today=today,
                       recognizer=Recognizer(registry), accept_margin=app.settings.speech_accept_margin,
                       accept_confidence=app.settings.speech_accept_confidence, garbage=True)
    if as_json:
        print_json({"text": heard.text, "confidence": heard.confidence, "intent": heard.intent.value,
                    "duration_s": heard.duration_s, "accepted": heard.accepted,
                    "alternatives": [{"intent": a.intent, "text": a.text, "score": a.score}
                                     for a in heard.alternatives]})
        return
    out_console.print(f"text:         {heard.text}", markup=False)
    out_console.print(f"intent:       {heard.intent.value}", markup=False)
    out_console.print(f"promise date: {heard.promise_date.isoformat() if heard.promise_date else '-'}", markup=False)
    out_console.print(f"confidence:   {heard.confidence:.2f}", markup=False)
    out_console.print(f"accepted:     {'yes' if heard.accepted else 'no (the bot would ask again)'}", markup=False)
    out_console.print(f"duration:     {heard.duration_s:.2f} s", markup=False)


COMMANDS = [transcribe_cmd]
