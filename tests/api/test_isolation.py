"""Nobody reaches another person's things: every route that takes an id is checked for a stranger and for an
anonymous visitor. A new route with an id parameter fails ``test_every_id_route_is_covered`` until it is added to
``OWNED_ROUTES`` (and so checked here)."""

from __future__ import annotations

import io
import re

import pytest
from nicegui import app
from nicegui.testing import User
from PIL import Image as PILImage
from starlette.routing import Mount, Route

from rupali import runtime
from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE, STATIC_PREFIXES
from rupali.models import CreditOrder, OrderStatus
from rupali.services import api_keys, exports, profile, sessions, uploads, users
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user

# (method, path) -> the kind of the first user's id it takes
OWNED_ROUTES = {
    ("GET", "/media/images/{image_id}"): "image",
    ("GET", "/media/thumbnails/{image_id}"): "image",
    ("GET", "/media/uploads/{upload_id}"): "upload",
    ("GET", "/media/zip/{ticket}"): "ticket",
    ("GET", "/media/avatar/{user_id}"): "user",
    ("GET", "/api/v1/generations/{generation_id}"): "generation",
    ("POST", "/api/v1/generations/{generation_id}/cancel"): "generation",
    ("GET", "/api/v1/images/{image_id}"): "image",
    ("GET", "/api/v1/images/{image_id}/thumbnail"): "image",
    ("POST", "/api/v1/images/{image_id}/favourite"): "image",
    ("DELETE", "/api/v1/images/{image_id}"): "image",
    ("DELETE", "/api/v1/generations/{generation_id}"): "generation",
    ("GET", "/api/v1/exports/{export_id}"): "export",
    ("GET", "/api/v1/exports/{export_id}/download"): "export",
    ("GET", "/privacy/exports/{export_id}/download"): "export",
    ("GET", "/billing/receipts/{order_id}.pdf"): "order",
    ("GET", "/admin/users/{user_id}"): "user",  # administrators only: tests/api/test_admin_routes.py
    ("GET", "/admin/users/{user_id}/evidence.zip"): "user",  # administrators only: tests/pages/test_admin_holds.py
    ("GET", "/admin/moderation/thumbnails/{image_id}"): "image",  # administrators only: test_admin_moderation.py
}
BODIES = {"/api/v1/images/{image_id}/favourite": {"favourite": True}}


def _id_routes() -> set[tuple[str, str]]:
    found = set()

    def walk(routes: list, prefix: str = "") -> None:
        for route in routes:
            if isinstance(route, Mount) and route.routes:
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route) and "{" in route.path and not route.path.startswith(
                    (*STATIC_PREFIXES, "/_nicegui")):
                found.update((method, prefix + route.path) for method in route.methods or {"GET"}
                             if method not in {"HEAD", "OPTIONS"})

    walk(app.routes)
    return found


def _owner_things() -> dict[str, str]:
    owner = make_user(email="owner@example.com")
    generation, images = add_generation(owner, "the owner's private prompt")
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), (1, 2, 3)).save(buffer, "PNG")
    storage = runtime.current().storage
    with session_scope() as session:
        upload = uploads.store(session, storage, get_settings(), owner, buffer.getvalue())
        profile.set_avatar(session, storage, session.merge(owner), buffer.getvalue())
    ticket = runtime.current().downloads.issue(owner.id, [images[0].id])
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), session.get(type(owner), owner.id))
    assert exports.build(get_settings(), export.id)
    with session_scope() as session:  # a paid order, which has a receipt
        order = CreditOrder(user_id=owner.id, pack_key="starter", product_id="prod_starter", label="Starter",
                            credits=100, amount=500, currency="EUR", status=OrderStatus.PAID, paid_at=now(),
                            customer_email="owner@example.com")
        session.add(order)
        session.flush()
        order_id = str(order.id)
    return {"image": str(images[0].id), "generation": str(generation.id), "upload": str(upload.id),
            "ticket": ticket, "user": str(owner.id), "export": str(export.id), "order": order_id}


def _sign_in_cookie(user: User, email: str) -> None:
    stranger = make_user(email=email)
    with session_scope() as session:
        code = sessions.start(session, get_settings(), stranger, method="password", ip="", user_agent="",
                              visitor_id="x")
        token = sessions.complete_handoff(session, code, "x")
    user.http_client.cookies.set(AUTH_COOKIE, token)


async def test_every_id_route_is_covered(user: User):
    assert _id_routes() == set(OWNED_ROUTES), "add new id routes to OWNED_ROUTES so their isolation is tested"


@pytest.mark.parametrize(("method", "path"), sorted(OWNED_ROUTES))
async def test_strangers_and_anonymous_visitors_cannot_reach_it(user: User, method: str, path: str):
    things = _owner_things()
    concrete = re.sub(r"\{[^}]+\}", things[OWNED_ROUTES[(method, path)]], path)
    body = BODIES.get(path)
    anonymous = await user.http_client.request(method, concrete, json=body, follow_redirects=False)
    assert (anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")) or \
        (path.startswith("/api/") and anonymous.status_code == 401), anonymous.status_code
    _sign_in_cookie(user, "stranger@example.com")
    stranger = await user.http_client.request(method, concrete, json=body, follow_redirects=False)
    assert stranger.status_code == 404, (method, concrete, stranger.status_code)
    assert b"private prompt" not in stranger.content
    with session_scope() as session:  # and an API key of the stranger's does no better
        stranger_account = users.by_email(session, "stranger@example.com")
        _, secret = api_keys.create(session, stranger_account, "probe")
    if path.startswith("/api/"):
        user.http_client.cookies.clear()
        keyed = await user.http_client.request(method, concrete, json=body,
                                               headers={"Authorization": f"Bearer {secret}"})
        assert keyed.status_code == 404


async def test_the_owner_does_reach_them(user: User):
    """The checks above mean something only if the same requests work for the owner."""
    things = _owner_things()
    with session_scope() as session:
        owner = users.by_email(session, "owner@example.com")
        code = sessions.start(session, get_settings(), owner, method="password", ip="", user_agent="",
                              visitor_id="o")
        user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "o"))
    for (method, path), kind in sorted(OWNED_ROUTES.items()):
        if method == "DELETE" or path.startswith("/admin"):  # the console is for administrators, not the owner
            continue
        response = await user.http_client.request(method, re.sub(r"\{[^}]+\}", things[kind], path),
                                                   json=BODIES.get(path))
        assert response.status_code == 200, (method, path, response.status_code)


async def test_pages_with_ids_in_the_query_show_nothing_of_anothers(user: User):
    things = _owner_things()
    _sign_in_cookie(user, "stranger@example.com")
    await user.open(f"/gallery?image={things['image']}")
    await user.should_see("That image does not exist or has expired.", retries=50)
    await user.should_not_see("the owner's private prompt")
    await user.open(f"/studio?use={things['generation']}")
    await user.should_not_see("the owner's private prompt")
    await user.open("/history")
    await user.should_see("No generations yet.", retries=50)
