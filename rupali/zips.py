"""ZIP downloads of many images, streamed: never assembled in memory or on disk.

zipstream-ng writes each entry as its bytes are produced, and every file is read only when its turn comes, so
a 500-image archive holds one image in memory at a time. A browser download cannot carry a list of ids in a
POST, so the page first registers the selection under a short-lived ticket and then opens ``/media/zip/<ticket>``.
"""

from __future__ import annotations

import secrets
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from zipstream import ZipStream

from rupali.db import transact
from rupali.image_files import NOT_FOUND, download_name, prepared_original
from rupali.models import Generation, Image, User
from rupali.services import gallery, users
from rupali.storage import MediaStorage

TICKET_SECONDS = 300
MAX_IMAGES = 5000


def archive(storage: MediaStorage, items: list[tuple[Image, Generation]], *, strip: bool) -> Iterator[bytes]:
    """The ZIP of these images as a stream of chunks (stored, not deflated: images are compressed already)."""
    stream = ZipStream(compress_type=zipfile.ZIP_STORED)
    for image, generation in items:
        stream.add(_lazy(storage, image, generation, strip), arcname=download_name(image))
    return iter(stream)


def _lazy(storage: MediaStorage, image: Image, generation: Generation, strip: bool) -> Iterator[bytes]:
    yield prepared_original(storage, image, generation, strip)


@dataclass(frozen=True)
class _Ticket:
    user_id: uuid.UUID
    image_ids: tuple[uuid.UUID, ...]
    expires: float


class DownloadTickets:
    """Selections waiting to be downloaded, each under an unguessable ticket valid for five minutes."""

    def __init__(self) -> None:
        self._tickets: dict[str, _Ticket] = {}

    def issue(self, user_id: uuid.UUID, image_ids: list[uuid.UUID]) -> str:
        self._forget_expired()
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = _Ticket(user_id, tuple(image_ids[:MAX_IMAGES]), time.monotonic() + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str, user_id: uuid.UUID) -> list[uuid.UUID] | None:
        """The selection, for its owner only (a ticket works once)."""
        found = self._tickets.get(ticket)
        if found is None or found.user_id != user_id or found.expires < time.monotonic():
            return None
        del self._tickets[ticket]
        return list(found.image_ids)

    def _forget_expired(self) -> None:
        moment = time.monotonic()
        for ticket in [key for key, value in self._tickets.items() if value.expires < moment]:
            del self._tickets[ticket]


async def download(storage: MediaStorage, user: User, image_ids: list[uuid.UUID]) -> Response:
    """A streamed ZIP of the person's own images among ``image_ids`` (others' ids are silently left out)."""
    items = await run_in_threadpool(transact, gallery.owned_images, user.id, image_ids)
    if not items:
        return NOT_FOUND
    strip = await run_in_threadpool(transact, users.strips_metadata, user.id)
    return StreamingResponse(archive(storage, items, strip=strip), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="rupali-images.zip"',
                                      "Cache-Control": "private, no-store"})
