"""The media sweep: storage and rows made to agree again, at start-up and daily (the ``sweep_media`` job).

* Files in Rupali's folders that no row names are deleted: at once when an abandoned intent names them (their writer
  is gone, see :mod:`rupali.storage`), otherwise once they are older than the grace period, which protects any write
  that is not journaled (an older version still running, a tool) and is far longer than any write-to-commit gap.
* ``.tmp-`` files are deleted on the same terms: at once when they belong to an abandoned intent, else when stale.
* Abandoned intents are resolved; intents still locked by their writer are left alone, with all their files.
* Image rows whose original or thumbnail is gone are marked (``files_missing_at``), never deleted, and unmarked
  when the files come back (a restored backup).

The start-up run uses the same grace period: NiceGUI serves requests while start-up handlers run, so it cannot assume
that nothing is being written, and a crash's residue goes at once through its intent anyway.

It never follows a symbolic link, leaves links themselves alone, and touches nothing outside the folders Rupali
writes (``AREAS``) and its journal.

On an object store (:class:`rupali.storage_s3.S3Storage`) the same rules apply to a listing of the areas' prefixes:
an object's age is its last-modified time, an intent is abandoned once older than its grace period (the bucket has no
locks, see :mod:`rupali.storage`), and there are no temporaries or links in the bucket. The local spool files of
uploads a killed process cut short (:meth:`rupali.storage_s3.S3Storage.sweep_spool`) go at once when that process,
on this host, is gone, else once older than the grace period; each instance sweeps its own at its start.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select, update

from rupali.clock import now
from rupali.models import DataExport, Image, Upload, User
from rupali.storage import TEMPORARY_PREFIX, InvalidKey, LocalStorage, MediaStorage, key_of_temporary

log = logging.getLogger(__name__)
# Data exports are swept too: an archive whose row is gone (erased account, expired export) goes like any orphan.
AREAS = ("images", "thumbnails", "uploads", "avatars", "exports")
GRACE = timedelta(hours=1)
_BATCH = 500  # ids per UPDATE, well under SQLite's limit on bound parameters
# id, original key, thumbnail key, the PNG's copy without its prompt (or None), marked missing at
_ImageFiles = tuple[uuid.UUID, str, str, str | None, datetime | None]


@dataclass
class SweepReport:
    """What one sweep did."""

    orphans: int = 0  # files deleted because no row named them
    temporaries: int = 0  # ``.tmp-`` files deleted (and, with a bucket, spool files)
    intents: int = 0  # abandoned intents resolved
    marked: int = 0  # image rows newly marked as missing their files
    restored: int = 0  # image rows unmarked because their files are back
    young: int = 0  # files no row names, kept because they are younger than the grace period
    skipped: int = 0  # symbolic links and special files, left alone

    def summary(self) -> str:
        return (f"orphans deleted {self.orphans}, temporaries deleted {self.temporaries}, intents resolved "
                f"{self.intents}, images marked missing {self.marked}, images found again {self.restored}, young "
                f"files kept {self.young}, links skipped {self.skipped}")


@dataclass(frozen=True)
class _Found:
    key: str  # the path relative to the root, "/"-separated; not necessarily a valid key
    path: Path | None  # None on an object store
    mtime: float


def sweep(session: Session, storage: MediaStorage, *, grace: timedelta = GRACE) -> SweepReport:
    """Sweep ``storage`` against the rows ``session`` sees; returns the counts."""
    report = SweepReport()
    cutoff = now().timestamp() - grace.total_seconds()
    # The order matters. A file found on disk was created after its intent; if that intent is gone by the time the
    # journal is read, its rows were committed before the rows are read below. So nothing in flight is missed.
    if isinstance(storage, LocalStorage):
        files, temporaries = _walk(storage.root, report)
    else:
        files, temporaries = _listed(storage), []
        from rupali.storage_s3 import S3Storage  # here: obstore is only loaded where a bucket is used

        if isinstance(storage, S3Storage):
            report.temporaries += storage.sweep_spool(cutoff)  # the local half of an upload a crash cut short
    abandoned, live = storage.abandoned_intents()
    try:
        named, images = _named(session)
        dead = {key for intent in abandoned for key in intent.keys} - named
        for found in files:
            if found.key in named or found.key in live:
                continue
            if found.key in dead or found.mtime < cutoff:
                report.orphans += _remove(storage, found)
            else:
                report.young += 1
        for found in temporaries:
            folder, _slash, name = found.key.rpartition("/")
            target = key_of_temporary(folder, name)
            if target in live:
                continue
            if target in dead or found.mtime < cutoff:
                report.temporaries += _remove(storage, found)
            else:
                report.young += 1
        for intent in abandoned:
            for key in intent.keys:
                if key not in named:  # also what its writer made after the walk, before it died
                    orphans, partial = _remove_key(storage, key)
                    report.orphans += orphans
                    report.temporaries += partial
            intent.forget()
            report.intents += 1
    finally:
        for intent in abandoned:
            intent.release()
    _mark_missing(session, storage, images, {found.key for found in files}, report)
    # Quiet unless it changed something: a clean start-up log says nothing about a sweep that found nothing.
    changed = report.orphans or report.temporaries or report.intents or report.marked or report.restored
    log.log(logging.INFO if changed else logging.DEBUG, "media sweep: %s", report.summary())
    return report


def _walk(root: Path, report: SweepReport) -> tuple[list[_Found], list[_Found]]:
    """Regular files and temporaries under the areas, without following links (iterative: no depth limit)."""
    files: list[_Found] = []
    temporaries: list[_Found] = []
    stack = []
    for area in AREAS:
        try:
            mode = (root / area).lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            stack.append((area, root / area))
        else:
            report.skipped += 1  # a link (or anything else) where a folder should be
    while stack:
        prefix, folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as exc:
            log.warning("media sweep cannot read %r: %s", str(folder), exc)
            continue
        for entry in listed:
            key = f"{prefix}/{entry.name}"
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISDIR(info.st_mode):
                stack.append((key, Path(entry.path)))
            elif stat.S_ISREG(info.st_mode):
                found = _Found(key, Path(entry.path), info.st_mtime)
                (temporaries if entry.name.startswith(TEMPORARY_PREFIX) else files).append(found)
            else:
                report.skipped += 1
    return files, temporaries


def _listed(storage: MediaStorage) -> list[_Found]:
    """The objects under the areas' prefixes (an object store: no folders, links or temporaries)."""
    return [_Found(stored.key, None, stored.modified) for area in AREAS for stored in storage.list(f"{area}/")]


