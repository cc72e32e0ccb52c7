"""The gallery page with the simulated browser: empty state, one image, a filtered miss, history."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User

from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in
from tests.utils.tiles import grids, send, wait_for_tiles


async def test_an_empty_gallery_points_to_the_studio(user: User):
    await sign_in(user, make_user().email)
    await user.open("/gallery")
    await user.should_see("Your gallery is empty", retries=50)
    await user.should_see("Open the studio")


async def test_one_image_and_a_search_that_finds_nothing(user: User):
    owner = make_user()
    add_generation(owner, "a violet castle at dawn")
    await sign_in(user, owner.email)
    await user.open("/gallery")
    await wait_for_tiles(user, 1)
    user.find(kind=ui.input, content="Search prompts").type("zebra")
    await user.should_see("No images match “zebra”.", retries=50)
    await user.should_see("Clear filters")


async def test_history_shows_failed_generations_with_their_reason(user: User):
    from rupali.db import session_scope
    from rupali.models import Generation, GenerationStatus

    owner = make_user()
    with session_scope() as session:
        session.add(Generation(user_id=owner.id, status=GenerationStatus.FAILED, provider="runware", model="m",
                               prompt="a storm", width=8, height=8, steps=1, guidance=1, count=1, seed=1,
                               error="The image service is not available right now."))
    await sign_in(user, owner.email)
    await user.open("/history")
    await user.should_see("The image service is not available right now.", retries=50)
    await user.should_see("Failed")


async def test_filtering_is_announced_to_screen_readers(user: User):
    owner = make_user()
    add_generation(owner, "a violet castle at dawn", images=3)
    await sign_in(user, owner.email)
    await user.open("/gallery")
    [region] = [label for label in user.find(kind=ui.label).elements if label.props.get("role") == "status"]
    assert region.props["aria-live"] == "polite" and region.text == ""  # the first view is not announced
    user.find(kind=ui.input, content="Search prompts").type("zebra")
    for _ in range(100):
        if region.text:
            break
        await asyncio.sleep(0.05)
    assert region.text == "No images match “zebra”."
    user.find(kind=ui.input, content="Search prompts").clear()
    for _ in range(100):
        if region.text != "No images match “zebra”.":
            break
        await asyncio.sleep(0.05)
    assert region.text == "3 images shown."


async def test_scrolling_to_the_end_appends_the_next_page(user: User):
    owner = make_user()
    for index in range(13):
        add_generation(owner, f"a lantern {index}", images=5)  # 65 images: one page of 60, then 5 more
    await sign_in(user, owner.email)
    await user.open("/gallery")
    first = await wait_for_tiles(user, 60)
    [grid] = grids(user)
    assert grid.props["more"] is True
    send(user, grid, "more")  # what the grid emits when its end comes into view
    every = await wait_for_tiles(user, 65)
    assert every[:60] == first and len(set(every)) == 65
    assert grid.props["more"] is False


async def test_a_tile_opens_its_image_and_another_persons_id_opens_nothing(user: User):
    owner, other = make_user(), make_user()
    _, [own] = add_generation(owner, "a violet castle at dawn")
    _, [foreign] = add_generation(other, "someone else's secret")
    await sign_in(user, owner.email)
    await user.open("/gallery")
    await wait_for_tiles(user, 1)
    [grid] = grids(user)
    for hostile in ({"id": str(foreign.id)}, {"id": "not-a-uuid\x00'\""}, {"id": 5}, {}):
        send(user, grid, "open", hostile)
        send(user, grid, "select", {"ids": [str(foreign.id), "\ud800", None]})
    await asyncio.sleep(0.2)
    await user.should_not_see("Image details")
    await user.should_not_see("someone else's secret")
    await user.should_not_see("selected")
    send(user, grid, "open", {"id": str(own.id)})
    await user.should_see("Image details", retries=50)
    await user.should_see("a violet castle at dawn")
