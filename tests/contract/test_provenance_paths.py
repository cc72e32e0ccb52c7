"""Content Credentials on every provider path: offline, Runware and A1111 (real HTTP servers on loopback).

Each image goes through the real queue, and every way a person can get it out (single download with and without
the prompt, a ZIP, the privacy export) hands out a file whose manifest validates, names the right source type,
provider and model, and holds nothing that identifies the person.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterator

import c2pa
import pytest
from PIL import Image as PILImage
from sqlmodel import select

from rupali import xmp, zips
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope, transact
from rupali.generation_queue import GenerationQueue
from rupali.image_files import prepared_original
from rupali.models import GenerationStatus, Image, User
from rupali.privacy.export import write_archive
from rupali.providers.base import GeneratedImage, GenerationResult
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import uploads, users
from tests.services.test_generation import _finished, _form, _submit
from tests.utils.a1111_server import SDXL, LoopbackA1111, running_server
from tests.utils.factories import make_user
from tests.utils.runware_server import RunwareServer

RUNWARE_KEY = "rw-provenance-key-123"
PROMPT = "a paper boat on a rain puddle"
PATHS = [
    pytest.param("offline:sketch-v1", xmp.ALGORITHMIC, "Rupali offline sketch generator", id="offline"),
    pytest.param("runware:runware:100@1", xmp.TRAINED, "Runware", id="runware"),
    pytest.param(f"a1111:{SDXL['title']}", xmp.TRAINED, "AUTOMATIC1111-compatible server", id="a1111"),
]


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunwareServer, LoopbackA1111]]:
    with RunwareServer(api_key=RUNWARE_KEY) as runware, running_server() as a1111:
        monkeypatch.setenv("RUPALI_RUNWARE_API_KEY", RUNWARE_KEY)
        monkeypatch.setenv("RUPALI_RUNWARE_URL", runware.url)
        monkeypatch.setenv("RUPALI_RUNWARE_MODELS", "runware:100@1=FLUX.1 schnell")
        monkeypatch.setenv("RUPALI_A1111_URL", a1111.url)
        reset_settings()
        yield runware, a1111


@pytest.fixture
async def studio(services) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(get_settings())
    await runtime.start()
    yield runtime
    await runtime.stop()


def _person() -> User:
    return make_user(email="zoe.provenance@example.com", full_name="Zoë Ødegård-Provenance")


def _identifiers(person: User) -> list[bytes]:
    """Everything that would identify the person, as it could appear in a file."""
    return [value.encode() for value in (person.email, person.full_name, str(person.id), person.id.hex)] + \
        [person.full_name.encode("utf-16-le")]


def _manifest(data: bytes, mime: str) -> dict:
    with c2pa.Reader(mime, io.BytesIO(data)) as reader:
        return json.loads(reader.json())


def _check(runtime: Runtime, data: bytes, image: Image, person: User, *, source_type: str, agent: str,
           with_prompt: bool) -> None:
    found = runtime.credentials.inspect(data, image.format)
    assert found.has_credentials and found.intact and found.own, found.problems
    assert found.source_type == found.xmp_source_type == source_type
    assert found.software_agent is not None and found.software_agent.startswith(f"{agent} / ")
    assert found.claim_generator is not None and found.claim_generator.startswith("Rupali ")
    assert found.signer == runtime.credentials.signer_name
    for identifier in _identifiers(person):
        assert identifier not in data, identifier
    manifest_text = json.dumps(_manifest(data, f"image/{image.format.lower()}"), ensure_ascii=False)
    for identifier in (person.email, person.full_name, str(person.id), person.id.hex):
        assert identifier not in manifest_text
    assert (PROMPT in manifest_text) == with_prompt
    with PILImage.open(io.BytesIO(data)) as opened:
        opened.load()
        assert opened.size == (image.width, image.height)
        if image.format == "PNG":
            assert ("parameters" in opened.info) == with_prompt


@pytest.mark.parametrize(("model", "source_type", "agent"), PATHS)
async def test_every_download_of_every_provider_s_image_carries_intact_credentials(studio: Runtime, model: str,
                                                                                   source_type: str, agent: str):
    person = _person()
    generation = await _submit(studio, person, model=model, prompt=PROMPT, width=512, height=512, count=2)
    done = await _finished(generation.id)
    assert done.status == GenerationStatus.SUCCEEDED, done.error
    with session_scope() as session:
        images = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
    assert len(images) == 2
    for image in images:
        assert image.signed and image.format == "PNG" and image.plain_key is not None
        for strip in (False, True):
            data = prepared_original(studio.storage, image, done, strip)
            _check(studio, data, image, person, source_type=source_type, agent=agent, with_prompt=not strip)
        # The model named in the manifest is the one the generation records.
        found = studio.credentials.inspect(prepared_original(studio.storage, image, done, False), image.format)
        assert found.software_agent == f"{agent} / {done.model_label or done.model}"

    # A ZIP, with and without the prompt, holds the same signed files.
    for strip in (False, True):
        archive = zipfile.ZipFile(io.BytesIO(b"".join(zips.archive(studio.storage, [(i, done) for i in images],
                                                                    strip=strip))))
        for image in images:
            data = archive.read(next(name for name in archive.namelist() if image.id.hex[:8] in name))
            _check(studio, data, image, person, source_type=source_type, agent=agent, with_prompt=not strip)


async def test_the_privacy_export_follows_the_choice_and_keeps_the_credentials(studio: Runtime):
    person = _person()
    generation = await _submit(studio, person, model="offline:sketch-v1", prompt=PROMPT, count=1)
    done = await _finished(generation.id)
    with session_scope() as session:
        [image] = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
    for strip in (False, True):
        with session_scope() as session:
            users.set_strip_metadata(session, session.get(User, person.id), strip)
        key = f"exports/{person.id.hex}/check-{int(strip)}.zip"
        write_archive(studio.settings, studio.storage, person.id, key)
        with zipfile.ZipFile(studio.storage.path(key)) as archive:
            data = archive.read(f"images/{image.id}.png")
        assert data == prepared_original(studio.storage, image, done, strip)  # byte for byte the signed file
        _check(studio, data, image, person, source_type=xmp.ALGORITHMIC, agent="Rupali offline sketch generator",
               with_prompt=not strip)


async def test_image_to_image_names_the_upload_as_its_parent(studio: Runtime):
    person = _person()
    source = io.BytesIO()
    PILImage.new("RGB", (512, 512), (200, 40, 90)).save(source, "PNG")
    with session_scope() as session:
        upload = uploads.store(session, studio.storage, studio.settings, session.get(User, person.id),
                               source.getvalue())
    generation = await _submit(studio, person, model="runware:runware:100@1", prompt=PROMPT, upload_id=upload.id,
                               strength=0.6)
    done = await _finished(generation.id)
    assert done.status == GenerationStatus.SUCCEEDED, done.error
    with session_scope() as session:
        [image] = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
    data = prepared_original(studio.storage, image, done, True)
    _check(studio, data, image, person, source_type=xmp.TRAINED, agent="Runware", with_prompt=False)
    store = _manifest(data, "image/png")
    active = store["manifests"][store["active_manifest"]]
    assert [ingredient["relationship"] for ingredient in active["ingredients"]] == ["parentOf"]
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert [action["action"] for action in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"] == xmp.TRAINED


async def test_a_stored_image_s_files_are_the_signed_ones_and_a_changed_byte_shows(studio: Runtime):
    person = _person()
    generation = await _submit(studio, person, model="offline:sketch-v1", prompt=PROMPT, count=1)
    done = await _finished(generation.id)
    with session_scope() as session:
        [image] = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
    stored = studio.storage.read(image.original_key)
    assert image.bytes == len(stored)
    assert prepared_original(studio.storage, image, done, False) == stored  # served as stored, never rewritten
    # One byte of the parameters text changed (CRC fixed, so only the signature can tell).
    start = stored.index(b"parameters\0")
    changed = bytearray(stored)
    changed[start + 20] ^= 0x01
    length = int.from_bytes(stored[start - 8:start - 4], "big")
    kind_and_payload = bytes(changed[start - 4:start + length])
    changed[start + length:start + length + 4] = zlib.crc32(kind_and_payload).to_bytes(4, "big")
    found = studio.credentials.inspect(bytes(changed), "PNG")
    assert found.has_credentials and not found.intact
    assert any("assertion.dataHash.mismatch" in problem for problem in found.problems)
    assert found.verdict().startswith("Content Credentials are present but do not match the file")


@pytest.mark.parametrize("image_format", ["JPEG", "WEBP"])
async def test_a_provider_s_jpeg_or_webp_is_stored_signed_without_re_encoding(services, image_format: str):
    """No provider here asks for JPEG or WebP today; the storing stage handles them when one answers with them.

    The runtime is built but not started, and the storing stage is the one both queues share: on PostgreSQL a
    started queue would claim the job from the database before this test could hand it its result."""
    studio = Runtime.build(get_settings())
    try:
        await _store_provided_format(studio, image_format)
    finally:
        await studio.providers.aclose()


async def _store_provided_format(studio: Runtime, image_format: str) -> None:
    person = _person()
    with session_scope() as session:
        generation = generations.submit(session, studio.settings, session.get(User, person.id),
                                        await studio.providers.find("runware:runware:100@1"),
                                        _form(model="runware:runware:100@1", prompt=PROMPT, width=512, height=512),
                                        studio.credits)
    started = transact(generations.start, generation.id)
    picture = PILImage.effect_noise((512, 512), 50).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, image_format, quality=90)
    provided = buffer.getvalue()
    result = GenerationResult([GeneratedImage(provided, image_format, 5, 512, 512)], model_version="runware:100@1")
    storing = GenerationQueue(studio.settings, studio.providers, studio.storage, studio.scorer, studio.credits,
                              studio.credentials)
    await asyncio.to_thread(storing._finish, started, result)
    with session_scope() as session:
        [image] = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
    assert image.signed and image.format == image_format and image.plain_key is None
    for strip in (False, True):
        data = prepared_original(studio.storage, image, started, strip)
        _check(studio, data, image, person, source_type=xmp.TRAINED, agent="Runware", with_prompt=False)
        with PILImage.open(io.BytesIO(data)) as signed, PILImage.open(io.BytesIO(provided)) as original:
            assert signed.tobytes() == original.tobytes()  # the same compressed pixels: nothing was re-encoded
