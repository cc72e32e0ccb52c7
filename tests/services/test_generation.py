"""The generation pipeline without UI: validation, the fair queue, storage, NSFW policy, restart recovery."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid

import pytest
from PIL import Image as PILImage
from sqlmodel import select

from rupali import media
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope, transact
from rupali.imaging import InvalidImage
from rupali.models import Generation, GenerationStatus, Image, Upload, User
from rupali.providers.base import GenerationResult
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import uploads
from rupali.services.credits import FreeGeneration
from tests.services.test_profile import _png_claiming
from tests.utils.at_once import ACCEPTED, at_once
from tests.utils.credits_mode import offline_choice
from tests.utils.factories import make_user

OFFLINE = "offline:sketch-v1"


def _form(**changes) -> generations.GenerationForm:
    values = {"prompt": "a red lighthouse at dusk", "model": OFFLINE, "width": 512, "height": 512, "count": 1}
    return generations.GenerationForm(**(values | changes))


@pytest.fixture
async def studio():
    """The runtime a server would run (providers, storage, scorer, queue), started on this test's loop."""
    runtime = Runtime.build(get_settings())
    await runtime.start()
    yield runtime
    await runtime.stop()


async def _submit(runtime: Runtime, user: User, **changes) -> Generation:
    choice = await runtime.providers.find(changes.get("model", OFFLINE))
    with session_scope() as session:
        generation = generations.submit(session, runtime.settings, user, choice, _form(**changes), runtime.credits)
    if generation.status == GenerationStatus.QUEUED:
        runtime.queue.submit(generation.id, user.id)
    return generation


async def _finished(generation_id: uuid.UUID, timeout: float = 20) -> Generation:
    for _ in range(int(timeout / 0.05)):
        with session_scope() as session:
            generation = session.get(Generation, generation_id)
            if generation.finished:
                return generation
        await asyncio.sleep(0.05)
    raise AssertionError("generation did not finish")


async def _running(runtime: Runtime, generation_id: uuid.UUID, timeout: float = 10) -> None:
    """Wait until the job runs, in the queue and in the database; fail if it finishes or times out first."""
    deadline = time.monotonic() + timeout
    while True:
        state = runtime.queue.state(generation_id)
        with session_scope() as session:
            stored = session.get(Generation, generation_id).status
        if state is not None and state.status == GenerationStatus.RUNNING and stored == GenerationStatus.RUNNING:
            return
        # Cancelling a job that is still queued (or already done) proves nothing about cancelling a running one.
        assert time.monotonic() < deadline and stored in (GenerationStatus.QUEUED, GenerationStatus.RUNNING), (
            f"generation never seen running: queue says {state}, database says {stored}")
        await asyncio.sleep(0.01)


def _images(generation_id: uuid.UUID) -> list[Image]:
    with session_scope() as session:
        return list(session.exec(select(Image).where(Image.generation_id == generation_id)
                                 .order_by(Image.position)).all())


async def test_offline_generation_stores_originals_thumbnails_scores_and_seeds(studio):
    user = make_user()
    generation = await _submit(studio, user, count=3, seed=1000)
    done = await _finished(generation.id)
    assert done.status == GenerationStatus.SUCCEEDED and done.duration_ms is not None and done.credits == 0
    images = _images(generation.id)
    assert [image.seed for image in images] == [1000, 1001, 1002]
    for image in images:
        original = studio.storage.read(image.original_key)
        assert PILImage.open(io.BytesIO(original)).size == (512, 512)
        thumbnail = PILImage.open(io.BytesIO(studio.storage.read(image.thumbnail_key)))
        assert thumbnail.format == "WEBP" and max(thumbnail.size) <= media.THUMBNAIL_SIZE
        assert 0 <= image.nsfw_score < 0.5 and image.nsfw is False


