"""``bot attempts``: contact attempts in a given status, for a person to look at.

The usual use: ``bot attempts`` lists the ``unknown`` ones, which a crash left
``sending`` and the provider could not settle (an email whose SMTP transaction
was cut: delivered or not, nobody can tell; docs/dispatch.md).  Addresses are
masked; no message text is shown (the database holds none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bot.cli.common import App, err_console, out_console, pass_app, print_json
from bot.domain import AttemptStatus, Channel
from bot.privacy import mask_address

#: Shown with the list: what a person does with an attempt in this status.
_HINTS = {
    AttemptStatus.UNKNOWN.value: "a crash left these 'sending' and the provider cannot tell whether they went out; "
                                 "check the relay's log by Message-ID (email) or the provider (SMS) before any "
                                 "resend",
    AttemptStatus.SENDING.value: "being sent now, or left by a crashed worker (reconciled by the next dispatch pass "
                                 "after the lease)",
}



def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@click.command("attempts")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in AttemptStatus]),
              default=(AttemptStatus.UNKNOWN.value,), show_default=True,
              help="Status to list (repeat for several).")
@click.option("--channel", type=click.Choice([c.value for c in Channel]), default=None, help="Only this channel.")
@click.option("--borrower", "borrower_id", default=None, help="Only this borrower.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many rows (the total is always counted).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@pass_app
def attempts_cmd(app: App, statuses: tuple[str, ...], channel: str | None, borrower_id: str | None, limit: int,
                 as_json: bool) -> None:
    """List contact attempts that need a person (by default the 'unknown' ones).

    Oldest first; addresses masked.  Exit status 0 whether or not any are found.
    """
    from sqlalchemy import func, select

    from bot.db.models import ContactAttempt

    where = [ContactAttempt.status.in_(sorted(set(statuses)))]
    if channel:
        where.append(ContactAttempt.channel == channel)
    if borrower_id:
        where.append(ContactAttempt.borrower_id == borrower_id)
    with app.db.sessions() as session:
        total = session.scalar(select(func.count()).select_from(ContactAttempt).where(*where)) or 0
        rows = list(session.scalars(
            select(ContactAttempt).where(*where)
            .order_by(ContactAttempt.occurred_at.is_(None), ContactAttempt.occurred_at, ContactAttempt.id)
            .limit(limit)))
    items: list[dict[str, Any]] = [{
        "id": a.id, "borrower_id": a.borrower_id, "loan_id": a.loan_id, "channel": a.channel,
        "status": a.status, "source": a.source, "step": a.step, "template": a.template,
        "address": mask_address(a.address, a.channel), "occurred_at": _iso(a.occurred_at),
        "updated_at": _iso(a.updated_at), "tries": a.tries, "last_error": a.last_error,
        "provider_id": a.provider_id, "claimed_by": a.claimed_by,
    } for a in rows]
    if as_json:
        print_json({"statuses": sorted(set(statuses)), "total": total, "shown": len(items), "items": items})
        return
    label = ", ".join(sorted(set(statuses)))
    if not items:
        err_console.print(f"no attempts in status {label}")
        return
    for status in sorted(set(statuses)):
        if status in _HINTS:
            err_console.print(f"{status}: {_HINTS[status]}", markup=False, soft_wrap=True)
    shown = f", first {len(items)}" if total > len(items) else ""
    table = Table(title=f"{total} attempt(s) in status {label}{shown}")
    for name in ("id", "borrower", "channel", "status", "address", "sending since (UTC)"):
        table.add_column(name, no_wrap=True)
    table.add_column("tries")
    table.add_column("last error")
    for item, row in zip(items, rows, strict=True):
        since = row.occurred_at.strftime("%Y-%m-%d %H:%M") if row.occurred_at is not None else ""
        table.add_row(str(item["id"]), item["borrower_id"], item["channel"], item["status"], item["address"], since,
                      str(item["tries"]), item["last_error"] or "")
    # Piped or redirected output is not cut to 80 columns (a terminal's width is respected).
    console = out_console if out_console.is_terminal else Console(highlight=False, soft_wrap=True, width=160)
    console.print(table)


COMMANDS = [attempts_cmd]
