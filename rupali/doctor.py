"""``rupali doctor``: check what a running Rupali depends on, one line per check.

Each check is a plain function returning a :class:`Check` (name, verdict, one line of detail): the settings, the
database and its migration, writing in the data and media folders (or listing the media bucket), the SMTP server (a
conversation up to the login, no mail sent) and every enabled image provider. The checks only read, except for a
probe file each storage check writes and deletes again, and the database file SQLite creates when there is none yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import ssl
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

import aiosmtplib
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from rupali import migrate, provenance
from rupali.config import ConfigError, Settings, get_settings
from rupali.db import get_engine
from rupali.providers import ImageProviders
from rupali.providers.base import connection_failure

EXPIRY_WARNING = timedelta(days=30)  # a signing certificate this close to its end is a warning
NETWORK_TIMEOUT = 10.0  # seconds each network check may take
LOW_SPACE = 1024**3  # below this much free space a storage check warns: images and exports fill a disk quickly
_BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but not as production should
    FAIL = "fail"  # does not work: the exit code says so


class Check(NamedTuple):
    name: str
    verdict: Verdict
    detail: str


def run(*, timeout: float = NETWORK_TIMEOUT) -> list[Check]:
    """Every check, in the order a start-up needs them; nothing else can be checked without settings."""
    config, settings = configuration()
    if settings is None:
        return [config]
    return [config, database(settings), *storage(settings), content_credentials(settings),
            smtp(settings, timeout=timeout), *shared_state(settings, timeout=timeout),
            *providers(settings, timeout=timeout)]


def shared_state(settings: Settings, *, timeout: float = NETWORK_TIMEOUT) -> list[Check]:
    """Redis, when configured: instances count rate limits and hear of session changes there."""
    if settings.redis_url is None:
        return []
    import redis

    url = settings.redis_url.get_secret_value()
    shown = url.rpartition("@")[2] if "@" in url else url  # never the password
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        version = client.info("server").get("redis_version", "unknown")
    except redis.RedisError as exc:
        return [Check("redis", Verdict.FAIL, f"cannot use {shown}: {exc}")]
    finally:
        client.close()
    return [Check("redis", Verdict.OK, f"Redis {version} at {shown}")]


def failed(checks: list[Check]) -> bool:
    return any(check.verdict is Verdict.FAIL for check in checks)


def lines(checks: list[Check]) -> list[str]:
    """``ok    database  PostgreSQL at revision 0011 (head)``: failures in capitals, so they catch the eye."""
    width = max((len(check.name) for check in checks), default=0)
    return [f"{'FAIL' if check.verdict is Verdict.FAIL else check.verdict.value:<5} {check.name:<{width}}  "
            f"{_one_line(check.detail)}" for check in checks]


# --- the checks ----------------------------------------------------------------------------------------------------

def content_credentials(settings: Settings) -> Check:
    """The key that signs every generated image loads and can sign; production should not use a self-made one."""
    try:
        signer = provenance.ContentCredentials.from_settings(settings)
    except ConfigError as exc:
        return Check("credentials", Verdict.FAIL, str(exc))
    identity = f"images signed by {signer.signer_name}, valid until {signer.valid_until:%Y-%m-%d}"
    if signer.valid_until - datetime.now(UTC) < EXPIRY_WARNING:  # real time: validators use the real clock
        return Check("credentials", Verdict.WARN, f"{identity}: renew it soon, generations stop when it expires")
    if signer.self_made:
        verdict = Verdict.WARN if settings.is_production else Verdict.OK
        return Check("credentials", verdict, f"{identity}: a self-made certificate, not a publicly trusted identity; "
                                             "set RUPALI_C2PA_CERTIFICATE and RUPALI_C2PA_PRIVATE_KEY")
    return Check("credentials", Verdict.OK, identity)


def configuration() -> tuple[Check, Settings | None]:
    """The settings load, and what production would refuse."""
    try:
        settings = get_settings()
    except ConfigError as exc:
        return Check("config", Verdict.FAIL, str(exc)), None
    if settings.is_production:  # loading them already applied the production checks
        return Check("config", Verdict.OK, "production settings, safe for production"), settings
    if problems := settings.production_problems():
        return Check("config", Verdict.WARN, "development settings; production would refuse them: "
                     + "; ".join(problems)), settings
    return Check("config", Verdict.OK, "development settings; production would accept them"), settings


def database(settings: Settings) -> Check:
    """The database answers, and its schema is at the newest migration (``rupali db upgrade`` brings it there)."""
    shown = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    try:
        engine = get_engine(settings)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = migrate.current_revision(engine)
    except ConfigError as exc:  # SQLite in a data directory that cannot be written
        return Check("database", Verdict.FAIL, str(exc))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()
        return Check("database", Verdict.FAIL, f"cannot connect to {shown}: {reason[0] if reason else exc}")
    except SQLAlchemyError as exc:
        return Check("database", Verdict.FAIL, f"cannot use {shown}: {exc}")
    backend = _BACKENDS.get(engine.dialect.name, engine.dialect.name)
    head = migrate.head_revision(engine)
    if current == head:
        return Check("database", Verdict.OK, f"{backend} at revision {current} (head)")
    if current is None:
        return Check("database", Verdict.WARN, f"{backend} has no tables yet: `rupali db upgrade` (or the next start) "
                                               "creates them")
    try:
        ScriptDirectory.from_config(migrate.alembic_config(engine)).get_revision(current)
    except CommandError:
        return Check("database", Verdict.FAIL, f"{backend} is at revision {current}, which this version of Rupali "
                                               "does not know: is the database newer than the code?")
    return Check("database", Verdict.WARN, f"{backend} at revision {current}, the newest is {head}: `rupali db "
                                           "upgrade` (or the next start) applies the rest")


def storage(settings: Settings) -> list[Check]:
    """Writing, reading and deleting a file works in the data directory and in the media folder (or the bucket
    answers, with the ``s3`` backend)."""
    if settings.media_backend == "s3":
        return [folder_check("data-dir", settings.data_dir.resolve()), bucket_check(settings)]
    return [folder_check("data-dir", settings.data_dir.resolve()),
            folder_check("media-dir", settings.effective_media_dir)]


def bucket_check(settings: Settings) -> Check:
    """List at most one key of the media bucket: it exists, answers and accepts the credentials (only reads)."""
    from rupali.storage_s3 import S3Storage

    bucket = S3Storage.from_settings(settings)
    try:
        bucket.probe()
    except OSError as exc:
        cause = exc.__cause__
        detail = str(cause).splitlines()[0][:300] if cause is not None else str(exc)
        return Check("media-bucket", Verdict.FAIL, f"{bucket.describe()} does not answer: {detail}")
    return Check("media-bucket", Verdict.OK, f"{bucket.describe()} answers")


def folder_check(name: str, folder: Path) -> Check:
    """Write a probe file, read it back and delete it. Its name starts with a dot, so it can never be a storage key,
    and it sits outside the folders the media sweep tidies."""
    probe = folder / f".doctor-probe-{os.getpid()}-{secrets.token_hex(4)}"
    payload = secrets.token_bytes(64)
    step = "create"
    try:
        folder.mkdir(parents=True, exist_ok=True)  # as a start would
        step = "write in"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        step = "read back from"
        read = probe.read_bytes()
        step = "delete in"
        probe.unlink()
        step = "measure the free space in"
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        return Check(name, Verdict.FAIL, f"cannot {step} {folder}: {exc.strerror or exc}")
    if read != payload:
        return Check(name, Verdict.FAIL, f"{folder} gave back other bytes than were written")
    if free < LOW_SPACE:
        return Check(name, Verdict.WARN, f"{folder} is writable, but only {_size(free)} are free")
    return Check(name, Verdict.OK, f"{folder} is writable; {_size(free)} free")


def smtp(settings: Settings, *, timeout: float = NETWORK_TIMEOUT) -> Check:
    """Talk to the SMTP server as delivery would, up to the login, then QUIT: no mail is sent."""
    if not settings.smtp_host:
        return Check("smtp", Verdict.WARN, "not configured (RUPALI_SMTP_HOST): mail goes to the log, nobody "
                                           "receives it")
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        detail = asyncio.run(_smtp_conversation(settings, where, timeout))
    except _SmtpRefusal as exc:
        return Check("smtp", Verdict.FAIL, str(exc))
    except aiosmtplib.SMTPConnectTimeoutError:
        return Check("smtp", Verdict.FAIL, f"no answer from {where} within {timeout:g} s")
    except aiosmtplib.SMTPConnectError as exc:
        return Check("smtp", Verdict.FAIL, f"could not connect to {where}: {connection_failure(exc)}")
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Check("smtp", Verdict.FAIL, f"{where} refused the login of {settings.smtp_username!r}: "
                                           f"{exc.code} {exc.message}")
    except aiosmtplib.SMTPTimeoutError:
        return Check("smtp", Verdict.FAIL, f"{where} stopped answering (waited {timeout:g} s)")
    except aiosmtplib.SMTPResponseException as exc:
        return Check("smtp", Verdict.FAIL, f"{where} answered {exc.code} {exc.message}")
    except (aiosmtplib.SMTPException, OSError) as exc:  # TLS failures are OSErrors too
        return Check("smtp", Verdict.FAIL, f"talking to {where} failed: {connection_failure(exc)}")
    return Check("smtp", Verdict.OK, detail)


def providers(settings: Settings, *, timeout: float = NETWORK_TIMEOUT) -> list[Check]:
    """Each enabled image provider answers and accepts our credentials (a call that generates nothing)."""
    enabled = ImageProviders.from_settings(settings)
    try:
        if not enabled.names:
            return [Check("providers", Verdict.WARN, "no image service is enabled: the studio cannot make images")]
        results = enabled.reachability_now(timeout)
    finally:
        asyncio.run(enabled.aclose())
    return [Check(name, Verdict.OK if reachable else Verdict.FAIL, detail)
            for name, (reachable, detail) in results.items()]


# --- helpers -------------------------------------------------------------------------------------------------------

class _SmtpRefusal(Exception):
    """The server cannot do what the settings ask of it; the message says what."""


async def _smtp_conversation(settings: Settings, where: str, timeout: float) -> str:
    """Connect, EHLO, STARTTLS or implicit TLS as configured, log in when credentials are set, QUIT."""
    security = settings.smtp_security
    client = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port, use_tls=security == "tls",
                             start_tls=False, timeout=timeout)
    await client.connect()
    try:
        await client.ehlo()
        if security == "starttls":
            if not client.supports_extension("starttls"):
                raise _SmtpRefusal(f"{where} does not offer STARTTLS (RUPALI_SMTP_SECURITY=starttls): use `tls` for "
                                   "port 465, or `none` for a local relay")
            try:
                await client.starttls()
            except ssl.SSLError as exc:
                raise _SmtpRefusal(f"STARTTLS with {where} failed: {connection_failure(exc)}") from None
            await client.ehlo()
        done = {"starttls": "STARTTLS", "tls": "TLS", "none": "unencrypted"}[security]
        if settings.smtp_username:
            if not client.supports_extension("auth"):
                raise _SmtpRefusal(f"{where} offers no login (AUTH), but RUPALI_SMTP_USERNAME is set")
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            await client.login(settings.smtp_username, password)
            done += f", logged in as {settings.smtp_username}"
        else:
            done += ", no login (RUPALI_SMTP_USERNAME is unset)"
        await client.quit()
    finally:
        client.close()
    return f"{where} answers: {done}; no mail was sent"


def _size(count: int) -> str:
    amount = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"


def _one_line(text: str) -> str:
    """Server answers may span lines; a check's detail never does."""
    return " ".join(text.split())
