"""What a page costs the server to keep: no polled bindings anywhere, and no element per thumbnail.

NiceGUI polls every binding whose source is a plain attribute (an "active link") ten times a second, for as long
as the page is open; bindable properties propagate on change instead. Every page is opened here, as a signed-in
administrator with images, and must leave no active link behind. The gallery and the studio must cost the same
number of elements whatever the number of images shown: the tiles are data of one grid element each.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from nicegui import Client, binding
from nicegui.testing import User

from rupali.models import Role
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in
from tests.utils.tiles import wait_for_tiles


def _page_paths(user_id: str) -> list[str]:
    """Every page the app registers; a path parameter names the administrator's own account."""
    paths = sorted(set(Client.page_routes.values()))
    return [re.sub(r"\{[^}]+\}", user_id, path) for path in paths]


def _active_links_of(user: User) -> list[tuple[object, ...]]:
    assert user.client is not None
    elements = {id(element) for element in user.client.elements.values()}
    return [link for link in binding.active_links if id(link[0]) in elements or id(link[2]) in elements]


async def test_no_page_leaves_a_polled_binding(user: User):
    admin = make_user(email="boss@example.com", role=Role.ADMIN)
    add_generation(admin, "a lighthouse on a cliff", images=3)
    await sign_in(user, admin.email)
    paths = _page_paths(str(admin.id))
    assert {"/gallery", "/studio", "/billing", "/privacy", "/admin", "/legal/privacy"} <= set(paths), paths
    polled: dict[str, int] = {}
    for path in paths:
        await user.open(path)
        await asyncio.sleep(0.2)  # content built once the page is connected (the studio's results) included
        if links := _active_links_of(user):
            polled[path] = len(links)
    assert polled == {}


def _element_count(user: User) -> int:
    assert user.client is not None
    return len(user.client.elements)


@pytest.mark.parametrize("path", ["/gallery", "/studio"])
async def test_more_images_add_no_elements(user: User, path: str):
    owner = make_user()
    add_generation(owner, "a single fox", images=1)
    await sign_in(user, owner.email)
    await user.open(path)
    await wait_for_tiles(user, 1)
    few = _element_count(user)

    for index in range(3):  # 12 more images in three more generations: a studio card per generation
        add_generation(owner, f"a lighthouse {index}", images=4)
    await user.open(path)
    await wait_for_tiles(user, 13)
    many = _element_count(user)
    per_generation = 0 if path == "/gallery" else (many - few) / 3
    assert path == "/studio" or many == few, (few, many)
    # A studio card holds the prompt, its buttons and thumbs, and one grid, whatever its number of images.
    assert per_generation <= 16, (few, many)
