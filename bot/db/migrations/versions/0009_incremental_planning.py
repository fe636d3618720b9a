"""incremental planning: plan_dirty (written by triggers), plan_borrowers, plan_state
(docs/scheduler.md, "Incremental planning")

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:20:00
"""

from alembic import op
import sqlalchemy as sa
import bot.db.types


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# What a change of each table makes dirty: (table, how its borrower is found, statement
# kinds).  "id" the row's own id (borrowers), "borrower_id" its column, "loan_id" the
# borrower of its loan.
SOURCES = (
    ('borrowers', 'id', ('INSERT', 'UPDATE')),
    ('loans', 'borrower_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('installments', 'loan_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('payments', 'loan_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('consents', 'borrower_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('promises', 'borrower_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('holds', 'borrower_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('tasks', 'borrower_id', ('INSERT', 'UPDATE', 'DELETE')),
    ('contact_attempts', 'borrower_id', ('INSERT', 'UPDATE')),
)
# Contact history: only attempts that really happened count (bot.compliance.loader),
# so the planner's own rows (planned, deferred, blocked, cancelled) never fire.
REAL = "('sending','sent','done','failed','unknown')"
# While an import run holds a row in plan_bulk (inside its own transaction), installments
# and payments mark nothing row by row: the run marks its loans' borrowers at its end.
NOT_BULK = "NOT EXISTS (SELECT 1 FROM plan_bulk)"  # SQLite: the run's row in plan_bulk
# PostgreSQL: the run's transaction-local setting, read in the trigger's WHEN (no function call)
PG_NOT_BULK = "current_setting('bot.plan_bulk', true) IS DISTINCT FROM 'on'"
BULK_TABLES = ('installments', 'payments')
# The planner's own hand-off tasks do not make their borrower dirty when opened.
WHEN = {
    ('contact_attempts', 'INSERT'): f"NEW.status IN {REAL}",
    ('contact_attempts', 'UPDATE'): (f"NEW.status IN {REAL} AND (OLD.status IS DISTINCT FROM NEW.status"
                                     " OR OLD.outcome IS DISTINCT FROM NEW.outcome"
                                     " OR OLD.occurred_at IS DISTINCT FROM NEW.occurred_at)"),
    ('tasks', 'INSERT'): "NEW.source <> 'policy'",
}


def _name(table: str, kind: str) -> str:
    return f"plan_dirty_{table}_{kind.lower()}"


def _sqlite_insert(key: str, row: str, where: str = '') -> str:
    """The trigger statement that marks the borrower of ``row`` (NEW or OLD) dirty."""
    if key == 'loan_id':
        return f"INSERT INTO plan_dirty (borrower_id) SELECT borrower_id FROM loans WHERE {where}id = {row}.loan_id;"
    return f"INSERT INTO plan_dirty (borrower_id) SELECT {row}.{key}{' WHERE ' + where[:-5] if where else ''};"


def _upgrade_sqlite() -> None:
    for table, key, kinds in SOURCES:
        for kind in kinds:
            when = WHEN.get((table, kind), '').replace('IS DISTINCT FROM', 'IS NOT')
            if table in BULK_TABLES:
                when = f"{when} AND {NOT_BULK}" if when else NOT_BULK
            body = _sqlite_insert(key, 'OLD' if kind == 'DELETE' else 'NEW')
            if kind == 'UPDATE' and key != 'id':  # a row moved to another borrower: both are dirty
                body += " " + _sqlite_insert(key, 'OLD', f"OLD.{key} IS NOT NEW.{key} AND ")
            op.execute(f"CREATE TRIGGER {_name(table, kind)} AFTER {kind} ON {table} FOR EACH ROW"
                       f"{' WHEN ' + when if when else ''} BEGIN {body} END")


PG_FUNCTIONS = {
    'id': "INSERT INTO plan_dirty (borrower_id) VALUES (NEW.id); RETURN NULL;",
    'borrower_id': """
        IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR OLD.borrower_id IS DISTINCT FROM NEW.borrower_id) THEN
            INSERT INTO plan_dirty (borrower_id) VALUES (OLD.borrower_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO plan_dirty (borrower_id) VALUES (NEW.borrower_id);
        END IF;
        RETURN NULL;""",
    'loan_id': """
        IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR OLD.loan_id IS DISTINCT FROM NEW.loan_id) THEN
            INSERT INTO plan_dirty (borrower_id) SELECT borrower_id FROM loans WHERE id = OLD.loan_id;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO plan_dirty (borrower_id) SELECT borrower_id FROM loans WHERE id = NEW.loan_id;
        END IF;
        RETURN NULL;""",
}


def _upgrade_postgresql() -> None:
    for key, body in PG_FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION plan_dirty_by_{key}() RETURNS trigger LANGUAGE plpgsql AS $$"
                   f" BEGIN {body} END $$")
    for table, key, kinds in SOURCES:
        for kind in kinds:
            when = WHEN.get((table, kind))
            if table in BULK_TABLES:
                when = f"({when}) AND {PG_NOT_BULK}" if when else PG_NOT_BULK
            op.execute(f"CREATE TRIGGER {_name(table, kind)} AFTER {kind} ON {table} FOR EACH ROW"
                       f"{' WHEN (' + when + ')' if when else ''} EXECUTE FUNCTION plan_dirty_by_{key}()")


def upgrade() -> None:
    op.create_table('plan_dirty',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('borrower_id', sa.String(length=64), nullable=False),
    sa.Column('changed_at', bot.db.types.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'),
              nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_dirty'))
    )
    with op.batch_alter_table('plan_dirty', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_dirty_borrower_id'), ['borrower_id'], unique=False)

    op.create_table('plan_bulk',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_bulk'))
    )
    op.create_table('plan_borrowers',
    sa.Column('borrower_id', sa.String(length=64), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['borrower_id'], ['borrowers.id'], name=op.f('fk_plan_borrowers_borrower_id_borrowers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('borrower_id', name=op.f('pk_plan_borrowers'))
    )
    with op.batch_alter_table('plan_borrowers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_borrowers_zone'), ['zone'], unique=False)

    op.create_table('plan_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_full_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('inputs_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_state'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    for table, _key, kinds in SOURCES:
        for kind in kinds:
            op.execute(f"DROP TRIGGER IF EXISTS {_name(table, kind)}"
                       + (f" ON {table}" if op.get_bind().dialect.name == 'postgresql' else ''))
    if op.get_bind().dialect.name == 'postgresql':
        for key in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS plan_dirty_by_{key}()")
    op.drop_table('plan_state')
    op.drop_table('plan_bulk')
    with op.batch_alter_table('plan_borrowers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_borrowers_zone'))
    op.drop_table('plan_borrowers')
    with op.batch_alter_table('plan_dirty', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_dirty_borrower_id'))
    op.drop_table('plan_dirty')
