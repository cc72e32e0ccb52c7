"""The studio with credits, driven through its controls: the live cost line with the balance, a refusal when the
balance is too low (nothing queued), a blocked prompt that costs nothing, and billing off showing no credits."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from components.choice_group import ChoiceGroup
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, EntryKind, Generation
from rupali.services import ledger
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

OFFLINE = "offline:sketch-v1"


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credits mode: a bonus of 3, the offline model at 1 credit an image, "gore" blocked. Set before the app is
    built: list it before ``user``."""
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "3")
    monkeypatch.setenv("RUPALI_CREDITS_MODEL_PRICES", f"{OFFLINE}=1")
    monkeypatch.setenv("RUPALI_PROMPT_BLOCKLIST", "gore")
    reset_settings()


def _choose_count(user: User, count: int) -> None:
    [group] = [group for group in user.find(kind=ChoiceGroup).elements if group.props["label"] == "Number of images"]
    with user.client:
        group.set_value(count)  # the group's button for ``count``, as a click on it does in the browser


def _generate(user: User, prompt: str) -> None:
    prompt_field = user.find(kind=ui.textarea, content="Prompt")
    prompt_field.clear()
    prompt_field.type(prompt)
    user.find(kind=ui.button, content="Generate").click()


def _generations() -> list[Generation]:
    with session_scope() as session:
        return list(session.exec(select(Generation)).all())


async def _all_finished(expected: int) -> None:
    for _ in range(400):
        found = _generations()
        if len(found) == expected and all(generation.finished for generation in found):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the generations did not finish")


async def test_the_cost_line_shows_the_price_and_the_balance_and_follows_each_generation(billing, user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/studio")
    await user.should_see("1 credit · 3 left")
    _choose_count(user, 2)
    await user.should_see("2 credits · 3 left")
    _generate(user, "a teal lighthouse in the fog")
    await user.should_see("2 credits · 1 left", retries=50)  # held at once
    await _all_finished(1)
    await user.should_see("2 credits · 1 left", retries=50)  # both delivered: settled, nothing comes back
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).balance == 1 == ledger.ledger_sum(session, person.id)


async def test_a_balance_too_low_is_refused_with_its_reason_and_nothing_is_queued(billing, user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/studio")
    _choose_count(user, 4)
    await user.should_see("4 credits · 3 left")
    _generate(user, "a red fox in a snowy birch forest")
    await user.should_see("This costs 4 credits and you have 3 left.", retries=50)
    await user.should_see("See your credits")
    assert next(iter(user.find("See your credits").elements)).props["href"] == "/billing"
    assert _generations() == []  # refused before anything was recorded or queued
    _choose_count(user, 3)  # what the balance covers goes through, and the message goes away
    _generate(user, "a red fox in a snowy birch forest")
    await user.should_see("3 credits · 0 left", retries=50)
    await user.should_not_see("This costs 4 credits and you have 3 left.")
    assert len(_generations()) == 1


async def test_a_blocked_prompt_costs_nothing(billing, user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/studio")
    _generate(user, "gore everywhere")
    await user.should_see("which this service does not allow. Nothing was charged.", retries=50)
    await user.should_see("1 credit · 3 left")
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).balance == 3


async def test_a_negative_balance_after_a_refund_is_shown_and_explained(billing, user: User):
    person = make_user()
    with session_scope() as session:
        settings = get_settings()
        ledger.post_payment(session, settings, person.id, EntryKind.PURCHASE, 10, reference="order-1",
                            key="purchase:order-1")
        ledger.post_payment(session, settings, person.id, EntryKind.REFUND, -15, reference="order-1",
                            key="refund:order-1")  # the 3 of the bonus were spent elsewhere
    await sign_in(user, person.email)
    await user.open("/studio")
    await user.should_see("1 credit · balance -2")
    _generate(user, "a cosy reading nook")
    await user.should_see("Your balance is -2 credits after a refund.", retries=50)
    assert _generations() == []


async def test_with_billing_off_the_studio_shows_no_credits(user: User):
    await sign_in(user, make_user().email)
    await user.open("/studio")
    await user.should_see("Cost: free")
    _generate(user, "a neon-lit street market in the rain")
    await _all_finished(1)
    await user.should_see("Cost: free", retries=50)
    for word in ("credit", " left", "See your credits"):
        await user.should_not_see(word)
