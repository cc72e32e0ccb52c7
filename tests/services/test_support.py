"""Support without UI: opening tickets (accounts and visitors), the checks on what is typed, the visitors' rate
limit, the person's own threads, the administrators' inbox, replies mailed through the outbox, closing and
reopening with audit entries, and retention counting from the last message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from rupali import clock, jobs
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import AuditEntry, JobRunStatus, OutboxMessage, Role, SupportMessage, SupportTicket, TicketStatus
from rupali.models import User as Account
from rupali.services import support
from rupali.services.support import ContactForm
from tests.pages.test_hostile_text import HOSTILE
from tests.utils.factories import make_user

IP, OTHER_IP = "203.0.113.7", "198.51.100.9"


def _open(form: ContactForm, user: Account | None = None, ip: str = IP) -> SupportTicket:
    with session_scope() as session:
        return support.open_ticket(session, get_settings(), form, user=user, ip=ip)


def _visitor(email: str = "visitor@example.com", subject: str = "Where are my images?",
             message: str = "I cannot find them.", name: str = "", ip: str = IP) -> SupportTicket:
    return _open(ContactForm(subject=subject, message=message, email=email, name=name), ip=ip)


def _mails() -> list[OutboxMessage]:
    with session_scope() as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def _stored(ticket_id) -> tuple[SupportTicket, list[SupportMessage]]:
    with session_scope() as session:
        ticket = session.get(SupportTicket, ticket_id)
        messages = session.exec(select(SupportMessage).where(SupportMessage.ticket_id == ticket_id)
                                .order_by(col(SupportMessage.id))).all()
        return ticket, list(messages)


def _audit() -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all())


def _admin(email: str = "boss@example.com") -> Account:
    return make_user(email=email, full_name="Boss", role=Role.ADMIN)


def test_a_signed_in_person_writes_with_their_account_address_and_is_acknowledged():
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    ticket = _open(ContactForm(subject="  Billing question ", message="Line one\r\nLine two",
                               email="someone-else@example.com", name="Not me"), user=ada)
    stored, messages = _stored(ticket.id)
    assert (stored.user_id, stored.email, stored.name) == (ada.id, "ada@example.com", "Ada Lovelace")
    assert (stored.subject, stored.status) == ("Billing question", TicketStatus.OPEN)
    assert [(m.body, m.from_staff, m.user_id) for m in messages] == [("Line one\nLine two", False, ada.id)]
    [mail] = _mails()
    assert (mail.recipient, mail.user_id) == ("ada@example.com", ada.id)
    assert support.reference(ticket.id) in mail.subject and "Billing question" in mail.text_body
    assert f"/support?ticket={ticket.id}" in mail.text_body and "Hi Ada Lovelace," in mail.text_body


@pytest.mark.parametrize(("form", "field", "message"), [
    (ContactForm("Help", "Text", email=""), "email", "Enter an e-mail address."),
    (ContactForm("Help", "Text", email="not-an-address"), "email", "Enter a valid e-mail address"),
    (ContactForm("", "Text", email="v@example.com"), "subject", "Enter a subject."),
    (ContactForm("   ", "Text", email="v@example.com"), "subject", "Enter a subject."),
    (ContactForm("x" * 201, "Text", email="v@example.com"), "subject", "The subject is 201 characters long"),
    (ContactForm("Two\nlines", "Text", email="v@example.com"), "subject", "The subject contains a line break"),
    (ContactForm("Help", "", email="v@example.com"), "message", "Write your message."),
    (ContactForm("Help", "y" * 5001, email="v@example.com"), "message", "The message is 5001 characters long"),
    (ContactForm("Help", "bell \x07", email="v@example.com"), "message", "control character U+0007"),
    (ContactForm("Help", "Text", email="v@example.com", name="n" * 201), "name", "Your name is 201 characters"),
])
def test_a_form_that_cannot_be_accepted_names_its_field_and_records_nothing(form, field, message):
    with pytest.raises(support.SupportError) as refused:
        _open(form)
    assert refused.value.field == field and message in refused.value.message
    with session_scope() as session:
        assert session.exec(select(SupportTicket)).all() == []
    assert _mails() == []


def test_the_limits_are_inclusive():
    ticket = _visitor(subject="s" * 200, message="m" * 5000, name="  Grace   Hopper ")
    stored, [message] = _stored(ticket.id)
    assert len(stored.subject) == 200 and len(message.body) == 5000 and stored.name == "Grace Hopper"


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_is_kept_as_text_and_escaped_in_the_mails(name: str):
    text = HOSTILE[name]
    ada = make_user(email="ada@example.com")
    boss = _admin()
    ticket = _open(ContactForm(subject=text[:200], message=text), user=ada)
    stored, [message] = _stored(ticket.id)
    assert (stored.subject, message.body) == (text[:200].strip(), text)
    with session_scope() as session:
        support.reply(session, get_settings(), boss, ticket.id, f"About {text}")
    for mail in _mails():
        assert "<script>window" not in mail.html_body and "<img src=x" not in mail.html_body
    assert f"About {text}" in _mails()[-1].text_body


def test_a_visitor_is_tied_to_no_account_even_with_an_accounts_address():
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    ticket = _visitor(email=" ADA@example.com ", subject="Please delete everything", name="Mallory",
                      message="Visit http://spam.example now")
    stored, [message] = _stored(ticket.id)
    assert (stored.user_id, message.user_id, stored.email, stored.name) == (None, None, "ada@example.com", "Mallory")
    with session_scope() as session:
        assert support.tickets_of(session, get_settings(), ada.id) == []
        with pytest.raises(support.TicketNotFound):
            support.thread(session, get_settings(), ada.id, ticket.id)
    [mail] = _mails()
    # The acknowledgement goes to the address, quoting nothing typed into the form: no text of a stranger's choosing.
    assert (mail.recipient, mail.user_id) == ("ada@example.com", None)
    for typed in ("Mallory", "Please delete everything", "spam.example", "Ada Lovelace"):
        assert typed not in mail.text_body and typed not in mail.subject
    assert mail.text_body.startswith("Hello,") and support.reference(ticket.id) in mail.text_body
    assert "?ticket=" not in mail.text_body and "/support" in mail.text_body


def test_visitors_are_limited_per_address_and_per_ip_and_refusals_count_nothing():
    for _ in range(3):
        _visitor(email="busy@example.com")
    with pytest.raises(support.TooManyMessages) as refused:
        _visitor(email="BUSY@example.com", ip=OTHER_IP)  # another IP does not help the address
    assert refused.value.minutes == 60 and "Please wait 60 minutes" in refused.value.message
    _visitor(email="calm@example.com")  # another address from the same IP is still fine (4 of 10)
    for index in range(6):
        _visitor(email=f"other{index}@example.com")
    with pytest.raises(support.TooManyMessages):
        _visitor(email="fresh@example.com")  # the IP has sent 10 within the hour
    _visitor(email="fresh@example.com", ip=OTHER_IP)
    with pytest.raises(support.SupportError):
        _visitor(email="fresh@example.com", subject="", ip=OTHER_IP)  # invalid input uses up nothing
    with session_scope() as session:
        assert len(session.exec(select(SupportTicket)).all()) == 11
    with clock.travel(timedelta(minutes=61)):
        _visitor(email="busy@example.com")
        _visitor(email="fresh@example.com")


def test_signed_in_people_are_not_limited_by_the_visitors_limit():
    ada = make_user(email="ada@example.com")
    for index in range(12):
        _open(ContactForm(subject=f"Question {index}", message="Text"), user=ada)
    with session_scope() as session:
        assert len(support.tickets_of(session, get_settings(), ada.id)) == 12


def test_people_see_only_their_own_tickets_newest_activity_first():
    ada, grace = make_user(email="ada@example.com"), make_user(email="grace@example.com")
    first = _open(ContactForm(subject="First", message="One"), user=ada)
    with clock.travel(timedelta(minutes=5)):
        second = _open(ContactForm(subject="Second", message="Two"), user=ada)
    graces = _open(ContactForm(subject="Grace's secret", message="Private"), user=grace)
    visitors = _visitor()
    settings = get_settings()
    with session_scope() as session:
        assert [view.subject for view in support.tickets_of(session, settings, ada.id)] == ["Second", "First"]
        for foreign in (graces.id, visitors.id, "not-an-id", "", None):
            with pytest.raises(support.TicketNotFound):
                support.thread(session, settings, ada.id, foreign)
        with pytest.raises(support.TicketNotFound):
            support.reply_as_person(session, settings, ada, graces.id, "Let me in")
    with clock.travel(timedelta(minutes=10)), session_scope() as session:
        support.reply_as_person(session, settings, ada, first.id, "More about the first")
    with session_scope() as session:
        views = support.tickets_of(session, settings, ada.id)
        assert [view.subject for view in views] == ["First", "Second"]
        assert [(m.author, m.body) for m in views[0].messages] == [("You", "One"), ("You", "More about the first")]
        assert support.thread(session, settings, ada.id, str(second.id)).subject == "Second"
    _, messages = _stored(graces.id)
    assert [m.body for m in messages] == ["Private"]


def test_an_admin_reply_is_threaded_mailed_audited_and_answers_the_ticket():
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    boss = _admin()
    ticket = _open(ContactForm(subject="Lost image", message="Where is it?"), user=ada)
    with clock.travel(timedelta(hours=2)), session_scope() as session:
        support.reply(session, get_settings(), boss, ticket.id, "It is in your gallery.\nUnder favourites.")
    stored, messages = _stored(ticket.id)
    assert stored.status == TicketStatus.ANSWERED
    assert stored.updated_at - stored.created_at >= timedelta(hours=2)
    assert [(m.from_staff, m.author_id, m.user_id) for m in messages] == [(False, None, ada.id),
                                                                          (True, boss.id, ada.id)]
    mail = _mails()[-1]
    assert (mail.recipient, mail.user_id) == ("ada@example.com", ada.id)
    assert mail.subject == f"Re: Lost image [{support.reference(ticket.id)}]"
    assert "It is in your gallery." in mail.text_body and "Under favourites." in mail.text_body
    assert f"/support?ticket={ticket.id}" in mail.text_body
    assert "<p>It is in your gallery.</p><p>Under favourites.</p>" in mail.html_body
    [entry] = _audit()
    assert (entry.actor_id, entry.action, entry.target_kind, entry.target_id, entry.target_user_id) == \
        (boss.id, "support.reply", "ticket", str(ticket.id), ada.id)
    with session_scope() as session:
        view = support.thread(session, get_settings(), ada.id, ticket.id)
        assert [m.author for m in view.messages] == ["You", f"{get_settings().operator_name} support"]
        admin_view = support.ticket_for_admin(session, ticket.id)
        assert [m.author for m in admin_view.messages] == ["Ada Lovelace", "boss@example.com"]
        # The person writes again: the ticket waits for the operator once more.
        support.reply_as_person(session, get_settings(), ada, ticket.id, "Found it, thanks")
    assert _stored(ticket.id)[0].status == TicketStatus.OPEN


def test_a_reply_to_a_visitor_is_mailed_without_a_link_to_an_account():
    boss = _admin()
    ticket = _visitor(email="guest@example.com", name="Guest")
    with session_scope() as session:
        support.reply(session, get_settings(), boss, ticket.id, "Here is the answer.")
    mail = _mails()[-1]
    assert (mail.recipient, mail.user_id) == ("guest@example.com", None)
    assert mail.text_body.startswith("Hi Guest,") and "Here is the answer." in mail.text_body
    assert "?ticket=" not in mail.text_body and support.reference(ticket.id) in mail.text_body
    assert _audit()[0].target_user_id is None


def test_close_and_reopen_are_audited_and_keep_the_last_message_time():
    ada = make_user(email="ada@example.com")
    boss = _admin()
    ticket = _open(ContactForm(subject="Done soon", message="Text"), user=ada)
    before = _stored(ticket.id)[0].updated_at
    with clock.travel(timedelta(days=1)), session_scope() as session:
        support.close(session, boss, ticket.id)
    with session_scope() as session, pytest.raises(support.SupportError, match="already closed"):
        support.close(session, boss, ticket.id)
    assert _stored(ticket.id)[0].status == TicketStatus.CLOSED and _stored(ticket.id)[0].updated_at == before
    with session_scope() as session:
        support.reopen(session, boss, ticket.id)
    with session_scope() as session, pytest.raises(support.SupportError, match="not closed"):
        support.reopen(session, boss, ticket.id)
    assert _stored(ticket.id)[0].status == TicketStatus.OPEN
    assert [(e.action, e.target_kind, e.target_id, e.target_user_id, e.detail) for e in _audit()] == [
        ("support.close", "ticket", str(ticket.id), ada.id, "open → closed"),
        ("support.reopen", "ticket", str(ticket.id), ada.id, "closed → open")]
    with session_scope() as session:  # the person writing on a closed ticket opens it again
        support.close(session, boss, ticket.id)
        support.reply_as_person(session, get_settings(), ada, ticket.id, "One more thing")
    assert _stored(ticket.id)[0].status == TicketStatus.OPEN


def test_only_active_administrators_act_and_unknown_tickets_are_refused():
    ada = make_user(email="ada@example.com")
    boss = _admin()
    ticket = _open(ContactForm(subject="Help", message="Text"), user=ada)
    for action in (lambda s: support.reply(s, get_settings(), ada, ticket.id, "I answer myself"),
                   lambda s: support.close(s, ada, ticket.id), lambda s: support.reopen(s, ada, ticket.id)):
        with session_scope() as session, pytest.raises(support.SupportError, match="Only administrators"):
            action(session)
    with session_scope() as session:
        demoted = session.get(Account, boss.id)
        demoted.is_active = False  # suspended since the page opened
        session.add(demoted)
    with session_scope() as session, pytest.raises(support.SupportError, match="Only administrators"):
        support.close(session, boss, ticket.id)
    other = _admin("other@example.com")
    for unknown in ("nope", "00000000-0000-4000-8000-000000000000"):
        with session_scope() as session, pytest.raises(support.SupportError, match="no longer exists"):
            support.reply(session, get_settings(), other, unknown, "Hello")
        with session_scope() as session:
            assert support.ticket_for_admin(session, unknown) is None
    with session_scope() as session, pytest.raises(support.SupportError, match="Write a reply"):
        support.reply(session, get_settings(), other, ticket.id, "  ")
    assert _stored(ticket.id)[0].status == TicketStatus.OPEN and len(_stored(ticket.id)[1]) == 1
    assert _audit() == [] and len(_mails()) == 1


def test_the_inbox_filters_by_status_and_shows_newest_activity_first():
    boss = _admin()
    ada = make_user(email="ada@example.com")
    old = _open(ContactForm(subject="Old", message="1"), user=ada)
    with clock.travel(timedelta(minutes=1)):
        answered = _visitor(subject="Answered")
    with clock.travel(timedelta(minutes=2)):
        closed = _visitor(email="c@example.com", subject="Closed")
    with clock.travel(timedelta(minutes=3)), session_scope() as session:
        support.reply(session, get_settings(), boss, answered.id, "Answer")
        support.close(session, boss, closed.id)
    with clock.travel(timedelta(minutes=4)), session_scope() as session:
        support.reply_as_person(session, get_settings(), ada, old.id, "Still waiting")
    with session_scope() as session:
        everything = support.inbox(session)
        assert [row.subject for row in everything.rows] == ["Old", "Answered", "Closed"]
        assert everything.counts == {TicketStatus.OPEN: 1, TicketStatus.ANSWERED: 1, TicketStatus.CLOSED: 1}
        assert everything.total == 3
        [row] = support.inbox(session, status=TicketStatus.OPEN).rows
        assert (row.subject, row.user_id, row.messages, row.status_label) == ("Old", ada.id, 2, "Open")
        assert [r.subject for r in support.inbox(session, status=support.parse_status("answered")).rows] == \
            ["Answered"]
        assert [r.subject for r in support.inbox(session, status=TicketStatus.CLOSED).rows] == ["Closed"]
        assert support.parse_status("bogus") is None


def test_retention_counts_from_the_last_message():
    ada = make_user(email="ada@example.com")
    boss = _admin()
    days = get_settings().retention_support_days
    quiet = _open(ContactForm(subject="Quiet", message="1"), user=ada)
    lively = _open(ContactForm(subject="Lively", message="1"), user=ada)
    with clock.travel(timedelta(days=days - 10)), session_scope() as session:
        support.reply(session, get_settings(), boss, lively.id, "Late answer")
    with clock.travel(timedelta(days=days + 1)):
        record = jobs.run("apply_retention")
        assert record.status == JobRunStatus.SUCCEEDED, record.detail
    with session_scope() as session:
        assert session.get(SupportTicket, quiet.id) is None
        assert session.exec(select(SupportMessage).where(SupportMessage.ticket_id == quiet.id)).all() == []
        assert session.get(SupportTicket, lively.id) is not None
