"""Every administrator route, taken from the app's own route list: a signed-out visitor is sent to sign in (or gets
401 from the API), a signed-in member gets the same 404 as an unknown address, an administrator gets the page. A
route added later under /admin or /api/v1/admin is walked here without anyone listing it."""

from __future__ import annotations

import re

from nicegui.testing import User

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import ADMIN_PREFIXES, API_PREFIX, AUTH_COOKIE
from rupali.models import Role
from rupali.services import admin, sessions, users
from tests.api.test_gate import _routes
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user

KNOWN = {"/admin", "/admin/users", "/admin/users/{user_id}", "/admin/audit"}


def _admin_routes() -> dict[str, set[str]]:
    return {path: methods - {"HEAD", "OPTIONS"} for path, methods in _routes().items()
            if path.startswith(ADMIN_PREFIXES)}


def _cookie_for(user: User, email: str) -> None:
    with session_scope() as session:
        account = users.by_email(session, email)
        code = sessions.start(session, get_settings(), account, method="password", ip="", user_agent="",
                              visitor_id="walk")
        user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "walk"))


def _things() -> dict[str, str]:
    """A real value for each path parameter an admin route takes: the member's own things."""
    member = make_user(email="member@example.com")
    _, [image] = add_generation(member, "a lighthouse")
    return {"user_id": str(member.id), "image_id": str(image.id)}


async def _walk(user: User, things: dict[str, str]) -> dict[tuple[str, str], tuple[int, str, str]]:
    answers = {}
    for path, methods in sorted(_admin_routes().items()):
        names = re.findall(r"\{([^}:]+)[^}]*\}", path)
        assert set(names) <= set(things), f"{path}: add a value for {set(names) - set(things)} to _things()"
        concrete = re.sub(r"\{([^}:]+)[^}]*\}", lambda match: things[match.group(1)], path)
        for method in sorted(methods):
            response = await user.http_client.request(method, concrete, follow_redirects=False)
            answers[(method, path)] = (response.status_code, response.headers.get("location", ""), response.text)
    return answers


async def test_the_walk_covers_the_admin_console(user: User):
    assert set(_admin_routes()) >= KNOWN


async def test_signed_out_visitors_are_sent_to_sign_in(user: User):
    for (method, path), (status, location, _) in (await _walk(user, _things())).items():
        if path.startswith(API_PREFIX):
            assert status == 401, (method, path, status)
        else:
            assert status == 303 and location.startswith("/signin?next=%2Fadmin"), (method, path, status, location)


async def test_members_get_the_404_of_an_unknown_address(user: User):
    make_user(email="boss@example.com", role=Role.ADMIN)
    things = _things()
    _cookie_for(user, "member@example.com")
    for (method, path), (status, _, body) in (await _walk(user, things)).items():
        assert status == 404, (method, path, status)
        if not path.startswith(API_PREFIX):
            assert "This page does not exist" in body, (method, path)
            assert "member@example.com" not in body  # not even their own account's page


async def test_administrators_reach_every_admin_page(user: User):
    make_user(email="boss@example.com", role=Role.ADMIN)
    things = _things()
    _cookie_for(user, "boss@example.com")
    answers = await _walk(user, things)
    for path in KNOWN:
        assert answers[("GET", path)][0] == 200, path
    for (method, path), (status, _, _) in answers.items():
        if method == "GET" and "{" not in path:
            assert status == 200, (method, path, status)
        else:  # a route about one thing may want more than the thing (a file, a hold) yet: it is past the gate
            assert status not in (303, 401, 404) and status < 500, (method, path, status)


async def test_a_demoted_administrator_gets_404_at_the_next_request(user: User):
    make_user(email="boss@example.com", role=Role.ADMIN)
    second = make_user(email="second@example.com", role=Role.ADMIN)
    things = _things()
    _cookie_for(user, second.email)
    assert (await user.http_client.get("/admin/users")).status_code == 200
    with session_scope() as session:
        admin.change_role(session, users.by_email(session, "boss@example.com"), second.id, role="user",
                          reason="Left the team")
    for (method, path), (status, _, _) in (await _walk(user, things)).items():
        assert status == 404, (method, path, status)
