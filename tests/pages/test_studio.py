"""The studio page, driven like a browser: generate, watch, reuse, and the limits of what one person can see."""

from __future__ import annotations

import asyncio
import io

from nicegui import ui
from nicegui.testing import User
from PIL import Image as PILImage
from sqlalchemy import event
from sqlmodel import select

from rupali import runtime
from rupali.db import get_engine, session_scope, transact
from rupali.models import Generation, GenerationStatus, Image
from rupali.services import uploads
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in
from tests.utils.tiles import grid_of, send, shown, wait_for_tiles


async def _generate(user: User, prompt: str) -> None:
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type(prompt)
    user.find(kind=ui.button, content="Generate").click()


async def _wait_for_generation(status: GenerationStatus = GenerationStatus.SUCCEEDED) -> Generation:
    for _ in range(400):
        with session_scope() as session:
            generation = session.exec(select(Generation)).first()
            if generation is not None and generation.finished:
                assert generation.status == status, generation.error
                return generation
        await asyncio.sleep(0.05)
    raise AssertionError("no generation finished")


async def test_generate_in_the_studio_and_see_the_images(user: User):
    await sign_in(user, make_user().email)
    await _generate(user, "a teal lighthouse in the fog")
    generation = await _wait_for_generation()
    with session_scope() as session:
        image = session.exec(select(Image)).one()
    await wait_for_tiles(user, lambda _: image.id in shown(user))
    await user.should_see(f"seed {generation.seed}", retries=50)
    assert (await user.http_client.get(f"/media/images/{image.id}")).status_code == 200


async def test_the_studio_labels_the_offline_generator_as_not_ai(user: User):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    await user.should_see("Draws procedural sketches on this server. It is not AI and sends nothing anywhere.")
    await user.should_see("Cost: free")


async def test_a_hostile_prompt_gets_a_message_and_nothing_is_stored(user: User):
    await sign_in(user, make_user().email)
    await _generate(user, "x" * 5000)
    await user.should_see("The prompt is 5000 characters long; the limit is 2000.", retries=50)
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []


async def test_another_persons_images_and_parameters_stay_theirs(user: User):
    owner = make_user(email="owner@example.com")
    await sign_in(user, owner.email)
    await _generate(user, "my secret prompt about a violet castle")
    generation = await _wait_for_generation()
    with session_scope() as session:
        image = session.exec(select(Image)).one()
    # A real image-to-image source of the owner's, stored the way the studio's upload handler stores it.
    source = io.BytesIO()
    PILImage.new("RGB", (64, 48), (120, 30, 160)).save(source, "PNG")
    current = runtime.current()
    upload = transact(uploads.store, current.storage, current.settings, owner, source.getvalue())
    paths = (f"/media/images/{image.id}", f"/media/thumbnails/{image.id}", f"/media/uploads/{upload.id}")
    for path in paths:  # the owner can fetch each one, so the 404s below are about who asks, not the id
        assert (await user.http_client.get(path)).status_code == 200, path
    await user.http_client.post("/auth/signout")
    await sign_in(user, make_user(email="other@example.com").email)
    for path in paths:
        assert (await user.http_client.get(path)).status_code == 404, path
    await user.open(f"/studio?use={generation.id}")
    await user.should_not_see("my secret prompt about a violet castle")


async def test_a_result_is_favourited_and_its_seed_reused_from_its_tile(user: User):
    owner = make_user()
    _, [first, second] = add_generation(owner, "a copper kettle", images=2)
    await sign_in(user, owner.email)
    await user.open("/studio")
    await wait_for_tiles(user, 2)
    grid = grid_of(user, second.id)
    send(user, grid, "favourite", {"id": str(second.id), "value": True})  # the heart on the second tile

    def favourite() -> bool:
        with session_scope() as session:
            return session.get(Image, second.id).favourite

    for _ in range(100):
        if favourite() and next(t for t in grid.tiles if t["id"] == str(second.id))["favourite"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the favourite was not saved")

    send(user, grid, "use", {"id": str(second.id)})  # "use these parameters with this seed"
    await user.should_see("Parameters loaded into the form", retries=50)
    [seed] = user.find(kind=ui.number, content="Seed").elements
    assert seed.value == second.seed != first.seed


async def test_the_form_goes_out_before_anything_of_the_person_s_is_read(user: User):
    """The GET reads no generation, image, feedback or credit row; the seed hint and the recent results follow
    over the live connection once the page is open."""
    person = make_user()
    generation, _ = add_generation(person, "a lantern over the river", images=2)
    await sign_in(user, person.email)
    # Signing in lands on the studio; let that page finish its own reads so they are not counted as this GET's.
    await user.should_see("a lantern over the river", retries=50)
    statements: list[str] = []

    def heard(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement.lower())

    event.listen(get_engine(), "before_cursor_execute", heard)
    try:
        response = await user.http_client.get("/studio")
    finally:
        event.remove(get_engine(), "before_cursor_execute", heard)
    assert response.status_code == 200
    tables = ("generation", "image", "feedback", "credit_")
    assert not [statement for statement in statements
                if any(f"from {table}" in statement or f"join {table}" in statement for table in tables)]

    await user.open("/studio")
    await user.should_see("a lantern over the river", retries=50)
    [seed] = user.find(kind=ui.number, content="Seed").elements
    for _ in range(50):
        if seed.props.get("hint") == f"Last used: {generation.seed}":
            break
        await asyncio.sleep(0.05)
    assert seed.props["hint"] == f"Last used: {generation.seed}"
