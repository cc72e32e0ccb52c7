"""The support pages, driven like a browser: a signed-in person writes through /support, an administrator answers
and closes through /admin/support, the reply is in the outbox and on the person's /support; visitors get the form
with an e-mail field, a clear message for a bad address (keeping what they typed) and a rate limit; nobody sees
another person's request."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User
from sqlmodel import col, select

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import AuditEntry, OutboxMessage, Role, SupportMessage, SupportTicket, TicketStatus
from rupali.services import support
from tests.pages.test_hostile_text import HOSTILE
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

SUBJECT, QUESTION = "My gallery is empty", "Where did my images of the violet castle go?"
ANSWER = "They are under Favourites.\nLook for the star."


def _type(user: User, kind: type[ui.element], label: str, text: str) -> None:
    [field] = user.find(kind=kind, content=label).elements
    with user.client:
        field.value = text  # set at once: ``type`` appends, and a hostile text is one value


def _value(user: User, kind: type[ui.element], label: str) -> str:
    [field] = user.find(kind=kind, content=label).elements
    return field.value


def _click(user: User, element: ui.element) -> None:
    """Click this one element (buttons on the page can share their visible text)."""
    interaction = user.find(kind=type(element))
    interaction.elements = {element}
    interaction.click()


def _tickets() -> list[SupportTicket]:
    with session_scope() as session:
        return list(session.exec(select(SupportTicket).order_by(col(SupportTicket.created_at))).all())


def _mails() -> list[OutboxMessage]:
    with session_scope() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


async def _switch(user: User, email: str) -> None:
    await user.http_client.post("/auth/signout")
    user.http_client.cookies.clear()
    await sign_in(user, email)


async def test_a_person_writes_an_admin_answers_and_the_answer_shows_on_their_support_page(user: User):
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    boss = make_user(email="boss@example.com", full_name="Boss", role=Role.ADMIN)
    await sign_in(user, ada.email)
    await user.open("/support")
    await user.should_see("Write to us")
    await user.should_see("We answer here and by e-mail to ada@example.com.")
    _type(user, ui.input, "Subject", SUBJECT)
    _type(user, ui.textarea, "Message", QUESTION)
    user.find(kind=ui.button, content="Send message").click()
    await user.should_see("Thank you. We received your request", retries=50)
    [ticket] = _tickets()
    reference = support.reference(ticket.id)
    assert (ticket.user_id, ticket.email, ticket.subject) == (ada.id, "ada@example.com", SUBJECT)
    await user.should_see(SUBJECT)
    await user.should_see(QUESTION)
    assert _value(user, ui.input, "Subject") == "" and _value(user, ui.textarea, "Message") == ""
    assert [mail.recipient for mail in _mails()] == ["ada@example.com"]  # the acknowledgement

    await _switch(user, boss.email)
    await user.open("/admin/support")
    await user.should_see("Open tickets wait for an answer")
    await user.should_see(SUBJECT, retries=50)
    [link] = [element for element in user.find(kind=ui.link).elements if element.text == SUBJECT]
    assert link.props["href"] == f"/admin/support?ticket={ticket.id}"
    await user.open(link.props["href"])
    await user.should_see(QUESTION, retries=50)
    await user.should_see("Ada Lovelace <ada@example.com>")
    user.find(kind=ui.button, content="Send reply").click()  # nothing typed
    await user.should_see("Write a reply.", retries=50)
    _type(user, ui.textarea, "Reply (mailed to the person)", ANSWER)
    user.find(kind=ui.button, content="Send reply").click()
    await user.should_see("Reply sent to ada@example.com. The ticket is answered.", retries=50)
    reply = _mails()[-1]
    assert (reply.recipient, reply.subject) == ("ada@example.com", f"Re: {SUBJECT} [{reference}]")
    assert "They are under Favourites." in reply.text_body and f"/support?ticket={ticket.id}" in reply.text_body
    user.find(kind=ui.button, content="Close ticket").click()
    await user.should_see("The ticket is closed.", retries=50)
    await user.should_see("Reopen ticket")
    with session_scope() as session:
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        assert [(e.action, e.actor_id, e.target_kind, e.target_id, e.target_user_id) for e in entries] == [
            ("support.reply", boss.id, "ticket", str(ticket.id), ada.id),
            ("support.close", boss.id, "ticket", str(ticket.id), ada.id)]
    await user.open("/admin/support")  # the default filter shows open tickets only
    await user.should_see("No tickets here.", retries=50)
    [status] = user.find(kind=ui.select, content="Status").elements
    with user.client:
        status.value = "closed"
    await user.should_see(SUBJECT, retries=50)

    await _switch(user, ada.email)
    await user.open(f"/support?ticket={ticket.id}")
    await user.should_see("They are under Favourites.", retries=50)
    await user.should_see("This request is closed. Writing again opens it.")
    await user.should_see(f"Closed · {reference}")
    _type(user, ui.textarea, "Your reply", "Found them, thank you!")
    [send] = [element for element in user.find(kind=ui.button).elements
              if element.props.get("aria-label") == f"Send reply to request {reference}"]
    _click(user, send)
    await user.should_see(f"Your reply to {reference} was sent.", retries=50)
    await user.should_see("Found them, thank you!")
    assert _tickets()[0].status == TicketStatus.OPEN
    with session_scope() as session:
        assert len(session.exec(select(SupportMessage)).all()) == 3


async def test_a_visitors_bad_address_gets_a_clear_message_and_the_form_keeps_the_text(user: User):
    make_user(email="ada@example.com")
    await user.open("/support")
    await user.should_see("Write to us")
    _type(user, ui.input, "Your e-mail address", "ada at example")
    _type(user, ui.input, "Subject", HOSTILE["script"])
    _type(user, ui.textarea, "Message", HOSTILE["attribute"])
    user.find(kind=ui.button, content="Send message").click()
    await user.should_see("Enter a valid e-mail address, like name@example.com.", retries=50)
    assert _value(user, ui.input, "Subject") == HOSTILE["script"]
    assert _value(user, ui.textarea, "Message") == HOSTILE["attribute"]
    assert _tickets() == [] and _mails() == []

    _type(user, ui.input, "Your e-mail address", "ada@example.com")  # an account's address, typed by anyone
    user.find(kind=ui.button, content="Send message").click()
    await user.should_see("Thank you", retries=50)
    [ticket] = _tickets()
    await user.should_see(f"We received your message ({support.reference(ticket.id)}) and sent a confirmation to "
                          "ada@example.com. Our answer will come to that address by e-mail.")
    assert (ticket.user_id, ticket.subject) == (None, HOSTILE["script"])
    [mail] = _mails()
    assert mail.recipient == "ada@example.com" and HOSTILE["script"] not in mail.text_body


async def test_visitors_are_rate_limited(user: User):
    for index in range(support.VISITOR_LIMIT.per_email):
        await user.open("/support")
        _type(user, ui.input, "Your e-mail address", "busy@example.com")
        _type(user, ui.input, "Subject", f"Question {index}")
        _type(user, ui.textarea, "Message", "Hello")
        user.find(kind=ui.button, content="Send message").click()
        await user.should_see("Thank you", retries=50)
    await user.open("/support")
    _type(user, ui.input, "Your e-mail address", "busy@example.com")
    _type(user, ui.input, "Subject", "One more")
    _type(user, ui.textarea, "Message", "Hello again")
    user.find(kind=ui.button, content="Send message").click()
    await user.should_see("You have sent several messages in a short time. Please wait 60 minutes", retries=50)
    assert _value(user, ui.textarea, "Message") == "Hello again"
    assert len(_tickets()) == support.VISITOR_LIMIT.per_email


async def test_another_persons_request_is_not_found(user: User):
    grace = make_user(email="grace@example.com")
    ada = make_user(email="ada@example.com")
    with session_scope() as session:
        ticket = support.open_ticket(session, get_settings(), support.ContactForm(
            subject="Grace's private matter", message="My secret question"), user=grace, ip="")
    await sign_in(user, ada.email)
    await user.open(f"/support?ticket={ticket.id}")
    await user.should_see("That support request does not exist.", retries=50)
    await user.should_not_see("Grace's private matter")
    await user.should_not_see("My secret question")
    await user.open("/support?ticket=not-an-id")
    await user.should_see("That support request does not exist.", retries=50)


async def test_the_support_inbox_is_for_administrators_only(user: User):
    make_user(email="boss@example.com", role=Role.ADMIN)
    member = make_user(email="member@example.com")
    await sign_in(user, member.email)
    assert (await user.http_client.get("/admin/support")).status_code == 404
    assert (await user.http_client.get("/support")).status_code == 200
    user.http_client.cookies.clear()
    assert (await user.http_client.get("/support", follow_redirects=False)).status_code == 200  # signed out too
