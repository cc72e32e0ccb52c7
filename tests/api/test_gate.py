"""The auth gate, walked over every registered route."""

from __future__ import annotations

import re

from nicegui import app
from nicegui.testing import User
from starlette.routing import Mount, Route

from rupali.db import session_scope
from rupali.gate import API_PREFIX, PUBLIC_PATHS, STATIC_PREFIXES, is_public
from rupali.models import AuthSession
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

DUMMY = "00000000-0000-4000-8000-000000000000"


def _routes() -> dict[str, set[str]]:
    """Every HTTP route the app serves, mounted sub-apps included, with its methods (NiceGUI's machinery excluded)."""
    found: dict[str, set[str]] = {}

    def walk(routes: list, prefix: str = "") -> None:
        for route in routes:
            if isinstance(route, Mount) and route.routes:
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route) and not (prefix + route.path).startswith((*STATIC_PREFIXES, "/_nicegui")):
                found.setdefault(prefix + route.path, set()).update(route.methods or {"GET"})

    walk(app.routes)
    return found


async def test_every_route_is_either_allow_listed_or_refuses_anonymous_visitors(user: User):
    routes = _routes()
    assert {"/account", "/healthz", "/api/v1/generations"} <= set(routes)  # the app, API included, is built
    assert set(routes) >= PUBLIC_PATHS, f"allow-listed but not served: {PUBLIC_PATHS - set(routes)}"
    for path, methods in sorted(routes.items()):
        concrete = re.sub(r"\{[^}]+\}", DUMMY, path)
        for method in methods - {"HEAD", "OPTIONS"}:
            response = await user.http_client.request(method, concrete, follow_redirects=False)
            refused = (response.status_code == 303 and response.headers["location"].startswith("/signin?next=")) \
                or (path.startswith(API_PREFIX) and response.status_code == 401)
            if is_public(path):
                assert not refused, f"{method} {path} is allow-listed but refused an anonymous visitor"
                assert response.status_code < 500, f"{method} {path} answered {response.status_code}"
            else:
                assert refused, f"{method} {path} answered {response.status_code} to an anonymous visitor"


async def test_admin_pages_are_404_for_everyone_but_admins(user: User):
    make_user(role="admin", email="boss@example.com")
    member = make_user(email="member@example.com")
    await sign_in(user, member.email)
    assert (await user.http_client.get("/admin")).status_code == 404
    assert (await user.http_client.get("/account")).status_code == 200


async def test_admins_reach_the_admin_page(user: User):
    boss = make_user(role="admin", email="boss@example.com")
    await sign_in(user, boss.email)
    await user.open("/admin")
    await user.should_see("Accounts (1)")
    await user.should_see("boss@example.com")


async def test_a_revoked_sessions_cookie_no_longer_opens_anything(user: User):
    member = make_user()
    await sign_in(user, member.email)
    assert (await user.http_client.get("/account")).status_code == 200
    with session_scope() as session:
        for record in session.exec(AuthSession.__table__.select()).all():  # revoke from "another device"
            stored = session.get(AuthSession, record.id)
            stored.revoked_at = stored.created_at
    response = await user.http_client.get("/account", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/signin?next=%2Faccount"


async def test_a_forged_session_cookie_is_worthless(user: User):
    make_user()
    user.http_client.cookies.set("rupali_auth", "not-a-real-session-token")
    response = await user.http_client.get("/account", follow_redirects=False)
    assert response.status_code == 303


async def test_people_who_have_not_finished_onboarding_are_sent_to_welcome(user: User):
    pending = make_user(email="new@example.com")
    with session_scope() as session:
        stored = session.merge(pending)
        stored.age_confirmed_at = None
    await sign_in(user, pending.email)
    response = await user.http_client.get("/gallery", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/welcome"


async def test_the_next_parameter_cannot_leave_the_site(user: User):
    member = make_user()
    await sign_in(user, member.email, next_path="https://evil.example/steal")
    assert user.back_history[-1].startswith("/auth/complete")
    assert user.client.request.url.path == "/studio"
