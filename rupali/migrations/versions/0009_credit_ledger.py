"""credit ledger

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('credit_account',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.Column('daily_allowance', sa.Integer(), nullable=True),
    sa.Column('daily_on', sa.Date(), nullable=True),
    sa.Column('bonus_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('low_balance_alerted_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('purchases_frozen_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('credit_entry',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('generation_id', sa.Uuid(), nullable=True),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('credit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_entry_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_entry_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index('ix_credit_entry_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('credit_purchase_entry',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('credit_purchase_entry', schema=None) as batch_op:
        batch_op.create_index('ix_credit_purchase_entry_user_created', ['user_id', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('credit_purchase_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_purchase_entry_user_created')

    op.drop_table('credit_purchase_entry')
    with op.batch_alter_table('credit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_entry_user_created')
        batch_op.drop_index(batch_op.f('ix_credit_entry_generation_id'))
        batch_op.drop_index(batch_op.f('ix_credit_entry_actor_id'))

    op.drop_table('credit_entry')
    op.drop_table('credit_account')
