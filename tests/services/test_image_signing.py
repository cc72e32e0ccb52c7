"""Images stored before signing existed are signed by the ``sign_images`` job, crash-safely and once."""

from __future__ import annotations

import io

from PIL import Image as PILImage

from rupali import jobs, xmp
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.image_files import prepared_original
from rupali.models import Image
from rupali.provenance import ContentCredentials
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
        assert not storage.exists(before[image.id])  # the unsigned file is gone
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


def test_a_damaged_old_file_is_left_as_it_is_and_reported():
    settings = get_settings()
    storage = LocalStorage.from_settings(settings)
    _, [damaged, fine] = add_generation(make_user(), "two old ones", images=2)
    storage.put(damaged.original_key, b"not a png at all")
    summary = jobs.run("sign_images", settings=settings).detail
    assert summary == "signed 1 stored images, 1 could not be signed", summary
    assert not _row(damaged.id).signed and storage.read(damaged.original_key) == b"not a png at all"
    assert _row(fine.id).signed
