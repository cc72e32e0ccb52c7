"""privacy center

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('erasure_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('erased_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('consent_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('policy_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_event_user_id'), ['user_id'], unique=False)

    op.create_table('data_export',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('requested_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('storage_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('bytes', sa.Integer(), nullable=True),
    sa.Column('files', sa.Integer(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('data_export', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_export_requested_at'), ['requested_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_data_export_user_id'), ['user_id'], unique=False)

    op.create_table('privacy_request',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('contact', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('received_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('privacy_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_request_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_privacy_request_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_privacy_request_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        # Existing accounts: statistics on (legitimate interest, objectable), mailing lists off (opt-in only).
        batch_op.add_column(sa.Column('analytics', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('product_updates', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('marketing_emails', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('deletion_requested_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deletion_due_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_user_deletion_due_at'), ['deletion_due_at'], unique=False)

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unsubscribe_url', sqlmodel.sql.sqltypes.AutoString(length=1000),
                                      nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_column('unsubscribe_url')

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_deletion_due_at'))
        batch_op.drop_column('deletion_due_at')
        batch_op.drop_column('deletion_requested_at')
        batch_op.drop_column('marketing_emails')
        batch_op.drop_column('product_updates')
        batch_op.drop_column('analytics')

    with op.batch_alter_table('privacy_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privacy_request_user_id'))
        batch_op.drop_index(batch_op.f('ix_privacy_request_received_at'))
        batch_op.drop_index(batch_op.f('ix_privacy_request_due_at'))

    op.drop_table('privacy_request')
    with op.batch_alter_table('data_export', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_export_user_id'))
        batch_op.drop_index(batch_op.f('ix_data_export_requested_at'))

    op.drop_table('data_export')
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_event_user_id'))

    op.drop_table('consent_event')
    op.drop_table('erasure_record')
