"""a spoken turn's recognition margin, for the review queue's "low margin" reason (docs/console.md)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 22:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_turns') as batch_op:
        batch_op.add_column(sa.Column('margin', sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_turns') as batch_op:
        batch_op.drop_column('margin')
