"""Feedback without UI: thumbs on one's own finished generations, one row per person and generation, the checks on
the comment, and the administrators' summary per model over the last 30 days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from rupali import clock
from rupali.db import session_scope
from rupali.models import Feedback, Generation, GenerationStatus
from rupali.models import User as Account
from rupali.services import feedback
from tests.pages.test_hostile_text import HOSTILE
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user


def _give(user: Account, generation_id, rating: int, comment: str | None = None) -> feedback.Given:
    with session_scope() as session:
        return feedback.give_feedback(session, user, generation_id, rating, comment)


def _rows() -> list[Feedback]:
    with session_scope() as session:
        return list(session.exec(select(Feedback)).all())


def test_changing_ones_mind_updates_the_same_row():
    ada = make_user()
    generation, _ = add_generation(ada, "a fox")
    assert _give(ada, generation.id, 1) == feedback.Given(1, "")
    assert _give(ada, generation.id, 1, "Lovely colours") == feedback.Given(1, "Lovely colours")
    assert _give(ada, str(generation.id), -1) == feedback.Given(-1, "Lovely colours")  # the comment stays
    assert _give(ada, generation.id, -1, "  Too blurry\r\nafter all ") == feedback.Given(-1, "Too blurry\nafter all")
    [row] = _rows()
    assert (row.user_id, row.generation_id, row.rating, row.comment) == (ada.id, generation.id, -1,
                                                                          "Too blurry\nafter all")
    assert _give(ada, generation.id, -1, "") == feedback.Given(-1, "")  # an empty comment removes it
    with session_scope() as session:
        assert feedback.given(session, ada.id, [generation.id]) == {generation.id: feedback.Given(-1, "")}
        assert feedback.given(session, ada.id, []) == {}


def test_only_on_ones_own_finished_generations():
    ada, grace = make_user(email="ada@example.com"), make_user(email="grace@example.com")
    graces, _ = add_generation(grace, "grace's castle")
    for foreign in (graces.id, "not-an-id", "00000000-0000-4000-8000-000000000000", None):
        with pytest.raises(feedback.GenerationNotFound):
            _give(ada, foreign, 1)
    with session_scope() as session:
        running = Generation(user_id=ada.id, status=GenerationStatus.RUNNING, provider="offline", model="sketch-v1",
                             prompt="still going", width=8, height=8, steps=1, guidance=1.0, count=1, seed=1)
        session.add(running)
    with pytest.raises(feedback.FeedbackError, match="Wait until this generation has finished"):
        _give(ada, running.id, 1)
    assert _rows() == []


@pytest.mark.parametrize(("rating", "comment", "message"), [
    (0, None, "Choose thumbs up or thumbs down."),
    (2, None, "Choose thumbs up or thumbs down."),
    (1, "x" * 1001, "The comment is 1001 characters long; the limit is 1000."),
    (1, "bell \x07", "The comment contains the control character U+0007"),
    (1, "lone \ud800", "The comment contains characters that are not valid text"),
])
def test_bad_input_gets_a_sentence_and_stores_nothing(rating, comment, message):
    ada = make_user()
    generation, _ = add_generation(ada, "a fox")
    with pytest.raises(feedback.FeedbackError) as refused:
        _give(ada, generation.id, rating, comment)
    assert message in str(refused.value)
    assert _rows() == []


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_comments_are_kept_as_text(name: str):
    ada = make_user()
    generation, _ = add_generation(ada, "a fox")
    assert _give(ada, generation.id, 1, HOSTILE[name]).comment == HOSTILE[name]
    assert _give(ada, generation.id, 1, "c" * 1000).comment == "c" * 1000


def test_the_summary_counts_per_model_over_the_last_30_days():
    ada, grace = make_user(email="ada@example.com"), make_user(email="grace@example.com")
    sketch_a, _ = add_generation(ada, "a", model="sketch-v1")
    sketch_g, _ = add_generation(grace, "b", model="sketch-v1")
    sketch_old, _ = add_generation(grace, "c", model="sketch-v1")
    other, _ = add_generation(ada, "d", model="flux")
    gone, _ = add_generation(ada, "e", model="flux")
    _give(ada, sketch_a.id, 1)
    _give(ada, sketch_a.id, 1)  # one person, one generation: counted once
    _give(grace, sketch_g.id, -1)
    _give(ada, other.id, 1)
    _give(ada, gone.id, -1)
    with clock.travel(timedelta(days=-31)):
        _give(grace, sketch_old.id, 1)  # older than the period
    with session_scope() as session:
        session.delete(session.get(Generation, gone.id))  # its feedback stays, no longer naming a model
    with session_scope() as session:
        rows = feedback.summary(session)
        assert [(r.provider, r.model, r.label, r.up, r.down, r.total) for r in rows] == [
            ("offline", "sketch-v1", "Sketch-V1", 1, 1, 2), ("offline", "flux", "Flux", 1, 0, 1)]
        assert [(r.model, r.up, r.down) for r in feedback.summary(session, days=40)] == [("sketch-v1", 2, 1),
                                                                                         ("flux", 1, 0)]
    assert len(_rows()) == 5
