"""Evidence holds through the administrator's controls: placing a hold with a reason, downloading the evidence
bundle, releasing the hold with a reason, past holds; and the download refused to everyone else.

The person's page (/admin/users/{user_id}) is another module's; a small page here shows the same component."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from components import auth
from components.frame import frame
from pages.admin_holds import DOWNLOAD_LABEL, PLACE_LABEL, PLACED, RELEASE_LABEL, RELEASED, hold_section
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import AuditEntry, EvidenceHold, Role
from rupali.models import User as Account
from rupali.services import holds, sessions
from tests.pages.test_hostile_text import HOSTILE
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

TEST_PAGE = "/test-hold-section"
REASON = "Court order 7 O 123/26: keep everything of this account"


def _hold_page() -> None:
    @ui.page(TEST_PAGE)
    async def page(user_id: str) -> None:
        viewer = auth.viewer()
        assert viewer is not None
        async with frame("Evidence hold · Test"):
            hold_section(viewer, uuid.UUID(user_id))


async def _open(user: User, person: Account) -> Account:
    boss = make_user(email="boss@example.com", full_name="Boss", role=Role.ADMIN)
    _hold_page()
    await sign_in(user, boss.email)
    await user.open(f"{TEST_PAGE}?user_id={person.id}")
    await user.should_see("Evidence hold")
    return boss


def _type(user: User, label: str, text: str) -> None:
    [field] = user.find(kind=ui.textarea, content=label).elements
    with user.client:
        field.value = text


def _texts(user: User, marker: str) -> str:
    [section] = user.find(marker=marker).elements
    return " | ".join(str(getattr(element, "text", "")) for element in section.descendants())


def _holds(person: Account) -> list[EvidenceHold]:
    with session_scope() as session:
        return list(session.exec(select(EvidenceHold).where(EvidenceHold.user_id == person.id)).all())


async def test_place_download_and_release_a_hold_through_the_page(user: User):
    person = make_user(email="ada@example.com", full_name="Ada Lovelace")
    boss = await _open(user, person)
    await user.should_see("Not on hold.", retries=50)
    user.find(kind=ui.button, content="Place hold").click()  # without a reason
    await user.should_see("Give a reason of at least 3 characters", retries=50)
    assert _holds(person) == []

    _type(user, PLACE_LABEL, REASON)
    user.find(kind=ui.button, content="Place hold").click()
    await user.should_see(PLACED, retries=50)
    await user.should_see("On hold since", retries=50)
    [hold] = _holds(person)
    assert (hold.reason, hold.placed_by, hold.released_at) == (REASON, boss.id, None)
    active = _texts(user, "hold-active")
    assert REASON in active and "boss@example.com" in active
    [link] = [element for element in user.find(kind=ui.link).elements if element.text == DOWNLOAD_LABEL]
    assert link.props["href"] == f"/admin/users/{person.id}/evidence.zip"

    response = await user.http_client.get(link.props["href"])
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == "private, no-store"
    assert f'filename="rupali-evidence-{hold.id.hex[:8]}-' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        manifest = json.loads(archive.read(holds.MANIFEST))
        assert json.loads(archive.read("data/user.json"))[0]["email"] == "ada@example.com"
    assert manifest["hold"]["id"] == str(hold.id) and manifest["downloaded_by"]["email"] == "boss@example.com"

    user.find(kind=ui.button, content="Release hold").click()  # without a reason
    await user.should_see("Give a reason of at least 3 characters", retries=50)
    assert _holds(person)[0].released_at is None
    _type(user, RELEASE_LABEL, "The court lifted its order")
    user.find(kind=ui.button, content="Release hold").click()
    await user.should_see(RELEASED, retries=50)
    await user.should_see("Not on hold.", retries=50)
    [released] = _holds(person)
    assert released.released_by == boss.id and released.release_reason == "The court lifted its order"
    past = _texts(user, "user-hold")
    assert "Released holds" in past and REASON in past and "The court lifted its order" in past
    await user.should_not_see(DOWNLOAD_LABEL)

    with session_scope() as session:
        entries = session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(entry.action, entry.actor_id, entry.target_kind, entry.target_id, entry.target_user_id)
            for entry in entries] == [(action, boss.id, "hold", str(hold.id), None)
                                      for action in (holds.PLACED, holds.EVIDENCE, holds.RELEASED)]


async def test_a_second_administrator_cannot_place_a_second_hold_from_a_stale_page(user: User):
    person = make_user(email="ada@example.com")
    await _open(user, person)
    await user.should_see("Not on hold.", retries=50)
    other = make_user(email="other-admin@example.com", role=Role.ADMIN)
    with session_scope() as session:  # meanwhile, from another browser
        holds.place_hold(session, session.get(Account, other.id), person.id, "Placed elsewhere first")
    _type(user, PLACE_LABEL, REASON)
    user.find(kind=ui.button, content="Place hold").click()
    await user.should_see("This account is already on hold", retries=50)
    [field] = user.find(kind=ui.textarea, content=PLACE_LABEL).elements
    assert field.value == REASON  # the form keeps what was typed
    assert len(_holds(person)) == 1


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_reasons_are_shown_as_text(user: User, name: str):
    person = make_user(email="hostile@example.com")
    other = make_user(email="other-admin@example.com", role=Role.ADMIN)
    with session_scope() as session:
        hold = holds.place_hold(session, session.get(Account, other.id), person.id, HOSTILE[name])
    with session_scope() as session:
        holds.release_hold(session, session.get(Account, other.id), hold.id, HOSTILE[name])
    await _open(user, person)
    await user.should_see(HOSTILE[name], retries=50)


def _cookie_for(user: User, email: str, **account: object) -> Account:
    person = make_user(email=email, **account)
    with session_scope() as session:
        code = sessions.start(session, get_settings(), person, method="password", ip="", user_agent="",
                              visitor_id="walk")
        user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "walk"))
    return person


async def test_only_administrators_download_and_only_while_the_account_is_on_hold(user: User):
    person = make_user(email="ada@example.com", full_name="Ada Lovelace")
    boss = make_user(email="boss@example.com", role=Role.ADMIN)
    with session_scope() as session:
        holds.place_hold(session, session.get(Account, boss.id), person.id, REASON)
    path = f"/admin/users/{person.id}/evidence.zip"
    anonymous = await user.http_client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    for email in ("member@example.com", "ada@example.com"):  # a member, and the person held
        user.http_client.cookies.clear()
        if email == "ada@example.com":
            with session_scope() as session:
                code = sessions.start(session, get_settings(), person, method="password", ip="", user_agent="",
                                      visitor_id="walk")
                user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "walk"))
        else:
            _cookie_for(user, email)
        refused = await user.http_client.get(path, follow_redirects=False)
        assert refused.status_code == 404 and "This page does not exist" in refused.text
        assert b"PK" not in refused.content[:2] and REASON not in refused.text

    user.http_client.cookies.clear()
    _cookie_for(user, "second-admin@example.com", role=Role.ADMIN)
    unheld = make_user(email="free@example.com")
    response = await user.http_client.get(f"/admin/users/{unheld.id}/evidence.zip")
    assert response.status_code == 409 and "not on hold" in response.text
    for unknown in (uuid.uuid4(), "not-an-id"):
        response = await user.http_client.get(f"/admin/users/{unknown}/evidence.zip")
        assert response.status_code == 404 and "This page does not exist" in response.text
    with session_scope() as session:  # only the refusals happened: no download was recorded
        assert [entry.action for entry in session.exec(select(AuditEntry)).all()] == [holds.PLACED]
