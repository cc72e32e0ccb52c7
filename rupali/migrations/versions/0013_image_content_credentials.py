"""image content credentials: the PNG's second signed file, and whether the files are signed

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plain_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('signed', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('signing_failed_at', rupali.models.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_image_signed'), ['signed'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_signed'))
        batch_op.drop_column('signing_failed_at')
        batch_op.drop_column('signed')
        batch_op.drop_column('plain_key')
