"""The data layer: pragmas, aware UTC timestamps, migrations that match the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlmodel import SQLModel

from rupali import clock, migrate
from rupali.db import get_engine, session_scope
from rupali.models import JobRun


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode_with_foreign_keys():
    with get_engine().connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_migrations_are_at_head_and_match_the_models():
    engine = get_engine()
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": migrate.include_name})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_timestamps_come_back_timezone_aware_utc():
    copenhagen = timezone(timedelta(hours=1))
    started = datetime(2026, 3, 1, 13, 30, tzinfo=copenhagen)
    with session_scope() as session:
        run = JobRun(job="heartbeat", trigger="manual", started_at=started)
        session.add(run)
        session.flush()
        run_id = run.id
    with session_scope() as session:
        loaded = session.get(JobRun, run_id)
        assert loaded.started_at == started
        assert loaded.started_at.tzinfo is not None and loaded.started_at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused():
    with pytest.raises(StatementError, match="naive datetime"), session_scope() as session:
        session.add(JobRun(job="heartbeat", trigger="manual", started_at=datetime(2026, 1, 1)))
        session.flush()


def test_clock_travels_and_returns():
    before = clock.now()
    with clock.travel(timedelta(days=400)):
        assert clock.now() - before >= timedelta(days=400)
    assert clock.now() - before < timedelta(days=1)
    assert clock.now().tzinfo is UTC


def test_tables_without_planner_statistics_get_them_at_start_up(backend: str):
    engine = get_engine()
    if backend == "sqlite":
        assert migrate.analyze_new_tables(engine) == []  # SQLite plans from its indexes
        return
    migrate.analyze_new_tables(engine)  # whatever earlier tests left unanalyzed
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE loaded_in_bulk (n integer)"))
        connection.execute(text("INSERT INTO loaded_in_bulk SELECT generate_series(1, 500)"))
    try:
        assert migrate.analyze_new_tables(engine) == ["loaded_in_bulk"]
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'loaded_in_bulk'")).scalar()
        assert rows == 500  # what the planner now knows
        assert migrate.analyze_new_tables(engine) == []  # analyzed once: the rest is autovacuum's
        with engine.connect() as connection:  # and the pool's connections keep the server's lock timeout
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "0"
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE loaded_in_bulk"))
