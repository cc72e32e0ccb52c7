"""What an administrator sees and does: accounts (search, detail, suspension, role), the data-protection request
queue, the mail outbox, the jobs.

Every action here takes the acting administrator and checks the role again: the gate only guards the page, and an
open page outlives a role change. Every action also appends its entry to the audit log (:mod:`rupali.services.audit`)
in the same transaction, so the change and its trace commit or roll back together.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from rupali import jobs, mail_templates
from rupali.clock import now
from rupali.config import Settings
from rupali.models import (
    AuthSession,
    CreditAccount,
    ErasureRecord,
    Generation,
    Image,
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
from rupali.services import api_keys, audit, billing, deletion, mail, privacy_requests, sessions, suspension, users
from rupali.services.privacy_requests import LABELS, MAIL_KINDS, RequestError
from rupali.storage import MediaStorage
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
    # Who asked stays out of the entry (the request holds it): the log outlives the request.
    audit.record(session, actor, "request.log", target_kind="request", target_id=request.id,
                 target_user_id=request.user_id, detail=f"{LABELS.get(chosen, str(chosen))}, received {day:%Y-%m-%d}")
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
        closed = privacy_requests.close(session, request, status=chosen, outcome=text)
    except RequestError as exc:
        raise AdminError(str(exc)) from None
    audit.record(session, actor, "request.close", target_kind="request", target_id=closed.id,
                 target_user_id=closed.user_id, reason=text,
                 detail=f"{LABELS.get(closed.kind, str(closed.kind))}: {STATUS_LABELS[chosen].lower()}")
    return closed


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


def erase_account_now(session: Session, settings: Settings, storage: MediaStorage, actor: User,
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
    erased_id = account.id
    try:
        record = deletion.erase_now(session, settings, storage, account, reason=reason)
    except deletion.DeletionError as exc:  # e.g. an evidence hold: the sentence says why nothing was erased
        raise AdminError(str(exc)) from None
    # Only the id stays in the entry: after the erasure it leads to no one (the address would still name them).
    audit.record(session, actor, "account.erase", target_kind="user", target_id=erased_id, target_user_id=erased_id,
                 reason=ERASE_REASONS[reason], detail=f"erasure record {record.id}")
    return record


# --- users: search, detail, suspension, role ---------------------------------------------------------------------

REASON_MIN, REASON_MAX = 3, 500  # the suspension reason column holds 500 characters
SEARCH_MAX = 254
SEARCH_LIMIT = 50
USAGE_DAYS = 30
ROLE_LABELS = {Role.USER: "Member", Role.ADMIN: "Administrator"}
# What the list of accounts can be narrowed to, beside the search text.
USER_FILTERS = {"all": "Everyone", "admins": "Administrators", "suspended": "Suspended",
                "pending-deletion": "Pending deletion"}


@dataclass(frozen=True)
class UserRow:
    """One account as the list shows it."""

    id: uuid.UUID
    email: str
    full_name: str
    role: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class UserSearch:
    rows: list[UserRow]
    total: int  # how many accounts match (the list shows at most SEARCH_LIMIT of them)


@dataclass(frozen=True)
class UserDetail:
    """What the person's page shows: the account, where it is signed in, what it used, what was done to it."""

    user: User
    status: str
    sessions: list[AuthSession]
    api_keys: int
    generations: int
    images: int
    credits: int | None  # the recorded balance; None while billing is off or before the first use
    credits_used: int | None  # spent on generations in the last USAGE_DAYS days; None while billing is off
    history: list[audit.AuditRow]


def status_of(user: User) -> str:
    """The account's state in one word or two, the most important first."""
    if user.suspended_at is not None:
        return "Suspended"
    if user.deletion_requested_at is not None:
        return "Pending deletion"
    if not user.is_active:
        return "Inactive"
    return "Active" if user.onboarded else "Setting up"


def role_label(role: Role | str) -> str:
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return str(role)


def search_users(session: Session, query: str | None, *, show: str | None = "all",
                 limit: int = SEARCH_LIMIT) -> UserSearch:
    """Accounts whose e-mail address or name contains ``query`` (or whose id it is), newest first.

    ``show`` narrows the list to administrators, suspended accounts or accounts pending deletion.
    """
    text = _text(query, "query", "The search", SEARCH_MAX)
    if show not in USER_FILTERS:
        raise AdminError("Choose which accounts to show.")
    conditions = []
    if text:
        lowered = text.lower()
        matches = [col(User.email).contains(lowered, autoescape=True),
                   func.lower(User.full_name).contains(lowered, autoescape=True)]
        found_id = parse_user_id(text)
        if found_id is not None:
            matches.append(col(User.id) == found_id)
        conditions.append(or_(*matches))
    if show == "admins":
        conditions.append(col(User.role) == Role.ADMIN.value)
    elif show == "suspended":
        conditions.append(col(User.suspended_at).is_not(None))
    elif show == "pending-deletion":
        conditions.append(col(User.deletion_requested_at).is_not(None))
    found = session.exec(select(User).where(*conditions)
                         .order_by(col(User.created_at).desc(), col(User.id)).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(User).where(*conditions)).one()
    rows = [UserRow(user.id, user.email, user.full_name, role_label(user.role), status_of(user), user.created_at)
            for user in found]
    return UserSearch(rows, int(total))


