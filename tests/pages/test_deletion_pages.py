"""The grace period in the browser: a pending account sees only the deletion page; cancelling from it or from the
mailed link restores the account."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import col, select

from pages import deletion as deletion_pages
from rupali import runtime
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Image, OutboxMessage
from rupali.models import User as Account
from rupali.services import deletion, sessions
from tests.utils.factories import PASSWORD, make_user
from tests.utils.running import running_generation
from tests.utils.signin import sign_in


def _schedule(member: Account) -> None:
    with session_scope() as session:
        deletion.request_deletion(session, get_settings(), member, password=PASSWORD)


def _pending(account_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return deletion.is_pending(session.get(Account, account_id))


def _cancel_link(address: str) -> str:
    with session_scope() as session:
        mail = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == address)
                            .order_by(col(OutboxMessage.id).desc())).first()
    match = re.search(r"https?://[^/\s]+(/deletion/cancel\?token=\S+)", mail.text_body)
    assert match, mail.text_body
    return match.group(1)


def _signed_in(member: Account) -> sessions.SignedIn:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), member, method="password", ip="::1", user_agent="pytest",
                              visitor_id="visitor")
        token = sessions.complete_handoff(session, code, "visitor")
        signed_in = sessions.resolve(session, get_settings(), token)
    assert signed_in is not None
    return signed_in


async def test_a_pending_account_that_signs_in_sees_only_the_deletion_page(user: User):
    member = make_user(email="ada@example.com")
    _schedule(member)
    await sign_in(user, member.email)
    await user.should_see("Your account is scheduled for deletion on", retries=50)
    assert user.client.request.url.path == "/deletion"
    user.find(kind=ui.button, content="Cancel deletion")
    user.find(kind=ui.button, content="Sign out")
    for path in ("/", "/studio", "/gallery", "/history", "/account", "/privacy", "/admin", "/welcome"):
        response = await user.http_client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers.get("location")) == (303, "/deletion"), path
    api = await user.http_client.get("/api/v1/generations", follow_redirects=False)
    assert api.status_code == 403 and "scheduled for deletion" in api.json()["detail"]
    assert (await user.http_client.get("/legal/privacy")).status_code == 200  # the policies stay readable


async def test_cancel_deletion_on_the_page_restores_access(user: User):
    member = make_user(email="ada@example.com")
    _schedule(member)
    await sign_in(user, member.email)
    await user.should_see("Your account is scheduled for deletion on", retries=50)
    user.find(kind=ui.button, content="Cancel deletion").click()
    await user.should_see("The deletion is cancelled", retries=50)
    assert not _pending(member.id)
    assert (await user.http_client.get("/studio", follow_redirects=False)).status_code == 200
    # The deletion page itself has nothing to offer now.
    response = await user.http_client.get("/deletion", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/privacy")
    await user.open("/studio")
    assert user.client.request.url.path == "/studio"


async def test_the_mailed_link_asks_for_one_click_then_cancels(user: User):
    member = make_user(email="ada@example.com")
    _schedule(member)
    link = _cancel_link("ada@example.com")
    await user.open(link)  # not signed in: the link alone is enough
    await user.should_see("Keep your account", retries=50)
    assert _pending(member.id)  # opening the link changed nothing
    user.find(kind=ui.button, content="Cancel the deletion").click()
    await user.should_see("The deletion is cancelled", retries=50)
    assert not _pending(member.id)
    await user.open(link)
    await user.should_see("This link has expired or was already used", retries=50)
    await user.should_not_see("Cancel the deletion")
    await sign_in(user, member.email)
    assert user.client.request.url.path == "/studio"


@pytest.mark.parametrize("query", ["", "?token=", "?token=forged-or-altered"])
async def test_a_bad_cancel_link_gets_a_clear_message(user: User, query: str):
    await user.open(f"/deletion/cancel{query}")
    await user.should_see("This link has expired or was already used", retries=50)
    await user.should_not_see("Cancel the deletion")


async def _finished(generation_id: uuid.UUID) -> Generation:
    """The generation once the queue is done with it (the database says "cancelled" before a job has stopped)."""
    for _ in range(400):
        with session_scope() as session:
            generation = session.get(Generation, generation_id)
        if generation.finished and runtime.current().queue.state(generation_id) is None:
            return generation
        await asyncio.sleep(0.05)
    raise AssertionError("the generation never finished")


async def test_the_privacy_center_helper_confirms_revokes_and_stops_jobs(user: User):
    await user.open("/signin")  # the app, its queue included, has started
    member = make_user(email="ada@example.com")
    signed_in = _signed_in(member)
    running = await running_generation(member, "a quiet harbour")
    with pytest.raises(deletion.DeletionError, match="not your password"):
        await deletion_pages.request(signed_in, password="not the password")
    assert not _pending(member.id)
    pending = await deletion_pages.request(signed_in, password=PASSWORD)
    assert deletion.is_pending(pending) and _pending(member.id)
    stopped = await _finished(running)
    assert stopped.status == GenerationStatus.CANCELLED
    with session_scope() as session:
        assert session.exec(select(Image).where(Image.generation_id == running)).all() == []
        assert sessions.by_id(session, get_settings(), signed_in.session.id) is None


async def test_the_admin_helper_erases_at_once(user: User):
    member = make_user(email="young@example.com")
    record = await deletion_pages.erase(member, reason="under-age")
    assert record.reason == "under-age"
    with session_scope() as session:
        assert session.get(Account, member.id) is None
    with pytest.raises(deletion.DeletionError, match="no longer exists"):
        await deletion_pages.erase(member)
