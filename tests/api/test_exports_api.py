"""Data exports over HTTP: ask, follow, download through the API with a key; the browser download for the signed-in
owner; nobody else's export, not even with a key of their own; once a day; gone after expiry."""

from __future__ import annotations

import asyncio
import io
import zipfile
from datetime import timedelta

from nicegui.testing import User
from PIL import Image as PILImage

from rupali import clock
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import ApiKeyScope
from rupali.services import api_keys, exports, sessions
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _key(person, scope: ApiKeyScope = ApiKeyScope.READ) -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, person, f"{scope} key", scope=scope)
    return {"Authorization": f"Bearer {secret}"}


def _cookie(user: User, person) -> None:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), person, method="password", ip="", user_agent="",
                              visitor_id="e")
        user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "e"))


async def _ready(user: User, headers: dict[str, str], export_id: str) -> dict:
    for _ in range(600):
        body = (await user.http_client.get(f"/api/v1/exports/{export_id}", headers=headers)).json()
        if body["status"] not in {"queued", "running"}:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("the export was never built")


async def test_ask_follow_and_download_with_a_read_key(user: User):
    owner = make_user()
    _, images = add_generation(owner, "an export through the api")
    headers = _key(owner)  # exports only read: a read key may ask for one
    created = await user.http_client.post("/api/v1/exports", headers=headers)
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] in {"queued", "running", "ready"} and 0 <= body["progress"] <= 1
    done = await _ready(user, headers, body["id"])  # built at once in a worker thread, not at the job's interval
    assert done["status"] == "ready" and done["progress"] == 1.0 and done["error"] == ""
    assert done["download_url"] == f"/api/v1/exports/{body['id']}/download" and done["files"] > 20
    response = await user.http_client.get(done["download_url"], headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="rupali-data-')
    assert response.headers["cache-control"] == "private, no-store"
    assert int(response.headers["content-length"]) == done["bytes"] == len(response.content)
    with zipfile.ZipFile(io.BytesIO(response.content)) as opened:
        assert opened.testzip() is None
        png = PILImage.open(io.BytesIO(opened.read(f"images/{images[0].id}.png")))
        assert png.info["parameters"].startswith("an export through the api")
    again = await user.http_client.post("/api/v1/exports", headers=headers)
    assert again.status_code == 429
    assert "less than 24 hours ago" in again.json()["detail"] and "UTC" in again.json()["detail"]
    assert 86_000 < int(again.headers["retry-after"]) <= 86_400


async def test_nobody_else_reaches_an_export_not_even_with_their_own_key(user: User):
    owner, stranger = make_user(), make_user()
    owner_headers, stranger_headers = _key(owner, ApiKeyScope.GENERATE), _key(stranger, ApiKeyScope.GENERATE)
    export_id = (await user.http_client.post("/api/v1/exports", headers=owner_headers)).json()["id"]
    await _ready(user, owner_headers, export_id)
    for path in (f"/api/v1/exports/{export_id}", f"/api/v1/exports/{export_id}/download",
                 f"/api/v1/exports/{UNKNOWN}", f"/api/v1/exports/{UNKNOWN}/download", "/api/v1/exports/not-an-id"):
        response = await user.http_client.get(path, headers=stranger_headers)
        assert response.status_code == 404, (path, response.status_code)
        assert export_id not in response.text
    anonymous = await user.http_client.get(f"/api/v1/exports/{export_id}/download")
    assert anonymous.status_code == 401
    # The stranger's own request is theirs alone: the owner's limit does not touch it.
    theirs = await user.http_client.post("/api/v1/exports", headers=stranger_headers)
    assert theirs.status_code == 202
    await _ready(user, stranger_headers, theirs.json()["id"])


async def test_a_download_before_it_is_ready_and_after_it_expired(user: User):
    waiting = make_user()
    with session_scope() as session:  # queued, and no thread started: as while the job has not come round
        queued = exports.request_export(session, get_settings(), waiting)
    early = await user.http_client.get(f"/api/v1/exports/{queued.id}/download", headers=_key(waiting))
    assert early.status_code == 409 and "not ready" in early.json()["detail"]
    exports.build(get_settings(), queued.id)
    owner = make_user()
    headers = _key(owner)
    export_id = (await user.http_client.post("/api/v1/exports", headers=headers)).json()["id"]
    done = await _ready(user, headers, export_id)
    with clock.travel(timedelta(days=7, minutes=1)):
        status = (await user.http_client.get(f"/api/v1/exports/{export_id}", headers=headers)).json()
        assert status["status"] == "expired" and status["download_url"] is None
        gone = await user.http_client.get(done["download_url"], headers=headers)
        assert gone.status_code == 410 and "expired" in gone.json()["detail"]
        # And a new one may be asked for, a week later.
        assert (await user.http_client.post("/api/v1/exports", headers=headers)).status_code == 202


async def test_the_browser_download_is_for_the_signed_in_owner_only(user: User):
    owner, stranger = make_user(), make_user()
    add_generation(owner, "my own download")
    headers = _key(owner)
    export_id = (await user.http_client.post("/api/v1/exports", headers=headers)).json()["id"]
    await _ready(user, headers, export_id)
    path = f"/privacy/exports/{export_id}/download"
    anonymous = await user.http_client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin?next=")
    _cookie(user, stranger)
    assert (await user.http_client.get(path)).status_code == 404
    assert (await user.http_client.get(f"/privacy/exports/{UNKNOWN}/download")).status_code == 404
    _cookie(user, owner)
    response = await user.http_client.get(path)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as opened:
        assert "my own download" in opened.read("data/generation.json").decode()
    with clock.travel(timedelta(days=8)):
        _cookie(user, owner)  # signed in afresh: a week-old session may have ended
        expired = await user.http_client.get(path)
        assert expired.status_code == 410 and "expired" in expired.text
