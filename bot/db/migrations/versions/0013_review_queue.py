"""review queue and whole-call recordings: who took a call to review, the call's dual-channel
recording, each turn's offset in it (docs/console.md, docs/voice.md)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:00:00
"""

from alembic import op
import sqlalchemy as sa

from bot.db.types import UTCDateTime


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_sessions') as batch_op:
        batch_op.add_column(sa.Column('assigned_to', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('recording_ref', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('recording_sid', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('recording_started_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('recording_channels', sa.Integer(), nullable=True))
    with op.batch_alter_table('call_turns') as batch_op:
        batch_op.add_column(sa.Column('offset_s', sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_turns') as batch_op:
        batch_op.drop_column('offset_s')
    with op.batch_alter_table('call_sessions') as batch_op:
        for name in ('recording_channels', 'recording_started_at', 'recording_sid', 'recording_ref',
                     'assigned_at', 'assigned_to'):
            batch_op.drop_column(name)
