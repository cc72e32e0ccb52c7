"""Alembic migrations, applied at start-up and by ``rupali db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Search structures made by hand in migration 0004 (an FTS5 table on SQLite, a GIN index on PostgreSQL): they
# cannot be expressed in the models, so autogenerate must not see them as strays to drop.
SEARCH_OBJECTS = ("generation_fts", "ix_generation_search")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic hook: compare everything except the hand-made search structures."""
    return not (name or "").startswith(SEARCH_OBJECTS)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to ``engine`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
