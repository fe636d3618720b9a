"""what counts as paid: installments.covered_minor, loans' statement and credit

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 16:40:00

Existing data is settled once by the rule (bot.ledger): the statement is taken as
of this migration, so every payment already recorded counts as part of it, and
where the payments add up to more than the statement they win.
"""

from collections import defaultdict

from alembic import op
import sqlalchemy as sa
import bot.db.types

from bot.clock import SystemClock
from bot.ledger import allocate, loan_total


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('installments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('covered_minor', sa.BigInteger(), server_default='0', nullable=False))
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paid_stated_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('paid_stated_at', bot.db.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('credit_minor', sa.BigInteger(), server_default='0', nullable=False))
    _settle_existing()


def _settle_existing() -> None:
    conn = op.get_bind()
    now = SystemClock().now()
    loans = sa.table('loans', sa.column('id'), sa.column('paid_stated_minor'),
                     sa.column('paid_stated_at', bot.db.types.UTCDateTime()), sa.column('credit_minor'))
    installments = sa.table('installments', sa.column('id'), sa.column('loan_id'), sa.column('due_date', sa.Date()),
                            sa.column('amount_due_minor'), sa.column('amount_paid_minor'),
                            sa.column('covered_minor'))
    payments = sa.table('payments', sa.column('loan_id'), sa.column('paid_at', bot.db.types.UTCDateTime()),
                        sa.column('amount_minor'))
    rows = defaultdict(list)
    for iid, loan_id, due_date, due, paid in conn.execute(sa.select(
            installments.c.id, installments.c.loan_id, installments.c.due_date,
            installments.c.amount_due_minor, installments.c.amount_paid_minor)):
        rows[loan_id].append((iid, due_date, due, paid))
    paid_by_loan = defaultdict(list)
    for loan_id, paid_at, amount in conn.execute(sa.select(
            payments.c.loan_id, payments.c.paid_at, payments.c.amount_minor)):
        paid_by_loan[loan_id].append((paid_at, amount))
    covers, loan_rows = [], []
    for (loan_id,) in conn.execute(sa.select(loans.c.id)):
        stated = sum(r[3] for r in rows[loan_id])
        total = loan_total(stated, paid_by_loan[loan_id], now)
        allocation, credit = allocate(rows[loan_id], total)
        covers.extend({'b_id': c.installment_id, 'b_covered': c.covered_minor} for c in allocation)
        loan_rows.append({'b_id': loan_id, 'b_stated': stated, 'b_at': now, 'b_credit': credit})
    if covers:
        conn.execute(installments.update().where(installments.c.id == sa.bindparam('b_id'))
                     .values(covered_minor=sa.bindparam('b_covered')), covers)
    if loan_rows:
        conn.execute(loans.update().where(loans.c.id == sa.bindparam('b_id'))
                     .values(paid_stated_minor=sa.bindparam('b_stated'),
                             paid_stated_at=sa.bindparam('b_at', type_=bot.db.types.UTCDateTime()),
                             credit_minor=sa.bindparam('b_credit')), loan_rows)


def downgrade() -> None:
    with op.batch_alter_table('loans', schema=None) as batch_op:
        batch_op.drop_column('credit_minor')
        batch_op.drop_column('paid_stated_at')
        batch_op.drop_column('paid_stated_minor')
    with op.batch_alter_table('installments', schema=None) as batch_op:
        batch_op.drop_column('covered_minor')
