"""The administrators' side of the privacy center, driven through the page's controls: logging a request that
arrived by mail, the queue with its deadlines, closing a request, "Erase now", and the 404 everyone else gets."""

from __future__ import annotations

from datetime import timedelta

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from components.choice_group import ChoiceGroup
from rupali import clock, dates
from rupali.db import session_scope
from rupali.models import ErasureRecord, PrivacyRequest, RequestKind, RequestSource, RequestStatus, Role
from rupali.models import User as Account
from rupali.services import users
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

BRITISH = dates.visitor_locale("en-GB")
CONTACT_LABEL = "Who asked"
NOTE_LABEL = "Note (what was asked"


async def _open_admin(user: User, email: str = "boss@example.com") -> Account:
    boss = make_user(email=email, full_name="Boss", role=Role.ADMIN)
    user.http_client.headers["accept-language"] = "en-GB,en;q=0.9"  # dates as a British administrator reads them
    await sign_in(user, boss.email)
    await user.open("/admin")
    await user.should_see("Data-protection requests")
    return boss


def _day(moment) -> str:
    return dates.medium(moment.date(), BRITISH)


def _texts(user: User, marker: str) -> str:
    """Every text shown inside the element marked ``marker``."""
    [section] = user.find(marker=marker).elements
    return " | ".join(str(getattr(element, "text", "")) for element in section.descendants())


def _by_aria_label(user: User, label: str) -> ui.button:
    matches = [button for button in user.find(kind=ui.button).elements if button.props.get("aria-label") == label]
    assert len(matches) == 1, f"{len(matches)} buttons labelled {label!r}"
    return matches[0]


def _click(user: User, element: ui.element) -> None:
    interaction = user.find(kind=type(element))
    interaction.elements = {element}
    interaction.click()


def _field(user: User, kind: type[ui.element], label: str) -> ui.input:
    [element] = user.find(kind=kind, content=label).elements
    return element  # type: ignore[return-value]


def _choose(user: User, group_label: str, value: str) -> None:
    [group] = [group for group in user.find(kind=ChoiceGroup).elements if group.props["label"] == group_label]
    with user.client:
        group.set_value(value)  # the group's button for ``value``, as a click on it does in the browser


def _choose_kind(user: User, label: str) -> None:
    user.find(kind=ui.select, content="Kind of request").click()  # opens the list of kinds
    user.find(label).click()


def _requests() -> list[PrivacyRequest]:
    with session_scope() as session:
        return list(session.exec(select(PrivacyRequest)).all())


async def test_log_a_mailed_request_see_its_deadline_close_it_and_find_it_closed(user: User):
    await _open_admin(user)
    _choose_kind(user, "Objection")
    user.find(kind=ui.input, content=CONTACT_LABEL).type("writer@example.org")
    received = (clock.now() - timedelta(days=25)).date()
    user.find(kind=ui.input, content="Received on").clear().type(received.isoformat())
    user.find(kind=ui.textarea, content=NOTE_LABEL).type("Letter: objects to the use of their prompts.")
    user.find(kind=ui.button, content="Log request").click()

    due = clock.now() + timedelta(days=5)
    await user.should_see(f"The request was logged. It is due on {_day(due)}.", retries=50)
    [stored] = _requests()
    assert (stored.kind, stored.source, stored.contact, stored.user_id) == ("objection", RequestSource.MAIL,
                                                                            "writer@example.org", None)
    shown = _texts(user, "requests-due-soon")
    assert "Due within 7 days (1)" in shown and "Objection · writer@example.org" in shown
    assert f"Received {dates.medium(received, BRITISH)} · due {_day(due)} · due in 5 days · by mail" in shown
    assert "Note: Letter: objects to the use of their prompts." in shown
    assert "None." in _texts(user, "requests-overdue") and "None." in _texts(user, "requests-later")
    assert _field(user, ui.input, CONTACT_LABEL).value == ""  # the form is ready for the next letter

    _click(user, _by_aria_label(user, "Close request: Objection from writer@example.org"))
    await user.should_see("Close this request", retries=20)
    _choose(user, "Result", "refused")
    user.find(kind=ui.button, content="Close request").click()  # without an outcome
    await user.should_see("Describe the outcome", retries=50)
    user.find(kind=ui.textarea, content="Outcome").type("Refused: no processing of this kind takes place.")
    user.find(kind=ui.button, content="Close request").click()
    await user.should_see("The request was closed.", retries=50)

    [stored] = _requests()
    assert (stored.status, stored.outcome) == (RequestStatus.REFUSED, "Refused: no processing of this kind takes "
                                                                      "place.")
    closed = _texts(user, "requests-closed")
    assert "Objection · writer@example.org" in closed
    assert f"Refused on {_day(clock.now())}" in closed
    assert "Outcome: Refused: no processing of this kind takes place." in closed
    assert "None." in _texts(user, "requests-due-soon")


async def test_a_request_past_its_deadline_is_shown_overdue(user: User):
    make_user(email="ada@example.com")
    await _open_admin(user)
    _choose_kind(user, "Copy of my data")
    user.find(kind=ui.input, content=CONTACT_LABEL).type("ADA@example.com")  # an account: linked to it
    user.find(kind=ui.input, content="Received on").clear().type((clock.now() - timedelta(days=33)).date().isoformat())
    user.find(kind=ui.button, content="Log request").click()
    await user.should_see("The request was logged.", retries=50)
    overdue = _texts(user, "requests-overdue")
    assert "Overdue (1)" in overdue and "Copy of my data · ada@example.com" in overdue and "3 days overdue" in overdue
    [stored] = _requests()
    with session_scope() as session:
        assert stored.user_id == users.by_email(session, "ada@example.com").id


