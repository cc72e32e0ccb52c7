"""What an administrator sees and does: accounts, the data-protection request queue, the mail outbox, the jobs.

Every action here takes the acting administrator and checks the role again: the gate only guards the page, and an
open page outlives a role change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, func, select

from rupali import jobs, mail_templates
from rupali.clock import now
from rupali.config import Settings
from rupali.models import (
    ErasureRecord,
    JobRun,
    MailKind,
    MailStatus,
    OutboxMessage,
    PrivacyRequest,
    RequestKind,
    RequestSource,
    RequestStatus,
    Role,
    User,
)
from rupali.services import deletion, mail, privacy_requests, users
from rupali.services.privacy_requests import LABELS, MAIL_KINDS, RequestError
from rupali.storage import LocalStorage
from rupali.text import InvalidText, clean


class AdminError(ValueError):
    """An administrator's action that cannot be carried out; the message says why, for the administrator."""


# --- overview ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    users: list[User]
    user_count: int
    outbox: dict[str, int]
    last_runs: dict[str, JobRun]
    pending_deletion: list[User]


def overview(session: Session, *, limit: int = 200) -> Overview:
    newest = session.exec(select(User).order_by(col(User.created_at).desc()).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(User)).one()
    counts = dict(session.exec(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    outbox = {status.value: int(counts.get(status, 0)) for status in MailStatus}
    return Overview(list(newest), total, outbox, jobs.last_runs(session), pending_deletion(session))


def pending_deletion(session: Session) -> list[User]:
    """Accounts in their grace period, the soonest erasure first."""
    query = select(User).where(col(User.deletion_due_at).is_not(None)).order_by(col(User.deletion_due_at))
    return list(session.exec(query).all())


# --- the data-protection request queue ---------------------------------------------------------------------------

SOURCE_LABELS = {
    RequestSource.SELF_SERVICE: "privacy center",
    RequestSource.MAIL: "by mail",
    RequestSource.ADMIN: "administrator",
}
STATUS_LABELS = {
    RequestStatus.OPEN: "Open",
    RequestStatus.DONE: "Done",
    RequestStatus.REFUSED: "Refused",
    RequestStatus.WITHDRAWN: "Withdrawn",
}
CLOSING_STATUSES = (RequestStatus.DONE, RequestStatus.REFUSED, RequestStatus.WITHDRAWN)
ERASED = "erased account"
# A received date further back is almost certainly a typo (and its answer long overdue in any case).
OLDEST_RECEIVED = timedelta(days=366)
_FIELD_LIMIT = 10_000  # text beyond this is refused before anything else looks at it


@dataclass(frozen=True)
class RequestRow:
    """One request as the queue shows it: who asked is resolved to an address (or "erased account")."""

    id: uuid.UUID
    kind: RequestKind
    label: str
    who: str
    source: str
    status: RequestStatus
    received_at: datetime
    due_at: datetime
    deadline: str  # "3 days overdue", "due in 5 days"
    note: str
    outcome: str
    closed_at: datetime | None


@dataclass(frozen=True)
class RequestQueue:
    overdue: list[RequestRow]
    due_soon: list[RequestRow]
    later: list[RequestRow]
    recently_closed: list[RequestRow]

    @property
    def open_count(self) -> int:
        return len(self.overdue) + len(self.due_soon) + len(self.later)


def request_queue(session: Session, *, closed_limit: int = 20) -> RequestQueue:
    """Open requests split by urgency (oldest deadline first), and the most recently closed ones."""
    found = privacy_requests.queue(session, closed_limit=closed_limit)
    groups = (found.overdue, found.due_soon, found.later, found.recently_closed)
    emails = _emails(session, (request.user_id for group in groups for request in group))
    moment = now()
    rows = [[_row(request, emails, moment) for request in group] for group in groups]
    return RequestQueue(*rows)


def deadline_text(due_at: datetime, moment: datetime) -> str:
    """How the deadline stands, in calendar days (UTC): ``3 days overdue``, ``due today``, ``due in 5 days``."""
    days = (due_at.date() - moment.date()).days
    if due_at < moment:
        overdue = -days
        return "overdue since today" if overdue == 0 else f"{overdue} day{'s' if overdue != 1 else ''} overdue"
    if days == 0:
        return "due today"
    return f"due in {days} day{'s' if days != 1 else ''}"


def who_asked(request: PrivacyRequest, emails: dict[uuid.UUID, str]) -> str:
    """The account's address, the contact written down for a mailed request, or "erased account"."""
    if request.user_id is not None and request.user_id in emails:
        return emails[request.user_id]
    return request.contact or ERASED


def log_mailed_request(session: Session, settings: Settings, actor: User, *, kind: RequestKind | str | None,
                       contact: str | None, received_on: date | str | None = None,
                       note: str | None = "") -> PrivacyRequest:
    """Log a request that arrived by mail or letter; an existing account's address is linked to the account.

    The deadline runs from the day it arrived (``received_on``, default today), not from the day it is logged.
    """
    _require_admin(actor)
    chosen = _mail_kind(kind)
    contact = _text(contact, "contact", "The contact address", privacy_requests.CONTACT_MAX)
    if not contact:
        raise AdminError("Enter who made the request: their e-mail or postal address, or their account's e-mail.")
    note = _text(note, "note", "The note", privacy_requests.NOTE_MAX, multiline=True)
    day = parse_received_on(received_on)
    account = users.by_email(session, contact)
    try:
        request = privacy_requests.log(session, settings, kind=chosen, source=RequestSource.MAIL,
                                       user_id=account.id if account else None,
                                       contact="" if account else contact, note=note)
    except RequestError as exc:
        raise AdminError(str(exc)) from None
    # log() stamps "now"; a letter that arrived days ago is due that many days sooner.
    days_ago = (now().date() - day).days
    if days_ago:
        request.received_at -= timedelta(days=days_ago)
        request.due_at = request.received_at + timedelta(days=settings.gdpr_response_days)
        session.add(request)
        session.flush()
    return request


def parse_received_on(value: date | str | None) -> date:
    """The day a request arrived: an ISO date (``2026-11-28``), today when empty, never in the future."""
    today = now().date()
    if value is None or (isinstance(value, str) and not value.strip()):
        return today
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()[:40])
        except ValueError:
            raise AdminError("Enter the day the request arrived as a date, like 2026-11-28.") from None
    if value > today:
        raise AdminError("The day the request arrived cannot be in the future.")
    if today - value > OLDEST_RECEIVED:
        raise AdminError("The day the request arrived is more than a year ago; check the date.")
    return value


def close_request(session: Session, actor: User, request_id: uuid.UUID | str, *,
                  status: RequestStatus | str | None, outcome: str | None) -> PrivacyRequest:
    """Close an open request as done, refused or withdrawn, with the outcome told to the person."""
    _require_admin(actor)
    request = privacy_requests.by_id(session, request_id)
    if request is None:
        raise AdminError("This request no longer exists.")
    try:
        chosen = RequestStatus(status or "")
    except ValueError:
        chosen = None
    if chosen not in CLOSING_STATUSES:
        raise AdminError("Choose how the request ended: done, refused or withdrawn.")
    assert chosen is not None
    text = _text(outcome, "outcome", "The outcome", privacy_requests.OUTCOME_MAX, multiline=True)
    if not text:
        raise AdminError("Describe the outcome: what was done, or why the request was refused or withdrawn.")
    if request.status != RequestStatus.OPEN:  # a loaded row holds the plain string
        raise AdminError(f"This request was already closed ({STATUS_LABELS[request.status].lower()}).")
    try:
        return privacy_requests.close(session, request, status=chosen, outcome=text)
    except RequestError as exc:
        raise AdminError(str(exc)) from None


def _row(request: PrivacyRequest, emails: dict[uuid.UUID, str], moment: datetime) -> RequestRow:
    return RequestRow(
        id=request.id, kind=request.kind, label=LABELS.get(request.kind, str(request.kind)),
        who=who_asked(request, emails), source=SOURCE_LABELS.get(request.source, str(request.source)),
        status=request.status, received_at=request.received_at, due_at=request.due_at,
        deadline=deadline_text(request.due_at, moment), note=request.note, outcome=request.outcome,
        closed_at=request.closed_at)


def _emails(session: Session, user_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {user_id for user_id in user_ids if user_id is not None}
    if not wanted:
        return {}
    return dict(session.exec(select(User.id, User.email).where(col(User.id).in_(wanted))).all())


def _mail_kind(kind: RequestKind | str | None) -> RequestKind:
    try:
        chosen = RequestKind(kind or "")
    except ValueError:
        chosen = None
    if chosen not in MAIL_KINDS:
        raise AdminError("Choose the kind of request.")
    assert chosen is not None
    return chosen


# --- erasure -----------------------------------------------------------------------------------------------------

ERASE_REASONS = {
    "under-age": "The person is under 18 (their data is deleted at once)",
    "administrator": "Administrator's decision",
}


def erase_account_now(session: Session, settings: Settings, storage: LocalStorage, actor: User,
                      account_id: uuid.UUID | str, *, typed_email: str | None, reason: str | None) -> ErasureRecord:
    """Erase an account at once, without the grace period, once the administrator has typed its address."""
    _require_admin(actor)
    try:
        account = session.get(User, uuid.UUID(str(account_id)))
    except ValueError:
        account = None
    if account is None:
        raise AdminError("This account no longer exists.")
    if account.id == actor.id:
        raise AdminError("You cannot erase your own account here; use “Delete my account” in the privacy center.")
    if reason not in ERASE_REASONS:
        raise AdminError("Choose why the account is erased.")
    typed = _text(typed_email, "email", "The e-mail address", _FIELD_LIMIT).lower()
    if typed != account.email:
        raise AdminError("The address you typed is not this account's e-mail address. Nothing was erased.")
    return deletion.erase_now(session, settings, storage, account, reason=reason)


# --- the daily reminder ------------------------------------------------------------------------------------------


def remind_privacy_requests(session: Session, settings: Settings) -> str:
    """Mail every administrator one summary of the open requests due within 7 days or overdue."""
    due = privacy_requests.due_within(session)
    if not due:
        return "no requests due"
    admins = session.exec(select(User).where(User.role == Role.ADMIN, col(User.is_active).is_(True),
                                             col(User.deletion_due_at).is_(None))).all()
    moment = now()
    # Who asked stays out of the mail: the queue behind the link shows it; mailboxes keep copies for years.
    overdue = [_reminder_line(request, moment) for request in due if request.due_at < moment]
    soon = [_reminder_line(request, moment) for request in due if request.due_at >= moment]
    link = settings.public_url + "/admin#privacy-requests"
    for admin in admins:
        mail.enqueue(session, to=admin.email, user_id=admin.id, kind=MailKind.TRANSACTIONAL,
                     mail=mail_templates.privacy_requests_due(admin.full_name, overdue, soon, link))
    return (f"{len(due)} request{'s' if len(due) != 1 else ''} due; "
            f"mailed {len(admins)} administrator{'s' if len(admins) != 1 else ''}")


def _reminder_line(request: PrivacyRequest, moment: datetime) -> str:
    return (f"{LABELS.get(request.kind, str(request.kind))} ({SOURCE_LABELS.get(request.source, '')}), received "
            f"{request.received_at:%Y-%m-%d}, due {request.due_at:%Y-%m-%d}: {deadline_text(request.due_at, moment)}")


# --- helpers -----------------------------------------------------------------------------------------------------


def _require_admin(actor: User) -> None:
    if not actor.is_admin or not actor.is_active:
        raise AdminError("Only administrators can do this.")


def _text(value: str | None, field: str, label: str, limit: int, *, multiline: bool = False) -> str:
    try:
        return clean(value, field=field, label=label, max_length=limit, multiline=multiline)
    except InvalidText as exc:
        raise AdminError(str(exc)) from None
