"""Profile pictures: validated, stripped of metadata, re-encoded to a 256 px WebP."""

from __future__ import annotations

import secrets

from sqlmodel import Session

from rupali import imaging
from rupali.clock import now
from rupali.models import User
from rupali.storage import LocalStorage

AVATAR_SIZE = 256
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000


def set_avatar(session: Session, storage: LocalStorage, user: User, data: bytes) -> User:
    """Replace the user's picture; raises :class:`rupali.imaging.InvalidImage` for an unacceptable upload."""
    image = imaging.decode_untrusted(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    key = f"avatars/{user.id.hex}/{secrets.token_hex(8)}.webp"
    storage.put(key, imaging.square_webp(image, AVATAR_SIZE))
    previous, user.avatar_key, user.updated_at = user.avatar_key, key, now()
    session.add(user)
    if previous:
        storage.delete(previous)
    return user


def remove_avatar(session: Session, storage: LocalStorage, user: User) -> User:
    if user.avatar_key:
        storage.delete(user.avatar_key)
    user.avatar_key, user.updated_at = None, now()
    session.add(user)
    return user
