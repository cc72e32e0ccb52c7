"""``rupali doctor``'s checks, each against the real thing: the database, folders, an SMTP server and the image
services' loopback stand-ins, each once passing and once failing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from alembic.script import ScriptDirectory
from sqlalchemy import text

from rupali import doctor, migrate
from rupali.config import Settings, get_settings, reset_settings
from rupali.db import get_engine
from rupali.doctor import Verdict
from tests.utils.a1111_server import running_server
from tests.utils.runware_server import RunwareServer, _TaskError

API_KEY = "rw-test-key-0123456789abcdef"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


# --- configuration -------------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_configuration_warns_about_what_production_would_refuse():
    check, settings = doctor.configuration()
    assert settings is not None and check.verdict is Verdict.WARN
    assert "production would refuse them" in check.detail and "RUPALI_PUBLIC_URL must be https://" in check.detail


@pytest.mark.sqlite_only
def test_configuration_ready_for_production_is_ok(monkeypatch):
    for name, value in {"PUBLIC_URL": "https://images.example.org", "OPERATOR_NAME": "Example Ltd",
                        "OPERATOR_ADDRESS": "1 Example Street", "OPERATOR_EMAIL": "ops@example.org",
                        "SMTP_HOST": "smtp.example.org"}.items():
        monkeypatch.setenv(f"RUPALI_{name}", value)
    reset_settings()
    check, _settings = doctor.configuration()
    assert check == ("config", Verdict.OK, "development settings; production would accept them")


@pytest.mark.sqlite_only
def test_configuration_that_does_not_load_fails_and_stops_the_other_checks(monkeypatch):
    monkeypatch.setenv("RUPALI_PORT", "eighty")
    reset_settings()
    assert doctor.run() == [("config", Verdict.FAIL, "invalid configuration: RUPALI_PORT Input should be a valid "
                                                     "integer, unable to parse string as an integer")]


# --- database ------------------------------------------------------------------------------------------------------

def test_database_at_the_newest_migration_is_ok(backend):
    check = doctor.database(get_settings())
    head = migrate.head_revision(get_engine())
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    assert check == ("database", Verdict.OK, f"{label} at revision {head} (head)")


@pytest.mark.sqlite_only
def test_database_that_does_not_answer_fails():
    check = doctor.database(Settings(database_url=f"postgresql://nobody@127.0.0.1:{_closed_port()}/none"))
    assert check.verdict is Verdict.FAIL and check.detail.startswith("cannot connect to postgresql+psycopg://nobody@")
    assert "Connection refused" in check.detail


@pytest.mark.sqlite_only
def test_database_behind_or_ahead_of_the_code(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}")
    assert doctor.database(settings).detail == ("SQLite has no tables yet: `rupali db upgrade` (or the next start) "
                                                "creates them")
    engine = get_engine(settings)
    head = migrate.head_revision(engine)
    previous = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_revision(head).down_revision
    migrate.upgrade(engine, previous)
    behind = doctor.database(settings)
    assert behind.verdict is Verdict.WARN and f"at revision {previous}, the newest is {head}" in behind.detail
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    ahead = doctor.database(settings)
    assert ahead.verdict is Verdict.FAIL and "revision ffff, which this version of Rupali does not know" in ahead.detail


# --- storage -------------------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_storage_writes_reads_and_deletes_a_probe_in_both_folders():
    settings = get_settings()
    checks = doctor.storage(settings)
    assert [(check.name, check.verdict) for check in checks] == [("data-dir", Verdict.OK), ("media-dir", Verdict.OK)]
    assert str(settings.effective_media_dir) in checks[1].detail and "free" in checks[1].detail
    leftovers = [path for path in settings.data_dir.rglob(".doctor-probe-*")]
    assert leftovers == []


@pytest.mark.sqlite_only
def test_the_media_bucket_must_answer(s3_media, s3_endpoint, monkeypatch):
    checks = doctor.storage(get_settings())
    assert [(check.name, check.verdict) for check in checks] == [("data-dir", Verdict.OK), ("media-bucket", Verdict.OK)]
    assert s3_media in checks[1].detail and s3_endpoint.endpoint_url in checks[1].detail
    monkeypatch.setenv("RUPALI_S3_BUCKET", "no-such-bucket")
    reset_settings()
    failed = doctor.storage(get_settings())[1]
    assert failed.verdict == Verdict.FAIL and "no-such-bucket" in failed.detail and "does not answer" in failed.detail
    monkeypatch.setenv("RUPALI_S3_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    reset_settings()
    unreachable = doctor.storage(get_settings())[1]
    assert unreachable.verdict == Verdict.FAIL
    assert "rupali-test-secret" not in failed.detail + unreachable.detail


@pytest.mark.sqlite_only
def test_storage_that_cannot_be_written_fails(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data, media = doctor.storage(Settings(media_dir=blocker / "media"))
    assert data.verdict is Verdict.OK
    assert media.verdict is Verdict.FAIL and media.detail == f"cannot create {blocker / 'media'}: Not a directory"


# --- SMTP ----------------------------------------------------------------------------------------------------------

class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_with_login(username: str, password: str) -> Iterator[tuple[_Inbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback that wants a login; plain-text AUTH, since it has no TLS."""
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        accepted = data.login == username.encode() and data.password == password.encode()
        return AuthResult(success=accepted, handled=False)  # not handled: the server answers 535 itself

    inbox, port = _Inbox(), _closed_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _smtp(port: int, **changes: Any) -> Settings:
    return Settings(**{"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"} | changes)


