"""Alembic migrations, applied at start-up and by ``rupali db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

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


def analyze_new_tables(engine: Engine) -> list[str]:
    """PostgreSQL: gather planner statistics for the tables that have never had any, and name them.

    A restored or bulk-loaded database has none until autovacuum's first pass, up to a minute or more later; until
    then PostgreSQL guesses a handful of rows per table and plans the gallery's "newest 60 of 10,000" as a join of all
    10,000 rows sorted afterwards (16 ms instead of 2). ``ANALYZE`` samples a bounded number of rows, so this is quick
    even for large tables; tables analyzed before are left to autovacuum. SQLite plans from its indexes: nothing to do.
    """
    if engine.dialect.name != "postgresql":
        return []
    quote = engine.dialect.identifier_preparer.quote
    # One table per transaction, and never waiting long for a lock: an ANALYZE holding one table while waiting for
    # the next could deadlock with a TRUNCATE or a migration that locks them the other way round. A table it cannot
    # have at once is left to autovacuum.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("SET lock_timeout = '2s'")
        # reltuples is -1 until a table's first VACUUM or ANALYZE (PostgreSQL 14 and later), in the catalog itself,
        # so an ANALYZE just made is seen at once (the statistics views may lag by a second).
        names = list(connection.exec_driver_sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.reltuples < 0 ORDER BY c.relname").scalars())
        analyzed = []
        try:
            for name in names:
                try:
                    connection.exec_driver_sql(f"ANALYZE {quote(name)}")
                except OperationalError:  # the lock was not to be had (lock_timeout): autovacuum's turn
                    continue
                analyzed.append(name)
        finally:
            connection.exec_driver_sql("RESET lock_timeout")  # the pooled connection goes back as it came
    return analyzed
