"""Media storage: a local folder under the data directory, with keys that cannot escape it.

Writes are atomic: the bytes go to ``.tmp-<name>.<random>`` beside the key and are renamed into place, so a key never
holds half a file.

**Crash consistency.** Rows name files; no crash may leave a file that no row names, or a row that names no file.
The rule is write-ahead: before creating any file, a writer records an *intent* naming its keys in ``.journal/``
(fsynced, and locked with ``flock`` by the writer for as long as it runs). Then it writes the files, then the rows,
commits, and clears the intent. Deleting goes the other way: rows first, commit, then files.

The media sweep (:mod:`rupali.media_sweep`) resolves what a crash left: an intent whose lock it can take belongs to a
writer that is gone, so every key of it that no row names is deleted with its temporaries, then the intent. At each
crash point that gives:

* while the intent is being written (a ``.tmp-`` file in the journal): no media file exists yet; the journal file goes;
* intent recorded, before, during or after writing files, rows flushed but not committed: no row names the keys, so
  the files and temporaries go;
* committed, intent not cleared: rows name the keys, so the files stay and the intent goes;
* while deleting (rows gone, files not yet): the files are named by no row and by no intent, so the sweep deletes them
  once they are older than its grace period.

A live writer's keys are never touched (its lock is held) and the kernel drops the lock of a killed process, so the
sweep needs no guess about what is in flight. Going by file age alone, it would have to wait out a grace period after
every crash, and even at start-up it could not assume nothing is in flight (NiceGUI serves requests while start-up
handlers run). The other classic order, writing under a staging name and renaming after the commit, leaves a moment
where a committed row names no file: the API reads a generation's status from the database, so a client could see
"succeeded" and get a 404 for its image.

**Backends.** :class:`MediaStorage` is what every caller uses; :func:`from_settings` picks :class:`LocalStorage` or
:class:`rupali.storage_s3.S3Storage` (an S3-compatible bucket, ``RUPALI_MEDIA_BACKEND=s3``). A bucket has no
``flock`` shared across machines, so there an intent is an object ``.journal/<uuid>.intent`` holding its creation time
and its keys, written before any media object; an S3 ``PUT`` is atomic, so no temporaries exist there. A writer
finishes in seconds, so the sweep takes an intent older than :data:`rupali.storage_s3.INTENT_GRACE` (15 minutes) for
abandoned and resolves it exactly like an unlocked local one (every key of it that no row names goes, then the
intent); the keys of younger intents are left alone as live.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, runtime_checkable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from rupali import faults
from rupali.config import Settings

log = logging.getLogger(__name__)
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")
TEMPORARY_PREFIX = ".tmp-"
# Names that start with a dot can never be keys (see _KEY), so neither the journal nor a temporary can collide with one.
JOURNAL = ".journal"
INTENT_SUFFIX = ".intent"
_INTENT_HEADER = "rupali-intent 1"


CHUNK = 1024 * 1024


class InvalidKey(ValueError):
    """A storage key that could escape the storage root or is malformed."""


def check_key(key: str) -> str:
    """``key`` if it is a valid storage key (the same rule on every backend), else :class:`InvalidKey`."""
    if not isinstance(key, str) or len(key) > 300 or not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    """One stored file as a listing gives it."""

    key: str
    size: int
    modified: float  # POSIX timestamp


@runtime_checkable
class MediaStorage(Protocol):
    """What callers may do with media, on any backend. Missing keys raise :class:`FileNotFoundError` (an
    ``OSError``), backend failures ``OSError``, malformed keys :class:`InvalidKey`."""

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None: ...

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` under ``key`` atomically (big files: never all in memory); returns the bytes written."""
        ...

    def put_file(self, key: str, source: Path) -> None: ...

    def read(self, key: str) -> bytes: ...

    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The bytes of ``key`` in chunks; the file is opened at the call (a missing one raises then)."""
        ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every stored file whose key starts with ``prefix`` (no temporaries, no journal)."""
        ...

    def signed_url(self, key: str, seconds: int) -> str | None:
        """A URL that GETs ``key`` for ``seconds`` without credentials, or None where the backend has none."""
        ...

    def intend(self, keys: Iterable[str]) -> Intent: ...

    def abandoned_intents(self) -> tuple[list[Intent], frozenset[str]]: ...

    def settle_with(self, session: Session, *, intent: Intent | None = None, obsolete: Iterable[str] = ()) -> None: ...

    def describe(self) -> str:
        """Where media live, for logs and the doctor (no secrets)."""
        ...