async def test_bad_input_gets_a_clear_message_and_the_form_keeps_what_was_typed(user: User):
    await _open_admin(user)
    user.find(kind=ui.input, content=CONTACT_LABEL).type("writer@example.org")
    user.find(kind=ui.button, content="Log request").click()
    await user.should_see("Choose the kind of request.", retries=50)

    _choose_kind(user, "Complaint")
    contact = _field(user, ui.input, CONTACT_LABEL)
    note = _field(user, ui.textarea, NOTE_LABEL)
    for contact_value, note_value, message in (
            ("", "kept", "Enter who made the request"),
            ("writer\ud800@example.org", "kept", "The contact address contains characters that are not valid text."),
            ("x" * 10_000, "kept", "The contact address is 10000 characters long; the limit is 254."),
            ("writer@example.org", "n" * 10_000, "The note is 10000 characters long; the limit is 4000."),
            ("writer@example.org", "bell \x07", "The note contains the control character U+0007")):
        with user.client:
            contact.value, note.value = contact_value, note_value
        user.find(kind=ui.button, content="Log request").click()
        await user.should_see(message, retries=50)
        assert (contact.value, note.value) == (contact_value, note_value)  # nothing typed is lost
        assert _field(user, ui.select, "Kind of request").value == RequestKind.COMPLAINT
    received = _field(user, ui.input, "Received on")
    with user.client:
        contact.value, note.value, received.value = "writer@example.org", "", "2999-01-01"
    user.find(kind=ui.button, content="Log request").click()
    await user.should_see("The day the request arrived cannot be in the future.", retries=50)
    assert _requests() == []


async def test_hostile_text_in_a_mailed_request_is_shown_as_text(user: User):
    hostile = "\"><img src=x onerror=\"window.__pwned=1\"> {{ constructor.constructor('x')() }} \\x41 \u202eevil"
    await _open_admin(user)
    _choose_kind(user, "Restrict processing")
    user.find(kind=ui.input, content=CONTACT_LABEL).type(hostile)
    user.find(kind=ui.textarea, content=NOTE_LABEL).type(hostile)
    user.find(kind=ui.button, content="Log request").click()
    await user.should_see("The request was logged.", retries=50)
    later = _texts(user, "requests-later")
    assert f"Restrict processing · {hostile}" in later and f"Note: {hostile}" in later
    assert _by_aria_label(user, f"Close request: Restrict processing from {hostile}")  # an attribute, verbatim


async def test_the_admin_page_is_the_404_page_for_everyone_else(user: User):
    make_user(email="boss@example.com", role=Role.ADMIN)
    member = make_user(email="member@example.com")
    await sign_in(user, member.email)
    response = await user.http_client.get("/admin")
    assert response.status_code == 404
    assert "This page does not exist" in response.text and "Data-protection requests" not in response.text


async def test_erase_now_refuses_a_wrong_address_and_erases_with_the_right_one(user: User):
    minor = make_user(email="minor@example.com", full_name="Young Person")
    boss = await _open_admin(user)
    assert not [b for b in user.find(kind=ui.button).elements
                if b.props.get("aria-label") == f"Erase now: {boss.email}"]

    _click(user, _by_aria_label(user, "Erase now: minor@example.com"))
    await user.should_see("Erase this account now?", retries=20)
    confirm_field = _field(user, ui.input, "Type the account's e-mail address to confirm")
    [confirm] = [b for b in user.find(kind=ui.button, content="Erase now").elements if "aria-label" not in b.props]
    with user.client:
        confirm_field.value = "minor@example.com"
    _click(user, confirm)  # no reason chosen yet: the erasure record must say why
    await user.should_see("Choose why the account is erased.", retries=50)
    _choose(user, "Reason", "under-age")
    with user.client:
        confirm_field.value = "boss@example.com"
    _click(user, confirm)
    await user.should_see("The address you typed is not this account's e-mail address. Nothing was erased.",
                          retries=50)
    with session_scope() as session:
        assert session.get(Account, minor.id) is not None

    with user.client:
        confirm_field.value = "minor@example.com"
    _click(user, confirm)
    await user.should_see("minor@example.com was erased.", retries=50)
    with session_scope() as session:
        assert session.get(Account, minor.id) is None
        assert users.by_email(session, "minor@example.com") is None
        assert [record.reason for record in session.exec(select(ErasureRecord)).all()] == ["under-age"]
    await user.should_see("Accounts (1)", retries=20)
    assert not [b for b in user.find(kind=ui.button).elements
                if b.props.get("aria-label") == "Erase now: minor@example.com"]
    closed = _texts(user, "requests-closed")
    assert "Delete my account · erased account" in closed and "administrator" in closed


async def test_accounts_pending_deletion_are_listed_with_their_date(user: User):
    waiting = make_user(email="leaving@example.com")
    due = clock.now() + timedelta(days=12)
    with session_scope() as session:
        stored = session.get(Account, waiting.id)
        stored.deletion_requested_at, stored.deletion_due_at = clock.now(), due
        session.add(stored)
    await _open_admin(user)
    await user.should_see("Pending deletion (1)")
    await user.should_see(f"leaving@example.com — erased on {dates.moment(due, BRITISH)}")

