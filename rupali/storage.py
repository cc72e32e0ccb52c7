"""Media storage: a local folder under the data directory, with keys that cannot escape it.

Writes are atomic (temporary file + rename), so a crash never leaves half a file under a real key.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from rupali.config import Settings

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


class InvalidKey(ValueError):
    """A storage key that could escape the storage root or is malformed."""


class LocalStorage:
    """Files under one root folder, addressed by relative keys like ``avatars/<user>/<id>.webp``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStorage:
        return cls(settings.effective_media_dir)

    def path(self, key: str) -> Path:
        """The file for ``key``; raises :class:`InvalidKey` for anything that could leave the root."""
        if len(key) > 300 or not _KEY.match(key) or ".." in key.split("/"):
            raise InvalidKey(f"invalid storage key {key!r}")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"storage key {key!r} leaves the storage root")
        return path

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Write atomically; ``durable=False`` skips the fsync for files that can be made again (thumbnails)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
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