@pytest.mark.sqlite_only
def test_smtp_not_configured_warns_that_mail_goes_to_the_log():
    check = doctor.smtp(get_settings())
    assert check.verdict is Verdict.WARN and "mail goes to the log" in check.detail


@pytest.mark.sqlite_only
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")  # aiosmtpd's own, on a successful login
def test_smtp_login_is_checked_and_no_mail_is_sent():
    with smtp_with_login("mailer", "right password") as (inbox, port):
        good = doctor.smtp(_smtp(port, smtp_username="mailer", smtp_password="right password"))
        bad = doctor.smtp(_smtp(port, smtp_username="mailer", smtp_password="wrong password"))
        anonymous = doctor.smtp(_smtp(port))
    assert good == ("smtp", Verdict.OK, f"127.0.0.1:{port} answers: unencrypted, logged in as mailer; no mail was "
                                        "sent")
    assert bad.verdict is Verdict.FAIL and bad.detail.startswith(f"127.0.0.1:{port} refused the login of 'mailer': 535")
    assert anonymous.verdict is Verdict.OK and "no login" in anonymous.detail
    assert inbox.messages == []


@pytest.mark.sqlite_only
def test_smtp_that_cannot_be_reached_or_lacks_starttls_fails():
    port = _closed_port()
    assert doctor.smtp(_smtp(port), timeout=5) == (
        "smtp", Verdict.FAIL, f"could not connect to 127.0.0.1:{port}: Connection refused")
    with smtp_with_login("mailer", "right password") as (_inbox, open_port):
        check = doctor.smtp(_smtp(open_port, smtp_security="starttls"))
    assert check.verdict is Verdict.FAIL and check.detail.startswith(f"127.0.0.1:{open_port} does not offer STARTTLS")


# --- image providers -----------------------------------------------------------------------------------------------

class AccountRunware(RunwareServer):
    """The Runware stand-in, plus the documented ``accountManagement`` task (operation ``getDetails``)."""

    balance: float = 12.5

    def _task(self, task: Any) -> list[dict[str, Any]]:
        if not isinstance(task, dict) or task.get("taskType") != "accountManagement":
            return super()._task(task)
        if task.get("operation") != "getDetails":
            raise _TaskError(400, "invalidOperation", "operation must be getDetails", "operation", task)
        return [{"taskType": "accountManagement", "taskUUID": task["taskUUID"], "operation": "getDetails",
                 "organizationUUID": "a6379343-9ff2-46a0-996b-e4a7b3057c88", "organizationName": "Example",
                 "balance": self.balance, "team": []}]


def _runware(url: str, key: str = API_KEY) -> Settings:
    return Settings(offline_generator=False, runware_api_key=key, runware_url=url)


