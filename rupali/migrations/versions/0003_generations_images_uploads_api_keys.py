"""generations, images, uploads, api keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import rupali.models.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('api_key',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_key_user_id'), ['user_id'], unique=False)

    op.create_table('upload',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('upload', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_user_id'), ['user_id'], unique=False)

    op.create_table('generation',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('model_label', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('model_version', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('negative_prompt', sa.Text(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('guidance', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('scheduler', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
    sa.Column('upload_id', sa.Uuid(), nullable=True),
    sa.Column('strength', sa.Float(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('provider_cost', sa.Numeric(precision=12, scale=6), nullable=True),
    sa.Column('credits', sa.Integer(), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['upload_id'], ['upload.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generation_upload_id'), ['upload_id'], unique=False)
        batch_op.create_index('ix_generation_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('image',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('generation_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('format', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('original_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('thumbnail_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('nsfw_score', sa.Float(), nullable=False),
    sa.Column('provider_nsfw', sa.Boolean(), nullable=True),
    sa.Column('nsfw', sa.Boolean(), nullable=False),
    sa.Column('favourite', sa.Boolean(), nullable=False),
    sa.Column('created_at', rupali.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', rupali.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['generation_id'], ['generation.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_image_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index('ix_image_user_created', ['user_id', 'created_at'], unique=False)

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('strip_metadata', sa.Boolean(), nullable=False, server_default=sa.false()))




def downgrade() -> None:

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('strip_metadata')

    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_user_created')
        batch_op.drop_index(batch_op.f('ix_image_generation_id'))
        batch_op.drop_index(batch_op.f('ix_image_expires_at'))

    op.drop_table('image')
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_index('ix_generation_user_created')
        batch_op.drop_index(batch_op.f('ix_generation_upload_id'))

    op.drop_table('generation')
    with op.batch_alter_table('upload', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_user_id'))

    op.drop_table('upload')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_key_user_id'))

    op.drop_table('api_key')

