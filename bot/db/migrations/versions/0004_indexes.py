"""lookup indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:49:35.917458
"""

from alembic import op
import sqlalchemy as sa
import bot.db.types


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('borrowers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_borrowers_phone_e164'), ['phone_e164'], unique=False)

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_from_address'), ['from_address'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_from_address'))

    with op.batch_alter_table('borrowers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_borrowers_phone_e164'))

