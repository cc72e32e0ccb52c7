"""The administrator's users and audit log, driven through the pages' controls: searching, a person's page with
sessions and usage, suspending and lifting a suspension with a reason, changing a role, the audit log and its filter;
and what the suspended person meets: their open page stops at the next click and sign-in tells them why."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from components.choice_group import ChoiceGroup
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import AuditEntry, Role
from rupali.models import User as Account
from rupali.services import admin, api_keys, sessions, users
from tests.pages.test_hostile_text import HOSTILE
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in, submit_signin, wait_for_page

REASON = "Repeated attempts to generate images of real people"
SUSPEND_LABEL = "Reason for the suspension"
UNSUSPEND_LABEL = "Reason for lifting the suspension"
ROLE_LABEL = "Reason for the role change"


async def _open_as_admin(user: User, path: str, email: str = "boss@example.com") -> Account:
    boss = make_user(email=email, full_name="Boss", role=Role.ADMIN)
    await sign_in(user, boss.email)
    if path:
        await user.open(path)
    return boss


def _texts(user: User, marker: str) -> str:
    """Every text shown inside the element marked ``marker``."""
    [section] = user.find(marker=marker).elements
    return " | ".join(str(getattr(element, "text", "")) for element in section.descendants())


def _type(user: User, label: str, text: str) -> None:
    [field] = user.find(kind=ui.input, content=label).elements
    with user.client:
        field.value = text  # set at once: ``type`` appends, and a hostile text is one value


def _stored(account_id) -> Account:
    with session_scope() as session:
        return session.get(Account, account_id)


def _token_for(person: Account) -> str:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), person, method="password", ip="203.0.113.9",
                              user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
                              visitor_id="elsewhere")
        return sessions.complete_handoff(session, code, "elsewhere")


async def test_search_finds_people_and_their_page_shows_sessions_and_usage(user: User):
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    make_user(email="grace@example.com", full_name="Grace Hopper")
    add_generation(ada, "a lighthouse at dusk", images=2)
    _token_for(ada)
    await _open_as_admin(user, "/admin/users")
    await user.should_see("Users")
    await user.should_see("3 accounts", retries=50)
    shown = _texts(user, "user-results")
    assert "ada@example.com" in shown and "grace@example.com" in shown and "boss@example.com" in shown
    user.find(kind=ui.input, content="Search by e-mail, name or account id").type("HOPPER")
    user.find(kind=ui.button, content="Search").click()
    await user.should_see("1 account", retries=50)
    assert "grace@example.com" in _texts(user, "user-results") and "ada@" not in _texts(user, "user-results")
    [link] = [element for element in user.find(kind=ui.link).elements if element.text == "grace@example.com"]
    assert link.props["href"].startswith("/admin/users/")

    await user.open(f"/admin/users/{ada.id}")
    await user.should_see("Ada Lovelace")
    profile, usage, signed_in = _texts(user, "user-profile"), _texts(user, "user-usage"), _texts(user, "user-sessions")
    assert "ada@example.com" in profile and "Member" in profile and "Active" in profile
    assert "Generations | 1" in usage and "Images | 2" in usage and "Active API keys | 0" in usage
    assert "Signed in (1)" in signed_in and "Firefox 130 on Linux" in signed_in and "IP 203.0.113.9" in signed_in
    assert "Nothing yet." in _texts(user, "user-history")


async def test_a_bad_search_gets_a_sentence_and_keeps_what_was_typed(user: User):
    await _open_as_admin(user, "/admin/users")
    _type(user, "Search by e-mail, name or account id", "bell \x07")
    user.find(kind=ui.button, content="Search").click()
    await user.should_see("The search contains the control character U+0007", retries=50)
    [field] = user.find(kind=ui.input, content="Search by e-mail").elements
    assert field.value == "bell \x07"


async def test_suspend_and_lift_the_suspension_through_the_page(user: User):
    person = make_user(email="ada@example.com", full_name="Ada Lovelace")
    token = _token_for(person)
    with session_scope() as session:
        _, secret = api_keys.create(session, person, "script")
    boss = await _open_as_admin(user, "")
    await user.open(f"/admin/users/{person.id}")
    await user.should_see("Suspension")
    user.find(kind=ui.button, content="Suspend account").click()  # without a reason
    await user.should_see("Give a reason of at least 3 characters", retries=50)
    assert _stored(person.id).is_active

    _type(user, SUSPEND_LABEL, REASON)
    user.find(kind=ui.button, content="Suspend account").click()
    await user.should_see("The account is suspended; its sessions and API keys have ended.", retries=50)
    stored = _stored(person.id)
    assert (stored.is_active, stored.suspension_reason) == (False, REASON)
    profile = _texts(user, "user-profile")
    assert "Suspended" in profile and f"Reason for the suspension | {REASON}" in profile
    assert "Signed in (0)" in _texts(user, "user-sessions")
    history = _texts(user, "user-history")
    assert "Account suspended" in history and REASON in history and "ended 1 session and 1 API key" in history
    with session_scope() as session:
        assert sessions.resolve(session, get_settings(), token) is None
        assert api_keys.resolve(session, secret) is None

    user.find(kind=ui.button, content="Lift suspension").click()
    await user.should_see("Give a reason of at least 3 characters", retries=50)
    _type(user, UNSUSPEND_LABEL, "Appeal accepted")
    user.find(kind=ui.button, content="Lift suspension").click()
    await user.should_see("The suspension is lifted.", retries=50)
    assert _stored(person.id).is_active and _stored(person.id).suspended_at is None
    await user.should_see("Suspend account")
    with session_scope() as session:
        assert [(entry.actor_id, entry.action) for entry in session.exec(select(AuditEntry)).all()] == [
            (boss.id, "user.suspend"), (boss.id, "user.unsuspend")]


async def test_change_a_role_through_the_page(user: User):
    person = make_user(email="ada@example.com")
    await _open_as_admin(user, f"/admin/users/{person.id}")
    await user.should_see("Change role")
    [group] = [group for group in user.find(kind=ChoiceGroup).elements if group.props["label"] == "Role"]
    with user.client:
        group.set_value("admin")
    user.find(kind=ui.button, content="Change role").click()
    await user.should_see("Give a reason of at least 3 characters", retries=50)
    _type(user, ROLE_LABEL, "Joins the moderation team")
    user.find(kind=ui.button, content="Change role").click()
    await user.should_see("The role is now: administrator.", retries=50)
    assert _stored(person.id).is_admin
    assert "Administrator" in _texts(user, "user-profile") and "Role changed" in _texts(user, "user-history")


async def test_my_own_page_offers_no_suspension_or_role_change(user: User):
    boss = await _open_as_admin(user, "")
    await user.open(f"/admin/users/{boss.id}")
    await user.should_see("This is your account: another administrator can suspend it or change its role.")
    await user.should_not_see("Suspend account")
    await user.should_not_see("Change role")


@pytest.mark.parametrize("user_id", ["00000000-0000-4000-8000-000000000000", "not-an-id", "%27%20OR%201=1"])
async def test_unknown_or_malformed_ids_get_the_404_page(user: User, user_id: str):
    await _open_as_admin(user, "")
    response = await user.http_client.get(f"/admin/users/{user_id}")
    assert response.status_code == 404
    assert "This page does not exist" in response.text


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_reasons_and_names_are_shown_as_text(user: User, name: str):
    text = HOSTILE[name]
    person = make_user(email="hostile@example.com", full_name=text[:200])
    boss = make_user(email="boss@example.com", full_name="Boss", role=Role.ADMIN)
    with session_scope() as session:
        admin.suspend_user(session, session.get(Account, boss.id), person.id, reason=text)
    await sign_in(user, boss.email)
    for path in (f"/admin/users/{person.id}", "/admin/audit", "/admin/users?q=hostile"):
        response = await user.http_client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        await user.open(path)
        await user.should_see(text if "audit" in path or path.endswith(str(person.id)) else text[:200], retries=20)


async def test_the_audit_log_lists_newest_first_and_filters_by_action(user: User):
    boss = make_user(email="boss@example.com", full_name="Boss", role=Role.ADMIN)
    ada, grace = make_user(email="ada@example.com"), make_user(email="grace@example.com")
    with session_scope() as session:
        actor = session.get(Account, boss.id)
        admin.suspend_user(session, actor, ada.id, reason="Spam")
    with session_scope() as session:
        admin.change_role(session, session.get(Account, boss.id), grace.id, role="admin", reason="Moderator")
    await sign_in(user, boss.email)
    await user.open("/admin/audit")
    await user.should_see("Audit log")
    await user.should_see("2 entries", retries=50)
    shown = _texts(user, "audit-entries")
    assert shown.index("Role changed") < shown.index("Account suspended")  # newest first
    assert "grace@example.com" in shown and "Moderator" in shown and "user → admin" in shown
    [link] = [element for element in user.find(kind=ui.link).elements if element.text == "ada@example.com"]
    assert link.props["href"] == f"/admin/users/{ada.id}"
    [action] = user.find(kind=ui.select, content="Action").elements
    with user.client:
        action.value = "user.suspend"
    await user.should_see("1 entry", retries=50)
    shown = _texts(user, "audit-entries")
    assert "Account suspended" in shown and "Role changed" not in shown
    response = await user.http_client.get("/admin/audit?action=user.role")
    assert response.status_code == 200


async def test_the_console_views_link_to_each_other(user: User):
    await _open_as_admin(user, "/admin")
    await user.should_see("Data-protection requests")
    nav = {element.text: element.props["href"] for element in user.find(kind=ui.link).elements
           if element.text in ("Overview", "Users", "Audit log")}
    assert nav == {"Overview": "/admin", "Users": "/admin/users", "Audit log": "/admin/audit"}
    [current] = [element for element in user.find(kind=ui.link).elements if element.props.get("aria-current")]
    assert current.text == "Overview"


async def test_a_suspended_persons_open_page_stops_at_the_next_click_and_sign_in_says_why(user: User):
    boss = make_user(email="boss@example.com", role=Role.ADMIN)
    person = make_user(email="ada@example.com")
    await sign_in(user, person.email)
    await user.open("/account")
    await user.should_see("Sign out all other sessions")
    with session_scope() as session:
        admin.suspend_user(session, session.get(Account, boss.id), person.id, reason=REASON)
    user.find(kind=ui.button, content="Sign out all other sessions").click()  # the open page's next action
    await wait_for_page(user, lambda path: path.startswith("/signin"))
    assert (await user.http_client.get("/account", follow_redirects=False)).status_code == 303
    await submit_signin(user, person.email)
    await user.should_see(f"This account is suspended: {REASON}. Contact {get_settings().operator_email} if you "
                          "think this is a mistake.", retries=50)


async def test_an_administrator_demoted_while_the_page_is_open_sees_nothing_more(user: User):
    make_user(email="first@example.com", role=Role.ADMIN)
    second = await _open_as_admin(user, "/admin/users", email="second@example.com")
    await user.should_see("Search")
    with session_scope() as session:
        admin.change_role(session, users.by_email(session, "first@example.com"), second.id, role="user",
                          reason="Left the team")
    make_user(email="newcomer@example.com")
    user.find(kind=ui.button, content="Search").click()
    await wait_for_page(user, lambda path: path == "/")
    await user.should_see("Make images. Keep them yours.", retries=50)
    await user.should_not_see("newcomer@example.com")
    assert (await user.http_client.get("/admin/users")).status_code == 404
