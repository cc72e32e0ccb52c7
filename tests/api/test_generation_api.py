"""The REST API: API keys, creating and reading generations, fetching images — and nobody else's."""

from __future__ import annotations

import asyncio
import io

from nicegui.testing import User
from PIL import Image as PILImage
from sqlmodel import select

from rupali.db import session_scope
from rupali.models import Generation
from rupali.services import api_keys
from tests.utils.factories import make_user

BODY = {"prompt": "a lighthouse on a cliff at golden hour", "model": "offline:sketch-v1", "width": 512,
        "height": 512, "count": 2, "seed": 77}


def _key_for(person) -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, person, "tests")
    return {"Authorization": f"Bearer {secret}"}


async def _wait(user: User, headers: dict[str, str], generation_id: str) -> dict:
    for _ in range(400):
        body = (await user.http_client.get(f"/api/v1/generations/{generation_id}", headers=headers)).json()
        if body["status"] not in {"queued", "running"}:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("generation did not finish")


async def test_create_read_and_download_through_the_api(user: User):
    headers = _key_for(make_user())
    models = (await user.http_client.get("/api/v1/models", headers=headers)).json()
    assert any(model["key"] == "offline:sketch-v1" and model["is_ai"] is False for model in models)
    created = await user.http_client.post("/api/v1/generations", json=BODY, headers=headers)
    assert created.status_code == 202 and created.json()["seed"] == 77
    done = await _wait(user, headers, created.json()["id"])
    assert done["status"] == "succeeded" and [image["seed"] for image in done["images"]] == [77, 78]
    original = await user.http_client.get(done["images"][0]["url"], headers=headers)
    assert original.status_code == 200 and "attachment" in original.headers["content-disposition"]
    parameters = PILImage.open(io.BytesIO(original.content)).info["parameters"]
    assert parameters.startswith(BODY["prompt"]) and "Seed: 77" in parameters and "Size: 512x512" in parameters
    thumbnail = await user.http_client.get(done["images"][0]["thumbnail_url"], headers=headers)
    assert thumbnail.headers["content-type"] == "image/webp" and "immutable" in thumbnail.headers["cache-control"]
    listed = (await user.http_client.get("/api/v1/generations?limit=5", headers=headers)).json()
    assert [item["id"] for item in listed] == [done["id"]]


async def test_nobody_else_reaches_a_generation_or_its_images(user: User):
    owner_headers, other_headers = _key_for(make_user()), _key_for(make_user())
    created = (await user.http_client.post("/api/v1/generations", json=BODY, headers=owner_headers)).json()
    done = await _wait(user, owner_headers, created["id"])
    image = done["images"][0]
    for path in (f"/api/v1/generations/{done['id']}", image["url"], image["thumbnail_url"],
                 "/api/v1/generations/not-a-uuid", "/api/v1/images/00000000-0000-4000-8000-000000000000"):
        response = await user.http_client.get(path, headers=other_headers)
        assert response.status_code == 404, path
    cancel = await user.http_client.post(f"/api/v1/generations/{done['id']}/cancel", headers=other_headers)
    assert cancel.status_code == 404
    assert (await user.http_client.get("/api/v1/generations", headers=other_headers)).json() == []


async def test_missing_revoked_or_forged_keys_are_refused(user: User):
    person = make_user()
    headers = _key_for(person)
    assert (await user.http_client.get("/api/v1/generations")).status_code == 401
    assert (await user.http_client.get("/api/v1/generations",
                                       headers={"Authorization": "Bearer rk_forged"})).status_code == 401
    with session_scope() as session:
        key = api_keys.active(session, person.id)[0]
        api_keys.revoke(session, person.id, key.id)
    assert (await user.http_client.get("/api/v1/generations", headers=headers)).status_code == 401


async def test_hostile_requests_get_422_with_a_sentence_and_store_nothing(user: User):
    headers = _key_for(make_user())
    for changes, fragment in (({"prompt": "x" * 5000}, "limit is 2000"), ({"width": 99999}, "not a size"),
                              ({"count": 1000}, "between 1 and 4"), ({"steps": -3}, "Steps must be"),
                              ({"model": "nope:nothing"}, "not enabled"), ({"prompt": ""}, "Describe the image")):
        response = await user.http_client.post("/api/v1/generations", json=BODY | changes, headers=headers)
        assert response.status_code == 422 and fragment in response.json()["detail"], (changes, response.text)
    malformed = await user.http_client.post("/api/v1/generations", content=b"{not json", headers=headers)
    assert malformed.status_code == 422
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []


async def test_openapi_documents_the_api(user: User):
    spec = (await user.http_client.get("/api/openapi.json")).json()
    assert {"/v1/generations", "/v1/generations/{generation_id}", "/v1/images/{image_id}"} <= set(spec["paths"])
    assert (await user.http_client.get("/api/docs")).status_code == 200


async def test_originals_answer_range_requests_and_thumbnails_revalidate(user: User):
    headers = _key_for(make_user())
    created = (await user.http_client.post("/api/v1/generations", json=BODY | {"count": 1}, headers=headers)).json()
    image = (await _wait(user, headers, created["id"]))["images"][0]
    whole = await user.http_client.get(image["url"], headers=headers)
    part = await user.http_client.get(image["url"], headers=headers | {"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    tail = await user.http_client.get(image["url"], headers=headers | {"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    beyond = await user.http_client.get(image["url"], headers=headers | {"Range": f"bytes={10**9}-"})
    assert beyond.status_code == 416
    no_parameters = await user.http_client.get(image["url"] + "?parameters=false", headers=headers)
    assert "parameters" not in PILImage.open(io.BytesIO(no_parameters.content)).info
    thumbnail = await user.http_client.get(image["thumbnail_url"], headers=headers)
    etag = thumbnail.headers["etag"]
    again = await user.http_client.get(image["thumbnail_url"], headers=headers | {"If-None-Match": etag})
    assert again.status_code == 304
