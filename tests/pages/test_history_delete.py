"""Deleting from the pages, through their controls: a generation from the history, and the gallery's offer to delete
the prompt with the last image of a generation."""

from __future__ import annotations

import asyncio
import uuid

from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from rupali import runtime
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Generation, Image
from rupali.storage import LocalStorage
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.running import running_generation
from tests.utils.signin import sign_in
from tests.utils.tiles import grid_of, send, wait_for_tiles


def _open_dialog(element: ui.element) -> ui.dialog | None:
    return next((parent for parent in element.ancestors() if isinstance(parent, ui.dialog) and parent.value), None)


async def _click(user: User, text: str, *, in_dialog: bool, newest: bool = False, retries: int = 100) -> None:
    """Click the button labelled exactly ``text``, inside an open dialog or on the page itself (the first one made,
    or with ``newest`` the last: a confirmation opened over a dialog)."""
    for _ in range(retries):
        try:
            candidates = user.find(kind=ui.button, content=text).elements
        except AssertionError:
            candidates = set()
        found = [button for button in candidates
                 if button.text == text and (_open_dialog(button) is not None) == in_dialog]
        if found:
            pick = max if newest else min
            UserInteraction(user, {pick(found, key=lambda button: button.id)}, None).click()
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no button {text!r} {'in a dialog' if in_dialog else 'on the page'}")


async def _dialog_text(user: User, fragment: str) -> None:
    for _ in range(100):
        labels = [label.text for label in user.find(kind=ui.label).elements if _open_dialog(label) is not None]
        if any(fragment in text for text in labels):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no open dialog says {fragment!r}")


def _generation_exists(generation_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return session.get(Generation, generation_id) is not None


async def _eventually(check, retries: int = 100) -> None:
    for _ in range(retries):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the change never happened")


# --- history -------------------------------------------------------------------------------------------------------

async def test_the_history_deletes_a_generation_after_confirmation(user: User):
    owner = make_user()
    doomed, images = add_generation(owner, "a prompt I regret", images=2)
    kept, _ = add_generation(owner, "a prompt I keep")
    await sign_in(user, owner.email)
    await user.open("/history")
    await user.should_see("a prompt I regret", retries=50)
    rows = {button.props.get("aria-label"): button for button in user.find(kind=ui.button, content="Delete").elements}
    assert set(rows) == {"Delete the generation “a prompt I regret”", "Delete the generation “a prompt I keep”"}
    UserInteraction(user, {rows["Delete the generation “a prompt I regret”"]}, None).click()
    await _dialog_text(user, "Its prompt, settings, its 2 images are deleted for good.")
    await _click(user, "Delete", in_dialog=True)
    await user.should_see("Generation deleted", retries=50)
    await user.should_not_see("a prompt I regret", retries=50)
    await user.should_see("a prompt I keep")
    assert not _generation_exists(doomed.id) and _generation_exists(kept.id)
    storage = LocalStorage.from_settings(get_settings())
    assert not any(storage.exists(image.original_key) or storage.exists(image.thumbnail_key) for image in images)


async def test_cancelling_the_confirmation_deletes_nothing(user: User):
    owner = make_user()
    generation, _ = add_generation(owner, "second thoughts")
    await sign_in(user, owner.email)
    await user.open("/history")
    await user.should_see("second thoughts", retries=50)
    await _click(user, "Delete", in_dialog=False)
    await _dialog_text(user, "Delete this generation?")
    await _click(user, "Cancel", in_dialog=True)
    await asyncio.sleep(0.3)
    await user.should_see("second thoughts")
    assert _generation_exists(generation.id)


async def test_a_running_generation_is_not_deleted_and_the_page_says_why(user: User):
    owner = make_user()
    await sign_in(user, owner.email)
    generation_id = await running_generation(owner)
    await user.open("/history")
    await user.should_see("still being drawn", retries=50)
    await _click(user, "Delete", in_dialog=False)
    await _click(user, "Delete", in_dialog=True)
    await user.should_see("These images are still being made. Cancel the generation first, then delete it.",
                          retries=50)
    assert _generation_exists(generation_id)
    await runtime.current().queue.cancel(owner.id, generation_id)  # and let it stop before the test ends
    for _ in range(400):
        if runtime.current().queue.state(generation_id) is None:
            break
        await asyncio.sleep(0.05)


# --- the gallery's offer ---------------------------------------------------------------------------------------------

async def _delete_in_detail(user: User, image: Image) -> None:
    await user.open(f"/gallery?image={image.id}")
    await user.should_see("Image details", retries=50)
    await _click(user, "Delete", in_dialog=True)  # the detail dialog's toolbar
    await _dialog_text(user, "Delete this image?")
    await _click(user, "Delete", in_dialog=True, newest=True)  # the confirmation, opened over the detail


async def test_deleting_the_last_image_of_a_generation_offers_to_delete_its_prompt(user: User):
    owner = make_user()
    generation, [image] = add_generation(owner, "a lonely lighthouse")
    await sign_in(user, owner.email)
    await _delete_in_detail(user, image)
    await _dialog_text(user, "That was the last image of its generation. Also delete its prompt and settings?")
    await _click(user, "Also delete the prompt", in_dialog=True)
    await user.should_see("Prompt deleted", retries=50)
    assert not _generation_exists(generation.id)


async def test_keeping_the_prompt_keeps_the_generation_in_the_history(user: User):
    owner = make_user()
    generation, [image] = add_generation(owner, "keep my words")
    await sign_in(user, owner.email)
    await _delete_in_detail(user, image)
    await _dialog_text(user, "That was the last image of its generation.")
    await _click(user, "Keep", in_dialog=True)
    await asyncio.sleep(0.3)
    assert _generation_exists(generation.id)
    with session_scope() as session:
        assert session.get(Image, image.id) is None


async def test_no_offer_while_the_generation_still_has_images(user: User):
    owner = make_user()
    generation, images = add_generation(owner, "two of a kind", images=2)
    await sign_in(user, owner.email)
    await _delete_in_detail(user, images[0])
    await user.should_see("Image deleted", retries=50)
    await asyncio.sleep(0.5)
    assert not [label for label in user.find(kind=ui.label).elements
                if _open_dialog(label) is not None and "last image" in label.text]
    assert _generation_exists(generation.id)


async def test_a_bulk_delete_that_empties_generations_offers_to_delete_their_prompts(user: User):
    owner = make_user()
    first, first_images = add_generation(owner, "first pair", images=2)
    second, second_images = add_generation(owner, "second single")
    third, third_images = add_generation(owner, "third pair", images=2)
    await sign_in(user, owner.email)
    await user.open("/gallery")
    await user.should_see("Select", retries=50)
    user.find(kind=ui.switch, content="Select").click()
    chosen = [*first_images, *second_images, third_images[0]]
    await wait_for_tiles(user, 5)
    grid = grid_of(user, chosen[0].id)
    for count in range(1, len(chosen) + 1):  # the grid reports the whole selection at every tick
        send(user, grid, "select", {"ids": [str(image.id) for image in chosen[:count]]})
    await user.should_see("4 selected", retries=50)
    await _click(user, "Delete", in_dialog=False)
    await _dialog_text(user, "Delete 4 images?")
    await _click(user, "Delete 4", in_dialog=True)
    await _dialog_text(user, "2 generations have no images left.")
    await _click(user, "Also delete 2 prompts", in_dialog=True)
    await user.should_see("2 prompts deleted", retries=50)
    await _eventually(lambda: not _generation_exists(first.id))
    assert not _generation_exists(second.id) and _generation_exists(third.id)
