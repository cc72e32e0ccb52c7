"""The studio over the abuse limits: a clear message next to Generate, the form exactly as typed, no generation —
and the same window for the studio and the API. Time moves with the clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali import clock
from rupali.config import reset_settings
from rupali.db import session_scope
from rupali.models import ApiKeyScope, Generation
from rupali.services import api_keys
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

TOO_QUICK = "You are starting generations too quickly. Try again in "
SECOND_PROMPT = "a second, carefully worded prompt: a violet castle above the clouds at dawn"
SECOND_NEGATIVE = "blurry, watermark"


def _generations() -> list[Generation]:
    with session_scope() as session:
        return list(session.exec(select(Generation).order_by(Generation.created_at)).all())


async def _count_is(expected: int) -> None:
    for _ in range(200):
        if len(_generations()) == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected} generations, found {len(_generations())}")


def _textarea(user: User, label: str) -> ui.textarea:
    [element] = [element for element in user.find(kind=ui.textarea).elements if element.props.get("label") == label]
    return element


def _type_second_request(user: User) -> None:
    prompt = user.find(kind=ui.textarea, content="Prompt")
    prompt.clear()
    prompt.type(SECOND_PROMPT)
    [negative] = user.find(kind=ui.expansion, content="Negative prompt").elements
    with user.client:
        negative.open()  # its field is built when the person opens it
        _textarea(user, "Things to avoid").set_value(SECOND_NEGATIVE)


async def _refused_with_the_form_kept(user: User, sentence: str, generations: int) -> None:
    user.find(kind=ui.button, content="Generate").click()
    await user.should_see(sentence, retries=50)
    assert _textarea(user, "Prompt").value == SECOND_PROMPT
    assert _textarea(user, "Things to avoid").value == SECOND_NEGATIVE
    assert len(_generations()) == generations  # the refusal came before anything was recorded


@pytest.fixture
def one_generation_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the app is built: list it before ``user``."""
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE", "1")
    reset_settings()


async def test_too_many_at_once_says_how_long_to_wait_and_keeps_the_form(one_generation_a_minute, user: User):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type("a teal lighthouse in the fog")
    user.find(kind=ui.button, content="Generate").click()
    await _count_is(1)
    _type_second_request(user)
    await _refused_with_the_form_kept(user, TOO_QUICK, 1)
    with clock.travel(timedelta(seconds=60)):  # the first one has left the minute
        user.find(kind=ui.button, content="Generate").click()
        await _count_is(2)
        await user.should_not_see(TOO_QUICK, retries=50)
    second = _generations()[1]
    assert (second.prompt, second.negative_prompt) == (SECOND_PROMPT, SECOND_NEGATIVE)


@pytest.fixture
def one_generation_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_GENERATION_DAILY_CAP", "1")
    reset_settings()


async def test_the_daily_cap_says_when_it_resets_and_keeps_the_form(one_generation_a_day, user: User):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type("a teal lighthouse in the fog")
    user.find(kind=ui.button, content="Generate").click()
    await _count_is(1)
    _type_second_request(user)
    await _refused_with_the_form_kept(
        user, "You have started the 1 generation allowed per day. You can start more after midnight UTC, in ", 1)


@pytest.fixture
def two_generations_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE", "2")
    reset_settings()


async def test_the_studio_and_the_api_count_in_the_same_window(two_generations_a_minute, user: User):
    person = make_user()
    with session_scope() as session:
        _, secret = api_keys.create(session, person, "script", scope=ApiKeyScope.GENERATE)
    created = await user.http_client.post(
        "/api/v1/generations", headers={"Authorization": f"Bearer {secret}"},
        json={"prompt": "from a script", "model": "offline:sketch-v1", "width": 512, "height": 512})
    assert created.status_code == 202
    await sign_in(user, person.email)
    await user.open("/studio")
    user.find(kind=ui.textarea, content="Prompt").type("from the studio")
    user.find(kind=ui.button, content="Generate").click()
    await _count_is(2)
    _type_second_request(user)
    await _refused_with_the_form_kept(user, TOO_QUICK, 2)
