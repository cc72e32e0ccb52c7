"""Test set-up: every test gets its own data directory and a migrated database.

Tests that touch the database run on SQLite and, when ``RUPALI_TEST_DATABASE_URL`` is set, on PostgreSQL too
(each run gets a database of its own there). Tests marked ``sqlite_only`` are about something other than the
database and run once.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import rupali.oidc_client  # noqa: F401  (installs its Authlib notice filter before any test imports Authlib)
from rupali import db, migrate
from rupali.config import reset_settings
from tests.utils.serve import serve

POSTGRES_URL = os.environ.get("RUPALI_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("RUPALI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# CI sets this: a service a test needs (Redis, HAProxy) that is missing fails the test instead of skipping it.
REQUIRE_SERVICES = bool(os.environ.get("RUPALI_REQUIRE_SERVICES"))


def missing_service(reason: str) -> None:
    """Skip with ``reason`` locally; fail in CI, where every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(reason)
    pytest.skip(reason)
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

# Settings the developer's shell or .env might carry must not leak into tests.
_CLEARED_PREFIXES = ("RUPALI_", "DATABASE_URL", "REDIS_URL", "PORT", "RAILWAY_")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: test does not depend on the database backend")
    config.addinivalue_line("markers", "postgresql_only: test of what only PostgreSQL does (the shared queue)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        only_postgresql = metafunc.definition.get_closest_marker("postgresql_only") is not None
        backends = ["sqlite"] if only_sqlite else ["postgresql"] if only_postgresql else BACKENDS
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Migrate once per run: a SQLite template file, and a fresh PostgreSQL database when configured."""
    templates: dict[str, str] = {}
    sqlite_file = tmp_path_factory.mktemp("template") / "rupali.db"
    engine = db.create_db_engine(f"sqlite:///{sqlite_file}")
    migrate.upgrade(engine)
    engine.dispose()
    templates["sqlite"] = str(sqlite_file)
    admin_engine = None
    if POSTGRES_URL:
        name = f"rupali_test_{uuid.uuid4().hex[:12]}"
        admin_engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                                     isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_engine.url).set(database=name).render_as_string(hide_password=False)
        engine = db.create_db_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        templates["postgresql"] = url
    yield templates
    if admin_engine is not None:
        db.dispose_engines()
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(templates["postgresql"]).database}" '
                                    "WITH (FORCE)"))
        admin_engine.dispose()


@pytest.fixture(autouse=True)
def rupali_env(backend: str, database_template: dict[str, str], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean environment, data directory and database for each test; yields the database URL."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if backend == "postgresql" and "postgresql" not in database_template:
        missing_service("PostgreSQL is not configured: set RUPALI_TEST_DATABASE_URL")
    if backend == "sqlite":
        shutil.copyfile(database_template["sqlite"], data_dir / "rupali.db")
        url = f"sqlite:///{data_dir / 'rupali.db'}"
    else:
        url = database_template["postgresql"]
        _truncate_all(url)
    monkeypatch.setenv("RUPALI_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RUPALI_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    reset_settings()
    db.dispose_engines()
    yield url
    db.dispose_engines()
    reset_settings()


def _truncate_all(url: str) -> None:
    import rupali.models  # noqa: F401

    engine = create_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A loopback SMTP server the app is configured to deliver to; yields its :class:`Inbox`."""
    from rupali.config import reset_settings
    from tests.utils.smtp import smtp_server

    with smtp_server() as (received, port):
        monkeypatch.setenv("RUPALI_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("RUPALI_SMTP_PORT", str(port))
        monkeypatch.setenv("RUPALI_SMTP_SECURITY", "none")
        reset_settings()
        yield received


@pytest.fixture
def live_server(rupali_env: str, tmp_path: Path) -> Iterator[str]:
    """``rupali serve`` on a free loopback port, with this test's data directory and database."""
    with serve(tmp_path) as base:
        yield base


@pytest.fixture
def shared_redis(rupali_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The machine's Redis (127.0.0.1:6379, ``RUPALI_TEST_REDIS_URL`` to change) configured for the app, under a key
    prefix of this test's own; yields the prefix. Its keys are deleted afterwards."""
    import redis

    url = REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis does not answer at {url} ({exc}); set RUPALI_TEST_REDIS_URL")
    prefix = f"rupali-test-{uuid.uuid4().hex[:12]}:"
    monkeypatch.setenv("RUPALI_REDIS_URL", url)
    monkeypatch.setenv("RUPALI_REDIS_KEY_PREFIX", prefix)
    reset_settings()
    yield prefix
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[object]:
    """moto's S3 server on loopback, started once per run; yields its :class:`tests.utils.s3.S3Server`."""
    from tests.utils.s3 import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture
def s3_media(rupali_env: str, s3_endpoint: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket configured as the media backend (``RUPALI_MEDIA_BACKEND=s3``); yields the bucket's name."""
    bucket = s3_endpoint.create_bucket()  # type: ignore[attr-defined]
    for name, value in s3_endpoint.env(bucket).items():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    reset_settings()
    return bucket
