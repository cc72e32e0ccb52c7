"""Serving a person's image files: the original (with or without its parameters text) and the thumbnail.

Shared by the browser routes and the REST API so both answer the same way: unknown ids, other people's ids and
expired images are all plain 404s, with no hint which it was.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from rupali import media
from rupali.clock import now
from rupali.config import Settings
from rupali.db import transact
from rupali.models import Generation, Image, User
from rupali.provenance import ContentCredentials, Inspection
from rupali.services import gallery, users
from rupali.services import generation as generations
from rupali.storage import InvalidKey, MediaStorage

NOT_FOUND = Response("Not Found", status_code=404, media_type="text/plain")
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# A redirect to a presigned URL must not be cached: the URL expires, and it is this person's authorization.
REDIRECT_HEADERS = {"Cache-Control": "private, no-store"}
# One range-spec of RFC 9110 §14.1.1, ASCII digits only (\d would also take other scripts' digits).
_RANGE_SPEC = re.compile(r"(?P<first>[0-9]+)-(?P<last>[0-9]*)|-(?P<suffix>[0-9]+)")
_BEYOND = 10**18


async def original(storage: MediaStorage, user: User, image_id: str, range_header: str | None = None, *,
                   parameters: bool | None = None, if_range: str | None = None,
                   redirect_seconds: int | None = None) -> Response:
    """The original file as a download. PNGs carry the A1111 ``parameters`` text when ``parameters`` says so, or,
    when it is None, unless the owner opted out.

    With ``redirect_seconds`` (``RUPALI_MEDIA_DELIVERY=redirect``), a file served as stored is answered with a 307
    to a presigned URL of the backend, once the person is authorized; files that must be rewritten here (PNGs from
    before signing) and backends without URLs are streamed as usual."""
    found = await _find(user, image_id)
    if found is None:
        return NOT_FOUND
    image, generation = found
    strip = not parameters if parameters is not None else \
        await run_in_threadpool(transact, users.strips_metadata, image.user_id)
    if redirect_seconds and (key := stored_original_key(image, strip)) is not None:
        redirect = await _redirect(storage, key, redirect_seconds)
        if redirect is not None:
            return redirect
    try:
        data = await run_in_threadpool(prepared_original, storage, image, generation, strip)
    except (OSError, InvalidKey):
        return NOT_FOUND
    return ranged(data, range_header, MEDIA_TYPES.get(image.format, "application/octet-stream"), {
        "Content-Disposition": f'attachment; filename="{download_name(image)}"',
        "Cache-Control": "private, no-store",
    }, if_range=if_range)


def download_name(image: Image) -> str:
    extension = {"JPEG": "jpg"}.get(image.format, image.format.lower())
    return f"rupali-{image.seed}-{image.id.hex[:8]}.{extension}"


def stored_original_key(image: Image, strip: bool) -> str | None:
    """The key whose bytes are exactly what :func:`prepared_original` gives, or None when it rewrites them."""
    if image.signed:
        return image.plain_key if strip and image.plain_key else image.original_key
    return None if image.format == "PNG" else image.original_key


def prepared_original(storage: MediaStorage, image: Image, generation: Generation, strip: bool) -> bytes:
    """The original as downloads give it: PNGs with (or, when ``strip``, without) their parameters text.

    A signed image's files are served as they are: each variant was signed when it was made, so any rewrite here
    would break its Content Credentials. Images from before signing are prepared as they always were."""
    if image.signed:
        return storage.read(image.plain_key if strip and image.plain_key else image.original_key)
    data = storage.read(image.original_key)
    if image.format == "PNG":
        data = media.png_with_parameters(data, None if strip else media.infotext(generation, image))
    return data


def content_credentials(storage: MediaStorage, credentials: ContentCredentials, image: Image) -> Inspection | None:
    """What the stored original's Content Credentials say, checked now (None when its file is gone)."""
    try:
        data = storage.read(image.original_key)
    except (OSError, InvalidKey):
        return None
    return credentials.inspect(data, image.format)


