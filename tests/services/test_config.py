"""Settings: embedded defaults, environment variables, production refusals."""

from __future__ import annotations

import stat

import pytest

from rupali.config import ConfigError, Settings, ensure_data_dir, get_settings, masked, reset_settings, storage_secret

pytestmark = pytest.mark.sqlite_only

PRODUCTION = {
    "RUPALI_ENV": "production",
    "RUPALI_PUBLIC_URL": "https://images.example.com",
    "RUPALI_OPERATOR_NAME": "Example ApS",
    "RUPALI_OPERATOR_ADDRESS": "Nørregade 1, 1165 København",
    "RUPALI_OPERATOR_EMAIL": "privacy@example.com",
    "RUPALI_SMTP_HOST": "smtp.example.com",
}


def test_embedded_defaults_live_under_one_data_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("RUPALI_DATABASE_URL")
    monkeypatch.setenv("RUPALI_DATA_DIR", str(tmp_path / "d"))
    settings = Settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'd' / 'rupali.db'}"
    assert settings.effective_media_dir == tmp_path / "d" / "media"
    assert (settings.host, settings.port, settings.env) == ("127.0.0.1", 8080, "development")


def test_railway_variables_are_respected(monkeypatch):
    monkeypatch.delenv("RUPALI_DATABASE_URL")
    monkeypatch.setenv("PORT", "4321")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.internal:5432/railway")
    monkeypatch.setenv("RAILWAY_PROJECT_ID", "abc")
    settings = Settings()
    assert settings.port == 4321
    assert settings.effective_database_url == "postgresql+psycopg://u:p@db.internal:5432/railway"
    assert settings.hosting_provider == "railway"


@pytest.mark.parametrize(("url", "expected"), [
    ("mysql://root@localhost/x", "unsupported database 'mysql'"),
    ("::::", "is not a valid database URL"),
])
def test_bad_database_url_is_one_clear_line(monkeypatch, url, expected):
    monkeypatch.setenv("RUPALI_DATABASE_URL", url)
    with pytest.raises(ConfigError) as caught:
        get_settings()
    message = str(caught.value)
    assert expected in message and "RUPALI_DATABASE_URL" in message and "\n" not in message


def test_production_refuses_unsafe_settings_naming_each(monkeypatch):
    monkeypatch.setenv("RUPALI_ENV", "production")
    monkeypatch.setenv("RUPALI_STORAGE_SECRET", "short")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    message = str(caught.value)
    assert message.startswith("refusing to start in production:")
    for name in ("RUPALI_PUBLIC_URL", "RUPALI_OPERATOR_NAME", "RUPALI_OPERATOR_ADDRESS", "RUPALI_OPERATOR_EMAIL",
                 "RUPALI_STORAGE_SECRET"):
        assert name in message
    assert "\n" not in message


def test_production_starts_with_safe_settings(monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    assert settings.is_production and settings.production_problems() == []


def test_storage_secret_is_generated_once_and_kept_private(tmp_path):
    settings = Settings(data_dir=tmp_path / "fresh")
    first = storage_secret(settings)
    path = tmp_path / "fresh" / "storage_secret"
    assert len(first) >= 48 and path.read_text() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert storage_secret(Settings(data_dir=tmp_path / "fresh")) == first


def test_unwritable_data_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="is not writable"):
        ensure_data_dir(Settings(data_dir=blocker / "data"))


def test_masked_settings_hide_secrets_and_database_password(monkeypatch):
    monkeypatch.setenv("RUPALI_STORAGE_SECRET", "s" * 40)
    monkeypatch.setenv("RUPALI_DATABASE_URL", "postgresql://app:hunter2@db/rupali")
    shown = masked(get_settings())
    assert shown["storage_secret"] == "********"
    assert "hunter2" not in shown["database_url"]
    assert "s" * 40 not in repr(shown)


def test_extra_subprocessors_must_be_well_formed(monkeypatch):
    monkeypatch.setenv("RUPALI_EXTRA_SUBPROCESSORS", '[{"name": "Postmark"}]')
    with pytest.raises(ConfigError, match="RUPALI_EXTRA_SUBPROCESSORS"):
        get_settings()


@pytest.mark.parametrize(("environment", "expected"), [
    ({}, "http://127.0.0.1:8080"),
    ({"RUPALI_PORT": "9101"}, "http://127.0.0.1:9101"),
    ({"PORT": "4321"}, "http://127.0.0.1:4321"),
    ({"RUPALI_HOST": "0.0.0.0", "RUPALI_PORT": "9102"}, "http://127.0.0.1:9102"),  # noqa: S104
    ({"RUPALI_HOST": "::1", "RUPALI_PORT": "9103"}, "http://[::1]:9103"),
    ({"RUPALI_HOST": "studio.lan", "RUPALI_PORT": "80"}, "http://studio.lan:80"),
    ({"RUPALI_PORT": "9101", "RUPALI_PUBLIC_URL": "http://images.lan:9999/"}, "http://images.lan:9999"),
])
def test_links_follow_the_served_address_in_development(monkeypatch, environment, expected):
    """Mails link back to where the instance listens, unless the operator says otherwise."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert get_settings().public_url == expected


def test_production_never_derives_the_public_url(monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RUPALI_PUBLIC_URL")
    monkeypatch.setenv("RUPALI_PORT", "9101")
    with pytest.raises(ConfigError, match="RUPALI_PUBLIC_URL must be https://"):
        get_settings()


def test_a_redis_url_must_be_one_and_is_kept_secret(monkeypatch):
    monkeypatch.setenv("RUPALI_REDIS_URL", "http://cache:6379")
    with pytest.raises(ConfigError, match="RUPALI_REDIS_URL") as caught:
        get_settings()
    assert "is not a Redis URL" in str(caught.value)
    monkeypatch.setenv("RUPALI_REDIS_URL", "redis://:hunter2@cache:6379/0")
    reset_settings()
    assert "hunter2" not in repr(masked(get_settings()))
    monkeypatch.delenv("RUPALI_REDIS_URL")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6380")  # the name Railway's Redis plugin gives it
    reset_settings()
    assert get_settings().redis_url.get_secret_value() == "rediss://cache:6380"


def test_production_with_redis_needs_a_storage_secret_every_instance_shares(monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RUPALI_STORAGE_SECRET", raising=False)
    monkeypatch.setenv("RUPALI_REDIS_URL", "redis://cache:6379/0")
    with pytest.raises(ConfigError, match="RUPALI_STORAGE_SECRET must be set when RUPALI_REDIS_URL is"):
        get_settings()
    monkeypatch.setenv("RUPALI_STORAGE_SECRET", "s" * 40)
    reset_settings()
    assert get_settings().production_problems() == []
