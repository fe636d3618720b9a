"""``bot call``: place one scripted call to a borrower now, under the same rules as every call."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import click

from bot.cli.common import INSTANT, App, clock_for, err_console, out_console, pass_app, print_json
from bot.cli.plan_cmd import _POLICY_OPTION, _compliance_config, _policy


def mask_sid(sid: str | None) -> str:
    """``CA1234…abcd``-style: enough to find the call in Twilio's console, not the whole id."""
    if not sid:
        return "-"
    return sid[:4] + "…" + sid[-4:] if len(sid) > 8 else sid


@click.command("call")
@click.argument("borrower_id")
@click.option("--at", type=INSTANT, default=None,
              help="Judge the rules at this instant (ISO 8601 with offset); default now.")
@click.option("--script", default=None, help="Voice script to run (default: the policy's voice step's script).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-rate-limit", is_flag=True, help="Ignore the calls-per-second limit for this call.")
@_POLICY_OPTION
@pass_app
def call_cmd(app: App, borrower_id: str, at: datetime | None, script: str | None, as_json: bool,
             no_rate_limit: bool, policy_file: Path | None) -> None:
    """Place one scripted call to BORROWER_ID now.

    The call is a manual contact attempt checked like any other at this instant
    (contact hours in every zone of the borrower, call frequency, opt-outs,
    consent, disputes, promises): a refusal prints the reasons and exits 1.
    When it is placed, Twilio (or the sandbox at twilio_api_base_url) calls the
    bot's webhooks at public_base_url when it is answered.  Prints the call SID
    masked; never the number.
    """
    from bot.dispatch import DispatchOptions
    from bot.dispatch.manual import place_call

    settings = app.settings
    policy = _policy(app, policy_file)
    config = _compliance_config(app)
    clock = clock_for(app, at)
    options = DispatchOptions.from_settings(settings, simulated=at is not None,
                                            **({"rate_limits": False} if no_rate_limit else {}))
    result = asyncio.run(place_call(app.db, settings, borrower_id, clock=clock, policy=policy,
                                    compliance_config=config, options=options, script=script))
    data = {"attempt_id": result.attempt_id, "status": result.status, "call_sid": mask_sid(result.call_sid),
            "reasons": result.reasons, "next_allowed_at": result.next_allowed_at, "error": result.error}
    if as_json:
        print_json(data)
    elif result.placed:
        out_console.print(f"call placed: {mask_sid(result.call_sid)} (attempt {result.attempt_id})", markup=False)
    elif result.status in ("deferred", "blocked", "cancelled"):
        err_console.print(f"not allowed now ({result.status}): " + (", ".join(result.reasons) or "no reason given"),
                          markup=False)
        if result.next_allowed_at:
            err_console.print(f"next allowed at {result.next_allowed_at}", markup=False)
    elif result.status == "planned" and result.next_allowed_at:
        err_console.print(f"rate limited: the next dispatch pass places it after {result.next_allowed_at}",
                          markup=False)
    else:
        err_console.print(f"not placed ({result.status}): {result.error or 'see the attempt'}", markup=False)
    if not result.placed:
        raise SystemExit(1)


COMMANDS = [call_cmd]
