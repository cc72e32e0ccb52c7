"""``DELETE /api/v1/generations/{id}``: a generate key deletes its own generation; nobody else's is ever found."""

from __future__ import annotations

import asyncio
import uuid

from nicegui.testing import User
from sqlmodel import select

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import ApiKeyScope, Generation, Image
from rupali.services import api_keys
from rupali.storage import LocalStorage
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.running import running_generation


def _key(person, scope: ApiKeyScope = ApiKeyScope.GENERATE) -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, person, f"{scope} key", scope=scope)
    return {"Authorization": f"Bearer {secret}"}


async def _started(user: User) -> None:
    """Let the app start first: its start-up resolves unfinished generations left by a "restart"."""
    assert (await user.http_client.get("/api/openapi.json")).status_code == 200


def _files(images: list[Image]) -> list[str]:
    return [key for image in images for key in (image.original_key, image.thumbnail_key)]


async def test_a_generate_key_deletes_its_generation_with_images_and_files(user: User):
    owner = make_user()
    generation, images = add_generation(owner, "a private prompt to forget", images=2)
    headers = _key(owner)
    response = await user.http_client.delete(f"/api/v1/generations/{generation.id}", headers=headers)
    assert response.status_code == 204 and response.content == b""
    assert (await user.http_client.get(f"/api/v1/generations/{generation.id}", headers=headers)).status_code == 404
    assert (await user.http_client.get(f"/api/v1/images/{images[0].id}", headers=headers)).status_code == 404
    storage = LocalStorage.from_settings(get_settings())
    assert not any(storage.exists(key) for key in _files(images))
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == [] and session.exec(select(Image)).all() == []
    again = await user.http_client.delete(f"/api/v1/generations/{generation.id}", headers=headers)
    assert again.status_code == 404


async def test_another_persons_key_gets_404_and_changes_nothing(user: User):
    owner, stranger = make_user(), make_user()
    generation, images = add_generation(owner, "not theirs to delete", images=1)
    for path in (f"/api/v1/generations/{generation.id}", f"/api/v1/generations/{uuid.uuid4()}",
                 "/api/v1/generations/not-a-uuid"):
        response = await user.http_client.delete(path, headers=_key(stranger))
        assert response.status_code == 404, path
    with session_scope() as session:
        assert session.get(Generation, generation.id) is not None
    assert LocalStorage.from_settings(get_settings()).exists(images[0].original_key)


async def test_a_read_key_may_not_delete(user: User):
    owner = make_user()
    generation, _ = add_generation(owner, "read only")
    response = await user.http_client.delete(f"/api/v1/generations/{generation.id}",
                                             headers=_key(owner, ApiKeyScope.READ))
    assert response.status_code == 403
    with session_scope() as session:
        assert session.get(Generation, generation.id) is not None


async def test_a_running_generation_is_refused_with_409_until_it_is_cancelled_and_stopped(user: User):
    await _started(user)
    owner, stranger = make_user(), make_user()
    generation_id = await running_generation(owner)
    headers = _key(owner)
    refused = await user.http_client.delete(f"/api/v1/generations/{generation_id}", headers=headers)
    assert refused.status_code == 409
    assert refused.json() == {"detail": "These images are still being made. Cancel the generation first, then "
                                        "delete it."}
    # Someone else learns nothing, not even that it is running.
    assert (await user.http_client.delete(f"/api/v1/generations/{generation_id}",
                                          headers=_key(stranger))).status_code == 404
    cancelled = await user.http_client.post(f"/api/v1/generations/{generation_id}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    for _ in range(400):  # the database says "cancelled" at once; the job takes a moment to stop
        response = await user.http_client.delete(f"/api/v1/generations/{generation_id}", headers=headers)
        if response.status_code != 409:
            break
        await asyncio.sleep(0.05)
    assert response.status_code == 204
    with session_scope() as session:
        assert session.get(Generation, generation_id) is None


async def test_the_operation_is_documented(user: User):
    spec = (await user.http_client.get("/api/openapi.json")).json()
    operation = spec["paths"]["/v1/generations/{generation_id}"]["delete"]
    assert set(operation["responses"]) >= {"204", "404", "409"}
    assert operation["security"] == [{"ApiKey": ["generate"]}]
