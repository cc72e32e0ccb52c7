"""Sign-up, verification, sign-in, password reset, welcome and account pages, driven like a browser would."""

from __future__ import annotations

import re
import uuid

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali import clock
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import AuthSession, OutboxMessage, PolicyAcceptance
from rupali.models import User as Account
from rupali.services import sessions, users
from tests.utils.factories import PASSWORD, make_user
from tests.utils.signin import sign_in, submit_signin, wait_for_page


def _last_link(address: str, path: str) -> str:
    """The link to ``path`` in the newest mail to ``address`` (mail goes to the log and the outbox here)."""
    with session_scope() as session:
        messages = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == address)
                                .order_by(OutboxMessage.id)).all()
    assert messages, f"no mail to {address}"
    match = re.search(rf"https?://[^/\s]+({re.escape(path)}\?token=[^\s]+)", messages[-1].text_body)
    assert match, messages[-1].text_body
    return match.group(1)


async def _fill_signup(user: User, *, name: str, email: str, password: str, adult: bool, accept: bool) -> None:
    await user.open("/signup")
    user.find(kind=ui.input, content="Full name").type(name)
    user.find(kind=ui.input, content="E-mail address").type(email)
    user.find(kind=ui.input, content="Password (at least 10 characters)").type(password)
    if adult:
        user.find(kind=ui.checkbox, content="I am at least 18 years old").click()
    if accept:
        _click_acceptance(user)
    user.find(kind=ui.button, content="Create account").click()


def _click_acceptance(user: User) -> None:
    """Click the "I accept the Terms … Privacy Policy" checkbox as a person would, and check that it is ticked.

    Its visible text is a row of labels and links beside it, so the checkbox itself is only named by its
    aria-label; ``content=`` cannot find it, and a plain ``find(kind=ui.checkbox).click()`` would click the age
    checkbox (the first one) instead.
    """
    checkboxes = user.find(kind=ui.checkbox)
    checkboxes.elements = {box for box in checkboxes.elements
                           if box.props.get("aria-label") == "I accept the Terms of Service and the Privacy Policy"}
    assert len(checkboxes.elements) == 1, "no acceptance checkbox on the page"
    checkboxes.click()
    assert [box.value for box in checkboxes.elements] == [True]


def _accepted_documents(account_id: uuid.UUID) -> list[str]:
    with session_scope() as session:
        rows = session.exec(select(PolicyAcceptance).where(PolicyAcceptance.user_id == account_id)).all()
    return sorted(row.document for row in rows)


async def test_sign_up_verify_and_sign_in(user: User):
    await _fill_signup(user, name="Grace Hopper", email="grace@example.com", password=PASSWORD, adult=True,
                       accept=True)
    await user.should_see("Check your inbox", retries=50)
    await user.should_see("the message is in the server's log", retries=50)
    with session_scope() as session:
        account = users.by_email(session, "grace@example.com")
    assert account is not None and _accepted_documents(account.id) == ["privacy", "terms"]
    await user.open(_last_link("grace@example.com", "/confirm-email"))
    user.find(kind=ui.button, content="Confirm my e-mail address").click()
    await user.should_see("Your e-mail address is confirmed", retries=50)
    await sign_in(user, "grace@example.com")
    assert user.client.request.url.path == "/studio"


async def test_sign_up_without_the_age_confirmation_is_refused(user: User):
    await _fill_signup(user, name="Kid", email="kid@example.com", password=PASSWORD, adult=False, accept=True)
    await user.should_see("You must be at least 18 years old to use Rupali.", retries=50)
    with session_scope() as session:
        assert users.count(session) == 0


async def test_sign_up_shows_clear_messages_for_bad_input(user: User):
    await _fill_signup(user, name="x" * 10_000, email="long@example.com", password=PASSWORD, adult=True, accept=True)
    await user.should_see("Use at most 200 characters for your name.", retries=50)
    await _fill_signup(user, name="Ok", email="nope", password=PASSWORD, adult=True, accept=True)
    await user.should_see("Enter a valid e-mail address, like name@example.com.", retries=50)
    with session_scope() as session:
        assert users.count(session) == 0


async def test_wrong_password_gets_one_plain_sentence(user: User):
    make_user(email="ada@example.com")
    await submit_signin(user, "ada@example.com", "not the password")
    await user.should_see("Wrong e-mail address or password.", retries=50)


