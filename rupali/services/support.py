"""Support: the contact form of ``/support``, its tickets and message threads, and the administrators' inbox.

A ticket is opened by a signed-in person (tied to their account, answered on their ``/support``) or by a visitor who
leaves an e-mail address (tied to no account, answered by mail only). A visitor writing with the address of an
existing account is *not* attached to that account: anyone can type any address, so the thread must not appear in
that account, and the acknowledgement goes to the address, where its owner sees it.

Visitors are rate limited per address and per IP. The attempts are counted as rows of ``auth_attempt`` (keyed
hashes only, like the sign-up and reset limits of :mod:`rupali.services.ratelimit`, whose limits table this module
does not extend: its action here is ``support``), so the limit holds across restarts and instances.

Every administrator action (reply, close, reopen) is written to the audit log in the same transaction.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from rupali import support_mails
from rupali.clock import now
from rupali.config import Settings
from rupali.models import AuthAttempt, SupportMessage, SupportTicket, TicketStatus, User
from rupali.services import audit, mail, ratelimit, users
from rupali.text import InvalidText, clean

SUBJECT_MAX = 200
MESSAGE_MAX = 5000
NAME_MAX = 200
INBOX_LIMIT = 200
# Visitors: at most this many tickets per address and per IP address within the window. Generous for a person
# with a real question, tight enough that the form cannot be used to mail acknowledgements to strangers in bulk.
VISITOR_LIMIT = ratelimit.Limit(per_email=3, per_ip=10, window=timedelta(hours=1), failures_only=False)
RATE_ACTION = "support"
STATUS_LABELS = {TicketStatus.OPEN: "Open", TicketStatus.ANSWERED: "Answered", TicketStatus.CLOSED: "Closed"}


class SupportError(ValueError):
    """Input or an action that cannot be accepted; ``message`` is a sentence for people, ``field`` what it is
    about (``subject``, ``message``, ``email``, ``name``, or ``""`` for the whole form)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class TooManyMessages(SupportError):
    """A visitor (address or IP) has sent as many messages as the window allows; ``minutes`` until the next."""

    def __init__(self, minutes: int) -> None:
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(f"You have sent several messages in a short time. Please wait {minutes} {unit} and try "
                         "again, or write to us by e-mail.")
        self.minutes = minutes


class TicketNotFound(LookupError):
    """No such ticket among the person's own (another person's ids are simply not found)."""


@dataclass(frozen=True)
class ContactForm:
    """What the form holds. ``email`` and ``name`` are read only from visitors; accounts use their own."""

    subject: str | None
    message: str | None
    email: str | None = ""
    name: str | None = ""


@dataclass(frozen=True)
class MessageView:
    from_staff: bool
    body: str
    at: datetime
    author: str  # "You", the operator's name, or (for administrators) the replying administrator's address


@dataclass(frozen=True)
class TicketView:
    id: uuid.UUID
    reference: str
    subject: str
    email: str
    name: str
    user_id: uuid.UUID | None
    status: TicketStatus
    created_at: datetime
    updated_at: datetime
    messages: list[MessageView]

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class InboxRow:
    id: uuid.UUID
    reference: str
    subject: str
    email: str
    name: str
    user_id: uuid.UUID | None  # None: a visitor's ticket
    status: TicketStatus
    updated_at: datetime
    messages: int

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class Inbox:
    rows: list[InboxRow]
    counts: dict[TicketStatus, int]  # every ticket per status, whatever the filter

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def reference(ticket_id: uuid.UUID) -> str:
    """The short name of a ticket people can quote: ``#3F2A91C0``."""
    return "#" + ticket_id.hex[:8].upper()


