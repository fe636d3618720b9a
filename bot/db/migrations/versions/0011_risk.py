"""the lender's risk score and segment on borrowers and loans (docs/risk.md)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES = ('borrowers', 'loans')


# Plain ALTER TABLE, not a batch: rebuilding these tables on SQLite would drop their
# plan_dirty triggers (migration 0009).  SQLite has DROP COLUMN since 3.35.


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column('risk_score', sa.Integer(), nullable=True))
        op.add_column(table, sa.Column('segment', sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, 'segment')
        op.drop_column(table, 'risk_score')
