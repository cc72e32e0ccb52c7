"""Media in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, Backblaze B2), through obstore.

Why obstore: it is the Rust ``object_store`` crate with a small synchronous Python API that releases the GIL, so the
worker threads Rupali already uses for file work stay cheap; it speaks every S3 dialect we target, signs URLs
(``obstore.sign``) and streams multipart uploads, without pulling in botocore.

Keys follow exactly :func:`rupali.storage.check_key`. Crash consistency without ``flock`` (see
:mod:`rupali.storage`): an intent is the object ``.journal/<uuid>.intent``, written before any media object, holding
its creation time and its keys. The sweep takes an intent older than :data:`INTENT_GRACE` for abandoned (a writer
finishes in seconds) and deletes every key of it that no row names, then the intent. A ``PUT`` replaces an object
whole, so a key never holds half a file and there are no temporaries.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store
from sqlalchemy.orm import Session

from rupali import processes
from rupali.clock import now
from rupali.config import Settings
from rupali.storage import (
    CHUNK,
    INTENT_SUFFIX,
    JOURNAL,
    Intent,
    StoredObject,
    _intent_keys,
    check_key,
    settle_with,
)

log = logging.getLogger(__name__)
INTENT_GRACE = timedelta(minutes=15)
SPOOL_PREFIX = ".s3-spool-"  # a big upload being assembled in the spool folder (see put_stream)
SHA256_METADATA = "sha256"  # user metadata (x-amz-meta-sha256) written by `rupali storage migrate`
_CREATED = "created "
_T = TypeVar("_T")


def _translated(call: Callable[[], _T], key: str) -> _T:
    """Run an obstore call with its errors as the ``OSError``s every caller already handles."""
    try:
        return call()
    except NotFoundError as exc:
        raise FileNotFoundError(f"no stored object {key!r}") from exc
    except BaseError as exc:
        raise OSError(f"object storage failed on {key!r}: {type(exc).__name__}") from exc


class S3Storage:
    """Objects in one bucket (under an optional prefix), addressed by the same keys as :class:`LocalStorage`."""

    def __init__(self, bucket: str, *, access_key_id: str, secret_access_key: str, region: str = "us-east-1",
                 endpoint_url: str | None = None, prefix: str = "", spool_dir: Path | None = None) -> None:
        self.bucket, self.endpoint_url, self.prefix = bucket, endpoint_url, prefix
        self.spool_dir = spool_dir  # where big uploads are assembled first (see put_stream); None: the system's
        options: dict[str, object] = {"timeout": timedelta(seconds=60), "connect_timeout": timedelta(seconds=5)}
        if endpoint_url and endpoint_url.startswith("http://"):
            options["allow_http"] = True  # production refuses plain http unless it is loopback (rupali.config)
        config: dict[str, object] = {"region": region, "access_key_id": access_key_id,
                                     "secret_access_key": secret_access_key}
        if endpoint_url:
            config["endpoint"] = endpoint_url
        # A bucket that does not answer must fail a request within seconds, not after three minutes of retries.
        retry = {"max_retries": 2, "retry_timeout": timedelta(seconds=15)}
        self.store = S3Store(bucket, prefix=prefix or None, config=config,  # type: ignore[arg-type]
                             client_options=options, retry_config=retry)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        assert settings.s3_bucket and settings.s3_access_key_id and settings.s3_secret_access_key  # validated
        return cls(settings.s3_bucket, access_key_id=settings.s3_access_key_id,
                   secret_access_key=settings.s3_secret_access_key.get_secret_value(), region=settings.s3_region,
                   endpoint_url=settings.s3_endpoint_url, prefix=settings.s3_prefix,
                   spool_dir=settings.data_dir.resolve() if settings.data_dir.is_dir() else None)

    def describe(self) -> str:
        where = self.endpoint_url or "AWS S3"
        return f"bucket {self.bucket}{'/' + self.prefix if self.prefix else ''} at {where}"

    # --- objects -----------------------------------------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        check_key(key)
        _translated(lambda: obstore.put(self.store, key, data), key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Spool ``chunks`` to a local temporary file, then upload it (multipart when big).

        Not streamed straight into the upload: obstore would pull the chunks from inside its own runtime, and a chunk
        made by reading other objects (an export's images) would then call obstore from within it, which panics.
        """
        check_key(key)
        written = 0
        # Named for its process, so that the start-up sweep after a crash knows the spool's writer is gone.
        prefix = f"{SPOOL_PREFIX}{os.getpid()}-{processes.host_name()}-"
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix=prefix) as spool:
            for chunk in chunks:
                spool.write(chunk)
                written += len(chunk)
            spool.flush()
            self.put_file(key, Path(spool.name))
        return written

    def sweep_spool(self, cutoff: float) -> int:
        """Delete the spool files a process killed mid-upload left behind (a normal exit or an exception deletes its
        own): at once when their process, on this host, is gone; otherwise once last written before ``cutoff`` (a
        timestamp). Returns how many went.

        Like the queue's check of a dead instance, it trusts the host name: containers that share one, and this
        folder, without sharing process ids could take each other's live spool for a dead one's.
        """
        folder = self.spool_dir or Path(tempfile.gettempdir())
        removed = 0
        for path in folder.glob(f"{SPOOL_PREFIX}*"):
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and (info.st_mtime < cutoff or _writer_gone(path.name)):
                    path.unlink()  # an upload still reading it keeps its open file: POSIX frees it at the close
                    removed += 1
            except FileNotFoundError:
                continue  # its own writer closed it meanwhile
            except OSError as exc:  # someone else's file in a shared folder, say: the rest of the sweep goes on
                log.warning("media sweep cannot remove the spool file %r: %s", str(path), exc)
        return removed

    def put_file(self, key: str, source: Path, *, metadata: dict[str, str] | None = None) -> None:
        check_key(key)
        _translated(lambda: obstore.put(self.store, key, source, attributes=metadata,  # type: ignore[arg-type]
                                        chunk_size=8 * CHUNK), key)

    def read(self, key: str) -> bytes:
        check_key(key)
        return _translated(lambda: bytes(obstore.get(self.store, key).bytes()), key)

    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        check_key(key)
        result = _translated(lambda: obstore.get(self.store, key), key)  # the request is made now

        def chunks() -> Iterator[bytes]:
            stream = result.stream(min_chunk_size=chunk_size)
            while True:
                try:
                    chunk = next(stream)
                except StopIteration:
                    return
                except BaseError as exc:
                    raise OSError(f"object storage failed reading {key!r}") from exc
                yield bytes(chunk)

        return chunks()

    def size(self, key: str) -> int:
        check_key(key)
        return int(_translated(lambda: obstore.head(self.store, key), key)["size"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        check_key(key)
        self.remove(key)

    def remove(self, key: str) -> None:
        """Delete whatever object is at ``key``, valid key or not (the sweep's orphans); missing is fine."""
        with contextlib.suppress(FileNotFoundError):  # some servers answer 404 for a missing key
            _translated(lambda: obstore.delete(self.store, key), key)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        for batch in _translated(lambda: obstore.list(self.store, prefix or None, chunk_size=1000), prefix):
            for meta in batch:
                key = meta["path"]
                if key.startswith(f"{JOURNAL}/") or not key.startswith(prefix):
                    continue
                yield StoredObject(key, int(meta["size"]), _timestamp(meta["last_modified"]))

    def metadata(self, key: str) -> tuple[int, dict[str, str]]:
        """Size and user metadata of ``key`` (reads one byte at most)."""
        check_key(key)
        size = self.size(key)
        if not size:
            result = _translated(lambda: obstore.get(self.store, key), key)
        else:
            result = _translated(lambda: obstore.get(self.store, key, options={"range": (0, 1)}), key)
        attributes = result.attributes
        return size, {str(name): str(value) for name, value in attributes.items()}

    def sha256(self, key: str) -> str:
        """The SHA-256 of what is stored at ``key``, read back whole."""
        digest = hashlib.sha256()
        for chunk in self.stream(key):
            digest.update(chunk)
        return digest.hexdigest()

    def signed_url(self, key: str, seconds: int) -> str | None:
        check_key(key)
        return _translated(lambda: obstore.sign(self.store, "GET", key, timedelta(seconds=seconds)), key)

    def probe(self) -> None:
        """List at most one key: raises ``OSError`` when the bucket does not answer or refuses the credentials."""
        stream = _translated(lambda: obstore.list(self.store, None, chunk_size=1), self.bucket)
        _translated(lambda: next(iter(stream), None), self.bucket)

    # --- the intent journal ------------------------------------------------------------------------------------------

    def intend(self, keys: Iterable[str]) -> Intent:
        """Record the keys a writer is about to create, before any of them is written (see the module docstring)."""
        keys = tuple(check_key(key) for key in keys)
        name = f"{JOURNAL}/{uuid.uuid4().hex}{INTENT_SUFFIX}"
        body = "\n".join(("rupali-intent 1", *keys, f"{_CREATED}{now().isoformat()}", ""))
        _translated(lambda: obstore.put(self.store, name, body.encode()), name)
        return S3Intent(self, name, None, keys)

    def abandoned_intents(self) -> tuple[list[Intent], frozenset[str]]:
        """Intents older than :data:`INTENT_GRACE` (their writer is gone), and the keys of the younger ones."""
        abandoned: list[Intent] = []
        live: set[str] = set()
        cutoff = now() - INTENT_GRACE
        for batch in _translated(lambda: obstore.list(self.store, f"{JOURNAL}/", chunk_size=1000), JOURNAL):
            for meta in batch:
                name = meta["path"]
                try:
                    data = _translated(lambda: bytes(obstore.get(self.store, name).bytes()), name)  # noqa: B023
                except FileNotFoundError:
                    continue  # resolved meanwhile
                keys = _intent_keys(data)
                created = _created(data) or meta["last_modified"]
                if created <= cutoff:
                    abandoned.append(S3Intent(self, name, None, keys))
                else:
                    live.update(keys)
        return abandoned, frozenset(live)

    def settle_with(self, session: Session, *, intent: Intent | None = None, obsolete: Iterable[str] = ()) -> None:
        settle_with(self, session, intent=intent, obsolete=obsolete)


class S3Intent(Intent):
    """An intent object in the bucket's journal; there is no lock to hold or give up."""

    def forget(self) -> None:
        storage = self.storage
        assert isinstance(storage, S3Storage)
        try:
            storage.remove(str(self.path))
        except OSError:
            log.exception("could not clear an intent; the media sweep will")

    def release(self) -> None:
        pass


def _created(data: bytes) -> datetime | None:
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.startswith(_CREATED):
            try:
                moment = datetime.fromisoformat(line.removeprefix(_CREATED))
            except ValueError:
                return None
            return moment if moment.tzinfo else None
    return None


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def _writer_gone(name: str) -> bool:
    """Whether the process named in spool file ``name`` (``<prefix><pid>-<host>-<random>``) ran here and is gone.

    The host is what lies between the first and the last dash (a host name may hold dashes; tempfile's random part
    never does), compared whole: host ``web`` must not judge the files of ``web-2``."""
    pid, _dash, rest = name.removeprefix(SPOOL_PREFIX).partition("-")
    host = rest.rpartition("-")[0]
    return pid.isascii() and pid.isdigit() and host == processes.host_name() and processes.gone(int(pid))
