"""keyset indexes with id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generation_user_created'))
        batch_op.create_index('ix_generation_user_created_id', ['user_id', 'created_at', 'id'], unique=False)

    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_user_created'))
        batch_op.create_index('ix_image_user_created_id', ['user_id', 'created_at', 'id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_user_created_id')
        batch_op.create_index(batch_op.f('ix_image_user_created'), ['user_id', 'created_at'], unique=False)

    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_index('ix_generation_user_created_id')
        batch_op.create_index(batch_op.f('ix_generation_user_created'), ['user_id', 'created_at'], unique=False)