def parse_id(value: object) -> uuid.UUID | None:
    """A ticket id from a query parameter, or None for anything malformed."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value or "").strip())
    except ValueError:
        return None


def parse_status(value: object) -> TicketStatus | None:
    """A status filter from a query parameter; None (every status) for anything else."""
    try:
        return TicketStatus(str(value or ""))
    except ValueError:
        return None


# --- opening a ticket ---------------------------------------------------------------------------------------------

def open_ticket(session: Session, settings: Settings, form: ContactForm, *, user: User | None,
                ip: str) -> SupportTicket:
    """Record a new ticket with its first message and queue the acknowledgement mail.

    ``user`` is the signed-in person (their account's address and name are used), or None for a visitor, whose
    address is required and who is rate limited per address and per ``ip``.
    """
    account = session.get(User, user.id) if user is not None else None
    if user is not None and account is None:
        raise SupportError("Your account no longer exists. Sign in again, or write to us without an account.")
    if account is not None:
        email, name = account.email, account.full_name
    else:  # checked in the order the form asks
        try:
            email = users.normalise_email(form.email or "")
        except users.InvalidAccount as exc:
            raise SupportError(str(exc), "email") from None
        name = " ".join(_text(form.name, "name", "Your name", NAME_MAX, empty="").split())  # optional
    subject = _text(form.subject, "subject", "The subject", SUBJECT_MAX, empty="Enter a subject.")
    body = _text(form.message, "message", "The message", MESSAGE_MAX, multiline=True, empty="Write your message.")
    if account is None:
        # Only well-formed requests count: a typo in the address does not use up an attempt.
        _check_visitor_limit(session, settings, email, ip)
    moment = now()
    ticket = SupportTicket(user_id=account.id if account else None, email=email, name=name, subject=subject,
                           status=TicketStatus.OPEN, created_at=moment, updated_at=moment)
    session.add(ticket)
    session.flush()
    session.add(SupportMessage(ticket_id=ticket.id, user_id=ticket.user_id, from_staff=False, body=body,
                               created_at=moment))
    link = _link(settings, ticket) if account is not None else None
    mail.enqueue(session, to=email, user_id=ticket.user_id, mail=support_mails.acknowledgement(
        account.full_name if account is not None else None, subject if account is not None else None,
        reference(ticket.id), link, _link(settings, None), settings.operator_name))
    session.flush()
    return ticket


def _check_visitor_limit(session: Session, settings: Settings, email: str, ip: str) -> None:
    """Refuse when the address or the IP used up its tickets in the window; otherwise count this one."""
    since = now() - VISITOR_LIMIT.window
    found = ratelimit.keys(settings, email=email, ip=ip or None)
    for kind, key in found.items():
        count, oldest = session.exec(select(func.count(), func.min(AuthAttempt.created_at)).where(
            AuthAttempt.action == RATE_ACTION, AuthAttempt.key == key, col(AuthAttempt.created_at) > since)).one()
        allowed = VISITOR_LIMIT.per_email if kind == "email" else VISITOR_LIMIT.per_ip
        if count >= allowed:
            wait = (oldest + VISITOR_LIMIT.window - now()).total_seconds() if oldest else \
                VISITOR_LIMIT.window.total_seconds()
            raise TooManyMessages(max(1, math.ceil(wait / 60)))
    ratelimit.record(session, settings, RATE_ACTION, email=email, ip=ip or None, succeeded=True)


# --- the person's own tickets -------------------------------------------------------------------------------------

def tickets_of(session: Session, settings: Settings, user_id: uuid.UUID) -> list[TicketView]:
    """The person's tickets with their threads, newest activity first."""
    tickets = session.exec(select(SupportTicket).where(SupportTicket.user_id == user_id)
                           .order_by(col(SupportTicket.updated_at).desc(), col(SupportTicket.id))).all()
    threads = _messages(session, [ticket.id for ticket in tickets])
    return [_view(ticket, threads.get(ticket.id, []), _person_author(settings)) for ticket in tickets]


def thread(session: Session, settings: Settings, user_id: uuid.UUID, ticket_id: object) -> TicketView:
    """One of the person's tickets with its thread; :class:`TicketNotFound` for anything else."""
    ticket = _own(session, user_id, ticket_id)
    return _view(ticket, _messages(session, [ticket.id]).get(ticket.id, []), _person_author(settings))


def reply_as_person(session: Session, settings: Settings, user: User, ticket_id: object,
                    body: str | None) -> TicketView:
    """Add the person's message to their own ticket; the ticket is open again (waiting for the operator)."""
    text = _text(body, "message", "The message", MESSAGE_MAX, multiline=True, empty="Write your message.")
    ticket = _own(session, user.id, ticket_id, lock=True)
    _add(session, ticket, text, from_staff=False, author_id=None)
    ticket.status = TicketStatus.OPEN
    session.add(ticket)
    session.flush()
    return _view(ticket, _messages(session, [ticket.id]).get(ticket.id, []), _person_author(settings))


def _own(session: Session, user_id: uuid.UUID, ticket_id: object, *, lock: bool = False) -> SupportTicket:
    found = parse_id(ticket_id)
    ticket = session.get(SupportTicket, found, with_for_update=lock, populate_existing=lock) if found else None
    if ticket is None or ticket.user_id is None or ticket.user_id != user_id:
        raise TicketNotFound()
    return ticket


def _person_author(settings: Settings) -> dict[bool, str]:
    return {False: "You", True: f"{settings.operator_name} support"}


# --- the administrators' inbox --------------------------------------------------------------------------------------

def inbox(session: Session, *, status: TicketStatus | None = None, limit: int = INBOX_LIMIT) -> Inbox:
    """Tickets of one status (or all), newest activity first, and how many tickets each status holds."""
    query = select(SupportTicket).order_by(col(SupportTicket.updated_at).desc(), col(SupportTicket.id)).limit(limit)
    if status is not None:
        query = query.where(SupportTicket.status == status)
    tickets = session.exec(query).all()
    ids = [ticket.id for ticket in tickets]
    sizes = dict(session.exec(select(SupportMessage.ticket_id, func.count()).where(
        col(SupportMessage.ticket_id).in_(ids)).group_by(col(SupportMessage.ticket_id))).all()) if ids else {}
    counted = dict(session.exec(select(SupportTicket.status, func.count()).group_by(col(SupportTicket.status))).all())
    counts = {choice: int(counted.get(choice.value, 0)) for choice in TicketStatus}
    rows = [InboxRow(ticket.id, reference(ticket.id), ticket.subject, ticket.email, ticket.name, ticket.user_id,
                     TicketStatus(ticket.status), ticket.updated_at, int(sizes.get(ticket.id, 0)))
            for ticket in tickets]
    return Inbox(rows, counts)


def ticket_for_admin(session: Session, ticket_id: object) -> TicketView | None:
    """Any ticket with its thread, the replying administrators named by address; None when there is no such one."""
    found = parse_id(ticket_id)
    ticket = session.get(SupportTicket, found) if found else None
    if ticket is None:
        return None
    messages = _messages(session, [ticket.id]).get(ticket.id, [])
    authors = {message.author_id for message in messages if message.author_id is not None}
    emails = dict(session.exec(select(User.id, User.email).where(col(User.id).in_(authors))).all()) \
        if authors else {}
    person = ticket.name or ticket.email
    return TicketView(ticket.id, reference(ticket.id), ticket.subject, ticket.email, ticket.name, ticket.user_id,
                      TicketStatus(ticket.status), ticket.created_at, ticket.updated_at,
                      [MessageView(message.from_staff, message.body, message.created_at,
                                   (emails.get(message.author_id, "an administrator") if message.author_id
                                    else "an administrator") if message.from_staff else person)
                       for message in messages])


def reply(session: Session, settings: Settings, actor: User, ticket_id: object, body: str | None) -> SupportTicket:
    """An administrator's answer: added to the thread, mailed to the ticket's address through the outbox (with a
    link to ``/support`` for account holders), the ticket marked answered, and the action audited."""
    text = _text(body, "reply", "The reply", MESSAGE_MAX, multiline=True, empty="Write a reply.")
    current = _admin(session, actor)
    ticket = _ticket(session, ticket_id)
    _add(session, ticket, text, from_staff=True, author_id=current.id)
    ticket.status = TicketStatus.ANSWERED
    session.add(ticket)
    account = session.get(User, ticket.user_id) if ticket.user_id is not None else None
    name = account.full_name if account is not None else ticket.name
    link = _link(settings, ticket) if account is not None else None
    mail.enqueue(session, to=ticket.email, user_id=ticket.user_id, mail=support_mails.reply(
        name, ticket.subject, text, reference(ticket.id), link, _link(settings, None), settings.operator_name))
    audit.record(session, current, "support.reply", target_kind="ticket", target_id=ticket.id,
                 target_user_id=ticket.user_id, detail=f"mailed to {ticket.email}")
    session.flush()
    return ticket


def close(session: Session, actor: User, ticket_id: object) -> SupportTicket:
    """Close a ticket (audited). The person can still write on it, which opens it again."""
    current = _admin(session, actor)
    ticket = _ticket(session, ticket_id)
    if ticket.status == TicketStatus.CLOSED:
        raise SupportError("This ticket is already closed.")
    return _set_status(session, current, ticket, TicketStatus.CLOSED, "support.close")


def reopen(session: Session, actor: User, ticket_id: object) -> SupportTicket:
    """Open a closed ticket again (audited)."""
    current = _admin(session, actor)
    ticket = _ticket(session, ticket_id)
    if ticket.status != TicketStatus.CLOSED:
        raise SupportError("This ticket is not closed.")
    return _set_status(session, current, ticket, TicketStatus.OPEN, "support.reopen")


def _set_status(session: Session, actor: User, ticket: SupportTicket, status: TicketStatus,
                action: str) -> SupportTicket:
    before = TicketStatus(ticket.status)
    # updated_at stays: it is the moment of the last message, which the inbox sorts by and retention counts from.
    ticket.status = status
    session.add(ticket)
    audit.record(session, actor, action, target_kind="ticket", target_id=ticket.id, target_user_id=ticket.user_id,
                 detail=f"{before.value} → {status.value}")
    session.flush()
    return ticket


def _admin(session: Session, actor: User) -> User:
    """The acting administrator, read again: someone demoted or suspended since the page opened does nothing."""
    current = session.get(User, actor.id, populate_existing=True)
    if current is None or not current.is_admin or not current.is_active:
        raise SupportError("Only administrators can do this.")
    return current


def _ticket(session: Session, ticket_id: object) -> SupportTicket:
    found = parse_id(ticket_id)
    # Locked: a reply and a close at the same moment take turns, and each audits what it really changed.
    ticket = session.get(SupportTicket, found, with_for_update=True, populate_existing=True) if found else None
    if ticket is None:
        raise SupportError("This ticket no longer exists.")
    return ticket


# --- shared -------------------------------------------------------------------------------------------------------

def _add(session: Session, ticket: SupportTicket, body: str, *, from_staff: bool,
         author_id: uuid.UUID | None) -> SupportMessage:
    moment = now()
    message = SupportMessage(ticket_id=ticket.id, user_id=ticket.user_id, from_staff=from_staff,
                             author_id=author_id, body=body, created_at=moment)
    session.add(message)
    ticket.updated_at = moment  # every message moves it: the inbox sorts by it and retention counts from it
    session.add(ticket)
    return message


def _messages(session: Session, ticket_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[SupportMessage]]:
    if not ticket_ids:
        return {}
    found: dict[uuid.UUID, list[SupportMessage]] = {}
    for message in session.exec(select(SupportMessage).where(col(SupportMessage.ticket_id).in_(ticket_ids))
                                .order_by(col(SupportMessage.created_at), col(SupportMessage.id))).all():
        found.setdefault(message.ticket_id, []).append(message)
    return found


def _view(ticket: SupportTicket, messages: list[SupportMessage], authors: dict[bool, str]) -> TicketView:
    return TicketView(ticket.id, reference(ticket.id), ticket.subject, ticket.email, ticket.name, ticket.user_id,
                      TicketStatus(ticket.status), ticket.created_at, ticket.updated_at,
                      [MessageView(message.from_staff, message.body, message.created_at, authors[message.from_staff])
                       for message in messages])


def _text(value: str | None, field: str, label: str, limit: int, *, empty: str, multiline: bool = False) -> str:
    """Checked text (:func:`rupali.text.clean`); ``empty`` is the refusal of an empty field ("" if it may be)."""
    try:
        cleaned = clean(value, field=field, label=label, max_length=limit, multiline=multiline)
    except InvalidText as exc:
        raise SupportError(exc.message, field) from None
    if not cleaned and empty:
        raise SupportError(empty, field)
    return cleaned


def _link(settings: Settings, ticket: SupportTicket | None) -> str:
    return f"{settings.public_url}/support" + (f"?ticket={ticket.id}" if ticket is not None else "")
