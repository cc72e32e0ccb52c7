"""accounts, sessions, mail outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('auth_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auth_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_attempt_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_attempt_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_auth_attempt_key'), ['key'], unique=False)

    op.create_table('account_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('purpose', sa.String(length=24), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('new_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('account_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_token_user_id'), ['user_id'], unique=False)

    op.create_table('auth_session',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('handoff_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('handoff_visitor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('handoff_expires_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('ip_address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('device', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('handoff_hash'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_session_user_id'), ['user_id'], unique=False)

    op.create_table('oidc_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('linked_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'subject')
    )
    with op.batch_alter_table('oidc_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_identity_user_id'), ['user_id'], unique=False)

    op.create_table('outbox_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('text_body', sa.Text(), nullable=False),
    sa.Column('html_body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_message_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_message_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_message_user_id'), ['user_id'], unique=False)

    op.create_table('policy_acceptance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('document', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('accepted_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('policy_acceptance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policy_acceptance_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('age_confirmed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('avatar_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('avatar_key')
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('age_confirmed_at')
        batch_op.drop_column('email_verified_at')

    with op.batch_alter_table('policy_acceptance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policy_acceptance_user_id'))

    op.drop_table('policy_acceptance')
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_message_user_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_message_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_message_next_attempt_at'))

    op.drop_table('outbox_message')
    with op.batch_alter_table('oidc_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_identity_user_id'))

    op.drop_table('oidc_identity')
    with op.batch_alter_table('auth_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_session_user_id'))

    op.drop_table('auth_session')
    with op.batch_alter_table('account_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_token_user_id'))

    op.drop_table('account_token')
    with op.batch_alter_table('auth_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_attempt_key'))
        batch_op.drop_index(batch_op.f('ix_auth_attempt_created_at'))
        batch_op.drop_index(batch_op.f('ix_auth_attempt_action'))

    op.drop_table('auth_attempt')

