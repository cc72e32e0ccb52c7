"""The media sweep and the write order it relies on: orphans go, named files stay, in-flight writes are safe,
missing files are marked, and nothing outside the media folder is ever touched."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlmodel import select

from rupali import clock, media, media_sweep
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Image, User
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import profile, uploads
from rupali.storage import JOURNAL, LocalStorage
from tests.utils.factories import make_user

LATER = timedelta(hours=1, minutes=1)  # past the sweep's grace period


def _png(colour: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def _image(user: User, storage: LocalStorage) -> Image:
    """A finished generation's image whose two files are stored, written in the product's order."""
    generation_id, image_id = uuid.uuid4(), uuid.uuid4()
    folder = f"{user.id.hex}/{generation_id.hex}"
    original, thumbnail = f"images/{folder}/{image_id.hex}.png", f"thumbnails/{folder}/{image_id.hex}.webp"
    with storage.intend([original, thumbnail]), session_scope() as session:
        storage.put(original, _png())
        storage.put(thumbnail, _png(), durable=False)
        session.add(Generation(id=generation_id, user_id=user.id, status=GenerationStatus.SUCCEEDED,
                               provider="offline", model="sketch-v1", prompt="a kept image", width=8, height=8,
                               steps=1, guidance=1.0, count=1, seed=1))
        session.flush()
        image = Image(id=image_id, user_id=user.id, generation_id=generation_id, position=0, seed=1, width=8,
                      height=8, format="PNG", bytes=1, original_key=original, thumbnail_key=thumbnail,
                      nsfw_score=0.0)
        session.add(image)
    return image


def _orphan(storage: LocalStorage, key: str) -> Path:
    """A file no row names, as a crash or a deleted row leaves it."""
    storage.put(key, b"orphan")
    return storage.path(key)


def _files(storage: LocalStorage) -> set[str]:
    """Every file under the media folder (links not followed), as keys."""
    found = set()
    for folder, _dirs, names in os.walk(storage.root):
        for name in names:
            found.add(str((Path(folder) / name).relative_to(storage.root)))
    return found


def _sweep(grace: timedelta = media_sweep.GRACE) -> media_sweep.SweepReport:
    with session_scope() as session:
        return media_sweep.sweep(session, _storage(), grace=grace)


# --- orphans, named files, the grace period ---------------------------------------------------------------------------

def test_files_no_row_names_go_and_named_files_stay():
    storage = _storage()
    user = make_user()
    image = _image(user, storage)
    with session_scope() as session:
        upload = uploads.store(session, storage, get_settings(), user, _png())
    with session_scope() as session:
        avatar = profile.set_avatar(session, storage, session.merge(user), _png()).avatar_key
    orphans = [f"images/{user.id.hex}/{uuid.uuid4().hex}/{uuid.uuid4().hex}.png",
               f"thumbnails/{user.id.hex}/{uuid.uuid4().hex}/{uuid.uuid4().hex}.webp",
               f"uploads/{user.id.hex}/{uuid.uuid4().hex}.png", f"avatars/{user.id.hex}/0123456789abcdef.webp",
               f"avatars/{uuid.uuid4().hex}/left-by-a-deleted-account.webp"]
    for key in orphans:
        _orphan(storage, key)
    with clock.travel(LATER):
        report = _sweep()
    assert (report.orphans, report.young, report.marked) == (len(orphans), 0, 0)
    assert _files(storage) == {image.original_key, image.thumbnail_key, upload.key, avatar}
    with clock.travel(LATER):
        assert _sweep().orphans == 0  # a second sweep finds nothing left to do


def test_the_daily_run_keeps_young_files_and_deletes_them_once_stale():
    storage = _storage()
    orphan = _orphan(storage, f"images/{uuid.uuid4().hex}/fresh.png")
    temporary = orphan.parent / ".tmp-other.png.abcd1234"
    temporary.write_bytes(b"half a file")
    report = _sweep()
    assert (report.orphans, report.temporaries, report.young) == (0, 0, 2)
    assert orphan.exists() and temporary.exists()
    with clock.travel(LATER):
        report = _sweep()
    assert (report.orphans, report.temporaries, report.young) == (1, 1, 0)
    assert _files(storage) == set()


# --- intents: live writes protected, abandoned ones resolved ------------------------------------------------------

def test_a_live_write_is_never_touched_even_without_a_grace_period():
    storage = _storage()
    key = f"uploads/{uuid.uuid4().hex}/in-flight.png"
    with storage.intend([key]) as intent:
        storage.put(key, _png())
        (storage.path(key).parent / ".tmp-in-flight.png.zzzz9999").write_bytes(b"being written")
        with clock.travel(timedelta(days=30)):
            report = _sweep(grace=timedelta(0))
        assert (report.orphans, report.temporaries, report.intents) == (0, 0, 0)
        assert storage.exists(key) and intent.path.exists()
    # Left without an exception the intent means "committed"; no row names the file, so the next sweep takes it.
    with clock.travel(LATER):
        assert _sweep().orphans == 1


def test_an_abandoned_write_is_undone_at_once_however_young():
    storage = _storage()
    keys = [f"images/{uuid.uuid4().hex}/a.png", f"thumbnails/{uuid.uuid4().hex}/a.webp"]
    intent = storage.intend(keys)
    storage.put(keys[0], _png())
    (storage.path(keys[1]).parent).mkdir(parents=True)
    (storage.path(keys[1]).parent / ".tmp-a.webp.q1w2e3r4").write_bytes(b"half a thumbnail")
    intent.release()  # what the kernel does to the lock of a killed process
    report = _sweep()
    assert (report.orphans, report.temporaries, report.intents, report.young) == (1, 1, 1, 0)
    assert _files(storage) == set()


def test_an_abandoned_intent_whose_rows_were_committed_keeps_its_files():
    storage = _storage()
    image = _image(make_user(), storage)
    stale = storage.intend([image.original_key, image.thumbnail_key])  # the crash came after the commit
    stale.release()
    report = _sweep(grace=timedelta(0))
    assert (report.orphans, report.intents) == (0, 1)
    assert _files(storage) == {image.original_key, image.thumbnail_key}


def test_an_intent_cut_short_while_being_recorded_is_removed():
    storage = _storage()
    (storage.root / JOURNAL).mkdir(parents=True)
    (storage.root / JOURNAL / ".tmp-k3j4h5g6").write_bytes(b"rupali-intent 1\nimages/x/")
    assert _sweep().intents == 1
    assert _files(storage) == set()


# --- rows whose files are gone ------------------------------------------------------------------------------------

def test_images_missing_files_are_marked_not_deleted_and_unmarked_when_the_files_return():
    storage = _storage()
    user = make_user()
    kept, damaged = _image(user, storage), _image(user, storage)
    thumbnail = storage.read(damaged.thumbnail_key)
    storage.delete(damaged.thumbnail_key)
    report = _sweep()
    assert (report.marked, report.restored) == (1, 0)
    with session_scope() as session:
        marks = {image.id: image.files_missing_at for image in session.exec(select(Image))}
    assert marks[kept.id] is None and marks[damaged.id] is not None  # the row is still there, and says so
    assert _sweep().marked == 0  # marked once, not again
    storage.put(damaged.thumbnail_key, thumbnail)  # restored from a backup
    assert _sweep().restored == 1
    with session_scope() as session:
        assert session.get(Image, damaged.id).files_missing_at is None


# --- the write order of uploads and pictures ----------------------------------------------------------------------

def test_an_upload_whose_transaction_fails_leaves_no_file():
    storage = _storage()
    user = make_user()
    with pytest.raises(RuntimeError), session_scope() as session:
        uploads.store(session, storage, get_settings(), user, _png())
        raise RuntimeError("the request failed after the upload was stored")
    assert _files(storage) == set()


def test_a_replaced_picture_is_deleted_only_after_the_commit():
    storage = _storage()
    user = make_user()
    with session_scope() as session:
        first = profile.set_avatar(session, storage, session.merge(user), _png()).avatar_key
    with pytest.raises(RuntimeError), session_scope() as session:
        profile.set_avatar(session, storage, session.get(User, user.id), _png((0, 0, 255)))
        raise RuntimeError("rolled back")
    assert _files(storage) == {first}  # the row still names the first picture, which is still there
    with pytest.raises(RuntimeError), session_scope() as session:
        profile.remove_avatar(session, storage, session.get(User, user.id))
        raise RuntimeError("rolled back")
    assert _files(storage) == {first}
    with session_scope() as session:
        second = profile.set_avatar(session, storage, session.get(User, user.id), _png((0, 0, 255))).avatar_key
    assert _files(storage) == {second}


async def test_a_job_that_fails_half_way_through_storing_leaves_no_file(monkeypatch):
    runtime = Runtime.build(get_settings())
    await runtime.start()
    try:
        real, calls = media.thumbnail, []

        def second_is_damaged(data: bytes) -> bytes:
            calls.append(data)
            if len(calls) == 2:
                raise OSError("truncated")
            return real(data)

        monkeypatch.setattr(media, "thumbnail", second_is_damaged)
        user = make_user()
        choice = await runtime.providers.find("offline:sketch-v1")
        form = generations.GenerationForm(prompt="two lighthouses", model="offline:sketch-v1", width=512,
                                          height=512, count=2)
        with session_scope() as session:
            generation = generations.submit(session, runtime.settings, user, choice, form, runtime.credits)
        runtime.queue.submit(generation.id, user.id)
        for _ in range(400):
            with session_scope() as session:
                done = session.get(Generation, generation.id)
            if done.finished:
                break
            await asyncio.sleep(0.05)
        assert done.status == GenerationStatus.FAILED and "damaged image" in done.error
        assert len(calls) == 2 and _files(runtime.storage) == set()  # the first image's files went too
    finally:
        await runtime.stop()


# --- hostility ----------------------------------------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_nothing_outside_the_media_folder_is_touched(tmp_path):
    storage = _storage()
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    for path in (outside / "secret.png", outside / "folder" / "secret.png", outside / ".tmp-secret.png.aaaa1111"):
        path.write_bytes(b"not yours")
    (storage.root / "images").mkdir(parents=True)
    (storage.root / "images" / "file-link.png").symlink_to(outside / "secret.png")
    (storage.root / "images" / "folder-link").symlink_to(outside / "folder", target_is_directory=True)
    (storage.root / "images" / ".tmp-link.png.bbbb2222").symlink_to(outside / ".tmp-secret.png.aaaa1111")
    (storage.root / "avatars").symlink_to(outside, target_is_directory=True)  # a whole area elsewhere
    (storage.root / "README.txt").write_text("the operator's own note, outside Rupali's folders")
    # Abandoned intents naming files behind the links, or outside altogether, as a hostile journal might.
    (storage.root / JOURNAL).mkdir()
    (storage.root / JOURNAL / "links.intent").write_text(
        "rupali-intent 1\nimages/folder-link/secret.png\navatars/secret.png\nimages/file-link.png\n")
    (storage.root / JOURNAL / "escape.intent").write_text("rupali-intent 1\n../outside/secret.png\n/etc/passwd\n")
    with clock.travel(timedelta(days=365)):
        report = _sweep(grace=timedelta(0))
    assert report.skipped == 4 and report.orphans == report.temporaries == 0 and report.intents == 2
    assert sorted(path.name for path in outside.rglob("*")) == [".tmp-secret.png.aaaa1111", "folder", "secret.png",
                                                                "secret.png"]
    assert all(path.read_bytes() == b"not yours" for path in outside.rglob("*") if path.is_file())
    assert (storage.root / "images" / "file-link.png").is_symlink()
    assert (storage.root / "images" / "folder-link").is_symlink() and (storage.root / "avatars").is_symlink()
    assert (storage.root / "README.txt").exists()


@pytest.mark.sqlite_only
def test_hostile_file_names_are_swept_without_trouble():
    storage = _storage()
    image = _image(make_user(), storage)
    folder = storage.path(image.original_key).parent
    names = ["with space.png", "new\nline.png", "-rf", "...", ".hidden", "ünïcødé.png", "x" * 255, ".tmp-",
             ".tmp-no-random-part", "%s%n.png", "$(touch pwned).png", "back\\slash.png",
             image.original_key.rsplit("/", 1)[1] + " ", image.original_key.rsplit("/", 1)[1].upper()]
    for name in names:
        (folder / name).write_bytes(b"x")
    with open(os.path.join(os.fsencode(folder), b"not-utf8-\xff\xfe.png"), "wb") as undecodable:
        undecodable.write(b"x")  # a name that is not UTF-8
    deep = folder.joinpath(*["d"] * 150)
    deep.mkdir(parents=True)
    (deep / "bottom.png").write_bytes(b"x")
    (storage.root / "uploads" / "a folder named like a file.png").mkdir(parents=True)
    with clock.travel(LATER):
        report = _sweep()
    assert report.orphans + report.temporaries == len(names) + 2
    assert _files(storage) == {image.original_key, image.thumbnail_key}
    assert not Path("pwned").exists()
