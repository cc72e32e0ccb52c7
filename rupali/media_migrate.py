"""``rupali storage migrate --to s3``: copy the local media folder into the configured bucket, verified.

Each object carries the SHA-256 of its file in its metadata (``x-amz-meta-sha256``). A run can be interrupted and
started again: an object already there with the same size and SHA-256 metadata is skipped. Every copied object is
read back whole and its SHA-256 compared; a mismatch (or a failed upload) is retried once, then reported.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rupali.storage import InvalidKey, LocalStorage, check_key
from rupali.storage_s3 import SHA256_METADATA, S3Storage

log = logging.getLogger(__name__)
ATTEMPTS = 2  # the first copy and one retry


@dataclass
class MigrationReport:
    """What one run did (or, with ``dry_run``, would do)."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> why
    bytes: int = 0  # copied (or, in a dry run, to copy)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "to copy" if self.dry_run else "copied"
        return (f"{verb} {len(self.copied)}, skipped {len(self.skipped)} (already there), failed {len(self.failed)}, "
                f"bytes {verb} {self.bytes}")


def migrate(source: LocalStorage, target: S3Storage, *, dry_run: bool = False,
            say: Callable[[str], None] = lambda line: None) -> MigrationReport:
    """Copy every file of ``source`` (not its temporaries or journal) to ``target``; ``say`` gets one line per file."""
    report = MigrationReport(dry_run=dry_run)
    for stored in source.list():
        key = stored.key
        try:
            check_key(key)
        except InvalidKey:
            report.failed[key] = "not a valid storage key (copy or rename it by hand)"
            say(f"failed {key}: {report.failed[key]}")
            continue
        path = source.path(key)
        try:
            digest, size = _sha256(path)
        except OSError as exc:
            report.failed[key] = f"cannot read the local file: {exc.strerror or exc}"
            say(f"failed {key}: {report.failed[key]}")
            continue
        if _already_there(target, key, size, digest):
            report.skipped.append(key)
            say(f"skip {key} (already there, same SHA-256)")
            continue
        if dry_run:
            report.copied.append(key)
            report.bytes += size
            say(f"would copy {key} ({size} bytes)")
            continue
        problem = _copy(target, key, path, digest)
        if problem is None:
            report.copied.append(key)
            report.bytes += size
            say(f"copied {key} ({size} bytes)")
        else:
            report.failed[key] = problem
            say(f"failed {key}: {problem}")
    return report


def _copy(target: S3Storage, key: str, path: Path, digest: str) -> str | None:
    """Upload and verify, retrying once; None when the object reads back right, else why not."""
    problem = None
    for attempt in range(ATTEMPTS):
        try:
            target.put_file(key, path, metadata={SHA256_METADATA: digest})
            read_back = target.sha256(key)
        except OSError as exc:
            problem = f"upload failed: {exc}"
        else:
            if read_back == digest:
                return None
            problem = f"verification failed: the bucket gave back SHA-256 {read_back}, the file has {digest}"
        if attempt + 1 < ATTEMPTS:
            log.warning("storage migrate: %s: %s; retrying once", key, problem)
    return problem


def _already_there(target: S3Storage, key: str, size: int, digest: str) -> bool:
    try:
        stored_size, metadata = target.metadata(key)
    except OSError:
        return False  # missing (or unreadable: copying again is the safe answer)
    return stored_size == size and metadata.get(SHA256_METADATA) == digest


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
