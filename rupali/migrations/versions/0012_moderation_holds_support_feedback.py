"""moderation holds support feedback

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('evidence_hold',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('placed_by', sa.Uuid(), nullable=True),
    sa.Column('placed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_by', sa.Uuid(), nullable=True),
    sa.Column('released_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('release_reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('evidence_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_hold_released_at'), ['released_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evidence_hold_user_id'), ['user_id'], unique=False)

    op.create_table('prompt_strike',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('term', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('prompt_strike', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prompt_strike_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_prompt_strike_user_id'), ['user_id'], unique=False)

    op.create_table('support_ticket',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('support_ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_ticket_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_support_ticket_updated_at'), ['updated_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_support_ticket_user_id'), ['user_id'], unique=False)

    op.create_table('support_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('from_staff', sa.Boolean(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['support_ticket.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('support_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_message_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_support_message_user_id'), ['user_id'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('generation_id', sa.Uuid(), nullable=True),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['generation_id'], ['generation.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocked_by', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('reviewed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewed_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_column('reviewed_at')

    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_column('reviewed_at')
        batch_op.drop_column('blocked_by')

    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_user_id'))
        batch_op.drop_index(batch_op.f('ix_feedback_generation_id'))

    op.drop_table('feedback')
    with op.batch_alter_table('support_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_message_user_id'))
        batch_op.drop_index(batch_op.f('ix_support_message_ticket_id'))

    op.drop_table('support_message')
    with op.batch_alter_table('support_ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_ticket_user_id'))
        batch_op.drop_index(batch_op.f('ix_support_ticket_updated_at'))
        batch_op.drop_index(batch_op.f('ix_support_ticket_status'))

    op.drop_table('support_ticket')
    with op.batch_alter_table('prompt_strike', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prompt_strike_user_id'))
        batch_op.drop_index(batch_op.f('ix_prompt_strike_at'))

    op.drop_table('prompt_strike')
    with op.batch_alter_table('evidence_hold', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_hold_user_id'))
        batch_op.drop_index(batch_op.f('ix_evidence_hold_released_at'))

    op.drop_table('evidence_hold')
