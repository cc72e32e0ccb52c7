"""Database engine and sessions.

SQLite runs in WAL mode with foreign keys enforced; PostgreSQL is reached through psycopg 3. One session per
user action or job, opened at the boundary with :func:`session_scope`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from rupali.config import Settings, ensure_data_dir, get_settings

_engines: dict[str, Engine] = {}

P = ParamSpec("P")
T = TypeVar("T")


def create_db_engine(url: str) -> Engine:
    """Build an engine with the per-backend settings Rupali relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # A pool of connections: opening one and running the pragmas costs about a millisecond, which every
        # transaction would pay again with NullPool. Connections are handed to one thread at a time.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
                               max_overflow=8, pool_pre_ping=False)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database (created on first use)."""
    settings = settings or get_settings()
    url = settings.effective_database_url
    if url not in _engines:
        if make_url(url).get_backend_name() == "sqlite":
            ensure_data_dir(settings)
        _engines[url] = create_db_engine(url)
    return _engines[url]


def dispose_engines() -> None:
    """Close every pooled connection (tests and shutdown)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    with Session(get_engine(settings), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def database_reachable(settings: Settings | None = None) -> bool:
    """True when a trivial query succeeds."""
    try:
        with get_engine(settings).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def transact(work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``work(session, *args, **kwargs)`` in one session of its own: one user action, one transaction.

    Pages call it through ``run.io_bound`` so database work never blocks the event loop.
    """
    with session_scope() as session:
        return work(session, *args, **kwargs)
