"""``bot show`` (one borrower) and ``bot summary`` (the whole portfolio)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich import box
from rich.cells import cell_len
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from bot.cli.common import INSTANT, App, clock_for, out_console, pass_app, print_json
from bot.portfolio import audit_reveal, borrower_document, load_borrower, portfolio_summary

log = logging.getLogger(__name__)


@click.command("show")
@click.argument("borrower_id")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (shape in docs/cli.md).")
@click.option(
    "--reveal",
    is_flag=True,
    help="Show the name, phone number, email and addresses unmasked. Every reveal is "
    "written to the audit log (actor cli, action reveal).",
)
@click.option("--at", type=INSTANT, help="Compute days past due at this instant (default: now).")
@pass_app
def show_cmd(app: App, borrower_id: str, as_json: bool, reveal: bool, at: datetime | None) -> None:
    """Show one borrower: loans, installments, payments, contacts, consents, promises, tasks.

    Personal data is masked unless --reveal is given; reveals are audited.
    Days past due are counted in the borrower's own time zone.
    """
    now = clock_for(app, at).now()
    with app.db.session() as session:
        record = load_borrower(session, borrower_id)
        if reveal:  # audited before anything unmasked is printed
            audit_reveal(session, record, actor="cli", at=app.clock.now())
    log.debug(
        "show %s: %d loans, %d contacts, reveal=%s",
        borrower_id, len(record.borrower.loans), record.contact_total, reveal,
    )  # fmt: skip
    doc = borrower_document(record, at=now, default_timezone=app.settings.default_timezone, reveal=reveal)
    if as_json:
        print_json(doc)
    else:
        _print_borrower(doc)


# Free-text columns and times wrap, at spaces only ("+1 ***-***-0147" → "+1" /
# "***-***-0147", "2026-11-28 10:00 -05:00" → "2026-11-28" / "10:00 -05:00"); ids,
# dates, statuses and amounts never do (a folded amount misleads).  Before a table is
# printed every column gets as its least width its longest cell (its longest word for
# a wrapping column), so an 80-column terminal wraps a table's rows instead of cutting
# its values ("pendin").
_TIMES = frozenset({"When", "Paid at", "Opted out", "Made at", "Created"})
_WRAPPING = frozenset({"Address", "Reasons", "Note"}) | _TIMES
#: A time wraps after its date only: "10:00 -05:00" stays on one line.
_TIME_WIDTH = len("10:00 -05:00")
#: The least width a wrapping column gives way to on a narrow terminal.
_FOLD_WIDTH = 8


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False)
    for name in columns:
        table.add_column(
            name,
            justify="right" if name in right else "left",
            no_wrap=name not in _WRAPPING,
            overflow="fold",
        )
    return table


def _add(table: Table, *cells: str | Text) -> None:
    """Add a row; plain strings become Text so that data is never read as rich markup."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in cells))


def _fit(table: Table, width: int | None = None) -> Table:
    """Least widths that keep every value whole (see ``_WRAPPING``); returns the table.

    When even those do not fit ``width`` (default: the terminal's), the widest wrapping
    column gives way first, down to :data:`_FOLD_WIDTH`, and folds its longest words
    (an address over two lines): ids, dates, statuses and amounts stay whole.
    """
    for column in table.columns:
        cells = [cell.plain if isinstance(cell, Text) else str(cell) for cell in column.cells]
        header = str(column.header)
        if column.no_wrap:
            widths = [cell_len(text) for text in (*cells, header)]
        else:
            widths = [cell_len(word) for text in (*cells, header) for word in text.split()]
        column.min_width = max(widths, default=0)
        if header in _TIMES and any(cells):
            column.min_width = max(column.min_width, _TIME_WIDTH)
    width = width or out_console.width
    flexible = [column for column in table.columns if not column.no_wrap]
    while Measurement.get(out_console, out_console.options.update_width(width), table).minimum > width:
        widest = max(flexible, key=lambda column: column.min_width or 0, default=None)
        if widest is None or (widest.min_width or 0) <= _FOLD_WIDTH:
            break  # nothing left to give: Rich shrinks what remains
        widest.min_width = (widest.min_width or 0) - 1
    return table


