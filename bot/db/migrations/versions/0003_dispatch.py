"""dispatch leases, inbound messages, rate buckets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:23:58.662674
"""

from alembic import op
import sqlalchemy as sa
import bot.db.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_buckets',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('tokens', sa.Double(), nullable=False),
    sa.Column('updated_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_buckets'))
    )
    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('borrower_id', sa.String(length=64), nullable=True),
    sa.Column('from_address', sa.String(length=254), nullable=False),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('body_redacted', sa.Text(), nullable=False),
    sa.Column('intent', sa.String(length=32), nullable=True),
    sa.Column('promise_date', sa.Date(), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=True),
    sa.Column('matched', sa.String(length=64), nullable=True),
    sa.Column('received_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reply_attempt_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['borrower_id'], ['borrowers.id'], name=op.f('fk_inbound_messages_borrower_id_borrowers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reply_attempt_id'], ['contact_attempts.id'], name=op.f('fk_inbound_messages_reply_attempt_id_contact_attempts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('provider_id', name=op.f('uq_inbound_messages_provider_id'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_borrower_id_received_at'), ['borrower_id', 'received_at'], unique=False)

    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', bot.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('tries', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_error', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('provider_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('sent_at', bot.db.types.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_column('sent_at')
        batch_op.drop_column('provider_status')
        batch_op.drop_column('last_error')
        batch_op.drop_column('tries')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_messages_borrower_id_received_at'))

    op.drop_table('inbound_messages')
    op.drop_table('rate_buckets')
