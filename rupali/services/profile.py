"""Profile pictures: validated, stripped of metadata, re-encoded to a 256 px WebP."""

from __future__ import annotations

import secrets

from sqlmodel import Session

from rupali import imaging
from rupali.clock import now
from rupali.models import User
from rupali.storage import MediaStorage

AVATAR_SIZE = 256
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000


def set_avatar(session: Session, storage: MediaStorage, user: User, data: bytes) -> User:
    """Replace the user's picture; raises :class:`rupali.imaging.InvalidImage` for an unacceptable upload."""
    image = imaging.decode_untrusted(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    encoded = imaging.square_webp(image, AVATAR_SIZE)
    key = f"avatars/{user.id.hex}/{secrets.token_hex(8)}.webp"
    intent = storage.intend([key])  # recorded before the file exists: a crash from here on leaves no orphan
    try:
        storage.put(key, encoded)
    except BaseException:
        intent.rollback()
        raise
    previous, user.avatar_key, user.updated_at = user.avatar_key, key, now()
    session.add(user)
    # The old picture goes only once the row no longer names it; a rollback deletes the new one instead.
    storage.settle_with(session, intent=intent, obsolete=[previous] if previous else [])
    return user


def remove_avatar(session: Session, storage: MediaStorage, user: User) -> User:
    previous, user.avatar_key, user.updated_at = user.avatar_key, None, now()
    session.add(user)
    if previous:
        storage.settle_with(session, obsolete=[previous])  # deleted after the commit, never before
    return user