def _when(iso: str | None) -> str:
    """``2026-11-27T10:52:00-07:00`` → ``2026-11-27 10:52 -07:00`` (tables only; JSON keeps ISO)."""
    if not iso:
        return ""
    value = datetime.fromisoformat(iso)
    offset = value.strftime("%z")
    return f"{value:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


_STATUS_STYLE = {"paid": "green", "partly paid": "yellow", "overdue": "red", "due": ""}


def _print_borrower(doc: dict[str, Any]) -> None:
    b = doc["borrower"]
    con = out_console
    where = "/".join(p for p in (b["country"], b["region"]) if p)
    con.print(Text.assemble((b["id"], "bold"), "  ", b["name"] or "", f"  {b['locale']}  {where}"))
    con.print(f"phone {b['phone'] or '-'}   email {b['email'] or '-'}", markup=False)
    con.print(
        f"time zone {b['timezone'] or '-'} (candidates: {', '.join(b['zones'])}); "
        f"local today {b['local_today']}",
        markup=False,
    )
    if b["cease_communication_at"]:
        con.print(f"[red]asked to cease all communication at {b['cease_communication_at']}[/red]")
    if doc["masked"]:
        con.print("[dim]personal data masked; --reveal shows it and is audited[/dim]")

    for loan in doc["loans"]:
        con.print()
        con.print(
            f"Loan {loan['id']}  {loan['product']}  {loan['currency']}  opened {loan['opened_on']}  "
            f"principal {loan['principal']['text']}  outstanding {loan['outstanding']['text']}  "
            f"overdue {loan['overdue']['text']}",
            markup=False,
        )
        inst = _table(
            "Installments", "Id", "Due", "Amount due", "Paid", "Outstanding", "Status", "DPD",
            right=("Amount due", "Paid", "Outstanding", "DPD"),
        )  # fmt: skip
        for row in loan["installments"]:
            _add(
                inst,
                row["id"], row["due_date"], row["amount_due"]["text"], row["amount_paid"]["text"],
                row["outstanding"]["text"], Text(row["status"], style=_STATUS_STYLE[row["status"]]),
                str(row["days_past_due"] or ""),
            )  # fmt: skip
        con.print(_fit(inst), soft_wrap=False)
        if loan["payments"]:
            pay = _table("Payments", "Id", "Paid at", "Amount", right=("Amount",))
            for p in loan["payments"]:
                _add(pay, p["id"], _when(p["paid_at"]), p["amount"]["text"])
            con.print(_fit(pay), soft_wrap=False)

    con.print()
    consents = _table("Consents", "Channel", "Address", "Granted", "Opted out", "Source", "Flag")
    for c in doc["consents"]:
        _add(
            consents,
            c["channel"], c["address"], _yes(c["granted"]), _when(c["opted_out_at"]),
            c["opt_out_source"] or "", c["address_flag"] or "",
        )  # fmt: skip
    con.print(_fit(consents) if doc["consents"] else "no consent records", soft_wrap=False)

    contacts = doc["contacts"]
    if contacts["items"]:
        table = _table("Contacts (most recent first)", "When", "Channel", "Status", "Outcome", "Loan",
                       "Address", "Reasons")  # fmt: skip
        for c in contacts["items"]:
            _add(
                table,
                _when(c["occurred_at"]) or f"next {_when(c['next_attempt_at']) or '-'}", c["channel"], c["status"],
                c["outcome"] or "", c["loan_id"] or "", c["address"] or "", ", ".join(c["reasons"]),
            )  # fmt: skip
        con.print(_fit(table), soft_wrap=False)
        if contacts["more"]:
            con.print(f"+{contacts['more']} more (older contacts not shown)")
    else:
        con.print("no contacts")

    if doc["promises"]:
        table = _table("Promises", "Promised date", "Amount", "Loan", "Status", "Source", "Made at")
        for p in doc["promises"]:
            amount = p["amount"]["text"] if p["amount"] else ""
            _add(table, p["promised_date"], amount, p["loan_id"] or "", p["status"], p["source"],
                 _when(p["created_at"]))  # fmt: skip
        con.print(_fit(table), soft_wrap=False)
    else:
        con.print("no promises")

    if doc["open_tasks"]:
        table = _table("Open tasks", "Id", "Kind", "Loan", "Source", "Assigned to", "Created", "Note")
        for t in doc["open_tasks"]:
            _add(
                table,
                str(t["id"]), t["kind"], t["loan_id"] or "", t["source"], t["assigned_to"] or "",
                _when(t["created_at"]), t["note"] or "",
            )  # fmt: skip
        con.print(_fit(table), soft_wrap=False)
    else:
        con.print("no open tasks")


