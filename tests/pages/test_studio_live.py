"""The studio's cards of unfinished jobs, driven like a browser: each says which job it is (its prompt) and where it
stands, waiting or generating, and its Cancel button stops that job and no other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from nicegui import ui
from nicegui.testing import User, UserInteraction
from sqlmodel import select

from rupali.config import reset_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus
from tests.utils.factories import make_user
from tests.utils.runware_server import RunwareServer
from tests.utils.signin import sign_in

KEY = "rw-live-cards-key-1"
FIRST, SECOND = 'a "slow" lighthouse \\ at dusk', "a second harbour, waiting its turn"


@pytest.fixture
def slow_runware(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunwareServer]:
    with RunwareServer(api_key=KEY) as server:
        for name, value in {"RUPALI_RUNWARE_API_KEY": KEY, "RUPALI_RUNWARE_URL": server.url,
                            "RUPALI_RUNWARE_MODELS": "runware:100@1=FLUX.1 schnell",
                            "RUPALI_OFFLINE_GENERATOR": "false"}.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        server.delay_next(30.0, times=2, task_type="imageInference")
        yield server


def _card_of(user: User, prompt: str) -> ui.element:
    """The job card whose prompt line is ``prompt``."""
    assert user.client is not None
    [label] = [label for label in user.client.layout.descendants()
               if isinstance(label, ui.label) and "r-job-prompt" in label.classes and label.text == prompt]
    return next(element for element in label.ancestors() if "r-job" in element.classes)


async def _wait_for_card(user: User, prompt: str) -> None:
    for _ in range(100):
        try:
            _card_of(user, prompt)
            return
        except ValueError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"no card for {prompt!r}: {_texts(user.client.layout)}")


def _texts(card: ui.element) -> list[str]:
    return [element.text for element in card.descendants() if isinstance(element, ui.label)]


def _statuses() -> dict[str, str]:
    with session_scope() as session:
        return {generation.prompt: generation.status for generation in session.exec(select(Generation)).all()}


async def test_each_live_card_names_its_job_and_its_cancel_stops_only_that_job(slow_runware, user: User):
    await sign_in(user, make_user(onboarded=True).email)
    await user.open("/studio")
    for prompt in (FIRST, SECOND):
        user.find(kind=ui.textarea, content="Prompt").clear().type(prompt)
        user.find(kind=ui.button, content="Generate").click()
        await _wait_for_card(user, prompt)
    # One person runs one job at a time: the first generates, the second waits behind it; each card says which.
    for _ in range(100):
        first, second = _texts(_card_of(user, FIRST)), _texts(_card_of(user, SECOND))
        if any(text.startswith("Generating — ") for text in first) and "Waiting to start — you are next" in second:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError((first, second))
    assert first[0] == FIRST and second[0] == SECOND  # the prompt as text, quotes and backslash kept
    # Cancel the waiting one from its own card: only it ends; the running one keeps running.
    UserInteraction(user, {_cancel_of(user, SECOND)}, None).click()
    await user.should_see("Cancelled. Nothing was charged.", retries=100)
    assert _statuses() == {FIRST: GenerationStatus.RUNNING, SECOND: GenerationStatus.CANCELLED}
    assert any(text.startswith("Generating — ") for text in _texts(_card_of(user, FIRST)))
    UserInteraction(user, {_cancel_of(user, FIRST)}, None).click()
    for _ in range(100):
        if _statuses()[FIRST] == GenerationStatus.CANCELLED:
            break
        await asyncio.sleep(0.05)
    assert _statuses() == {FIRST: GenerationStatus.CANCELLED, SECOND: GenerationStatus.CANCELLED}


def _cancel_of(user: User, prompt: str) -> ui.button:
    card = _card_of(user, prompt)
    [button] = [button for button in user.find(kind=ui.button, content="Cancel").elements
                if card in button.ancestors()]
    return button