_backends: dict[tuple[object, ...], MediaStorage] = {}


def from_settings(settings: Settings) -> MediaStorage:
    """The media backend ``settings`` configure (one S3 client per configuration: building one costs)."""
    if settings.media_backend != "s3":
        return LocalStorage.from_settings(settings)
    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    identity = (settings.s3_bucket, settings.s3_endpoint_url, settings.s3_region, settings.s3_access_key_id, secret,
                settings.s3_prefix)
    found = _backends.get(identity)
    if found is None:
        from rupali.storage_s3 import S3Storage  # obstore is only loaded where it is used

        found = _backends[identity] = S3Storage.from_settings(settings)
    return found


class LocalStorage:
    """Files under one root folder, addressed by relative keys like ``avatars/<user>/<id>.webp``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStorage:
        return cls(settings.effective_media_dir)

    def path(self, key: str) -> Path:
        """The file for ``key``; raises :class:`InvalidKey` for anything that could leave the root."""
        check_key(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"storage key {key!r} leaves the storage root")
        return path

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Write atomically; ``durable=False`` skips the fsync for files that can be made again (thumbnails)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary carries the key's name, so the sweep can tell whose it is (see key_of_temporary).
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            faults.reached(faults.IN_TEMPORARY)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        return write_atomically(self.path(key), chunks)

    def put_file(self, key: str, source: Path) -> None:
        with source.open("rb") as handle:
            self.put_stream(key, iter(lambda: handle.read(CHUNK), b""))

    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        handle = self.path(key).open("rb")  # opened now: a missing file raises here, not in the middle of a response

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(chunk_size):
                    yield chunk

        return chunks()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Regular files under the root whose key starts with ``prefix``; links, temporaries and the journal are
        left out, and links are never followed."""
        stack = [(self.root, "")]
        while stack:
            folder, base = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = sorted(entries, key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in listed:
                key = f"{base}{entry.name}"
                if entry.name.startswith(".") or not (key.startswith(prefix) or prefix.startswith(f"{key}/")):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append((Path(entry.path), f"{key}/"))
                elif stat.S_ISREG(info.st_mode) and key.startswith(prefix):
                    yield StoredObject(key, info.st_size, info.st_mtime)

    def signed_url(self, key: str, seconds: int) -> str | None:
        check_key(key)
        return None  # a folder has no URL of its own: the routes stream it

    def describe(self) -> str:
        return f"local folder {self.root}"

    # --- the intent journal ------------------------------------------------------------------------------------------

    def intend(self, keys: Iterable[str]) -> Intent:
        """Record, durably and before any of them is written, the keys a writer is about to create.

        The writer holds the intent's lock until it resolves it (:meth:`Intent.commit` or :meth:`Intent.rollback`,
        or leaving it as a context manager); use :meth:`settle_with` to resolve it with a session's transaction.
        """
        keys = tuple(keys)
        for key in keys:
            self.path(key)  # an intent names only keys inside the root
        journal = self.root / JOURNAL
        journal.mkdir(parents=True, exist_ok=True)
        while True:
            fd, temporary = tempfile.mkstemp(dir=journal, prefix=TEMPORARY_PREFIX)
            handle = os.fdopen(fd, "r+b")
            # Locked before it has its real name: a sweep never sees an unlocked intent of a live writer. A sweep
            # that took the lock in the instant before us has deleted the file as abandoned: start again.
            fcntl.flock(handle, fcntl.LOCK_EX)
            if os.fstat(handle.fileno()).st_nlink:
                break
            handle.close()
        try:
            handle.write("\n".join((_INTENT_HEADER, *keys, "")).encode())
            handle.flush()
            os.fsync(handle.fileno())
            path = journal / f"{uuid.uuid4().hex}{INTENT_SUFFIX}"
            os.replace(temporary, path)
            _fsync_directory(journal)
        except BaseException:
            handle.close()
            Path(temporary).unlink(missing_ok=True)
            raise
        return Intent(self, path, handle, keys)

    def abandoned_intents(self) -> tuple[list[Intent], frozenset[str]]:
        """Intents whose writer is gone, now locked by the caller (who must resolve or release them), and the keys
        of the intents still being written."""
        journal = self.root / JOURNAL
        if journal.is_symlink() or not journal.is_dir():
            return [], frozenset()
        abandoned: list[Intent] = []
        live: set[str] = set()
        with os.scandir(journal) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    handle = os.fdopen(os.open(entry.path, os.O_RDWR | os.O_NOFOLLOW), "r+b")
                except OSError:
                    continue  # resolved meanwhile, or not a plain file
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    live.update(_intent_keys(handle.read()))
                    handle.close()
                    continue
                # A journal file still under its temporary name was never completed: nothing was written after it.
                keys = _intent_keys(handle.read()) if entry.name.endswith(INTENT_SUFFIX) else ()
                abandoned.append(Intent(self, Path(entry.path), handle, keys))
        return abandoned, frozenset(live)

    def settle_with(self, session: Session, *, intent: Intent | None = None, obsolete: Iterable[str] = ()) -> None:
        """Resolve file work with ``session``'s transaction (see :func:`settle_with`)."""
        settle_with(self, session, intent=intent, obsolete=obsolete)


class Intent:
    """Keys being written, recorded in the journal and locked until their writer resolves them."""

    def __init__(self, storage: MediaStorage, path: Path | str, handle: IO[bytes] | None,
                 keys: tuple[str, ...]) -> None:
        self.storage = storage
        self.path = path
        self.keys = keys
        self._handle: IO[bytes] | None = handle

    def __enter__(self) -> Intent:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Leaving normally means the rows naming the files are committed; leaving by an exception, that none are.

        So nothing that can fail may follow the commit inside the block.
        """
        if kind is None:
            self.commit()
        else:
            self.rollback()

    def commit(self) -> None:
        """Rows naming the files are committed: the files stay and the intent is cleared."""
        self.forget()

    def rollback(self) -> None:
        """No row will name the files: delete them, then the intent. On failure the intent stays for the sweep."""
        try:
            for key in self.keys:
                self.storage.delete(key)
        except OSError:
            log.exception("could not delete the files of an abandoned write; the media sweep will")
            self.release()
            return
        self.forget()

    def forget(self) -> None:
        """Delete the journal entry, then give up the lock (in that order, so no sweep finds it unlocked)."""
        try:
            Path(self.path).unlink(missing_ok=True)
        except OSError:
            log.exception("could not clear an intent; the media sweep will")
        finally:
            self.release()

    def release(self) -> None:
        """Give up the lock but keep the entry: whoever takes the lock next resolves it."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def settle_with(storage: MediaStorage, session: Session, *, intent: Intent | None = None,
                obsolete: Iterable[str] = ()) -> None:
    """Resolve file work with ``session``'s transaction.

    When it commits, ``intent``'s files stay and ``obsolete`` files (no longer named by any row) are deleted;
    when it rolls back, ``intent``'s files are deleted and ``obsolete`` ones stay, still named by their rows.
    """
    obsolete = tuple(obsolete)
    state = {"committed": False, "settled": False}

    def committed(_session: Session) -> None:
        if not session.in_nested_transaction():  # a savepoint's release is not the commit
            state["committed"] = True

    def ended(_session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None or state["settled"]:
            return
        state["settled"] = True
        try:  # raising here would make a commit that succeeded look failed
            if state["committed"]:
                if intent is not None:
                    intent.commit()
                for key in obsolete:
                    storage.delete(key)
            elif intent is not None:
                intent.rollback()
        except Exception:
            log.exception("could not settle media files after the transaction; the media sweep will")

    event.listen(session, "after_commit", committed)
    event.listen(session, "after_transaction_end", ended)


def key_of_temporary(key_of_folder: str, name: str) -> str | None:
    """The key a ``.tmp-<name>.<random>`` file in folder ``key_of_folder`` was being written for, if it is one."""
    if not name.startswith(TEMPORARY_PREFIX):
        return None
    target, dot, _random = name.removeprefix(TEMPORARY_PREFIX).rpartition(".")
    if not dot or not target:
        return None
    return f"{key_of_folder}/{target}" if key_of_folder else target


def write_atomically(target: Path, chunks: Iterable[bytes]) -> int:
    """Stream ``chunks`` into a temporary beside ``target``, make it durable, rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary carries the key's name, so the media sweep can tell whose it is.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f"{TEMPORARY_PREFIX}{target.name}.")
    written = 0
    try:
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)  # the new name as durable as the bytes
    return written


def _intent_keys(data: bytes) -> tuple[str, ...]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0] != _INTENT_HEADER:
        return ()
    return tuple(line for line in lines[1:] if len(line) <= 300 and _KEY.match(line))


def _fsync_directory(path: Path) -> None:
    # The new name must be as durable as the bytes, or a power cut could keep the files and lose their intent.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