@pytest.mark.parametrize(("changes", "message"), [
    ({"prompt": ""}, "Describe the image"),
    ({"prompt": "   \n "}, "Describe the image"),
    ({"prompt": "x" * 5000}, "the limit is 2000"),
    ({"negative_prompt": "y" * 2001}, "negative prompt is 2001 characters"),
    ({"width": 99999}, "99999x512 is not a size"),
    ({"width": 513}, "is not a size"),
    ({"count": 1000}, "between 1 and 4 images"),
    ({"count": 0}, "between 1 and 4 images"),
    ({"steps": -5}, "Steps must be between 1 and 100"),
    ({"guidance": 1e9}, "Guidance must be between 0"),
    ({"seed": -1}, "The seed must be a whole number"),
    ({"seed": 2**40}, "The seed must be a whole number"),
    ({"scheduler": "DROP TABLE"}, ""),
])
async def test_hostile_requests_get_a_clear_message_and_store_nothing(studio, changes, message):
    user = make_user()
    if message == "":  # the offline model takes no scheduler list: accepted and recorded as given
        generation = await _submit(studio, user, **changes)
        assert (await _finished(generation.id)).scheduler == "DROP TABLE"
        return
    with pytest.raises(generations.InvalidGeneration, match=message):
        await _submit(studio, user, **changes)
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []


async def test_a_blocked_prompt_is_refused_recorded_and_free(studio, monkeypatch):
    monkeypatch.setenv("RUPALI_PROMPT_BLOCKLIST", "gore, real person")
    reset_settings()
    studio.settings = get_settings()
    user = make_user()
    choice = await studio.providers.find(OFFLINE)
    with session_scope() as session:
        generation = generations.submit(session, get_settings(), user, choice,
                                        _form(prompt="A REAL PERSON in a crowd"), studio.credits)
    assert generation.status == GenerationStatus.BLOCKED and "real person" in generation.error
    assert generation.credits == 0 and _images(generation.id) == []
    with session_scope() as session:  # "gore" inside another word is not a match
        allowed = generations.submit(session, get_settings(), user, choice, _form(prompt="a gorell"), studio.credits)
    assert allowed.status == GenerationStatus.QUEUED


async def test_each_person_can_cancel_only_their_own_jobs(studio):
    owner, stranger = make_user(), make_user()
    waiting = [await _submit(studio, owner, count=4, width=1024, height=1024) for _ in range(3)]
    with pytest.raises(generations.GenerationNotFound):
        await studio.queue.cancel(stranger.id, waiting[-1].id)
    await studio.queue.cancel(owner.id, waiting[-1].id)
    assert (await _finished(waiting[-1].id)).status == GenerationStatus.CANCELLED
    for generation in waiting[:2]:
        assert (await _finished(generation.id)).status == GenerationStatus.SUCCEEDED


async def test_a_running_job_can_be_cancelled(studio):
    user = make_user()
    generation = await _submit(studio, user, count=4, width=2048, height=2048)
    await _running(studio, generation.id)
    await studio.queue.cancel(user.id, generation.id)
    done = await _finished(generation.id)
    assert done.status == GenerationStatus.CANCELLED and _images(generation.id) == []


async def test_one_persons_burst_does_not_starve_another(studio, monkeypatch):
    monkeypatch.setattr(studio.settings, "generation_concurrency", 1)
    busy, patient = make_user(), make_user()
    burst = [await _submit(studio, busy, prompt=f"burst {n}") for n in range(4)]
    single = await _submit(studio, patient, prompt="just one")
    # Next, or second behind the burst's first (depending on whether that one has started yet): not fifth.
    assert studio.queue.state(single.id).position <= 1
    for generation in [*burst, single]:
        await _finished(generation.id)
    with session_scope() as session:
        order = [g.prompt for g in session.exec(select(Generation).order_by(Generation.started_at)).all()]
    assert order.index("just one") == 1


