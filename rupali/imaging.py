"""Decoding images people upload: only real PNG, JPEG or WebP, within size limits, fully decoded, no metadata."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from typing import TypeVar

from PIL import Image, ImageOps

T = TypeVar("T")
ALLOWED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}


class InvalidImage(ValueError):
    """An upload that is not an acceptable image; the message is for the person who uploaded it."""


def decode_untrusted(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode an upload completely and return a metadata-free RGB(A) copy, oriented as the camera intended.

    Refuses anything but PNG/JPEG/WebP, files over ``max_bytes``, images over ``max_pixels`` (checked from the
    header before any pixel is decoded: the decompression-bomb guard) and files that do not decode to the end.
    """
    image = _checked(data, max_bytes=max_bytes, max_pixels=max_pixels, read=_decoded)
    # A fresh image holds pixels only: EXIF, GPS, ICC and text chunks stay behind.
    mode = "RGBA" if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info else "RGB"
    clean = Image.new(mode, image.size)
    clean.paste(image.convert(mode))
    return clean


def identify_untrusted(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[str, int, int]:
    """The format (PNG, JPEG, WEBP), width and height of a real image within the limits, read from its header and
    structure only: nothing is decoded (a tiny file can describe an image whose pixels take a second and half a
    gigabyte), and PNG chunks are checked against their CRCs."""
    return _checked(data, max_bytes=max_bytes, max_pixels=max_pixels, read=_verified)


def _decoded(probe: Image.Image) -> Image.Image:
    probe.load()  # decodes every pixel: a truncated or corrupt file fails here
    return ImageOps.exif_transpose(probe)


def _verified(probe: Image.Image) -> tuple[str, int, int]:
    probe.verify()
    return str(probe.format), probe.width, probe.height


def _checked(data: bytes, *, max_bytes: int, max_pixels: int, read: Callable[[Image.Image], T]) -> T:
    """``read`` applied to the opened file, after the checks every untrusted image goes through: not empty, within
    ``max_bytes``, a PNG, JPEG or WebP whose header claims at most ``max_pixels``; every failure is a sentence."""
    if not data:
        raise InvalidImage("The file is empty.")
    if len(data) > max_bytes:
        raise InvalidImage(f"The file is larger than {max_bytes // (1024 * 1024)} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise InvalidImage(f"The image is too large ({width} x {height} pixels).")
                return read(probe)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("The image is too large.") from None
    except Image.UnidentifiedImageError:
        raise InvalidImage(f"{_what_it_is(data)} Choose a PNG, JPEG or WebP image.") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError):
        raise InvalidImage("The image is damaged or incomplete.") from None


def _what_it_is(data: bytes) -> str:
    """Name a refused file's real format where it is a common one, so the message says what is wrong."""
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "This file is an SVG drawing."
    try:
        with Image.open(io.BytesIO(data)) as other:  # header only: nothing is decoded
            kind = other.format
    except Exception:  # anything unreadable is simply "not an image"
        kind = None
    if kind:
        return f"This file is a {kind} image."
    return "This file is not an image."


def square_webp(image: Image.Image, size: int, *, quality: int = 85) -> bytes:
    """Centre-crop to a square of ``size`` pixels and encode as WebP."""
    fitted = ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    fitted.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()
