"""surveys: one satisfaction question after a conversation, and its 1-5 answer (docs/metrics.md)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:10:00
"""

from alembic import op
import sqlalchemy as sa
import bot.db.types


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('surveys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('borrower_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('trigger', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('asked_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['borrower_id'], ['borrowers.id'], name=op.f('fk_surveys_borrower_id_borrowers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['attempt_id'], ['contact_attempts.id'], name=op.f('fk_surveys_attempt_id_contact_attempts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_surveys'))
    )
    with op.batch_alter_table('surveys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_surveys_borrower_id_asked_at'), ['borrower_id', 'asked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_surveys_answered_at'), ['answered_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('surveys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_surveys_answered_at'))
        batch_op.drop_index(batch_op.f('ix_surveys_borrower_id_asked_at'))

    op.drop_table('surveys')