async def thumbnail(storage: MediaStorage, user: User, image_id: str, if_none_match: str | None = None, *,
                    redirect_seconds: int | None = None) -> Response:
    """The WebP thumbnail. Its content never changes, so browsers keep it for a year and revalidate by ETag.

    With ``redirect_seconds`` and a backend that signs URLs, a 307 to a presigned URL instead of the bytes."""
    try:
        parsed = uuid.UUID(image_id)
    except ValueError:
        return NOT_FOUND
    facts = _thumbnail_facts.get(parsed)
    if facts is None:
        facts = await run_in_threadpool(transact, generations.thumbnail_facts, parsed)
        if facts is None:
            return NOT_FOUND
        _thumbnail_facts.put(parsed, facts)
    owner_id, key, expires_at = facts
    if (owner_id != user.id and not user.is_admin) or (expires_at is not None and expires_at <= now()):
        return NOT_FOUND
    headers = {"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{parsed.hex}"'}
    if if_none_match and headers["ETag"] in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    if redirect_seconds:
        redirect = await _redirect(storage, key, redirect_seconds)
        if redirect is not None:
            return redirect
    try:
        # Read from the backend each time: a deleted image's file is gone, whatever we remember. Thumbnails are
        # small, so one read beats a stream's extra round trips.
        data = await run_in_threadpool(storage.read, key)
    except (OSError, InvalidKey):
        return NOT_FOUND
    return Response(data, media_type="image/webp", headers=headers)


def redirect_seconds(settings: Settings) -> int | None:
    """How long presigned URLs live when images are delivered by redirect, or None when they are streamed (always
    from the local folder, which signs no URLs: no thread is spent asking it for one)."""
    redirected = settings.media_delivery == "redirect" and settings.media_backend == "s3"
    return settings.media_redirect_seconds if redirected else None


async def _redirect(storage: MediaStorage, key: str, seconds: int) -> Response | None:
    """A 307 to a presigned URL of ``key``, or None when the backend has no URLs (local: stream instead)."""
    try:
        url = await run_in_threadpool(storage.signed_url, key, seconds)
    except (OSError, InvalidKey):
        return NOT_FOUND
    if url is None:
        return None
    return RedirectResponse(url, status_code=307, headers=REDIRECT_HEADERS)


class _FactsCache:
    """Owner, thumbnail key and expiry of recently served images.

    Safe to cache: an image's owner and key never change, expiry is checked on every request, and a deleted
    image's file is gone, which the request notices. It saves the database trip on a grid's worth of thumbnails.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._items: OrderedDict[uuid.UUID, tuple[uuid.UUID, str, datetime | None]] = OrderedDict()

    def get(self, image_id: uuid.UUID) -> tuple[uuid.UUID, str, datetime | None] | None:
        found = self._items.get(image_id)
        if found is not None:
            self._items.move_to_end(image_id)
        return found

    def put(self, image_id: uuid.UUID, facts: tuple[uuid.UUID, str, datetime | None]) -> None:
        self._items[image_id] = facts
        if len(self._items) > self._size:
            self._items.popitem(last=False)


_thumbnail_facts = _FactsCache()


async def _find(user: User, image_id: str) -> tuple | None:
    try:
        parsed = uuid.UUID(image_id)
    except ValueError:
        return None
    try:
        return await run_in_threadpool(transact, generations.image_for_user, user, parsed)
    except generations.GenerationNotFound:
        return None


def ranged(data: bytes, range_header: str | None, media_type: str, headers: dict[str, str], *,
           if_range: str | None = None) -> Response:
    """``data`` as a whole, or the single byte range a client asked for (resumable downloads, media players).

    RFC 9110 §14: a unit other than ``bytes`` is ignored (200). A ``bytes`` range set that is malformed (an end
    before its start included) or of which no range can be satisfied is refused with 416 and the size; numbers of
    any length are handled. Several valid ranges are answered whole (200), which every client must accept, rather
    than as a multipart body. Originals
    carry no validator, so an ``If-Range`` can never match and the whole file is sent (§13.1.5): a download resumed
    after the owner changed the parameters setting must not splice two different files.
    """
    headers = {**headers, "Accept-Ranges": "bytes"}
    whole = Response(data, media_type=media_type, headers=headers)
    unit, equals, range_set = (range_header or "").partition("=")
    if not equals or unit.strip().lower() != "bytes" or if_range is not None or not data:
        return whole  # no range, a unit we do not serve, an If-Range, or nothing to cut (ignoring is allowed)
    size = len(data)
    refused = Response(status_code=416, headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}",
                                                 "Cache-Control": headers.get("Cache-Control", "no-store")})
    specs = [spec.strip() for spec in range_set.split(",") if spec.strip()]  # lists may hold empty elements
    ranges: list[tuple[int, int]] = []
    for spec in specs:
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None:
            return refused  # one malformed range-spec makes the whole set invalid
        first, last, suffix = match.group("first", "last", "suffix")
        if suffix is not None:  # "bytes=-500": the last 500 bytes (all of them if there are fewer)
            if (length := _position(suffix)) > 0:
                ranges.append((max(0, size - length), size - 1))
            continue
        start, end = _position(first), _position(last) if last else size - 1
        if end < start:
            return refused
        if start < size:
            ranges.append((start, min(end, size - 1)))
    if not ranges:
        return refused
    if len(specs) > 1:
        return whole
    start, end = ranges[0]
    return Response(data[start:end + 1], status_code=206, media_type=media_type,
                    headers={**headers, "Content-Range": f"bytes {start}-{end}/{size}"})


def _position(digits: str) -> int:
    """A byte position; one past any size we serve stands in for numbers too long to convert (Python refuses
    int() of more than 4300 digits, and a number that long is beyond every file anyway)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _BEYOND


async def delete_images(storage: MediaStorage, user_id: uuid.UUID, image_ids: list[uuid.UUID]) -> int:
    """Delete the person's images: rows first (one transaction), then the files they pointed to."""
    keys = await run_in_threadpool(transact, gallery.delete_images, user_id, image_ids)
    await run_in_threadpool(lambda: [storage.delete(key) for key in keys])
    return len(keys) // 2

