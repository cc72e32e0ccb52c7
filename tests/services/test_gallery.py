"""The gallery service: keyset pages, filters, prompt search on both databases, expiry, deletion."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from PIL import Image as PILImage
from sqlmodel import select

from rupali import clock
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Image, User
from rupali.services import gallery
from rupali.storage import LocalStorage
from tests.utils.factories import make_user


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def add_generation(user: User, prompt: str, *, images: int = 1, model: str = "sketch-v1", favourite: bool = False,
                   nsfw: bool = False, expires_in: timedelta | None = None, negative: str = "",
                   at: timedelta = timedelta(0)) -> tuple[Generation, list[Image]]:
    """A finished generation with real (tiny) files, created ``at`` from now."""
    storage = LocalStorage.from_settings(get_settings())
    with clock.travel(at), session_scope() as session:
        generation = Generation(user_id=user.id, status=GenerationStatus.SUCCEEDED, provider="offline", model=model,
                                model_label=model.title(), prompt=prompt, negative_prompt=negative, width=8,
                                height=8, steps=20, guidance=7.0, count=images, seed=1, created_at=clock.now())
        session.add(generation)
        session.flush()
        rows = []
        for position in range(images):
            image_id = uuid.uuid4()
            original, thumb = f"images/{image_id.hex}.png", f"thumbnails/{image_id.hex}.webp"
            storage.put(original, _png())
            storage.put(thumb, _png())
            rows.append(Image(id=image_id, user_id=user.id, generation_id=generation.id, position=position,
                              seed=1 + position, width=8, height=8, format="PNG", bytes=1, original_key=original,
                              thumbnail_key=thumb, nsfw_score=0.9 if nsfw else 0.01, nsfw=nsfw, favourite=favourite,
                              created_at=clock.now(),
                              expires_at=clock.now() + expires_in if expires_in is not None else None))
        session.add_all(rows)
        return generation, rows


def _page(user: User, query: gallery.GalleryQuery | None = None, cursor: str | None = None,
          limit: int = 60) -> gallery.GalleryPage:
    with session_scope() as session:
        return gallery.page(session, user.id, query or gallery.GalleryQuery(), cursor, limit)


def _prompts(page: gallery.GalleryPage) -> list[str]:
    return [item.prompt for item in page.items]


def test_keyset_pages_cover_everything_once_in_order():
    user = make_user()
    for n in range(25):
        add_generation(user, f"image number {n}", at=timedelta(minutes=n))
    seen, cursor = [], None
    while True:
        page = _page(user, cursor=cursor, limit=7)
        seen += _prompts(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"image number {n}" for n in reversed(range(25))]
    oldest = _page(user, gallery.GalleryQuery(oldest_first=True), limit=3)
    assert _prompts(oldest) == ["image number 0", "image number 1", "image number 2"]


def test_images_created_in_the_same_instant_are_neither_lost_nor_repeated():
    user = make_user()
    add_generation(user, "batch", images=9)
    first = _page(user, limit=4)
    second = _page(user, cursor=first.next_cursor, limit=4)
    third = _page(user, cursor=second.next_cursor, limit=4)
    ids = [item.image.id for page in (first, second, third) for item in page.items]
    assert len(ids) == len(set(ids)) == 9 and third.next_cursor is None


def test_filters_favourites_model_sensitive_dates_and_expiry():
    user = make_user()
    add_generation(user, "plain")
    add_generation(user, "loved", favourite=True)
    add_generation(user, "flagged", nsfw=True)
    add_generation(user, "other model", model="sketch-v2")
    add_generation(user, "leaving soon", expires_in=timedelta(days=3))
    add_generation(user, "leaving later", expires_in=timedelta(days=30))
    add_generation(user, "already gone", expires_in=timedelta(days=-1))
    add_generation(user, "last month", at=timedelta(days=-40))
    assert "already gone" not in _prompts(_page(user))  # expired images are never shown
    assert _prompts(_page(user, gallery.GalleryQuery(favourites=True))) == ["loved"]
    assert _prompts(_page(user, gallery.GalleryQuery(model="offline:sketch-v2"))) == ["other model"]
    assert "flagged" not in _prompts(_page(user, gallery.GalleryQuery(show_nsfw=False)))
    assert _prompts(_page(user, gallery.GalleryQuery(expiring_soon=True))) == ["leaving soon"]
    today = clock.now().date()
    recent = _prompts(_page(user, gallery.GalleryQuery(since=today - timedelta(days=7))))
    assert "last month" not in recent and "plain" in recent
    assert _prompts(_page(user, gallery.GalleryQuery(until=today - timedelta(days=30)))) == ["last month"]


@pytest.mark.parametrize(("search", "expected"), [
    ("lighthouse", ["a lighthouse on a cliff", "old LIGHTHOUSE keeper"]),
    ("light", ["a lighthouse on a cliff", "old LIGHTHOUSE keeper"]),  # prefix match
    ("lighthouse cliff", ["a lighthouse on a cliff"]),  # every word must match
    ("blurry", ["a fox in the snow"]),  # the negative prompt is searched too
    ("zebra", []),
    ('" OR 1=1 --', []),  # FTS and SQL syntax in the box is just text
    ("NEAR(a b) AND *", []),
    ("Kierkegaard søren", ["søren kierkegaard's café"]),
])
def test_prompt_search_works_on_this_database(search, expected):
    user = make_user()
    add_generation(user, "a lighthouse on a cliff", at=timedelta(minutes=3))
    add_generation(user, "old LIGHTHOUSE keeper", at=timedelta(minutes=2))
    add_generation(user, "a fox in the snow", negative="blurry, lowres", at=timedelta(minutes=1))
    add_generation(user, "søren kierkegaard's café")
    assert sorted(_prompts(_page(user, gallery.GalleryQuery(search=search)))) == sorted(expected)


def test_search_never_crosses_to_another_persons_images():
    mine, theirs = make_user(), make_user()
    add_generation(theirs, "a secret lighthouse")
    add_generation(mine, "my lighthouse")
    assert _prompts(_page(mine, gallery.GalleryQuery(search="lighthouse"))) == ["my lighthouse"]


@pytest.mark.parametrize("cursor", ["garbage", "", "bm90LWEtY3Vyc29y", "MjAyNi0wMS0wMXxub3QtYS11dWlk"])
def test_tampered_cursors_get_a_clear_error(cursor):
    user = make_user()
    add_generation(user, "one")
    if cursor == "":
        assert _prompts(_page(user, cursor=cursor)) == ["one"]  # no cursor: from the top
        return
    with pytest.raises(gallery.InvalidCursor, match="start from the top"):
        _page(user, cursor=cursor)


def test_deleting_images_removes_rows_and_files_and_only_the_owners():
    owner, stranger = make_user(), make_user()
    _, images = add_generation(owner, "to delete", images=3)
    storage = LocalStorage.from_settings(get_settings())
    with session_scope() as session:
        assert gallery.delete_images(session, stranger.id, [image.id for image in images]) == []
        keys = gallery.delete_images(session, owner.id, [images[0].id, images[1].id])
    for key in keys:
        storage.delete(key)
    assert len(keys) == 4 and not any(storage.exists(key) for key in keys)
    assert storage.exists(images[2].original_key)
    with session_scope() as session:
        assert [row.id for row in session.exec(select(Image)).all()] == [images[2].id]


def test_deleting_a_generation_removes_its_images():
    owner = make_user()
    generation, _ = add_generation(owner, "whole batch", images=2)
    with session_scope() as session:
        assert gallery.delete_generation(session, make_user().id, generation.id) is None
        keys = gallery.delete_generation(session, owner.id, generation.id)
    assert len(keys) == 4
    with session_scope() as session:
        assert session.exec(select(Image)).all() == [] and session.get(Generation, generation.id) is None


def test_history_lists_every_outcome_with_image_counts():
    user = make_user()
    add_generation(user, "worked", images=2, at=timedelta(minutes=2))
    with session_scope() as session:
        session.add(Generation(user_id=user.id, status=GenerationStatus.FAILED, provider="runware", model="m",
                               prompt="broke", width=8, height=8, steps=1, guidance=1, count=1, seed=1,
                               error="The image service is not available right now.", created_at=clock.now()))
    with session_scope() as session:
        items, cursor = gallery.history(session, user.id)
        failed, _ = gallery.history(session, user.id, status=GenerationStatus.FAILED)
    assert [(generation.prompt, count) for generation, count in items] == [("worked", 2), ("broke", 0)]
    assert cursor is None and [generation.prompt for generation, _ in failed] == ["broke"]


def test_neighbours_follow_the_grid_order():
    user = make_user()
    ids = [add_generation(user, f"n{n}", at=timedelta(minutes=n))[1][0].id for n in range(3)]
    with session_scope() as session:
        middle = session.get(Image, ids[1])
        previous, following = gallery.neighbours(session, user.id, middle, gallery.GalleryQuery())
    assert (previous, following) == (ids[2], ids[0])  # newest first: the newer one comes before
