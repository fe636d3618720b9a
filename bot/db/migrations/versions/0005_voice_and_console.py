"""voice calls and console

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 11:55:59.337660
"""

from alembic import op
import sqlalchemy as sa
import bot.db.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('text_redacted', sa.Text(), nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes'))
    )
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notes_subject_type_subject_id'), ['subject_type', 'subject_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('call_sessions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('borrower_id', sa.String(length=64), nullable=False),
    sa.Column('loan_id', sa.String(length=64), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('script', sa.String(length=64), nullable=False),
    sa.Column('state', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('answered_by', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('promise_date', sa.Date(), nullable=True),
    sa.Column('speech', sa.Boolean(), server_default='1', nullable=False),
    sa.Column('flagged', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('flags', sa.JSON(), nullable=True),
    sa.Column('min_confidence', sa.Double(), nullable=True),
    sa.Column('decision', sa.JSON(), nullable=True),
    sa.Column('recording_dir', sa.String(length=255), nullable=True),
    sa.Column('started_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_s', sa.Double(), nullable=True),
    sa.Column('reviewed_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['contact_attempts.id'], name=op.f('fk_call_sessions_attempt_id_contact_attempts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['borrower_id'], ['borrowers.id'], name=op.f('fk_call_sessions_borrower_id_borrowers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['loan_id'], ['loans.id'], name=op.f('fk_call_sessions_loan_id_loans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_sessions')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_call_sessions_attempt_id')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_call_sessions_call_sid'))
    )
    with op.batch_alter_table('call_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_sessions_borrower_id_started_at'), ['borrower_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_sessions_flagged_reviewed_at'), ['flagged', 'reviewed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_sessions_started_at'), ['started_at'], unique=False)

    op.create_table('call_turns',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('speaker', sa.String(length=8), nullable=False),
    sa.Column('node', sa.String(length=64), nullable=True),
    sa.Column('at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=True),
    sa.Column('text_redacted', sa.Text(), nullable=True),
    sa.Column('confidence', sa.Double(), nullable=True),
    sa.Column('intent', sa.String(length=32), nullable=True),
    sa.Column('promise_date', sa.Date(), nullable=True),
    sa.Column('audio_ref', sa.String(length=255), nullable=True),
    sa.Column('flagged', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('corrected_intent', sa.String(length=32), nullable=True),
    sa.Column('corrected_promise_date', sa.Date(), nullable=True),
    sa.Column('corrected_by', sa.String(length=64), nullable=True),
    sa.Column('corrected_at', bot.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['call_sessions.id'], name=op.f('fk_call_turns_session_id_call_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_turns')),
    sa.UniqueConstraint('session_id', 'seq', name=op.f('uq_call_turns_session_id_seq'))
    )


def downgrade() -> None:
    op.drop_table('call_turns')
    with op.batch_alter_table('call_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_sessions_started_at'))
        batch_op.drop_index(batch_op.f('ix_call_sessions_flagged_reviewed_at'))
        batch_op.drop_index(batch_op.f('ix_call_sessions_borrower_id_started_at'))

    op.drop_table('call_sessions')
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))

    op.drop_table('console_sessions')
    op.drop_table('users')
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notes_subject_type_subject_id'))

    op.drop_table('notes')
