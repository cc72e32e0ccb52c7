"""What the studio reads once its page is open: balance, latest generations with their images, feedback, last seed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.services import feedback, ledger
from rupali.services import generation as generations
from rupali.services.credits import FreeGeneration
from rupali.services.ledger import LedgerCredits
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "0")
    reset_settings()


def test_a_newcomer_has_nothing_yet():
    person = make_user()
    with session_scope() as session:
        opening = generations.studio_opening(session, FreeGeneration(), person, 12)
    assert (opening.balance, opening.recent, opening.images, opening.given, opening.last_seed) == (None, [], {}, {},
                                                                                                     None)


def test_the_latest_generations_newest_first_with_their_images_and_the_person_s_thumbs():
    person, stranger = make_user(), make_user()
    made = [add_generation(person, f"lantern {n}", images=2, at=timedelta(minutes=n - 10)) for n in range(4)]
    add_generation(stranger, "not theirs", images=1)
    newest, second = made[3][0], made[2][0]
    with session_scope() as session:
        feedback.give_feedback(session, person, second.id, feedback.UP, "nice")
    with session_scope() as session:
        opening = generations.studio_opening(session, FreeGeneration(), person, 2)
    assert [generation.id for generation in opening.recent] == [newest.id, second.id]
    assert {key: [image.id for image in images] for key, images in opening.images.items()} == {
        newest.id: [image.id for image in made[3][1]], second.id: [image.id for image in made[2][1]]}
    assert opening.given == {second.id: feedback.Given(feedback.UP, "nice")}
    assert opening.last_seed == newest.seed
    assert opening.balance is None  # billing off


def test_with_billing_on_the_balance_comes_along(billing):
    person = make_user()
    with session_scope() as session:
        ledger.grant(session, get_settings(), person, 25, reason="Workshop", actor=None)
    with session_scope() as session:
        opening = generations.studio_opening(session, LedgerCredits(get_settings()), person, 12)
    assert opening.balance == 25
    assert LedgerCredits(get_settings()).charges and not FreeGeneration().charges
