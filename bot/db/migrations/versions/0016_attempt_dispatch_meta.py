"""contact attempts: typed dispatch metadata (sender, body hash, call script and locale,
rate-limited until) in columns of their own instead of inside the decision JSON

Existing rows move over: ``decision["dispatch"]`` loses ``from``, ``body_sha256``, ``call``
and ``rate_limited_until``, which land in the new columns (docs/dispatch.md); the
downgrade puts them back.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 22:00:00
"""

from datetime import datetime
from typing import Any

from alembic import op
import sqlalchemy as sa

import bot.db.types


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_ATTEMPTS = sa.table(
    'contact_attempts',
    sa.column('id', sa.Integer()),
    sa.column('decision', sa.JSON()),
    sa.column('sender', sa.String()),
    sa.column('body_sha256', sa.String()),
    sa.column('call_script', sa.String()),
    sa.column('call_locale', sa.String()),
    sa.column('rate_limited_until', bot.db.types.UTCDateTime(timezone=True)),
)
_MOVED = ('from', 'body_sha256', 'call', 'rate_limited_until')
_CHUNK = 500


def _text(value: Any, size: int) -> str | None:
    return str(value)[:size] if isinstance(value, str) and value else None


def _instant(value: Any) -> datetime | None:
    """An aware ISO 8601 instant, else None (what ``rate_limited_until`` held as text)."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _rows(conn: sa.Connection, where: Any) -> Any:
    last = 0
    while True:
        rows = conn.execute(sa.select(*_ATTEMPTS.c).where(where, _ATTEMPTS.c.id > last)
                            .order_by(_ATTEMPTS.c.id).limit(_CHUNK)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table('contact_attempts') as batch_op:
        batch_op.add_column(sa.Column('sender', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('body_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('call_script', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('call_locale', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('rate_limited_until', bot.db.types.UTCDateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    for row in list(_rows(conn, _ATTEMPTS.c.decision.is_not(None))):
        decision = row.decision
        meta = decision.get('dispatch') if isinstance(decision, dict) else None
        if not isinstance(meta, dict) or not any(k in meta for k in _MOVED):
            continue
        call = meta.get('call') if isinstance(meta.get('call'), dict) else {}
        kept = {k: v for k, v in meta.items() if k not in _MOVED}
        conn.execute(sa.update(_ATTEMPTS).where(_ATTEMPTS.c.id == row.id).values(
            decision={**decision, 'dispatch': kept},
            sender=_text(meta.get('from'), 32), body_sha256=_text(meta.get('body_sha256'), 64),
            call_script=_text(call.get('script'), 64), call_locale=_text(call.get('locale'), 16),
            rate_limited_until=_instant(meta.get('rate_limited_until')),
        ))


def downgrade() -> None:
    conn = op.get_bind()
    c = _ATTEMPTS.c
    for row in list(_rows(conn, sa.or_(c.sender.is_not(None), c.body_sha256.is_not(None),
                                       c.call_script.is_not(None), c.rate_limited_until.is_not(None)))):
        decision = dict(row.decision) if isinstance(row.decision, dict) else {}
        meta = dict(decision.get('dispatch') or {}) if isinstance(decision.get('dispatch'), dict) else {}
        if row.sender:
            meta['from'] = row.sender
        if row.body_sha256:
            meta['body_sha256'] = row.body_sha256
        if row.call_script:
            meta['call'] = {'locale': row.call_locale, 'script': row.call_script}
        if row.rate_limited_until is not None:
            meta['rate_limited_until'] = row.rate_limited_until.isoformat()
        conn.execute(sa.update(_ATTEMPTS).where(c.id == row.id).values(decision={**decision, 'dispatch': meta}))
    with op.batch_alter_table('contact_attempts') as batch_op:
        batch_op.drop_column('rate_limited_until')
        batch_op.drop_column('call_locale')
        batch_op.drop_column('call_script')
        batch_op.drop_column('body_sha256')
        batch_op.drop_column('sender')
