"""API key scopes and expiry: declared on every route, enforced per route, shown and chosen on the account page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from babel import Locale
from fastapi.routing import APIRoute
from nicegui import app, ui
from nicegui.testing import User
from sqlmodel import select

from components.choice_group import ChoiceGroup
from rupali import api, clock, dates, gate
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import ApiKey, ApiKeyScope, Generation, Image
from rupali.services import api_keys, exports, sessions
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

READ, GENERATE = ApiKeyScope.READ, ApiKeyScope.GENERATE
# Every API route and the scope it needs. A new route fails test_every_api_route_declares_its_scope until it is
# declared in the code and listed here, so the choice is made on purpose. The ZIP download is a POST only
# because a list of ids does not fit a URL: it reads, so read keys may use it.
SCOPES = {
    ("GET", "/v1/models"): READ,
    ("POST", "/v1/generations"): GENERATE,
    ("GET", "/v1/generations"): READ,
    ("GET", "/v1/generations/{generation_id}"): READ,
    ("POST", "/v1/generations/{generation_id}/cancel"): GENERATE,
    ("GET", "/v1/images"): READ,
    ("POST", "/v1/images/{image_id}/favourite"): GENERATE,
    ("DELETE", "/v1/images/{image_id}"): GENERATE,
    ("POST", "/v1/images/zip"): READ,
    ("GET", "/v1/images/{image_id}"): READ,
    ("GET", "/v1/images/{image_id}/thumbnail"): READ,
    # An export only reads the person's own data (mailed links' codes are removed from it): read keys may.
    ("POST", "/v1/exports"): READ,
    ("GET", "/v1/exports/{export_id}"): READ,
    ("GET", "/v1/exports/{export_id}/download"): READ,
    # Last, so that in the walk below the image is deleted before its generation.
    ("DELETE", "/v1/generations/{generation_id}"): GENERATE,
}
# Open to anyone, without a key (also in rupali.gate.PUBLIC_PATHS): checking an image's Content Credentials.
PUBLIC = {("POST", "/v1/verify")}
# Answers other than 200 that mean success.
ACCEPTED = {("POST", "/v1/exports"): 202}
BODY = {"prompt": "a lighthouse on a cliff at golden hour", "model": "offline:sketch-v1", "width": 512,
        "height": 512, "count": 1, "seed": 7}


def api_routes() -> list[APIRoute]:
    """The REST API's own routes, as mounted under /api (the docs' HTML and assets are not API operations)."""
    # The first mount is the one requests reach (the test app gains another each time a test builds it).
    mount = next(route for route in app.routes if getattr(route, "path", None) == "/api")
    return [route for route in mount.routes if isinstance(route, APIRoute) and route.include_in_schema]


def _key(person, scope: ApiKeyScope, **options) -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, person, f"{scope} key", scope=scope, **options)
    return {"Authorization": f"Bearer {secret}"}


def _ready_export(person) -> str:
    """A finished export made a day and more ago: downloadable, and a new one may be asked for."""
    with clock.travel(timedelta(hours=-25)):
        with session_scope() as session:
            export = exports.request_export(session, get_settings(), session.get(type(person), person.id))
        assert exports.build(get_settings(), export.id)
    return str(export.id)


def _request(route_key: tuple[str, str], image_id: str, generation_id: str,
             export_id: str = "") -> tuple[str, str, dict | None]:
    method, path = route_key
    concrete = "/api" + path.replace("{image_id}", image_id).replace("{generation_id}", generation_id).replace(
        "{export_id}", export_id)
    body = {"/v1/generations": BODY, "/v1/images/zip": {"ids": [image_id]},
            "/v1/images/{image_id}/favourite": {"favourite": True}}.get(path) if method != "GET" else None
    return method, concrete, body


async def test_every_api_route_declares_its_scope(user: User):
    declared = {(method, route.path): api.scope_of(route) for route in api_routes() for method in route.methods}
    assert {key for key, scope in declared.items() if scope is None} == PUBLIC, "routes without a scope"
    assert {key: scope for key, scope in declared.items() if scope is not None} == SCOPES
    assert all("/api" + path in gate.PUBLIC_PATHS for _, path in PUBLIC)


async def test_read_keys_may_only_read(user: User):
    owner = make_user()
    generation, images = add_generation(owner, "a private prompt")
    export_id = _ready_export(owner)
    headers = _key(owner, READ)
    for route_key, scope in SCOPES.items():
        method, path, body = _request(route_key, str(images[0].id), str(generation.id), export_id)
        response = await user.http_client.request(method, path, json=body, headers=headers)
        if scope is GENERATE:
            assert response.status_code == 403, (route_key, response.status_code)
            assert response.json() == {"detail": "This API key may only read. Starting generations and changing "
                                                  "images needs a key that may also generate: create one on your "
                                                  "account page."}
            assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="generate"'
        else:
            expected = ACCEPTED.get(route_key, 200)
            assert response.status_code == expected, (route_key, response.status_code, response.text[:200])
    with session_scope() as session:  # and nothing was changed on the way
        [image] = session.exec(select(Image)).all()
        assert not image.favourite
        assert [g.id for g in session.exec(select(Generation)).all()] == [generation.id]


@pytest.mark.parametrize("who", ["generate key", "browser session"])
async def test_generate_keys_and_the_browser_session_may_do_everything(user: User, who: str):
    owner = make_user()
    generation, images = add_generation(owner, "a private prompt")
    export_id = _ready_export(owner)
    headers: dict[str, str] = {}
    if who == "generate key":
        headers = _key(owner, GENERATE)
    else:
        with session_scope() as session:
            code = sessions.start(session, get_settings(), owner, method="password", ip="", user_agent="",
                                  visitor_id="v")
            user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "v"))
    # The DELETE goes last: until then the image is there for every other route.
    for route_key in sorted(SCOPES, key=lambda key: key[0] == "DELETE"):
        method, path, body = _request(route_key, str(images[0].id), str(generation.id), export_id)
        response = await user.http_client.request(method, path, json=body, headers=headers)
        assert response.status_code in {200, 202, 204}, (route_key, response.status_code, response.text[:200])


async def test_an_expired_key_is_refused_like_an_unknown_one(user: User):
    person = make_user()
    headers = _key(person, GENERATE, expires_in_days=1)
    assert (await user.http_client.get("/api/v1/generations", headers=headers)).status_code == 200
    unknown = await user.http_client.get("/api/v1/generations", headers={"Authorization": "Bearer rk_unknown"})
    with clock.travel(timedelta(days=1, seconds=1)):
        expired = await user.http_client.get("/api/v1/generations", headers=headers)
        created = await user.http_client.post("/api/v1/generations", json=BODY, headers=headers)
    assert expired.status_code == created.status_code == unknown.status_code == 401
    assert expired.json() == created.json() == unknown.json()


# --- the account page ----------------------------------------------------------------------------------------------


def _choice(user: User, label: str) -> ChoiceGroup:
    [group] = [element for element in user.find(kind=ChoiceGroup).elements if element.props["label"] == label]
    return group


async def _create_on_page(user: User, name: str, scope: str, expiry: str) -> str:
    user.find(kind=ui.input, content="Name of the new key").type(name)
    with user.client:
        _choice(user, "Access").set_value(scope)
        _choice(user, "Expires after").set_value(expiry)
    user.find(kind=ui.button, content="Create key").click()
    await user.should_see("Your new API key", retries=50)
    [secret] = [element.value for element in user.find(kind=ui.input).elements
                if str(element.value).startswith(api_keys.PREFIX)]
    return secret


async def test_the_account_page_creates_a_read_only_key_with_an_expiry_and_lists_both(user: User):
    person = make_user()
    user.http_client.headers["Accept-Language"] = "en-GB"
    await sign_in(user, person.email)
    await user.open("/account")
    await user.should_see("No keys yet.")
    assert _choice(user, "Access").options == {"generate": "Read and generate", "read": "Read only"}
    assert list(_choice(user, "Expires after").options.values()) == ["7 days", "30 days", "90 days", "1 year",
                                                                     "Never"]
    secret = await _create_on_page(user, "backup script", "read", "30")
    with session_scope() as session:
        [key] = session.exec(select(ApiKey)).all()
    assert key.scope == "read" and key.expires_at == key.created_at + timedelta(days=30)
    expires = dates.medium(key.expires_at.date(), Locale.parse("en_GB"))
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}", expires)  # "12 Jan 2027", the visitor's format
    await user.should_see(f"It may read only and expires on {expires}.")
    await user.should_see(f"{key.prefix}… · read only · expires {expires} · created")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await user.http_client.get("/api/v1/models", headers=bearer)).status_code == 200
    assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=bearer)).status_code == 403


async def test_the_account_page_creates_keys_that_never_expire_and_shows_expired_ones(user: User):
    person = make_user()
    user.http_client.headers["Accept-Language"] = "en-GB"
    with clock.travel(-timedelta(days=10)), session_scope() as session:  # made 10 days ago, for 7 days
        old, _ = api_keys.create(session, person, "old laptop", scope=GENERATE, expires_in_days=7)
    await sign_in(user, person.email)
    await user.open("/account")
    secret = await _create_on_page(user, "render farm", "generate", "never")
    await user.should_see("It may read and generate and never expires.")
    await user.should_see("read and generate · never expires")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=bearer)).status_code == 202
    await user.should_see(f"{old.prefix}… · read and generate · expired "
                          f"{dates.medium(old.expires_at.date(), Locale.parse('en_GB'))}")
