"""``bot check``: may this borrower be contacted on this channel now (or at --at)?"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from bot.cli.common import INSTANT, App, pass_app, print_json
from bot.domain import Channel

if TYPE_CHECKING:
    from bot.compliance import Decision


@click.command("check")
@click.argument("borrower_id")
@click.option(
    "--channel",
    type=click.Choice([c.value for c in Channel]),
    required=True,
    help="The channel of the contact.",
)
@click.option("--at", type=INSTANT, default=None, help="The instant to judge (ISO 8601 with offset; default: now).")
@click.option(
    "--loan",
    "loan_id",
    default=None,
    help="Judge per-debt rules for this loan (default: the loan of the oldest outstanding installment).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Compliance file to use instead of the compliance_file setting.",
)
@pass_app
def check_cmd(
    app: App,
    borrower_id: str,
    channel: str,
    at: datetime | None,
    loan_id: str | None,
    as_json: bool,
    rules_file: str | None,
) -> None:
    """Say whether BORROWER_ID may be contacted, and if not why and when.

    Every rule of the borrower's rule sets is judged (the strictest wins);
    next_allowed_at is shown in the borrower's primary zone (the first of the
    candidate zones).  Exit status 0 whether or not contact is allowed.
    """
    # Imported here, not at the top: every `bot` command imports this module at start.
    from bot.cli.run_cmd import checked_policy
    from bot.compliance import check
    from bot.compliance.config import cached_compliance_config, load_compliance_config
    from bot.compliance.engine import engine_for
    from bot.compliance.loader import load_context

    settings = app.settings
    # The templates the bot would send are checked too: a broken one is reported
    # (exit status 2) when a command starts, not when a message is due.
    checked_policy(app, None)
    if rules_file is not None:
        config = load_compliance_config(rules_file, default_timezone=settings.default_timezone)
    else:
        path = str(settings.compliance_file) if settings.compliance_file else None
        config = cached_compliance_config(path, settings.default_timezone)
    instant = at if at is not None else app.clock.now()
    with app.db.session() as session:
        context = load_context(session, borrower_id, at=instant, loan_id=loan_id, config=config)
    decision = check(
        context.subject,
        Channel(channel),
        instant,
        context.history,
        context.state,
        loan_id=context.loan_id,
        config=config,
        explain=not as_json,
    )
    zone = engine_for(config).zones_for(context.subject)
    if as_json:
        data = decision.to_json()
        data["next_allowed_at"] = _in_zone(decision.next_allowed_at, zone.primary)
        print_json(data)
        return
    _print_human(decision, context.subject.borrower_id, channel, instant, context.loan_id,
                 loan_id is not None, zone.names, zone.sources, zone.primary)


def _in_zone(instant: datetime | None, tz: object) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(tz).isoformat()  # type: ignore[arg-type]


def _print_human(
    decision: Decision,
    borrower_id: str,
    channel: str,
    at: datetime,
    loan_id: str | None,
    loan_given: bool,
    zones: tuple[str, ...],
    sources: tuple[str, ...],
    primary: object,
) -> None:
    echo = click.echo
    echo(f"borrower   {borrower_id}")
    echo(f"channel    {channel}")
    echo(f"at         {_in_zone(at, primary)}")
    how = "--loan" if loan_given else "oldest outstanding installment"
    echo(f"loan       {loan_id} ({how})" if loan_id else "loan       none (nothing outstanding)")
    echo(f"rule set   {decision.rule_set}")
    echo("zones      " + ", ".join(f"{n} ({s})" for n, s in zip(zones, sources, strict=True)))
    if decision.allowed:
        echo("decision   ALLOWED")
    else:
        echo("decision   BLOCKED: " + ", ".join(decision.reasons))
        nxt = _in_zone(decision.next_allowed_at, primary)
        echo(f"next       {nxt if nxt else 'none (a stop condition, or nothing within the search horizon)'}")
    echo("")
    width = max(len(r.rule) for r in decision.results)
    for result in decision.results:
        verdict = "ok" if result.allowed else "BLOCKED"
        detail = result.detail
        if not result.allowed:
            detail = f"{result.reason}: {detail}"
            if result.next_allowed_at is not None:
                detail += f" (this rule: until {_in_zone(result.next_allowed_at, primary)})"
        echo(f"  {result.rule:<{width}}  {verdict:<7}  {detail}".rstrip())


COMMANDS = [check_cmd]
