"""Serving a person's image files: the original (with or without its parameters text) and the thumbnail.

Shared by the browser routes and the REST API so both answer the same way: unknown ids, other people's ids and
expired images are all plain 404s, with no hint which it was.
"""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from rupali import media
from rupali.db import transact
from rupali.models import User
from rupali.services import generation as generations
from rupali.services import users
from rupali.storage import InvalidKey, LocalStorage

NOT_FOUND = Response("Not Found", status_code=404, media_type="text/plain")
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


async def original(storage: LocalStorage, user: User, image_id: str) -> Response:
    """The original file as a download; PNGs carry the A1111 ``parameters`` text unless the owner opted out."""
    found = await _find(user, image_id)
    if found is None:
        return NOT_FOUND
    image, generation = found
    try:
        data = await run_in_threadpool(storage.read, image.original_key)
    except (OSError, InvalidKey):
        return NOT_FOUND
    if image.format == "PNG":
        owner_strips = await run_in_threadpool(transact, users.strips_metadata, image.user_id)
        data = media.png_with_parameters(data, None if owner_strips else media.infotext(generation, image))
    extension = {"JPEG": "jpg"}.get(image.format, image.format.lower())
    return Response(data, media_type=MEDIA_TYPES.get(image.format, "application/octet-stream"), headers={
        "Content-Disposition": f'attachment; filename="rupali-{image.seed}-{image.id.hex[:8]}.{extension}"',
        "Cache-Control": "private, no-store",
    })


async def thumbnail(storage: LocalStorage, user: User, image_id: str) -> Response:
    """The WebP thumbnail; its URL never changes content, so browsers may keep it."""
    found = await _find(user, image_id)
    if found is None:
        return NOT_FOUND
    try:
        path = storage.path(found[0].thumbnail_key)
    except InvalidKey:
        return NOT_FOUND
    if not path.is_file():
        return NOT_FOUND
    return FileResponse(path, media_type="image/webp",
                        headers={"Cache-Control": "private, max-age=31536000, immutable"})


async def _find(user: User, image_id: str) -> tuple | None:
    try:
        parsed = uuid.UUID(image_id)
    except ValueError:
        return None
    try:
        return await run_in_threadpool(transact, generations.image_for_user, user, parsed)
    except generations.GenerationNotFound:
        return None