@pytest.mark.sqlite_only
def test_runware_accepting_the_key_is_ok_and_an_empty_balance_fails():
    with AccountRunware(api_key=API_KEY) as server:
        [check] = doctor.providers(_runware(server.url))
        assert check == ("runware", Verdict.OK, f"127.0.0.1:{server.port} accepted the API key; account balance 12.5")
        assert server.posts[-1].body[0]["taskType"] == "accountManagement"  # nothing generated, nothing charged
        server.balance = 0
        [empty] = doctor.providers(_runware(server.url))
    assert empty.verdict is Verdict.FAIL and "account balance is 0" in empty.detail


@pytest.mark.sqlite_only
def test_runware_without_the_account_task_still_counts_as_reachable():
    with RunwareServer(api_key=API_KEY) as server:  # answers 400 unsupportedTaskType, after accepting the key
        [check] = doctor.providers(_runware(server.url))
    assert check.verdict is Verdict.OK and "did not refuse the API key" in check.detail


@pytest.mark.sqlite_only
def test_runware_refusing_the_key_or_not_answering_fails():
    with AccountRunware(api_key=API_KEY) as server:
        [refused] = doctor.providers(_runware(server.url, key="rw-some-other-key-0123456789"))
    assert refused.verdict is Verdict.FAIL and "refused the API key (HTTP 401: invalidApiKey" in refused.detail
    port = _closed_port()
    [closed] = doctor.providers(_runware(f"http://127.0.0.1:{port}/v1"))
    assert closed == ("runware", Verdict.FAIL, f"could not connect to 127.0.0.1:{port}: Connection refused")


@pytest.mark.sqlite_only
def test_a1111_with_its_credentials_is_ok():
    with running_server(username="op", password="gpu secret") as server:
        checks = doctor.providers(Settings(a1111_url=server.url, a1111_username="op", a1111_password="gpu secret"))
        port = server.port
    assert checks == [("offline", Verdict.OK, "built in: draws on this server, nothing to reach"),
                      ("a1111", Verdict.OK, f"127.0.0.1:{port} answers with 2 models")]


@pytest.mark.sqlite_only
def test_a1111_refusing_credentials_without_api_or_models_or_not_answering_fails():
    with running_server(username="op", password="gpu secret") as server:
        settings = Settings(offline_generator=False, a1111_url=server.url, a1111_username="op",
                            a1111_password="not the secret")
        [refused] = doctor.providers(settings)
        server.password = "not the secret"
        server.models = []
        [empty] = doctor.providers(settings)
        server.api_enabled = False
        [no_api] = doctor.providers(settings)
    assert refused.verdict is Verdict.FAIL and "refused the credentials" in refused.detail
    assert "not the secret" not in refused.detail
    assert empty.verdict is Verdict.FAIL and empty.detail.endswith("answers, but has no models installed")
    assert no_api.verdict is Verdict.FAIL and "started with --api?" in no_api.detail
    port = _closed_port()
    [closed] = doctor.providers(Settings(offline_generator=False, a1111_url=f"http://127.0.0.1:{port}"))
    assert closed == ("a1111", Verdict.FAIL, f"could not connect to 127.0.0.1:{port}: Connection refused")


@pytest.mark.sqlite_only
def test_no_provider_enabled_is_a_warning():
    assert doctor.providers(Settings(offline_generator=False)) == [
        ("providers", Verdict.WARN, "no image service is enabled: the studio cannot make images")]


@pytest.mark.sqlite_only
def test_lines_put_failures_in_capitals_and_align_the_names():
    checks = [doctor.Check("database", Verdict.OK, "SQLite at revision 0011 (head)"),
              doctor.Check("smtp", Verdict.FAIL, "could not connect\nto smtp.example.com:587: Connection refused")]
    assert doctor.lines(checks) == ["ok    database  SQLite at revision 0011 (head)",
                                    "FAIL  smtp      could not connect to smtp.example.com:587: Connection refused"]


def test_redis_is_checked_only_when_configured(monkeypatch, shared_redis):
    [check] = doctor.shared_state(get_settings())
    assert check.name == "redis" and check.verdict is doctor.Verdict.OK and check.detail.startswith("Redis ")
    monkeypatch.setenv("RUPALI_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    reset_settings()
    [check] = doctor.shared_state(get_settings(), timeout=2)
    assert check.verdict is doctor.Verdict.FAIL and "127.0.0.1:1/0" in check.detail and "hunter2" not in check.detail
    monkeypatch.delenv("RUPALI_REDIS_URL")
    reset_settings()
    assert doctor.shared_state(get_settings()) == []