async def test_forgot_and_reset_password(user: User):
    make_user(email="ada@example.com")
    await user.open("/forgot")
    user.find(kind=ui.input, content="E-mail address").type("ada@example.com")
    user.find(kind=ui.button, content="Send reset link").click()
    await user.should_see("If an account exists for that address", retries=50)
    link = _last_link("ada@example.com", "/reset")
    await user.open(link)
    user.find(kind=ui.input, content="New password (at least 10 characters)").type("my new passphrase")
    user.find(kind=ui.input, content="Repeat the new password").type("my new passphrase")
    user.find(kind=ui.button, content="Save new password").click()
    await wait_for_page(user, lambda path: path == "/signin")
    await sign_in(user, "ada@example.com", "my new passphrase")
    await user.open(link)
    await user.should_see("This link has expired or was already used.", retries=50)


async def test_markup_in_a_name_is_shown_as_text(user: User):
    member = make_user(full_name="<b>Bold</b> & <script>x()</script>")
    await sign_in(user, member.email)
    await user.open("/account")
    await user.should_see("<b>Bold</b> & <script>x()</script>", retries=50)


async def test_rename_on_the_account_page(user: User):
    member = make_user()
    await sign_in(user, member.email)
    await user.open("/account")
    name = user.find(kind=ui.input, content="Full name")
    name.clear().type("   ")
    user.find(kind=ui.button, content="Save name").click()
    await user.should_see("Enter your name.", retries=50)
    name.clear().type("Ada King")
    user.find(kind=ui.button, content="Save name").click()
    await user.should_see("Your name was saved.", retries=50)
    with session_scope() as session:
        assert session.get(Account, member.id).full_name == "Ada King"


async def test_sessions_are_listed_and_another_one_can_be_ended(user: User):
    member = make_user()
    with session_scope() as session:  # signed in on a phone as well
        code = sessions.start(session, get_settings(), member, method="password", ip="198.51.100.4",
                              user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)", visitor_id="phone")
        sessions.complete_handoff(session, code, "phone")
    await sign_in(user, member.email)
    await user.open("/account")
    await user.should_see("IP 198.51.100.4", retries=50)
    await user.should_see("This browser", retries=50)
    user.find(kind=ui.button, content="Sign out all other sessions").click()
    await user.should_see("Signed out everywhere else.", retries=50)
    with session_scope() as session:
        records = session.exec(select(AuthSession).where(AuthSession.token_hash.is_not(None))).all()
    assert sorted(record.revoked_at is None for record in records) == [False, True]


async def test_an_open_page_lands_on_sign_in_at_its_next_action_after_revocation(user: User):
    member = make_user()
    await sign_in(user, member.email)
    await user.open("/account")
    with session_scope() as session:
        for record in session.exec(select(AuthSession)).all():
            record.revoked_at = record.created_at
            session.add(record)
    user.find(kind=ui.button, content="Save name").click()
    await wait_for_page(user, lambda path: path.startswith("/signin"))
    await user.should_see("Welcome back.", retries=50)
    with session_scope() as session:
        assert session.get(Account, member.id).full_name == member.full_name  # the action did not run


async def test_welcome_asks_for_age_and_policies_before_anything_else(user: User):
    member = make_user(onboarded=False)  # has confirmed the address, not yet the age or the policies
    with session_scope() as session:
        stored = session.get(Account, member.id)
        stored.email_verified_at = clock.now()
        session.add(stored)
    await sign_in(user, member.email)
    await user.open("/welcome")
    user.find(kind=ui.button, content="Continue").click()
    await user.should_see("You must be at least 18 years old", retries=50)
    user.find(kind=ui.checkbox, content="I am at least 18 years old").click()
    user.find(kind=ui.button, content="Continue").click()
    await user.should_see("Please accept the Terms of Service and the Privacy Policy.", retries=50)
    assert _accepted_documents(member.id) == []
    _click_acceptance(user)
    user.find(kind=ui.button, content="Continue").click()
    await wait_for_page(user, lambda path: path == "/welcome" and user.client.request.url.path == "/studio")
    with session_scope() as session:
        assert session.get(Account, member.id).age_confirmed_at is not None
    assert _accepted_documents(member.id) == ["privacy", "terms"]
