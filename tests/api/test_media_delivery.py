"""The authorized image routes on both media backends and in both delivery modes.

``stream``: the bytes come through Rupali (Range for originals, ETag and 304 for thumbnails) from the folder or the
bucket. ``redirect`` (S3 only): once the person is authorized, a 307 to a presigned URL of the right object, never
cached; following it (httpx, to the loopback S3 server) gives the same bytes. Anyone else's id is the same 404 as
ever, with no URL.
"""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from nicegui.testing import User
from PIL import Image as PILImage

from rupali import runtime
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import ApiKeyScope, Generation, GenerationStatus, Image
from rupali.models import User as Person
from rupali.services import api_keys, sessions
from rupali.storage import MediaStorage, from_settings
from rupali.storage_s3 import S3Storage
from tests.utils.factories import make_user

pytestmark = pytest.mark.sqlite_only  # about storage and HTTP, not the database


@pytest.fixture(params=["local-stream", "local-redirect", "s3-stream", "s3-redirect"])
def delivery(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Backend and delivery mode, configured before the app (the ``user`` fixture) is built."""
    backend, mode = request.param.split("-")
    if backend == "s3":
        request.getfixturevalue("s3_media")
    monkeypatch.setenv("RUPALI_MEDIA_DELIVERY", mode)
    from rupali.config import reset_settings

    reset_settings()
    return request.param


@pytest.fixture
def media(delivery: str, user: User) -> MediaStorage:
    """The running app's media backend: the one the settings configure."""
    storage = runtime.current().storage
    assert type(storage) is type(from_settings(get_settings()))
    assert isinstance(storage, S3Storage) is delivery.startswith("s3")
    return storage


def _png(colour: tuple[int, int, int], text: str = "") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return buffer.getvalue() + text.encode()  # bytes after IEND: different files, still served as stored


def _signed_image(person: Person, storage: MediaStorage) -> Image:
    """A signed PNG with its copy without parameters (``plain_key``), stored in the product's order."""
    generation_id, image_id = uuid.uuid4(), uuid.uuid4()
    folder = f"{person.id.hex}/{generation_id.hex}"
    keys = (f"images/{folder}/{image_id.hex}.png", f"images/{folder}/{image_id.hex}-plain.png",
            f"thumbnails/{folder}/{image_id.hex}.webp")
    with storage.intend(keys), session_scope() as session:
        storage.put(keys[0], _png((200, 0, 0), "with parameters"))
        storage.put(keys[1], _png((200, 0, 0), "plain"))
        storage.put(keys[2], b"RIFF-thumbnail-bytes", durable=False)
        session.add(Generation(id=generation_id, user_id=person.id, status=GenerationStatus.SUCCEEDED,
                               provider="offline", model="sketch-v1", prompt="delivered", width=16, height=16,
                               steps=1, guidance=1.0, count=1, seed=1))
        session.flush()
        image = Image(id=image_id, user_id=person.id, generation_id=generation_id, position=0, seed=1, width=16,
                      height=16, format="PNG", bytes=1, original_key=keys[0], plain_key=keys[1],
                      thumbnail_key=keys[2], nsfw_score=0.0, signed=True)
        session.add(image)
    return image


def _sign_in(user: User, person: Person) -> None:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), person, method="password", ip="", user_agent="",
                              visitor_id="m")
        user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "m"))


def _followed(response: httpx.Response) -> bytes:
    """The body, following a redirect to the bucket with a plain client (no cookie, no key)."""
    if response.status_code != 307:
        return response.content
    assert response.headers["cache-control"] == "private, no-store"
    location = response.headers["location"]
    assert "X-Amz-Signature=" in location and f"X-Amz-Expires={get_settings().media_redirect_seconds}" in location
    followed = httpx.get(location, timeout=10)
    assert followed.status_code == 200
    return followed.content


async def test_originals_and_thumbnails_reach_their_owner(delivery: str, user: User, media: MediaStorage):
    owner = make_user()
    image = _signed_image(owner, media)
    _sign_in(user, owner)
    redirects = delivery == "s3-redirect"

    with_parameters = await user.http_client.get(f"/media/images/{image.id}?parameters=1")
    assert (with_parameters.status_code == 307) is redirects
    assert _followed(with_parameters) == media.read(image.original_key)
    plain = await user.http_client.get(f"/media/images/{image.id}?parameters=0")
    assert _followed(plain) == media.read(image.plain_key)  # the right object for the owner's choice

    thumbnail = await user.http_client.get(f"/media/thumbnails/{image.id}")
    assert (thumbnail.status_code == 307) is redirects
    assert _followed(thumbnail) == b"RIFF-thumbnail-bytes"
    etag = f'"{image.id.hex}"'
    again = await user.http_client.get(f"/media/thumbnails/{image.id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag  # revalidated without the backend

    if not redirects:
        assert thumbnail.headers["etag"] == etag and thumbnail.headers["content-type"] == "image/webp"
        ranged = await user.http_client.get(f"/media/images/{image.id}?parameters=1", headers={"Range": "bytes=2-9"})
        assert ranged.status_code == 206 and ranged.content == media.read(image.original_key)[2:10]
        assert ranged.headers["content-range"] == f"bytes 2-9/{media.size(image.original_key)}"


async def test_the_api_delivers_the_same_way(delivery: str, user: User, media: MediaStorage):
    owner = make_user()
    image = _signed_image(owner, media)
    with session_scope() as session:
        _, secret = api_keys.create(session, owner, "read", scope=ApiKeyScope.READ)
    headers = {"Authorization": f"Bearer {secret}"}
    original = await user.http_client.get(f"/api/v1/images/{image.id}?parameters=true", headers=headers)
    assert (original.status_code == 307) is (delivery == "s3-redirect")
    assert _followed(original) == media.read(image.original_key)
    thumbnail = await user.http_client.get(f"/api/v1/images/{image.id}/thumbnail", headers=headers)
    assert _followed(thumbnail) == b"RIFF-thumbnail-bytes"


async def test_anyone_else_gets_the_same_404_and_no_url(delivery: str, user: User, media: MediaStorage):
    owner, stranger = make_user(), make_user()
    image = _signed_image(owner, media)
    _sign_in(user, stranger)
    for path in (f"/media/images/{image.id}", f"/media/images/{image.id}?parameters=0",
                 f"/media/thumbnails/{image.id}", f"/media/images/{uuid.uuid4()}", "/media/thumbnails/not-an-id"):
        response = await user.http_client.get(path)
        assert response.status_code == 404, path
        assert "location" not in response.headers and b"X-Amz" not in response.content


async def test_a_file_gone_from_the_backend_is_a_404(delivery: str, user: User, media: MediaStorage):
    owner = make_user()
    image = _signed_image(owner, media)
    _sign_in(user, owner)
    media.delete(image.thumbnail_key)
    media.delete(image.original_key)
    if not delivery.endswith("redirect") or not isinstance(media, S3Storage):
        assert (await user.http_client.get(f"/media/thumbnails/{image.id}")).status_code == 404
        assert (await user.http_client.get(f"/media/images/{image.id}?parameters=1")).status_code == 404
