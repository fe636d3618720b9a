"""``bot webhook``: event subscriptions of the lender's endpoints, deliveries and replays (docs/events.md)."""

from __future__ import annotations

from datetime import datetime

import click
from rich.table import Table

from bot.cli.common import INSTANT, App, clock_for, err_console, out_console, pass_app, print_json
from bot.events.types import EVENT_TYPES


@click.group("webhook")
def webhook_group() -> None:
    """Signed event webhooks to the lender: subscriptions, deliveries, replays."""


@webhook_group.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True, type=click.Choice(EVENT_TYPES),
              help="An event type to send (repeat the option for more).")
@click.option("--pii", is_flag=True, help="Send addresses and reply text unmasked (default: masked).")
@click.option("--json", "as_json", is_flag=True, help="Print the subscription and its secret as JSON.")
@pass_app
def add_cmd(app: App, url: str, events: tuple[str, ...], pii: bool, as_json: bool) -> None:
    """Subscribe URL to events.  Prints the signing secret (whsec_...) once: it is
    never shown again; the endpoint verifies every request with it."""
    from bot.events.subscriptions import add_subscription

    with app.db.session() as session:
        view, secret = add_subscription(session, url, events, pii=pii, at=app.clock.now())
    if as_json:
        print_json({**view.to_json(), "secret": secret})
        return
    err_console.print(f"added webhook {view.id} for {', '.join(view.events)}"
                      + (" (personal data unmasked)" if pii else ""), markup=False)
    err_console.print("signing secret (shown only now; keep it with the endpoint):")
    click.echo(secret)


@webhook_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_cmd(app: App, as_json: bool) -> None:
    """List subscriptions (URLs without credentials or query string) with pending and dead counts."""
    from bot.events.subscriptions import list_subscriptions

    with app.db.session() as session:
        views = list_subscriptions(session)
    if as_json:
        print_json([v.to_json() for v in views])
        return
    if not views:
        err_console.print("no webhook subscriptions")
        return
    table = Table("id", "events", "pii", "pending", "dead", "created")
    table.add_column("url", no_wrap=True)
    for v in views:
        table.add_row(str(v.id), ", ".join(v.events), "yes" if v.pii else "no", str(v.pending), str(v.dead),
                      v.created_at.isoformat(timespec="seconds"), v.url)
    out_console.print(table)


@webhook_group.command("remove")
@click.argument("subscription_id", type=int)
@pass_app
def remove_cmd(app: App, subscription_id: int) -> None:
    """Remove a subscription; its pending deliveries are dropped."""
    from bot.events.subscriptions import remove_subscription

    with app.db.session() as session:
        remove_subscription(session, subscription_id)
    err_console.print(f"removed webhook {subscription_id}")


@webhook_group.command("deliveries")
@click.option("--status", type=click.Choice(("pending", "delivered", "dead")), help="Only deliveries in this state.")
@click.option("--subscription", "subscription_id", type=int, help="Only this subscription's deliveries.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def deliveries_cmd(app: App, status: str | None, subscription_id: int | None, limit: int, as_json: bool) -> None:
    """The latest deliveries, newest first: state, tries, next try, last error."""
    from bot.events.subscriptions import list_deliveries

    with app.db.session() as session:
        views = list_deliveries(session, status=status, subscription_id=subscription_id, limit=limit)
    if as_json:
        print_json([v.to_json() for v in views])
        return
    if not views:
        err_console.print("no deliveries" + (f" {status}" if status else ""))
        return
    table = Table("id", "event", "type", "sub", "borrower", "status", "tries", "next try", "last error")
    for v in views:
        table.add_row(str(v.id), v.event, v.type, str(v.subscription_id), v.borrower_id or "-", v.status,
                      str(v.tries), v.next_attempt_at.isoformat(timespec="seconds")
                      if v.status == "pending" and v.next_attempt_at else "-", v.last_error or "-")
    out_console.print(table)


@webhook_group.command("replay")
@click.argument("delivery_ids", type=int, nargs=-1)
@click.option("--dead", is_flag=True, help="Replay every dead delivery.")
@click.option("--at", type=INSTANT, help="Replay as of this instant (ISO 8601 with offset); default now.")
@pass_app
def replay_cmd(app: App, delivery_ids: tuple[int, ...], dead: bool, at: datetime | None) -> None:
    """Send deliveries again (same webhook-id), with a fresh retry window."""
    from bot.events.subscriptions import replay

    with app.db.session() as session:
        count = replay(session, at=clock_for(app, at).now(), delivery_ids=delivery_ids, dead=dead)
    err_console.print(f"{count} deliveries queued again")


@webhook_group.command("deliver")
@click.option("--at", type=INSTANT, help="Deliver as of this instant (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_app
def deliver_cmd(app: App, at: datetime | None, as_json: bool) -> None:
    """Send the deliveries that are due now, once (bot run and bot tick do it too)."""
    from bot.events.delivery import DeliveryOptions, deliver_due

    report = deliver_due(app.db, clock_for(app, at), DeliveryOptions.from_settings(app.settings))
    if as_json:
        print_json(report.to_json())
        return
    counts = report.to_json()
    err_console.print(f"webhooks: {counts['delivered']} delivered, {counts['retry']} to retry, {counts['dead']} dead")


COMMANDS = [webhook_group]