@click.command("summary")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (shape in docs/cli.md).")
@click.option("--at", type=INSTANT, help="Summarise as of this instant (default: now).")
@pass_app
def summary_cmd(app: App, as_json: bool, at: datetime | None) -> None:
    """Portfolio totals: borrowers, loans, installments due and overdue, amounts, consents.

    Due and overdue are counted on one calendar day for everyone: today in
    BOT_DEFAULT_TIMEZONE (``bot show`` uses each borrower's own day).
    """
    now = clock_for(app, at).now()
    today = now.astimezone(ZoneInfo(app.settings.default_timezone)).date()
    with app.db.session() as session:
        summary = portfolio_summary(session, today)
    if as_json:
        print_json(summary)
        return
    _print_summary(summary)


def _print_summary(s: dict[str, Any]) -> None:
    con = out_console
    b, loans, inst = s["borrowers"], s["loans"], s["installments"]
    counts = _table(f"Portfolio on {s['today']}", "What", "Count", right=("Count",))
    _add(counts, "borrowers", f"{b['total']:,}")
    for country, n in b["by_country"].items():
        _add(counts, f"  country {country}", f"{n:,}")
    for locale, n in b["by_locale"].items():
        _add(counts, f"  locale {locale}", f"{n:,}")
    _add(counts, "  asked to cease communication", f"{b['cease_communication']:,}")
    _add(counts, "loans", f"{loans['total']:,}")
    _add(counts, "installments", f"{inst['total']:,}")
    _add(counts, "  unpaid", f"{inst['unpaid']:,}")
    _add(counts, "  due in the next 7 days", f"{inst['due_next_7_days']:,}")
    _add(counts, "  due today", f"{inst['due_today']:,}")
    for bucket, n in inst["overdue"].items():
        _add(counts, f"  overdue {bucket} days", f"{n:,}")
    _add(counts, "pending promises", f"{s['promises_pending']:,}")
    _add(counts, "open tasks", f"{s['open_tasks']:,}")
    con.print(_fit(counts), soft_wrap=False)

    if s["amounts"]:
        amounts = _table("Amounts", "Currency", "Outstanding", "Overdue", right=("Outstanding", "Overdue"))
        for currency, a in s["amounts"].items():
            _add(amounts, currency, a["outstanding"]["text"], a["overdue"]["text"])
        con.print(_fit(amounts), soft_wrap=False)

    if s["consents"]:
        consents = _table(
            "Consents", "Channel", "Addresses", "Granted", "Not granted", "Opted out", "Flagged",
            right=("Addresses", "Granted", "Not granted", "Opted out", "Flagged"),
        )  # fmt: skip
        for channel, c in s["consents"].items():
            _add(
            consents,
                channel, f"{c['addresses']:,}", f"{c['granted']:,}", f"{c['not_granted']:,}",
                f"{c['opted_out']:,}", f"{c['flagged']:,}",
            )  # fmt: skip
        con.print(_fit(consents), soft_wrap=False)


COMMANDS = [show_cmd, summary_cmd]
