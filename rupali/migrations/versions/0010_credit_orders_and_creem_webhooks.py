"""credit orders and creem webhooks

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('creem_event',
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('processed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('webhook_delivery',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('received_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('signature_valid', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_webhook_delivery_received', ['received_at'], unique=False)

    op.create_table('credit_order',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('pack_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('product_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('credits', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('checkout_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('checkout_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('creem_order_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('creem_customer_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('customer_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('vat_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('paid_amount', sa.Integer(), nullable=True),
    sa.Column('refunded_amount', sa.Integer(), nullable=False),
    sa.Column('credits_reversed', sa.Integer(), nullable=False),
    sa.Column('flag_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credit_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_order_checkout_id'), ['checkout_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_order_creem_order_id'), ['creem_order_id'], unique=False)
        batch_op.create_index('ix_credit_order_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('credit_refund',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('creem_order_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('creem_checkout_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('credits_reversed', sa.Integer(), nullable=False),
    sa.Column('applied_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['credit_order.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('refund_id')
    )
    with op.batch_alter_table('credit_refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_refund_creem_checkout_id'), ['creem_checkout_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_refund_creem_order_id'), ['creem_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_refund_order_id'), ['order_id'], unique=False)

    with op.batch_alter_table('credit_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('vat_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('credit_account', schema=None) as batch_op:
        batch_op.drop_column('vat_number')

    with op.batch_alter_table('credit_refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_refund_order_id'))
        batch_op.drop_index(batch_op.f('ix_credit_refund_creem_order_id'))
        batch_op.drop_index(batch_op.f('ix_credit_refund_creem_checkout_id'))

    op.drop_table('credit_refund')
    with op.batch_alter_table('credit_order', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_order_user_created')
        batch_op.drop_index(batch_op.f('ix_credit_order_creem_order_id'))
        batch_op.drop_index(batch_op.f('ix_credit_order_checkout_id'))

    op.drop_table('credit_order')
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_delivery_received')
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_order_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_event_id'))

    op.drop_table('webhook_delivery')
    op.drop_table('creem_event')