async def test_the_queue_limit_per_person(studio, monkeypatch):
    monkeypatch.setattr(studio.settings, "generation_queue_per_user", 2)
    user = make_user()
    await _submit(studio, user, count=4, width=1024, height=1024)
    await _submit(studio, user, count=4, width=1024, height=1024)
    with pytest.raises(generations.InvalidGeneration, match="already have 2 generations waiting"):
        await _submit(studio, user)


async def test_submissions_at_the_same_moment_never_pass_the_queue_limit_together(monkeypatch):
    """Two tabs, the API, or two instances: however many submit at once, no more than the limit are waiting."""
    monkeypatch.setenv("RUPALI_GENERATION_QUEUE_PER_USER", "3")
    reset_settings()
    settings, user, choice = get_settings(), make_user(), await offline_choice()
    outcomes = await asyncio.to_thread(at_once, 12, lambda session, number: generations.submit(
        session, settings, user, choice, _form(prompt=f"boat {number}"), FreeGeneration()),
        generations.InvalidGeneration)
    assert outcomes.count(ACCEPTED) == 3, outcomes
    assert set(outcomes) - {ACCEPTED} == {"You already have 3 generations waiting. Let them finish first."}


async def test_block_policy_withholds_images_and_charges_nothing(studio, monkeypatch):
    monkeypatch.setattr(studio.settings, "nsfw_policy", "block")
    monkeypatch.setattr(studio.settings, "nsfw_threshold", 0.0)  # everything counts as flagged
    user = make_user()
    generation = await _submit(studio, user, count=2)
    done = await _finished(generation.id)
    assert done.status == GenerationStatus.BLOCKED and "withheld every image" in done.error
    assert _images(generation.id) == [] and done.credits == 0
    assert not (studio.storage.root / "images").exists() or not any((studio.storage.root / "images").rglob("*.*"))


async def test_blur_policy_marks_flagged_images(studio, monkeypatch):
    monkeypatch.setattr(studio.settings, "nsfw_threshold", 0.0)
    generation = await _submit(studio, make_user())
    await _finished(generation.id)
    assert [image.nsfw for image in _images(generation.id)] == [True]


async def test_after_a_restart_running_jobs_fail_clearly_and_queued_ones_resume():
    """One process (SQLite): what was running when it stopped fails clearly. The shared queue (PostgreSQL) cannot
    tell a dead instance's job from a live one's at start-up; it runs it again once its claim has lapsed (a row
    without a claim has none), as in tests/services/test_shared_queue.py."""
    user = make_user()
    with session_scope() as session:
        for status in (GenerationStatus.RUNNING, GenerationStatus.QUEUED):
            session.add(Generation(user_id=user.id, status=status, provider="offline", model="sketch-v1",
                                   prompt=f"left {status}", width=512, height=512, steps=20, guidance=7.0, count=1,
                                   seed=7))
    runtime = Runtime.build(get_settings())
    await runtime.start()
    try:
        with session_scope() as session:
            rows = {g.prompt: g for g in session.exec(select(Generation)).all()}
        interrupted = rows["left running"]
        if get_settings().shared_queue:
            assert (await _finished(interrupted.id)).status == GenerationStatus.SUCCEEDED
        else:
            assert interrupted.status == GenerationStatus.FAILED and "server restarted" in interrupted.error
        assert (await _finished(rows["left queued"].id)).status == GenerationStatus.SUCCEEDED
    finally:
        await runtime.stop()


async def test_image_to_image_from_a_stripped_upload(studio):
    user = make_user()
    photo = PILImage.new("RGB", (800, 600), (30, 90, 200))
    exif = PILImage.Exif()
    exif[0x8825] = {1: "N", 2: (55.0, 40.0, 30.0)}  # GPS
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", exif=exif)
    with session_scope() as session:
        upload = uploads.store(session, studio.storage, studio.settings, user, buffer.getvalue())
    stored = studio.storage.read(upload.key)
    assert b"Exif" not in stored and PILImage.open(io.BytesIO(stored)).format == "PNG"
    generation = await _submit(studio, user, upload_id=upload.id, strength=0.3)
    assert (await _finished(generation.id)).status == GenerationStatus.SUCCEEDED


