"""Source images for image-to-image: validated, stripped of metadata (EXIF, GPS), stored as the person's upload."""

from __future__ import annotations

import io
import uuid

from sqlmodel import Session

from rupali import imaging
from rupali.config import Settings
from rupali.models import Upload, User
from rupali.storage import MediaStorage


def store(session: Session, storage: MediaStorage, settings: Settings, user: User, data: bytes) -> Upload:
    """Keep an upload; raises :class:`rupali.imaging.InvalidImage` with a sentence when it is not acceptable."""
    image = imaging.decode_untrusted(data, max_bytes=settings.upload_max_mb * 1024 * 1024,
                                     max_pixels=settings.upload_max_megapixels * 1_000_000)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=3)  # lossless, and a fresh file holds no metadata
    encoded = buffer.getvalue()
    upload_id = uuid.uuid4()
    key = f"uploads/{user.id.hex}/{upload_id.hex}.png"
    intent = storage.intend([key])  # recorded before the file exists: a crash from here on leaves no orphan
    try:
        storage.put(key, encoded)
        upload = Upload(id=upload_id, user_id=user.id, key=key, width=image.width, height=image.height,
                        bytes=len(encoded))
        session.add(upload)
        session.flush()
    except BaseException:
        intent.rollback()
        raise
    storage.settle_with(session, intent=intent)  # the file stays if the caller's transaction commits
    return upload


def source_bytes(session: Session, storage: MediaStorage, upload_id: uuid.UUID) -> bytes | None:
    upload = session.get(Upload, upload_id)
    return storage.read(upload.key) if upload is not None and storage.exists(upload.key) else None


def owned_bytes(session: Session, storage: MediaStorage, user: User, upload_id: str) -> bytes | None:
    """An upload's bytes for its owner; None for anyone else, or for a malformed id."""
    try:
        parsed = uuid.UUID(upload_id)
    except ValueError:
        return None
    upload = session.get(Upload, parsed)
    if upload is None or upload.user_id != user.id or not storage.exists(upload.key):
        return None
    return storage.read(upload.key)
