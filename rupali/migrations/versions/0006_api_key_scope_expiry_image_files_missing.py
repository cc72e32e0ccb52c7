"""api key scope and expiry, image files missing

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import rupali.models.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        # Keys made before scopes existed could generate: they keep doing so.
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=False, server_default='generate'))
        batch_op.add_column(sa.Column('expires_at', rupali.models.types.UTCDateTime(), nullable=True))

    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('files_missing_at', rupali.models.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_column('files_missing_at')

    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('scope')