async def test_someone_elses_upload_cannot_be_used(studio):
    owner, thief = make_user(), make_user()
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64)).save(buffer, "PNG")
    with session_scope() as session:
        upload = uploads.store(session, studio.storage, studio.settings, owner, buffer.getvalue())
    with pytest.raises(generations.InvalidGeneration, match="source image is no longer available"):
        await _submit(studio, thief, upload_id=upload.id)


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (400, 300), (9, 9, 9)).save(buffer, "JPEG")
    return buffer.getvalue()[:2000]


@pytest.mark.parametrize("data", [b"plain text pretending to be a png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
                                  _png_claiming(20_000, 20_000), _truncated_jpeg()],
                         ids=["text-renamed-png", "broken-png", "20000x20000-bomb", "truncated-jpeg"])
def test_bad_uploads_are_refused_and_nothing_is_stored(data):
    user = make_user()
    settings = get_settings()
    from rupali.storage import LocalStorage

    storage = LocalStorage.from_settings(settings)
    with session_scope() as session, pytest.raises(InvalidImage):
        uploads.store(session, storage, settings, user, data)
    with session_scope() as session:
        assert session.exec(select(Upload)).all() == []


def test_infotext_follows_the_automatic1111_format():
    generation = Generation(user_id=uuid.uuid4(), provider="runware", model="runware:101@1", model_label="FLUX.1 dev",
                            prompt="a castle on a cliff, golden hour", negative_prompt="lowres, blurry", width=512,
                            height=768, steps=20, guidance=7.0, count=1, seed=1234567890, scheduler="Euler a")
    image = Image(user_id=generation.user_id, generation_id=generation.id, position=0, seed=1234567890, width=512,
                  height=768, format="PNG", bytes=1, original_key="a", thumbnail_key="b", nsfw_score=0.0)
    assert media.infotext(generation, image) == (
        "a castle on a cliff, golden hour\nNegative prompt: lowres, blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234567890, Size: 512x768, Model: FLUX.1 dev")


def _queued(user: User) -> uuid.UUID:
    with session_scope() as session:
        generation = Generation(user_id=user.id, status=GenerationStatus.QUEUED, provider="offline",
                                model="sketch-v1", prompt="a harbour", width=512, height=512, steps=20, guidance=7.0,
                                count=1, seed=7)
        session.add(generation)
        session.flush()
        return generation.id


def test_of_two_starters_of_one_queued_job_exactly_one_gets_it():
    # Two queues (two instances, or a resumed job also queued again) may pick the same row: one must win.
    generation_id = _queued(make_user())
    get_settings()
    barrier = threading.Barrier(4)
    won: list[Generation | None] = []

    def start() -> None:
        barrier.wait()
        won.append(transact(generations.start, generation_id))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 4 and sum(generation is not None for generation in won) == 1
    started = next(generation for generation in won if generation is not None)
    assert started.status == GenerationStatus.RUNNING and started.started_at is not None


def test_a_job_that_stopped_running_while_its_images_were_made_records_none_of_them():
    generation_id = _queued(make_user())
    transact(generations.start, generation_id)
    with session_scope() as session:
        generations.cancel(session, session.get(Generation, generation_id).user_id, generation_id,
                           Runtime.build(get_settings()).credits)
    result = GenerationResult(images=[], model_version="1")
    with session_scope() as session:
        assert generations.complete(session, get_settings(), generation_id, result, [], 0,
                                    Runtime.build(get_settings()).credits) is None
    with session_scope() as session:
        assert session.get(Generation, generation_id).status == GenerationStatus.CANCELLED
    assert _images(generation_id) == []
