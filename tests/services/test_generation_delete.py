"""Deleting a generation: prompt, parameters, images, thumbnails and its upload with the last generation using it."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image as PILImage
from sqlmodel import select

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Image, Upload, User
from rupali.services import gallery, uploads
from rupali.services import generation as generations
from rupali.storage import LocalStorage
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user


def storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def delete(user: User, generation_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return generations.delete_generation(session, storage(), user, generation_id)


def upload_for(user: User) -> Upload:
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), (1, 2, 3)).save(buffer, "PNG")
    with session_scope() as session:
        return uploads.store(session, storage(), get_settings(), user, buffer.getvalue())


def using(generation: Generation, upload: Upload) -> None:
    with session_scope() as session:
        session.get(Generation, generation.id).upload_id = upload.id


def files_of(images: list[Image]) -> list[str]:
    return [key for image in images for key in (image.original_key, image.thumbnail_key)]


def test_deleting_a_generation_removes_its_prompt_images_and_files():
    owner = make_user()
    generation, images = add_generation(owner, "a unique quokka portrait", images=3)
    _, others = add_generation(owner, "another quokka", images=1)
    assert all(storage().exists(key) for key in files_of(images))
    assert delete(owner, generation.id) is True
    with session_scope() as session:
        assert session.get(Generation, generation.id) is None
        assert session.exec(select(Image).where(Image.generation_id == generation.id)).all() == []
        # Prompt search no longer finds it (the search index of either database forgets it with the row).
        found = gallery.page(session, owner.id, gallery.GalleryQuery(search="unique"))
        assert found.items == []
        assert [item.image.id for item in gallery.page(session, owner.id, gallery.GalleryQuery()).items] == [
            others[0].id]
    assert not any(storage().exists(key) for key in files_of(images))
    assert all(storage().exists(key) for key in files_of(others))
    assert delete(owner, generation.id) is False  # already gone


def test_another_persons_or_an_unknown_id_is_refused_and_nothing_is_touched():
    owner, stranger = make_user(), make_user()
    generation, images = add_generation(owner, "mine alone", images=2)
    assert delete(stranger, generation.id) is False
    assert delete(owner, uuid.uuid4()) is False
    with session_scope() as session:
        assert session.get(Generation, generation.id) is not None
        assert len(session.exec(select(Image).where(Image.generation_id == generation.id)).all()) == 2
    assert all(storage().exists(key) for key in files_of(images))


def test_the_source_upload_goes_with_the_last_generation_that_uses_it():
    owner = make_user()
    upload = upload_for(owner)
    first, _ = add_generation(owner, "first variation")
    second, _ = add_generation(owner, "second variation")
    using(first, upload)
    using(second, upload)
    assert delete(owner, first.id)
    with session_scope() as session:
        assert session.get(Upload, upload.id) is not None
    assert storage().exists(upload.key)
    assert delete(owner, second.id)
    with session_scope() as session:
        assert session.get(Upload, upload.id) is None
    assert not storage().exists(upload.key)


@pytest.mark.parametrize("status", [GenerationStatus.QUEUED, GenerationStatus.RUNNING])
def test_an_unfinished_generation_is_refused_with_a_clear_message(status):
    owner = make_user()
    with session_scope() as session:
        generation = Generation(user_id=owner.id, status=status, provider="offline", model="sketch-v1",
                                prompt="still drawing", width=8, height=8, steps=1, guidance=1, count=1, seed=1)
        session.add(generation)
    with pytest.raises(generations.GenerationBusy, match="Cancel the generation first"):
        delete(owner, generation.id)
    with session_scope() as session:
        assert session.get(Generation, generation.id) is not None


def test_nothing_is_deleted_when_the_transaction_rolls_back():
    owner = make_user()
    generation, images = add_generation(owner, "kept after all", images=2)
    with pytest.raises(RuntimeError), session_scope() as session:
        assert generations.delete_generation(session, storage(), owner, generation.id)
        raise RuntimeError("something later in the same transaction failed")
    with session_scope() as session:
        assert session.get(Generation, generation.id) is not None
    assert all(storage().exists(key) for key in files_of(images))  # rows first, commit, then files


def test_emptied_generations_are_those_left_without_images():
    owner, stranger = make_user(), make_user()
    emptied, emptied_images = add_generation(owner, "all gone", images=2)
    partly, partly_images = add_generation(owner, "one left", images=2)
    theirs, theirs_images = add_generation(stranger, "not yours", images=1)
    with session_scope() as session:
        gallery.delete_images(session, owner.id, [image.id for image in emptied_images] + [partly_images[0].id])
        gallery.delete_images(session, stranger.id, [theirs_images[0].id])
    with session_scope() as session:
        assert gallery.emptied_generations(session, owner.id, [emptied.id, partly.id, theirs.id]) == [emptied.id]
        assert gallery.emptied_generations(session, owner.id, []) == []
