"""Profile pictures: only real images, within limits, stripped of metadata, stored as 256 px WebP."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.imaging import InvalidImage
from rupali.models import User
from rupali.services import profile
from rupali.storage import InvalidKey, LocalStorage
from tests.utils.factories import make_user


def _photo_with_gps() -> bytes:
    image = Image.new("RGB", (1200, 800), (200, 80, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (55.0, 40.0, 30.0)}  # GPS info
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, "GIF")
    return buffer.getvalue()


def _storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def test_avatar_is_square_webp_without_metadata():
    user = make_user()
    with session_scope() as session:
        updated = profile.set_avatar(session, _storage(), session.merge(user), _photo_with_gps())
    stored = _storage().read(updated.avatar_key)
    with Image.open(io.BytesIO(stored)) as image:
        assert (image.format, image.size) == ("WEBP", (256, 256))
        assert not image.getexif() and "exif" not in image.info
    assert b"SecretCam" not in stored


def test_replacing_and_removing_the_picture_deletes_old_files():
    user = make_user()
    with session_scope() as session:
        first = profile.set_avatar(session, _storage(), session.merge(user), _photo_with_gps()).avatar_key
    with session_scope() as session:
        second = profile.set_avatar(session, _storage(), session.get(User, user.id), _photo_with_gps()).avatar_key
    assert first != second and not _storage().exists(first) and _storage().exists(second)
    with session_scope() as session:
        profile.remove_avatar(session, _storage(), session.get(User, user.id))
    assert not _storage().exists(second)
    with session_scope() as session:
        assert session.get(User, user.id).avatar_key is None


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"just some text, renamed to .png", r"This file is not an image\. Choose a PNG, JPEG or WebP image\."),
    (_photo_with_gps()[:5000], "damaged or incomplete"),
    (_png_claiming(20_000, 20_000), "too large"),
    (b"GIF89a" + b"\0" * 100, "not an image"),
    (_gif(), r"This file is a GIF image\. Choose a PNG, JPEG or WebP image\."),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', r"This file is an SVG drawing\."),
    (b"\xff\xd8" + b"\0" * (profile.MAX_BYTES + 1), "larger than 10 MB"),
])
def test_unacceptable_uploads_get_a_clear_message_and_change_nothing(data, message):
    user = make_user()
    with session_scope() as session, pytest.raises(InvalidImage, match=message):
        profile.set_avatar(session, _storage(), session.merge(user), data)
    with session_scope() as session:
        assert session.get(User, user.id).avatar_key is None
    assert not (_storage().root / "avatars").exists()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/../../b", "", "a//b", "a\\..\\b", "x" * 400])
def test_storage_keys_cannot_escape_the_media_folder(key):
    with pytest.raises(InvalidKey):
        _storage().path(key)
