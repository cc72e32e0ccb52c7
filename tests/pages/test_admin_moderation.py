"""The moderation queue driven through the page's controls: an administrator sees other people's flagged images
(thumbnails through the admin-only route) and blocked generations, dismisses, removes an image with a reason (its
files and row go, its owner is mailed) and suspends an owner; everyone else gets the 404 page and no thumbnail."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from components.picture import Picture
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import AuditEntry, Generation, GenerationStatus, Image, OutboxMessage, Role
from rupali.models import User as Account
from rupali.storage import LocalStorage
from tests.pages.test_hostile_text import HOSTILE
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

REASON = "Depicts a real person without their consent"
REMOVE_LABEL = "Reason for the removal"
SUSPEND_LABEL = "Reason for the suspension"


async def _open_as_admin(user: User) -> Account:
    boss = make_user(email="boss@example.com", full_name="Boss", role=Role.ADMIN)
    await sign_in(user, boss.email)
    await user.open("/admin/moderation")
    await user.should_see("Flagged images")
    return boss


def _blocked(person: Account, prompt: str, blocked_by: str = "blocklist") -> Generation:
    with session_scope() as session:
        generation = Generation(user_id=person.id, status=GenerationStatus.BLOCKED, provider="offline",
                                model="sketch-v1", model_label="Sketch", prompt=prompt, width=512, height=512,
                                steps=20, guidance=7.0, count=1, seed=1, blocked_by=blocked_by,
                                error="This prompt contains a blocked word. Nothing was charged.")
        session.add(generation)
        return generation


def _texts(user: User, marker: str) -> str:
    [section] = user.find(marker=marker).elements
    return " | ".join(str(getattr(element, "text", "")) for element in section.descendants())


def _click(user: User, label: str) -> None:
    """Click the one button with this aria-label (rows repeat the same visible text)."""
    matches = [button for button in user.find(kind=ui.button).elements if button.props.get("aria-label") == label]
    assert len(matches) == 1, f"{len(matches)} buttons labelled {label!r}"
    interaction = user.find(kind=ui.button)
    interaction.elements = {matches[0]}
    interaction.click()


def _type(user: User, label: str, text: str) -> None:
    [field] = user.find(kind=ui.input, content=label).elements
    with user.client:
        field.value = text


def _name(image: Image, owner: str) -> str:
    return f"image {image.id.hex[:8]} by {owner}"


async def test_an_admin_dismisses_and_removes_through_the_page(user: User):
    ada = make_user(email="ada@example.com")
    generation, [dismissed, removed] = add_generation(ada, "a stormy lighthouse", images=2, nsfw=True)
    add_generation(ada, "an innocent image")
    stopped = _blocked(ada, "something forbidden")
    await _open_as_admin(user)
    await user.should_see("Flagged images (2)", retries=50)
    await user.should_see("Blocked generations (1)")
    flagged = _texts(user, "flagged-images")
    assert "ada@example.com" in flagged and "a stormy lighthouse" in flagged and "0.90" in flagged
    assert "an innocent image" not in flagged
    blocked = _texts(user, "blocked-generations")
    assert "something forbidden" in blocked and "Blocklist" in blocked and "a blocked word" in blocked
    sources = {picture.source for picture in user.find(Picture).elements}
    assert {f"/admin/moderation/thumbnails/{dismissed.id}", f"/admin/moderation/thumbnails/{removed.id}"} <= sources
    response = await user.http_client.get(f"/admin/moderation/thumbnails/{removed.id}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"

    _click(user, f"Dismiss {_name(dismissed, ada.email)}")
    await user.should_see("The image was dismissed and stays as it is.", retries=50)
    await user.should_see("Flagged images (1)", retries=50)
    with session_scope() as session:
        assert session.get(Image, dismissed.id).reviewed_at is not None

    _click(user, f"Remove {_name(removed, ada.email)}")
    await user.should_see("Remove this image?", retries=50)
    user.find(kind=ui.button, content="Remove image").click()  # without a reason
    await user.should_see("Give a reason of at least 3 characters", retries=50)
    _type(user, REMOVE_LABEL, REASON)
    user.find(kind=ui.button, content="Remove image").click()
    await user.should_see("The image was removed and its owner was told why.", retries=50)
    await user.should_see("Flagged images (0)", retries=50)
    storage = LocalStorage.from_settings(get_settings())
    assert not storage.exists(removed.original_key) and not storage.exists(removed.thumbnail_key)
    assert storage.exists(dismissed.original_key)
    with session_scope() as session:
        assert session.get(Image, removed.id) is None and session.get(Generation, generation.id) is not None
        [message] = session.exec(select(OutboxMessage)).all()
        assert message.recipient == "ada@example.com" and REASON in message.text_body
    response = await user.http_client.get(f"/admin/moderation/thumbnails/{removed.id}")
    assert response.status_code == 404

    _click(user, f"Dismiss blocked generation {stopped.id.hex[:8]} by {ada.email}")
    await user.should_see("The blocked generation was dismissed.", retries=50)
    await user.should_see("Blocked generations (0)", retries=50)
    with session_scope() as session:
        assert session.get(Generation, stopped.id).reviewed_at is not None
        assert [(entry.action, entry.target_kind) for entry in session.exec(
            select(AuditEntry).order_by(AuditEntry.id)).all()] == [
            ("moderation.dismiss", "image"), ("moderation.remove", "image"), ("moderation.dismiss", "generation")]


async def test_an_admin_suspends_an_owner_from_the_queue(user: User):
    ada = make_user(email="ada@example.com")
    stopped = _blocked(ada, "forbidden again")
    boss = await _open_as_admin(user)
    await user.should_see("Blocked generations (1)", retries=50)
    _click(user, f"Suspend owner of blocked generation {stopped.id.hex[:8]} by {ada.email}")
    await user.should_see("Suspend this account?", retries=50)
    _type(user, SUSPEND_LABEL, REASON)
    user.find(kind=ui.button, content="Suspend account").click()
    await user.should_see("ada@example.com is suspended; their sessions and API keys have ended.", retries=50)
    with session_scope() as session:
        account = session.get(Account, ada.id)
        assert (account.is_active, account.suspension_reason) == (False, REASON)
        [entry] = session.exec(select(AuditEntry)).all()
        assert (entry.actor_id, entry.action, entry.target_user_id) == (boss.id, "user.suspend", ada.id)
    assert "suspended" in _texts(user, "blocked-generations")
    assert not [button for button in user.find(kind=ui.button).elements
                if str(button.props.get("aria-label", "")).startswith("Suspend owner")]


async def test_prompts_and_addresses_are_shown_as_text(user: User):
    person = make_user(email="hostile@example.com", full_name="Hostile")
    for text in HOSTILE.values():
        add_generation(person, text, nsfw=True)
        _blocked(person, text)
    await _open_as_admin(user)
    await user.should_see(f"Flagged images ({len(HOSTILE)})", retries=50)
    flagged, blocked = _texts(user, "flagged-images"), _texts(user, "blocked-generations")
    for text in HOSTILE.values():
        assert " ".join(text.split()) in flagged and " ".join(text.split()) in blocked


async def test_everyone_else_gets_the_404_page_and_no_thumbnail(user: User):
    make_user(email="boss@example.com", role=Role.ADMIN)
    member = make_user(email="member@example.com")
    _, [own] = add_generation(member, "my own flagged image", nsfw=True)
    await sign_in(user, member.email)
    response = await user.http_client.get("/admin/moderation")
    assert response.status_code == 404 and "This page does not exist" in response.text
    assert "Flagged images" not in response.text
    for image_id in (own.id, "not-an-id"):
        response = await user.http_client.get(f"/admin/moderation/thumbnails/{image_id}")
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/")
    response = await user.http_client.get(f"/media/thumbnails/{own.id}")  # their own, where they see it
    assert response.status_code == 200
