"""``bot apikey``: keys of the REST API (create, list, revoke); docs/cli.md, docs/api.md."""

from __future__ import annotations

import click
from rich.table import Table

from bot.api.keys import SCOPES, create_key, list_keys, revoke_key
from bot.cli.common import App, err_console, out_console, pass_app, print_json
from bot.db.models import AuditEvent


@click.group("apikey")
def apikey_group() -> None:
    """Keys of the REST API at /api/v1 and their scopes."""


def _audit(app: App, session: object, action: str, key_id: str, detail: dict[str, object]) -> None:
    session.add(AuditEvent(at=app.clock.now(), actor="cli", action=action,  # type: ignore[attr-defined]
                           subject_type="api_key", subject_id=key_id, detail=detail))


@apikey_group.command("create")
@click.argument("name")
@click.option("--scope", "scopes", type=click.Choice(SCOPES), multiple=True, required=True,
              help="What the key may do (repeat for several; docs/api.md).")
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "name", "key", "scopes"} as JSON.')
@pass_app
def create_cmd(app: App, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create a key and print it ONCE: only its hash is stored, it cannot be shown again."""
    with app.db.session() as session:
        info, key = create_key(session, name, list(scopes), app.clock.now())
        _audit(app, session, "apikey.create", info.id, {"scopes": list(info.scopes)})
    if as_json:
        print_json({"id": info.id, "name": info.name, "key": key, "scopes": list(info.scopes)})
        return
    err_console.print(f"created API key {info.id} ({info.name}) with scopes {', '.join(info.scopes)}; "
                      "it is shown once, store it now:", markup=False)
    click.echo(key)


@apikey_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_cmd(app: App, as_json: bool) -> None:
    """List keys (never the keys themselves): id, name, scopes, state, last use."""
    with app.db.session() as session:
        keys = list_keys(session)
    if as_json:
        print_json([k.as_json() for k in keys])
        return
    if not keys:
        err_console.print("no API keys; create one with: bot apikey create NAME --scope read")
        return
    table = Table("id", "name", "scopes", "state", "created", "last used")
    for k in keys:
        table.add_row(k.id, k.name, " ".join(k.scopes), "revoked" if k.revoked_at else "active",
                      k.created_at.isoformat(), k.last_used_at.isoformat() if k.last_used_at else "")
    out_console.print(table)


@apikey_group.command("revoke")
@click.argument("key_id")
@pass_app
def revoke_cmd(app: App, key_id: str) -> None:
    """Revoke a key: every request with it is refused (401) from now on."""
    with app.db.session() as session:
        info = revoke_key(session, key_id, app.clock.now())
        _audit(app, session, "apikey.revoke", info.id, {})
    err_console.print(f"revoked API key {info.id} ({info.name})", markup=False)


COMMANDS = [apikey_group]
