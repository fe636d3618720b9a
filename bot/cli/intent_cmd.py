"""``bot intent``: classify one borrower reply, for trying rules out and for support staff.

The reply itself is never printed (it may hold personal data): only the
intent, the promise date, the confidence and the name of the rule that fired.

``bot.nlu`` is imported inside the command: compiling its patterns takes about
half a second, and every ``bot`` invocation imports this module.
"""

from __future__ import annotations

import sys
from datetime import date

import click

from bot.cli.common import App, out_console, pass_app, print_json
from bot.errors import UsageError

CONTEXTS = ("sms", "voice", "yes_no")  # bot.nlu.Context values (a test keeps them equal)


def _parse_today(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UsageError("--today: expected a calendar date written YYYY-MM-DD, e.g. 2026-11-25") from None


@click.command("intent")
@click.argument("text")
@click.option(
    "--locale",
    "locale_tag",
    required=True,
    metavar="TAG",
    help="Borrower's locale, e.g. en-US, en-GB (day/month dates), zh-CN, ko-KR.",
)
@click.option(
    "--today",
    "today_text",
    metavar="YYYY-MM-DD",
    help="The reply's date in the borrower's zone; default: today's date in UTC.",
)
@click.option(
    "--context",
    type=click.Choice(CONTEXTS),
    default="sms",
    show_default=True,
    help="sms: YES is the opt-in keyword; yes_no/voice: yes and no are answers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: intent, promise_date, confidence, matched.")
@pass_app
def intent_cmd(app: App, text: str, locale_tag: str, today_text: str | None, context: str, as_json: bool) -> None:
    """Show what the bot makes of one reply TEXT (use - to read it from stdin).

    Reading from stdin keeps the reply out of your shell history.  Nothing is
    stored and no database is needed.
    """
    from bot.nlu import Intent, classify, locale_info

    if text == "-":
        text = sys.stdin.read()
    try:
        locale_info(locale_tag)
    except ValueError:
        raise UsageError("--locale: not a locale tag Babel knows; use e.g. en-US, en-GB, zh-CN or ko-KR") from None
    today = _parse_today(today_text) if today_text is not None else app.clock.now().date()
    result = classify(text, locale=locale_tag, today=today, context=context)
    if as_json:
        print_json(result.to_json())
        return
    out_console.print(f"intent:       {result.intent.value}", markup=False)
    out_console.print(f"promise date: {result.promise_date.isoformat() if result.promise_date else '-'}", markup=False)
    out_console.print(f"confidence:   {result.confidence:.2f}", markup=False)
    out_console.print(f"rule:         {result.matched}", markup=False)
    if result.intent is Intent.OPT_OUT:
        scope = "all channels" if result.all_channels else (result.scope.value if result.scope else "this channel")
        out_console.print(f"scope:        {scope}", markup=False)
    if result.amount is not None:
        out_console.print(f"amount:       {result.amount}", markup=False)


COMMANDS = [intent_cmd]
