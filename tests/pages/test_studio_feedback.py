"""Feedback in the studio, driven like a browser: thumbs on a finished result with their pressed state, the comment
that appears after choosing, changing one's mind on the same record, and the buttons on a result that has just
finished on the page."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali.db import session_scope
from rupali.models import Feedback, Generation
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

COMMENT_LABEL = "Comment (optional)"


def _buttons(user: User, label: str) -> list[ui.button]:
    return [button for button in user.find(kind=ui.button).elements if button.props.get("aria-label") == label]


def _click(user: User, element: ui.element) -> None:
    interaction = user.find(kind=type(element))
    interaction.elements = {element}
    interaction.click()


def _rows() -> list[Feedback]:
    with session_scope() as session:
        return list(session.exec(select(Feedback)).all())


async def _until(condition, what: str) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_thumbs_and_a_comment_on_a_result_change_one_record(user: User):
    ada = make_user()
    generation, _ = add_generation(ada, "a teal lighthouse in the fog")
    await sign_in(user, ada.email)
    await user.open("/studio")
    await user.should_see("Was this a good result?")
    [up], [down] = _buttons(user, "Good result"), _buttons(user, "Bad result")
    assert (up.props["aria-pressed"], down.props["aria-pressed"]) == ("false", "false")
    await user.should_not_see(kind=ui.textarea, content=COMMENT_LABEL)  # offered only once a thumb is chosen

    _click(user, up)
    await user.should_see("Thanks for your feedback.", retries=50)
    assert (up.props["aria-pressed"], down.props["aria-pressed"]) == ("true", "false")
    assert up.props["icon"] == "thumb_up" and down.props["icon"] == "thumb_down_off_alt"
    [comment] = user.find(kind=ui.textarea, content=COMMENT_LABEL).elements
    [row] = _rows()
    assert (row.user_id, row.generation_id, row.rating, row.comment) == (ada.id, generation.id, 1, "")

    with user.client:
        comment.value = "x" * 1001  # beyond the limit (maxlength stops a browser; this is the server's check)
    user.find(kind=ui.button, content="Save comment").click()
    await user.should_see("The comment is 1001 characters long; the limit is 1000.", retries=50)
    assert comment.value == "x" * 1001 and _rows()[0].comment == ""
    with user.client:
        comment.value = "Lovely fog, \"quoted\" </script>"
    user.find(kind=ui.button, content="Save comment").click()
    await user.should_see("Comment saved. Thank you.", retries=50)
    assert _rows()[0].comment == "Lovely fog, \"quoted\" </script>"

    _click(user, down)  # a change of mind: the same record, the comment kept
    await _until(lambda: _rows()[0].rating == -1, "the rating changed")
    [row] = _rows()
    assert (row.rating, row.comment) == (-1, "Lovely fog, \"quoted\" </script>")
    await _until(lambda: down.props["aria-pressed"] == "true", "the pressed state moved")
    assert up.props["aria-pressed"] == "false"

    await user.open("/studio")  # a new page view shows what was chosen
    await user.should_see("Was this a good result?")
    [up], [down] = _buttons(user, "Good result"), _buttons(user, "Bad result")
    assert (up.props["aria-pressed"], down.props["aria-pressed"]) == ("false", "true")
    [comment] = user.find(kind=ui.textarea, content=COMMENT_LABEL).elements
    assert comment.value == "Lovely fog, \"quoted\" </script>"


async def test_a_result_finished_on_the_page_gets_the_buttons(user: User):
    ada = make_user()
    await sign_in(user, ada.email)
    await user.open("/studio")
    assert _buttons(user, "Good result") == []  # nothing made yet
    user.find(kind=ui.textarea, content="Prompt").type("a red fox in the snow")
    user.find(kind=ui.button, content="Generate").click()
    await user.should_see("Was this a good result?", retries=200)
    [up] = _buttons(user, "Good result")
    _click(user, up)
    await user.should_see("Thanks for your feedback.", retries=50)
    with session_scope() as session:
        generation = session.exec(select(Generation)).one()
    [row] = _rows()
    assert (row.generation_id, row.rating) == (generation.id, 1)


async def test_only_ones_own_results_carry_feedback(user: User):
    grace = make_user(email="grace@example.com")
    add_generation(grace, "grace's violet castle")
    await sign_in(user, make_user(email="ada@example.com").email)
    await user.open("/studio")
    await user.should_see("Your images will appear here")
    assert _buttons(user, "Good result") == [] and _buttons(user, "Bad result") == []
