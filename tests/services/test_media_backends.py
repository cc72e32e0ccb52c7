"""Both media backends behave alike: the local folder and an S3 bucket (moto's real S3 server on loopback).

Objects, keys, the intent journal and the media sweep after a crash, and the services that store files (uploads,
avatars, images, exports with their receipts) all go through :class:`rupali.storage.MediaStorage`.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image as PILImage
from pydantic import ValidationError
from sqlmodel import select

from rupali import clock, image_files, media_sweep, processes
from rupali.config import Settings, get_settings
from rupali.db import session_scope
from rupali.models import DataExport, Generation, GenerationStatus, Image, Upload, User
from rupali.services import exports, profile, uploads
from rupali.storage import InvalidKey, LocalStorage, MediaStorage, from_settings
from rupali.storage_s3 import INTENT_GRACE, SPOOL_PREFIX, S3Storage
from tests.utils.factories import make_user

BACKENDS = ["local", "s3"]
BAD_KEYS = ["", "/etc/passwd", "../outside.png", "images/../../x", ".journal/a.intent", ".tmp-x.png.1234",
            "images//x.png", "images/ x.png", "images/x.png/", "a" * 301, "images/\u00e9.png", "images\\x.png"]


@pytest.fixture(params=BACKENDS)
def media(request: pytest.FixtureRequest) -> MediaStorage:
    """The configured media backend: the local folder, or a fresh bucket on the loopback S3 server."""
    if request.param == "s3":
        request.getfixturevalue("s3_media")
    storage = from_settings(get_settings())
    assert isinstance(storage, S3Storage if request.param == "s3" else LocalStorage)
    return storage


def _png(colour: tuple[int, int, int] = (200, 10, 10), size: int = 8) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _image(user: User, storage: MediaStorage) -> Image:
    """A finished generation's image whose two files are stored, written in the product's order (intent, files,
    rows, commit)."""
    generation_id, image_id = uuid.uuid4(), uuid.uuid4()
    folder = f"{user.id.hex}/{generation_id.hex}"
    original, thumbnail = f"images/{folder}/{image_id.hex}.png", f"thumbnails/{folder}/{image_id.hex}.webp"
    with storage.intend([original, thumbnail]), session_scope() as session:
        storage.put(original, _png())
        storage.put(thumbnail, _png((0, 0, 200)), durable=False)
        session.add(Generation(id=generation_id, user_id=user.id, status=GenerationStatus.SUCCEEDED,
                               provider="offline", model="sketch-v1", prompt="a kept image", width=8, height=8,
                               steps=1, guidance=1.0, count=1, seed=1))
        session.flush()
        image = Image(id=image_id, user_id=user.id, generation_id=generation_id, position=0, seed=1, width=8,
                      height=8, format="PNG", bytes=1, original_key=original, thumbnail_key=thumbnail,
                      nsfw_score=0.0)
        session.add(image)
    return image


def _keys(storage: MediaStorage) -> set[str]:
    return {stored.key for stored in storage.list()}


# --- objects -------------------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_put_read_stream_size_exists_list_delete(media: MediaStorage, tmp_path: Path):
    media.put("images/a/one.png", b"first")
    media.put("images/a/one.png", b"replaced whole")  # a key never holds a mix of two writes
    media.put("thumbnails/a/one.webp", b"thumb", durable=False)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: more than one part of a multipart upload
    media.put_file("exports/u/e.zip", big)
    assert media.put_stream("exports/u/streamed.zip", iter([b"abc", b"", b"def"])) == 6

    assert media.read("images/a/one.png") == b"replaced whole"
    assert b"".join(media.stream("exports/u/e.zip", chunk_size=65536)) == big.read_bytes()
    assert media.size("exports/u/e.zip") == big.stat().st_size and media.read("exports/u/streamed.zip") == b"abcdef"
    assert media.exists("images/a/one.png") and not media.exists("images/a/two.png")
    assert _keys(media) == {"images/a/one.png", "thumbnails/a/one.webp", "exports/u/e.zip", "exports/u/streamed.zip"}
    assert {stored.key for stored in media.list("images/")} == {"images/a/one.png"}
    assert [stored.size for stored in media.list("thumbnails/")] == [5]

    media.delete("images/a/one.png")
    media.delete("images/a/one.png")  # deleting what is gone is fine
    assert not media.exists("images/a/one.png")
    for missing in (lambda: media.read("images/a/one.png"), lambda: media.stream("images/a/one.png"),
                    lambda: media.size("images/a/one.png")):
        with pytest.raises(FileNotFoundError):
            missing()


@pytest.mark.sqlite_only
def test_invalid_keys_are_refused_everywhere(media: MediaStorage, tmp_path: Path):
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for key in BAD_KEYS:
        for call in (lambda: media.put(key, b"x"), lambda: media.read(key), lambda: media.exists(key),  # noqa: B023
                     lambda: media.delete(key), lambda: media.size(key), lambda: media.stream(key),  # noqa: B023
                     lambda: media.put_file(key, source), lambda: media.intend(["images/ok.png", key]),  # noqa: B023
                     lambda: media.signed_url(key, 60)):  # noqa: B023
            with pytest.raises(InvalidKey):
                call()
    assert _keys(media) == set()


@pytest.mark.sqlite_only
def test_only_the_bucket_signs_urls(media: MediaStorage):
    import httpx

    media.put("images/a/signed.png", b"signed bytes")
    url = media.signed_url("images/a/signed.png", 60)
    if isinstance(media, LocalStorage):
        assert url is None
        return
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert httpx.get(url).content == b"signed bytes"


@pytest.mark.sqlite_only
def test_prefix_keeps_installations_apart(s3_endpoint, monkeypatch):
    bucket = s3_endpoint.create_bucket()
    one = S3Storage(bucket, access_key_id="k", secret_access_key="s", endpoint_url=s3_endpoint.endpoint_url,
                    prefix="one")
    two = S3Storage(bucket, access_key_id="k", secret_access_key="s", endpoint_url=s3_endpoint.endpoint_url,
                    prefix="two")
    one.put("images/x.png", b"one's")
    assert not two.exists("images/x.png") and _keys(two) == set() and _keys(one) == {"images/x.png"}


# --- intents and the sweep ------------------------------------------------------------------------------------------

def test_a_crash_before_the_commit_is_swept(media: MediaStorage):
    """The writer dies after its files, before its rows: the sweep deletes them (on S3 once the intent is old)."""
    user = make_user()
    kept = _image(user, media)
    keys = [f"images/{user.id.hex}/dead/1.png", f"thumbnails/{user.id.hex}/dead/1.webp"]
    intent = media.intend(keys)
    for key in keys:
        media.put(key, b"written by a writer that then died")
    intent.release()  # the process is gone: the kernel drops its lock (on S3 there is none)
    with session_scope() as session:
        report = media_sweep.sweep(session, media)
    if isinstance(media, S3Storage):
        # Nothing tells a dead writer from a slow one but time: the young intent protects its keys.
        assert report.intents == 0 and all(media.exists(key) for key in keys)
        with clock.travel(INTENT_GRACE + timedelta(seconds=1)), session_scope() as session:
            report = media_sweep.sweep(session, media)
    assert report.intents == 1 and report.orphans == 2
    assert not any(media.exists(key) for key in keys)
    assert media.exists(kept.original_key) and media.exists(kept.thumbnail_key)
    assert media.abandoned_intents() == ([], frozenset())


def test_a_crash_after_the_commit_keeps_the_files(media: MediaStorage):
    """Rows committed, intent not cleared: the files stay, the intent goes."""
    user = make_user()
    intent = media.intend([f"uploads/{user.id.hex}/x.png"])
    with session_scope() as session:
        media.put(f"uploads/{user.id.hex}/x.png", _png())
        session.add(Upload(user_id=user.id, key=f"uploads/{user.id.hex}/x.png", width=8, height=8, bytes=10))
    intent.release()
    with clock.travel(INTENT_GRACE + timedelta(seconds=1)), session_scope() as session:
        report = media_sweep.sweep(session, media)
    assert report.intents == 1 and report.orphans == 0 and media.exists(f"uploads/{user.id.hex}/x.png")


def test_sweep_deletes_old_orphans_marks_missing_files_and_leaves_live_writes(media: MediaStorage):
    user = make_user()
    image = _image(user, media)
    media.put("avatars/nobody/old.webp", b"no row names this")
    live = media.intend(["images/live/1.png"])
    media.put("images/live/1.png", b"a writer still at work")
    media.delete(image.thumbnail_key)
    with clock.travel(timedelta(hours=1, minutes=1)), session_scope() as session:
        if isinstance(media, S3Storage):
            live.commit()  # an S3 intent this old would be abandoned: keep this one young instead
            live = media.intend(["images/live/1.png"])
        report = media_sweep.sweep(session, media)
    assert report.orphans == 1 and not media.exists("avatars/nobody/old.webp")
    assert media.exists("images/live/1.png") and report.marked == 1
    with session_scope() as session:
        assert session.get(Image, image.id).files_missing_at is not None
    live.rollback()
    assert not media.exists("images/live/1.png")


async def test_a_spool_file_a_crash_left_behind_is_swept(s3_media: str):
    """A process killed while assembling a big upload leaves its local spool file. The sweep deletes it at once when
    that process (on this host) is gone, else after the grace period; never a live process's spool, nor anything
    else in the folder."""
    storage = from_settings(get_settings())
    assert isinstance(storage, S3Storage) and storage.spool_dir is not None
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        for chunk in (b"a", b"b"):
            seen.extend(path.name for path in storage.spool_dir.glob(f"{SPOOL_PREFIX}*"))
            yield chunk

    storage.put_stream("exports/whole.zip", chunks())
    assert len(set(seen)) == 1 and seen[0].startswith(f"{SPOOL_PREFIX}{os.getpid()}-{processes.host_name()}-")
    assert not list(storage.spool_dir.glob(f"{SPOOL_PREFIX}*"))  # a finished upload leaves none
    killed = await asyncio.create_subprocess_exec("true")
    await killed.wait()  # a process id that no longer exists
    dead = storage.spool_dir / f"{SPOOL_PREFIX}{killed.pid}-{processes.host_name()}-x1"
    live = storage.spool_dir / f"{SPOOL_PREFIX}{os.getpid()}-{processes.host_name()}-x2"
    elsewhere = storage.spool_dir / f"{SPOOL_PREFIX}{killed.pid}-another-host-x3"  # its process cannot be checked
    cousin = storage.spool_dir / f"{SPOOL_PREFIX}{killed.pid}-{processes.host_name()}-2-x4"  # host "<this one>-2"
    unrelated = storage.spool_dir / "rupali.db-journal-like"
    for path in (dead, live, elsewhere, cousin, unrelated):
        path.write_bytes(b"half an export")
    with session_scope() as session:
        assert media_sweep.sweep(session, storage).temporaries == 1
    assert not dead.exists() and live.exists() and elsewhere.exists() and cousin.exists()
    with clock.travel(media_sweep.GRACE + timedelta(seconds=1)), session_scope() as session:
        assert media_sweep.sweep(session, storage).temporaries == 3  # stale: an upload this slow is no upload
    assert not live.exists() and not elsewhere.exists() and not cousin.exists() and unrelated.exists()


# --- the services storing files -------------------------------------------------------------------------------------

def test_uploads_and_avatars_go_to_the_backend(media: MediaStorage):
    user = make_user()
    with session_scope() as session:
        upload = uploads.store(session, media, get_settings(), session.get(User, user.id), _png(size=64))
        upload_id, upload_key = upload.id, upload.key
    assert upload_key in _keys(media)
    with session_scope() as session:
        assert uploads.source_bytes(session, media, upload_id) == media.read(upload_key)
        person = profile.set_avatar(session, media, session.get(User, user.id), _png(size=64))
        avatar_key = person.avatar_key
    assert avatar_key and media.exists(avatar_key)
    with session_scope() as session:
        profile.remove_avatar(session, media, session.get(User, user.id))
    assert not media.exists(avatar_key)
    with session_scope() as session:
        assert session.exec(select(User.avatar_key).where(User.id == user.id)).one() is None


def test_an_export_with_its_images_and_receipts_is_built_in_and_served_from_the_backend(media: MediaStorage):
    from tests.api.test_receipt_route import _order  # a real paid order, so the export carries a receipt

    user = make_user()
    image = _image(user, media)
    _order(user)
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), session.get(User, user.id))
        export_id = export.id
    assert exports.build(get_settings(), export_id)
    with session_scope() as session:
        row = session.get(DataExport, export_id)
        assert row.status == "ready", row.error
        key = row.storage_key
        found = exports.download(session, session.get(User, user.id), export_id, media)
    assert key in _keys(media) and isinstance(found, exports.Download)
    data = b"".join(found.chunks)
    assert len(data) == found.size == media.size(key)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert any(name.endswith(f"{image.id}.png") or image.id.hex in name for name in names), names
    assert any(name.endswith(".pdf") for name in names), names  # receipts are made from the order, not stored
    with session_scope() as session:
        other = make_user()
        assert exports.download(session, session.get(User, other.id), export_id, media) is \
            exports.Unavailable.NOT_FOUND


# --- settings and the doctor ------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_only_a_bucket_is_asked_for_redirects():
    bucket = {"media_backend": "s3", "s3_bucket": "media", "s3_access_key_id": "id",
              "s3_secret_access_key": "v3ry-s3cr3t"}
    assert image_files.redirect_seconds(Settings(**bucket, media_delivery="redirect", media_redirect_seconds=90)) == 90
    assert image_files.redirect_seconds(Settings(**bucket, media_delivery="stream")) is None
    assert image_files.redirect_seconds(Settings(media_delivery="redirect")) is None  # local media are streamed


@pytest.mark.sqlite_only
def test_s3_settings_are_checked():
    base = {"media_backend": "s3", "s3_bucket": "media", "s3_access_key_id": "id",
            "s3_secret_access_key": "v3ry-s3cr3t"}
    for missing in ("s3_bucket", "s3_access_key_id", "s3_secret_access_key"):
        with pytest.raises(ValidationError, match=f"RUPALI_{missing.upper()}"):
            Settings(**{name: value for name, value in base.items() if name != missing})
    with pytest.raises(ValidationError):
        Settings(**base, media_redirect_seconds=100_000)
    with pytest.raises(ValidationError):
        Settings(**base, s3_endpoint_url="ftp://example.com")
    with pytest.raises(ValidationError):
        Settings(**base, s3_prefix="../escape")
    settings = Settings(**base, s3_endpoint_url="http://files.example.com")
    assert any("RUPALI_S3_ENDPOINT_URL" in problem for problem in settings.production_problems())
    for fine in ("http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000", "https://r2.example.com"):
        assert not any("S3" in problem for problem in Settings(**base, s3_endpoint_url=fine).production_problems())
    assert "v3ry-s3cr3t" not in repr(Settings(**base)) and Settings().media_backend == "local"


async def test_generated_images_are_stored_in_the_bucket(s3_media: str):
    """The generation queue writes originals and thumbnails through the backend it is given (intent first)."""
    from rupali.generation_queue import GenerationQueue
    from rupali.runtime import Runtime
    from rupali.services import generation as generations

    settings = get_settings()
    storage = from_settings(settings)
    parts = Runtime.build(settings)  # providers, scorer, credits and credentials as a server builds them
    queue = GenerationQueue(settings, parts.providers, storage, parts.scorer, parts.credits, parts.credentials)
    await queue.start()
    try:
        user = make_user()
        choice = await parts.providers.find("offline:sketch-v1")
        form = generations.GenerationForm(prompt="a lighthouse in a bucket", model="offline:sketch-v1", width=512,
                                          height=512, count=2)
        with session_scope() as session:
            generation = generations.submit(session, settings, session.get(User, user.id), choice, form,
                                            parts.credits)
        queue.submit(generation.id, user.id)
        for _ in range(400):
            with session_scope() as session:
                done = session.get(Generation, generation.id)
                if done.finished:
                    break
            await asyncio.sleep(0.05)
        assert done.status == GenerationStatus.SUCCEEDED, done.error
        with session_scope() as session:
            images = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
        assert len(images) == 2
        stored = _keys(storage)
        for image in images:
            assert set(image.file_keys()) <= stored
            assert PILImage.open(io.BytesIO(storage.read(image.original_key))).size == (512, 512)
        assert storage.abandoned_intents() == ([], frozenset())  # every intent was cleared after the commit
    finally:
        await queue.stop()
        await parts.providers.aclose()