def _remove(storage: MediaStorage, found: _Found) -> int:
    if found.path is not None:
        return _unlink(found.path)
    try:
        storage.remove(found.key)  # type: ignore[attr-defined]  # S3Storage: also keys that are not valid keys
    except OSError as exc:
        log.warning("media sweep cannot delete %r: %s", found.key, exc)
        return 0
    return 1


def _remove_key(storage: MediaStorage, key: str) -> tuple[int, int]:
    if isinstance(storage, LocalStorage):
        return _unlink_key(storage.root, key)
    try:
        if not storage.exists(key):
            return 0, 0
        storage.delete(key)
    except (OSError, InvalidKey) as exc:
        log.warning("media sweep cannot delete %r: %s", key, exc)
        return 0, 0
    return 1, 0


def _named(session: Session) -> tuple[set[str], Sequence[_ImageFiles]]:
    """Every key a row names, and the image rows with their keys and mark."""
    images = session.exec(select(Image.id, Image.original_key, Image.thumbnail_key, Image.plain_key,
                                 Image.files_missing_at)).all()
    named = {key for _id, original, thumbnail, plain, _marked in images for key in (original, thumbnail, plain) if key}
    named.update(session.exec(select(Upload.key)).all())
    named.update(key for key in session.exec(select(User.avatar_key).where(col(User.avatar_key).is_not(None))).all()
                 if key)
    # A builder names its key in the row before it writes the file (rupali.services.exports).
    named.update(key for key in session.exec(select(DataExport.storage_key)
                                             .where(col(DataExport.storage_key).is_not(None))).all() if key)
    return named, images


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("media sweep cannot delete %r: %s", str(path), exc)
        return 0
    return 1


def _unlink_key(root: Path, key: str) -> tuple[int, int]:
    """Delete a key's file and its temporaries, unless a link lies on the way; returns (files, temporaries)."""
    folder = root
    *parents, name = key.split("/")
    for part in parents:
        folder = folder / part
        if not folder.is_dir() or folder.is_symlink():
            return 0, 0
    target = folder / name
    deleted = _unlink(target) if _is_regular(target) else 0
    partial = 0
    try:
        with os.scandir(folder) as entries:
            siblings = [entry for entry in entries if entry.name.startswith(f"{TEMPORARY_PREFIX}{name}.")
                        and entry.is_file(follow_symlinks=False)]
    except OSError:
        siblings = []
    for entry in siblings:
        partial += _unlink(Path(entry.path))
    return deleted, partial


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _mark_missing(session: Session, storage: MediaStorage, images: Sequence[_ImageFiles], on_disk: set[str],
                  report: SweepReport) -> None:
    missing: list[uuid.UUID] = []
    back: list[uuid.UUID] = []
    for image_id, original, thumbnail, plain, marked in images:
        present = all(_present(storage, key, on_disk) for key in (original, thumbnail, plain) if key)
        if not present and marked is None:
            missing.append(image_id)
        elif present and marked is not None:
            back.append(image_id)
    moment = now()
    for batch in _batches(missing):
        session.exec(update(Image).where(col(Image.id).in_(batch)).values(files_missing_at=moment))  # type: ignore[call-overload]
    for batch in _batches(back):
        session.exec(update(Image).where(col(Image.id).in_(batch)).values(files_missing_at=None))  # type: ignore[call-overload]
    report.marked, report.restored = len(missing), len(back)
    if missing:
        log.warning("media sweep: %d images are missing their files (marked, not deleted)", len(missing))


def _present(storage: MediaStorage, key: str, on_disk: set[str]) -> bool:
    if key in on_disk:
        return True
    try:
        return storage.exists(key)  # written after the walk, or outside the areas
    except InvalidKey:
        return False


def _batches(ids: list[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start:start + _BATCH]