def parse_user_id(value: object) -> uuid.UUID | None:
    """An account id from an address or a form; None for anything that is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)[:64])
    except ValueError:
        return None


def user_detail(session: Session, settings: Settings, user_id: object) -> UserDetail | None:
    """The person's page; None for an unknown or malformed id."""
    found_id = parse_user_id(user_id)
    user = session.get(User, found_id) if found_id is not None else None
    if user is None:
        return None

    def counted(model: type[Generation | Image]) -> int:
        return int(session.exec(select(func.count()).select_from(model).where(col(model.user_id) == user.id)).one())

    credits = used = None
    if settings.billing_enabled:
        # Read, never opened: looking at an account must not give it its sign-up bonus.
        account = session.get(CreditAccount, user.id)
        credits = account.balance if account is not None else None
        used = sum(spent for _, spent in billing.usage_per_day(session, user.id, USAGE_DAYS))
    return UserDetail(
        user=user, status=status_of(user), sessions=sessions.active_for(session, settings, user),
        api_keys=len(api_keys.active(session, user.id)), generations=counted(Generation), images=counted(Image),
        credits=credits, credits_used=used, history=audit.recent(session, target_user_id=user.id, limit=50))


def suspend_user(session: Session, actor: User, user_id: object, *, reason: str | None) -> User:
    """Suspend an account: it stops working at once (every session and API key is ended) and the person is told
    ``reason`` when they try to sign in."""
    text = _reason(reason, "The reason for the suspension")
    current, admins, account = _act_on(session, actor, user_id)
    if account.id == current.id:
        raise AdminError("You cannot suspend your own account.")
    if account.suspended_at is not None:
        raise AdminError("This account is already suspended.")
    if account.is_admin:
        _keep_an_admin(admins, account)
    # The same mechanics (and audit entry) as the automatic suspension of a repeat offender.
    suspension.suspend_account(session, account, actor=current, reason=text)
    return account


def unsuspend_user(session: Session, actor: User, user_id: object, *, reason: str | None) -> User:
    """Lift a suspension: the person can sign in again. Ended sessions and revoked API keys stay ended."""
    text = _reason(reason, "The reason for lifting the suspension")
    current, _admins, account = _act_on(session, actor, user_id)
    if account.suspended_at is None:
        raise AdminError("This account is not suspended.")
    account.is_active = True
    account.suspended_at = account.suspension_reason = None
    account.updated_at = now()
    session.add(account)
    audit.record(session, current, "user.unsuspend", target_kind="user", target_id=account.id,
                 target_user_id=account.id, reason=text)
    session.flush()
    return account


def change_role(session: Session, actor: User, user_id: object, *, role: Role | str | None,
                reason: str | None) -> User:
    """Make an account an administrator or a member. Nobody demotes themselves, and the last active
    administrator stays one."""
    try:
        chosen = Role(role or "")
    except ValueError:
        raise AdminError("Choose a role: member or administrator.") from None
    text = _reason(reason, "The reason for the role change")
    current, admins, account = _act_on(session, actor, user_id)
    if account.id == current.id:
        raise AdminError("You cannot change your own role. Another administrator can.")
    if account.role == chosen:
        raise AdminError("This account is already " + ("an administrator." if chosen == Role.ADMIN else "a member."))
    if account.is_admin:
        _keep_an_admin(admins, account)
    before = Role(account.role)
    account.role, account.updated_at = chosen, now()
    session.add(account)
    audit.record(session, current, "user.role", target_kind="user", target_id=account.id, target_user_id=account.id,
                 reason=text, detail=f"{before.value} → {chosen.value}")
    session.flush()
    return account


def _act_on(session: Session, actor: User, user_id: object) -> tuple[User, list[User], User]:
    """The acting administrator and the account acted on, re-read under lock, and every administrator's row.

    The administrators' rows are locked first, always in the same order: two administrators acting on each other at
    the same moment then take turns, and the second sees the first one's change (no one is left without an admin).
    """
    users.take_every_turn(session)  # the same on SQLite, which has no row locks
    admins = list(session.exec(select(User).where(col(User.role) == Role.ADMIN.value).order_by(col(User.id))
                               .with_for_update().execution_options(populate_existing=True)).all())
    current = next((admin for admin in admins if admin.id == actor.id), None)
    if current is None or not current.is_active:
        raise AdminError("Only administrators can do this.")
    found_id = parse_user_id(user_id)
    account = session.get(User, found_id, with_for_update=True, populate_existing=True) if found_id else None
    if account is None:
        raise AdminError("This account no longer exists.")
    return current, admins, account


def _keep_an_admin(admins: list[User], leaving: User) -> None:
    if not any(admin.is_active and admin.id != leaving.id for admin in admins):
        raise AdminError("This is the last active administrator. Make someone else an administrator first.")


def _reason(value: str | None, label: str) -> str:
    text = _text(value, "reason", label, REASON_MAX)
    if len(text) < REASON_MIN:
        raise AdminError(f"Give a reason of at least {REASON_MIN} characters: it is recorded in the audit log.")
    return text



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
