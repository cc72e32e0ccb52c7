"""POST /api/v1/verify: anyone can check an image's Content Credentials without a key; hostile files get a sentence
(422) or a verdict, never a server error; bodies over the upload limit are refused (413); nothing is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nicegui.testing import User
from sqlalchemy import func
from sqlmodel import select

from rupali import __version__, provenance, runtime, xmp
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import Image, Upload
from rupali.provenance import ContentCredentials, make_self_signed_chain
from tests.services.test_provenance import PARAMETERS, encode, hostile_corpus, noise, origin, tamper_pixel

URL = "/api/v1/verify"
PNG = {"Content-Type": "image/png"}
MB = 1024 * 1024


def _stored() -> tuple[list[str], int, int]:
    """Every file under the media folder, and the upload and image rows."""
    media = get_settings().effective_media_dir
    files = sorted(str(path.relative_to(media)) for path in Path(media).rglob("*")) if media.exists() else []
    with session_scope() as session:
        uploads = session.exec(select(func.count()).select_from(Upload)).one()
        images = session.exec(select(func.count()).select_from(Image)).one()
    return files, uploads, images


async def _verify(user: User, body: bytes, headers: dict[str, str] | None = None):
    assert "authorization" not in {name.lower() for name in user.http_client.headers}
    return await user.http_client.post(URL, content=body, headers=PNG if headers is None else headers)


@pytest.fixture
def one_mb_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads (and so checked files) of at most 1 MB; set before the app is built (list it before ``user``)."""
    monkeypatch.setenv("RUPALI_UPLOAD_MAX_MB", "1")
    reset_settings()


@pytest.mark.parametrize(("source_type", "ai"), [(xmp.TRAINED, True), (xmp.ALGORITHMIC, False)],
                         ids=["ai", "procedural"])
async def test_anyone_checks_an_image_this_installation_signed(user: User, source_type, ai):
    before = _stored()
    credentials = runtime.current().credentials
    signed = credentials.sign(encode(noise()), "PNG", origin(source_type), parameters=PARAMETERS)
    response = await _verify(user, signed)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content_credentials"] is True and body["intact"] is True
    assert body["validation_state"] == "Trusted" and body["signed_by_this_installation"] is True
    assert body["ai_generated"] is ai and body["digital_source_type"] == body["xmp_digital_source_type"] == source_type
    assert body["software_agent"] == "Runware / flux-dev" and body["claim_generator"] == f"Rupali {__version__}"
    assert (body["format"], body["width"], body["height"]) == ("PNG", 256, 256)
    assert body["signer"] == credentials.signer_name and body["problems"] == []
    assert body["signed_at"].replace("Z", "+00:00") == "2025-03-04T05:06:05.123456+00:00"
    assert body["verdict"].startswith("Content Credentials intact: signed by ")
    assert _stored() == before


async def test_what_another_installation_signed_is_intact_but_not_trusted(user: User):
    elsewhere = ContentCredentials(*make_self_signed_chain("Somebody Else"))
    signed = elsewhere.sign(encode(noise(), "JPEG", quality=90), "JPEG", origin())
    body = (await _verify(user, signed, {"Content-Type": "image/jpeg"})).json()
    assert body["intact"] is True and body["signed_by_this_installation"] is False
    assert body["validation_state"] == "Valid" and body["signer"] == "Somebody Else image signing"


async def test_an_unsigned_or_changed_image_says_so(user: User):
    response = await _verify(user, encode(noise()), headers={})  # no Content-Type at all: the bytes decide
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content_credentials"] is False and body["intact"] is False and body["ai_generated"] is False
    assert body["validation_state"] is None and body["verdict"].startswith("No Content Credentials")
    signed = runtime.current().credentials.sign(encode(noise()), "PNG", origin(), parameters=PARAMETERS)
    changed = (await _verify(user, tamper_pixel(signed))).json()
    assert changed["content_credentials"] is True and changed["intact"] is False
    assert changed["validation_state"] == "Invalid" and changed["signed_by_this_installation"] is False
    assert any(problem.startswith("assertion.dataHash.mismatch") for problem in changed["problems"])
    assert "do not match the file" in changed["verdict"]


async def test_hostile_files_get_a_sentence_or_a_verdict_never_a_server_error(user: User):
    before = _stored()
    corpus = hostile_corpus(runtime.current().credentials)
    for case, (data, expected) in corpus.items():
        response = await _verify(user, data)
        assert response.status_code < 500, (case, response.status_code, response.text)
        if case == "over the size limit":  # 10 MB + 1: refused while the body is read
            assert response.status_code == 413, case
            continue
        outcome, fragment = expected.split(": ", 1)
        if outcome == "refused":
            assert response.status_code == 422, (case, response.text)
            body = response.json()
            assert body["field"] == "body" and fragment in body["detail"] and body["detail"].endswith("."), case
        else:
            assert response.status_code == 200, (case, response.text)
            body = response.json()
            assert body["intact"] is False and body["signed_by_this_installation"] is False, case
            assert fragment in body["verdict"] or any(p.startswith(fragment) for p in body["problems"]), (case, body)
    assert _stored() == before


async def test_bodies_over_the_upload_limit_are_refused(one_mb_uploads, user: User):
    assert get_settings().upload_max_mb == 1
    before = _stored()
    refused = await _verify(user, b"\x89PNG\r\n\x1a\n" + b"\0" * MB)  # 1 MB + 8 bytes, declared up front
    assert refused.status_code == 413, refused.text
    assert refused.text == "The request is too large: at most 1 MB are accepted."
    exactly = await _verify(user, b"\0" * MB)  # at the limit: read, then refused as not an image
    assert exactly.status_code == 422 and exactly.json()["detail"] == (
        "This file is not an image. Choose a PNG, JPEG or WebP image.")
    small = await _verify(user, encode(noise(side=64)))
    assert small.status_code == 200 and small.json()["content_credentials"] is False
    assert _stored() == before


async def _chunks() -> AsyncIterator[bytes]:
    """1 MB + 64 kB without a Content-Length: counted as it arrives."""
    for _ in range(17):
        yield b"\0" * 65536


async def test_a_streamed_body_over_the_limit_is_refused_without_an_error(one_mb_uploads, user: User, caplog):
    streamed = await user.http_client.post(URL, content=_chunks(), headers=PNG)
    errors = [record.getMessage() for record in caplog.get_records("call") if record.levelname == "ERROR"]
    caplog.clear()  # reported here, by this test, rather than by the user fixture's teardown
    assert streamed.status_code == 413, streamed.text
    assert errors == []


async def test_the_route_is_documented_as_public(user: User):
    spec = (await user.http_client.get("/api/openapi.json")).json()
    operation = spec["paths"]["/v1/verify"]["post"]  # the API is mounted at /api
    assert not operation.get("security"), operation.get("security")
    assert set(operation["requestBody"]["content"]) == {"image/png", "image/jpeg", "image/webp"}
    assert {"200", "413", "422"} <= set(operation["responses"])


async def test_when_two_checks_are_running_the_next_is_told_when_to_come_back(user: User, monkeypatch):
    monkeypatch.setattr(provenance, "CHECK_WAIT", 0.05)
    taken = [provenance._CHECKS.acquire(timeout=1) for _ in range(2)]
    try:
        busy = await user.http_client.post(URL, content=encode(noise()), headers=PNG)
    finally:
        for _ in taken:
            provenance._CHECKS.release()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert busy.json() == {"detail": "Many images are being checked right now. Please try again in a moment."}
    assert (await user.http_client.post(URL, content=encode(noise()), headers=PNG)).status_code == 200
