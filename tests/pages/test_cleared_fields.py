"""Every field accepts being cleared (Quasar's clear button sets it to None) and being empty: the page keeps
working, and what cannot be used is explained under the field. Driven through the controls with the simulated
browser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from nicegui import app, ui
from nicegui.testing import User
from sqlmodel import select

from components.choice_group import ChoiceGroup
from rupali.clock import now
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in
from tests.utils.tiles import wait_for_tiles


@pytest.fixture
def errors(user: User) -> Iterator[list[Exception]]:
    """Exceptions raised by any handler while the test runs (NiceGUI would only log them)."""
    caught: list[Exception] = []
    app.on_exception(caught.append)
    yield caught
    assert caught == [], caught


async def _wait_for_thumbnails(user: User, count: int) -> None:
    await wait_for_tiles(user, count, timeout=5)


def _field(user: User, kind: type, label: str) -> ui.element:
    [element] = user.find(kind=kind, content=label).elements
    return element


# --- gallery --------------------------------------------------------------------------------------------------


async def test_clearing_the_search_brings_the_images_back(user: User, errors: list[Exception]):
    owner = make_user()
    add_generation(owner, "a violet castle at dawn")
    await sign_in(user, owner.email)
    await user.open("/gallery")
    await _wait_for_thumbnails(user, 1)

    user.find(kind=ui.input, content="Search prompts").type("zebra")
    await user.should_see("No images match “zebra”.", retries=50)
    await user.should_see("Clear filters")
    await _wait_for_thumbnails(user, 0)

    user.find(kind=ui.input, content="Search prompts").clear()  # the clear button of the input: the value is None
    await _wait_for_thumbnails(user, 1)
    await user.should_not_see("No images match")


async def test_clearing_every_gallery_filter_keeps_the_grid(user: User, errors: list[Exception]):
    owner = make_user()
    add_generation(owner, "a teal lighthouse")
    await sign_in(user, owner.email)
    await user.open("/gallery")
    await _wait_for_thumbnails(user, 1)
    for kind, label in ((ui.input, "Search prompts"), (ui.select, "Model"), (ui.select, "Order"),
                        (ui.input, "From"), (ui.input, "To")):
        user.find(kind=kind, content=label).clear()
        await asyncio.sleep(0.1)
        await _wait_for_thumbnails(user, 1)


async def test_a_date_filter_that_matches_nothing_offers_to_clear_the_filters(user: User, errors: list[Exception]):
    owner = make_user()
    add_generation(owner, "an orange kite")
    await sign_in(user, owner.email)
    user.http_client.headers["accept-language"] = "en-GB,en;q=0.9"  # a British browser
    await user.open("/gallery")
    await _wait_for_thumbnails(user, 1)

    tomorrow = (now() + timedelta(days=1)).date()
    user.find(kind=ui.input, content="From").click()  # the calendar is built when first opened
    [from_calendar] = user.find(kind=ui.date).elements
    with user.client:
        from_calendar.set_value(tomorrow.isoformat())  # a day picked in the From calendar
    await user.should_see("No images match these filters.", retries=50)
    assert _field(user, ui.input, "From").value == f"{tomorrow.day} {tomorrow:%b} {tomorrow.year}"  # 28 Nov 2026
    assert from_calendar.props["first-day-of-week"] == 1  # weeks start on Monday there

    user.find(kind=ui.button, content="Clear filters").click()
    await _wait_for_thumbnails(user, 1)
    assert _field(user, ui.input, "From").value == ""


# --- studio ---------------------------------------------------------------------------------------------------


async def _wait_for_generation() -> Generation:
    for _ in range(400):
        with session_scope() as session:
            generation = session.exec(select(Generation)).first()
            if generation is not None and generation.finished:
                return generation
        await asyncio.sleep(0.05)
    raise AssertionError("no generation finished")


async def test_a_cleared_prompt_is_explained_under_the_field(user: User, errors: list[Exception]):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type("a quiet harbour")
    user.find(kind=ui.textarea, content="Prompt").clear()
    user.find(kind=ui.button, content="Generate").click()
    for _ in range(50):
        if _field(user, ui.textarea, "Prompt").error:
            break
        await asyncio.sleep(0.05)
    assert _field(user, ui.textarea, "Prompt").error == "Describe the image you want in the prompt."
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []

    # Typing again removes the message.
    user.find(kind=ui.textarea, content="Prompt").type("a quiet harbour")
    await asyncio.sleep(0.05)
    assert _field(user, ui.textarea, "Prompt").error is None


async def test_cleared_steps_guidance_and_seed_mean_the_models_defaults(user: User, errors: list[Exception]):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type("a quiet harbour at dawn")
    [negative] = user.find(kind=ui.expansion, content="Negative prompt").elements
    with user.client:
        negative.open()  # its field is built when the person opens it
    for label in ("Steps", "Guidance", "Seed", "Things to avoid"):
        user.find(content=label).clear()
    user.find(kind=ui.button, content="Generate").click()
    generation = await _wait_for_generation()
    assert generation.status == GenerationStatus.SUCCEEDED, generation.error
    assert (generation.steps, generation.guidance, generation.negative_prompt) == (20, 7.0, "")


async def test_a_cleared_custom_width_is_explained_under_the_field(user: User, errors: list[Exception]):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type("a quiet harbour at dawn")
    [aspect] = [element for element in user.find(kind=ChoiceGroup).elements if element.props["label"] == "Aspect ratio"]
    with user.client:
        aspect.set_value("custom")  # the "Custom" button of the aspect toggle
    await user.should_see("Width", retries=20)
    user.find(kind=ui.number, content="Width").clear()
    user.find(kind=ui.button, content="Generate").click()
    for _ in range(50):
        if _field(user, ui.number, "Width").error:
            break
        await asyncio.sleep(0.05)
    assert _field(user, ui.number, "Width").error == (
        "0x1024 is not a size Offline sketch (not AI) can make: use 64–2048 pixels per side, in steps of 8.")
    with session_scope() as session:
        assert session.exec(select(Generation)).all() == []
