"""Images stored before signing existed are signed by the ``sign_images`` job, crash-safely and once."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from PIL import Image as PILImage

from rupali import image_signing, jobs, media_sweep, xmp
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.image_files import prepared_original
from rupali.models import Image, Role, User
from rupali.provenance import ContentCredentials
from rupali.services import holds
from rupali.storage import LocalStorage
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user


def _row(image_id) -> Image:
    with session_scope() as session:
        return session.get(Image, image_id)


def test_the_job_signs_old_images_once_and_every_download_then_validates():
    settings = get_settings()
    storage = LocalStorage.from_settings(settings)
    credentials = ContentCredentials.from_settings(settings)
    person = make_user(email="old.images@example.com", full_name="Ola Oldfile")
    generation, images = add_generation(person, "an old lantern", images=2)
    before = {image.id: image.original_key for image in images}
    assert not any(_row(image.id).signed for image in images)

    summary = jobs.run("sign_images", settings=settings).detail
    assert summary.startswith("signed 2 stored images"), summary
    for image in images:
        row = _row(image.id)
        assert row.signed and row.plain_key and row.original_key != before[image.id]
        assert storage.exists(before[image.id])  # a ZIP or export reading it right now keeps it; no row names it
        assert row.bytes == len(storage.read(row.original_key))
        for strip in (False, True):
            data = prepared_original(storage, row, generation, strip)
            found = credentials.inspect(data, "PNG")
            assert found.intact and found.source_type == xmp.ALGORITHMIC, found.problems
            assert found.software_agent == "Rupali offline sketch generator / Sketch-V1"
            assert found.signed_at == row.created_at
            assert (b"an old lantern" in data) is not strip
            assert person.email.encode() not in data and person.id.hex.encode() not in data
            with PILImage.open(io.BytesIO(data)) as opened:
                assert ("parameters" in opened.info) is not strip

    assert jobs.run("sign_images", settings=settings).detail.startswith("signed 0 stored images")
    with session_scope() as session:  # the media sweep takes the unsigned files once they are past its grace
        media_sweep.sweep(session, storage, grace=timedelta(0))
    assert not any(storage.exists(key) for key in before.values())
    assert all(storage.exists(key) for image in images for key in _row(image.id).file_keys())


def test_two_runs_at_once_sign_each_image_once_and_lose_no_file():
    settings = get_settings()
    storage = LocalStorage.from_settings(settings)
    credentials = ContentCredentials.from_settings(settings)
    _, images = add_generation(make_user(), "raced", images=6)
    with ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(lambda _: image_signing.sign_stored(settings, storage, credentials), range(2)))
    counts = [int(summary.split()[1]) for summary in summaries]
    assert sum(counts) == 6, summaries
    with session_scope() as session:
        media_sweep.sweep(session, storage, grace=timedelta(0))  # what neither run's row names goes
    for image in images:
        row = _row(image.id)
        assert row.signed
        for key in row.file_keys():
            assert storage.exists(key), key
        assert credentials.inspect(storage.read(row.original_key), "PNG").intact


def test_a_damaged_old_file_is_left_as_it_is_and_reported():
    settings = get_settings()
    storage = LocalStorage.from_settings(settings)
    _, [damaged, fine] = add_generation(make_user(), "two old ones", images=2)
    storage.put(damaged.original_key, b"not a png at all")
    summary = jobs.run("sign_images", settings=settings).detail
    assert summary == "signed 1 stored images, 1 could not be signed", summary
    assert not _row(damaged.id).signed and storage.read(damaged.original_key) == b"not a png at all"
    assert _row(damaged.id).signing_failed_at is not None  # not tried again on every run
    assert _row(fine.id).signed
    assert jobs.run("sign_images", settings=settings).detail == "signed 0 stored images"


def test_images_under_an_evidence_hold_are_left_exactly_as_they_are():
    settings = get_settings()
    storage = LocalStorage.from_settings(settings)
    held, free = make_user(), make_user()
    _, [kept] = add_generation(held, "held")
    _, [signed] = add_generation(free, "free")
    original = storage.read(kept.original_key)
    admin = make_user(role=Role.ADMIN)
    with session_scope() as session:
        holds.place_hold(session, session.get(User, admin.id), held.id, "litigation")
    assert jobs.run("sign_images", settings=settings).detail == "signed 1 stored images"
    assert not _row(kept.id).signed and storage.read(kept.original_key) == original
    assert _row(signed.id).signed
