"""Deleting an account: a request confirmed with the password, a grace period, then the erasure.

Asking (:func:`request_deletion`) makes the account *pending deletion*: every session and API key is revoked,
unfinished generations are cancelled, the request is logged, and a mail says when the account will be deleted,
with a single-use link that cancels it. Signing in during the grace period leads only to the page that offers
"Cancel deletion" (the gate sees to that). When the grace period is over the retention job calls
:func:`purge_due`, which carries out the inventory (:func:`rupali.privacy.erasure.purge_user`). An administrator's
:func:`erase_now` skips the grace period; :func:`purge_never_confirmed` erases single-sign-on accounts whose 18+
confirmation never came. An account under an evidence hold (:mod:`rupali.services.holds`) is not erased: the purges
pass it over (it stays pending) until the hold is released, and the next run after that erases it.

Every function works in the caller's session and leaves the commit to it, except the two purges, which commit after
each erased account (see :func:`purge_due`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from rupali import dates, mail_templates, passwords, tokens
from rupali.clock import now
from rupali.config import Settings
from rupali.models import (
    AccountToken,
    ErasureRecord,
    Generation,
    GenerationStatus,
    OidcIdentity,
    PrivacyRequest,
    RequestKind,
    RequestSource,
    RequestStatus,
    TokenPurpose,
    User,
)
from rupali.privacy import erasure
from rupali.services import api_keys, holds, ledger, mail, privacy_requests, sessions, users
from rupali.services import generation as generations
from rupali.services.credits import CreditHook
from rupali.storage import MediaStorage

log = logging.getLogger(__name__)

CANCEL_PATH = "/deletion/cancel"
NEVER_CONFIRMED_AFTER = timedelta(hours=24)
WITHDRAWN = "cancelled by the person during the grace period"
# Reasons an ErasureRecord gives (its column holds 24 characters).
SELF_SERVICE = "self-service"
ADMINISTRATOR = "administrator"
NEVER_CONFIRMED = "never-confirmed"


class DeletionError(ValueError):
    """A deletion cannot be asked for, cancelled or carried out as asked; the message says why, for the person."""


def is_pending(user: User) -> bool:
    """Whether the account is in its grace period before deletion."""
    return user.deletion_requested_at is not None


# --- asking ----------------------------------------------------------------------------------------------------------

def request_deletion(session: Session, settings: Settings, user: User, *, password: str | None = None,
                     typed_email: str | None = None, credits: CreditHook | None = None) -> User:
    """The person asks to delete their account, confirming with their password (or, for an account without one,
    by typing its e-mail address). Returns the account, now pending deletion.

    ``credits`` is the hook the running app reserves credits with (``runtime.credits``), so cancelled generations
    give theirs back through it; it defaults to the hook the billing mode chooses (:func:`ledger.hook_for`).
    """
    current = _account(session, user)
    if current.password_hash:
        if not passwords.verify_password(current.password_hash, password or ""):
            raise DeletionError("That is not your password. Your account was not changed.")
    elif (typed_email or "").strip().lower() != current.email.lower():
        raise DeletionError("Type your e-mail address exactly as it appears on your account to confirm.")
    return schedule_deletion(session, settings, current, credits=credits)


def schedule_deletion(session: Session, settings: Settings, user: User, *,
                      source: RequestSource = RequestSource.SELF_SERVICE, credits: CreditHook | None = None) -> User:
    """Start the grace period without asking for confirmation (the caller has confirmed who asks: the person above,
    an operator with ``source=RequestSource.ADMIN``).

    Unfinished generations are cancelled through ``credits`` (default: the billing mode's hook), so the credits
    they hold come back to the balance at once, in this transaction.
    """
    current = _account(session, user, lock=True)
    if is_pending(current):
        assert current.deletion_due_at is not None
        raise DeletionError(f"This account is already scheduled for deletion on {_when(current.deletion_due_at)}.")
    moment = now()
    due = moment + timedelta(days=settings.retention_account_grace_days)
    current.deletion_requested_at, current.deletion_due_at, current.updated_at = moment, due, moment
    session.add(current)
    sessions.revoke_all(session, current)
    for key in api_keys.active(session, current.id):
        api_keys.revoke(session, current.id, key.id)
    hook = credits or ledger.hook_for(settings)
    for generation_id in unfinished_generations(session, current.id):
        generations.cancel(session, current.id, generation_id, hook)
    privacy_requests.log(session, settings, kind=RequestKind.ERASURE, user_id=current.id, source=source)
    token = _issue_cancel_token(session, current, expires_at=due)
    mail.enqueue(session, to=current.email, user_id=current.id, mail=mail_templates.deletion_scheduled(
        current.full_name, _when(due), f"{settings.public_url}{CANCEL_PATH}?token={token}",
        f"{settings.public_url}/signin", by_operator=source is RequestSource.ADMIN))
    session.flush()
    return current


def unfinished_generations(session: Session, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The account's queued and running generations (to stop them in the running queue too)."""
    return list(session.exec(select(Generation.id).where(
        Generation.user_id == user_id,
        col(Generation.status).in_([GenerationStatus.QUEUED, GenerationStatus.RUNNING]))).all())


# --- cancelling ------------------------------------------------------------------------------------------------------

def cancel_deletion(session: Session, settings: Settings, user: User) -> User:
    """End the grace period: the account stays. Idempotent for an account that is not pending deletion."""
    current = _account(session, user, lock=True)
    if not is_pending(current):
        return current
    current.deletion_requested_at = current.deletion_due_at = None
    current.updated_at = now()
    session.add(current)
    for token in session.exec(select(AccountToken).where(
            AccountToken.user_id == current.id, AccountToken.purpose == TokenPurpose.CANCEL_DELETION,
            col(AccountToken.used_at).is_(None))):
        token.used_at = now()
        session.add(token)
    privacy_requests.close_open(session, current.id, RequestKind.ERASURE, outcome=WITHDRAWN,
                                status=RequestStatus.WITHDRAWN)
    mail.enqueue(session, to=current.email, user_id=current.id, mail=mail_templates.deletion_cancelled(
        current.full_name, f"{settings.public_url}/signin"))
    session.flush()
    return current


def cancel_link_usable(session: Session, token: str) -> bool:
    """Whether a cancel link from the mail still works (to show its button or say that it does not)."""
    return _find_cancel_token(session, token) is not None


def cancel_by_token(session: Session, settings: Settings, token: str) -> User:
    """Cancel the deletion from the mail's single-use link."""
    record = _find_cancel_token(session, token)
    user = session.get(User, record.user_id) if record is not None else None
    if record is None or user is None or not is_pending(user):
        raise DeletionError("This link has expired or was already used. Sign in to see the state of your account.")
    record.used_at = now()
    session.add(record)
    return cancel_deletion(session, settings, user)


# --- erasing ---------------------------------------------------------------------------------------------------------

def erase_now(session: Session, settings: Settings, storage: MediaStorage, user: User, *,
              reason: str = ADMINISTRATOR) -> ErasureRecord:
    """An administrator erases an account at once, without a grace period (e.g. a person under 18).

    Logged as an erasure request made by an administrator, closed as carried out, and kept without the person.
    Refused (:class:`DeletionError`, nothing changed) while the account is on hold.
    """
    current = _account(session, user, lock=True)
    if holds.is_held(session, current.id):  # before anything is logged; purge_user would refuse it too
        raise DeletionError(erasure.HELD)
    privacy_requests.log(session, settings, kind=RequestKind.ERASURE, user_id=current.id, source=RequestSource.ADMIN)
    try:
        record = erasure.purge_user(session, storage, current.id, reason=reason)
    except erasure.AccountHeld as exc:
        raise DeletionError(str(exc)) from None
    assert record is not None  # the account is locked by this transaction
    return record


def purge_due(session: Session, settings: Settings, storage: MediaStorage, *, limit: int = 50,
              dry_run: bool = False) -> int:
    """Erase up to ``limit`` accounts whose grace period is over; how many were (or, in a dry run, would be) erased.

    Commits the session after each erased account, so no transaction holds more than one person and an account
    that fails (logged) does not hold back the others: call it with a session that has nothing else pending.
    Accounts on hold are left out of the query itself, so any number of them cannot fill every batch.
    """
    due = session.exec(select(User.id).where(col(User.deletion_due_at) <= now(), holds.not_held(User.id))
                       .order_by(col(User.deletion_due_at), col(User.id)).limit(limit)).all()
    if dry_run:
        return len(due)

    def still_due(user: User) -> bool:  # cancelled meanwhile?
        return user.deletion_due_at is not None and user.deletion_due_at <= now()

    return _erase_each(session, storage, due, still_due, _reason_for_due)


def purge_never_confirmed(session: Session, settings: Settings, storage: MediaStorage, *, limit: int = 50,
                          dry_run: bool = False) -> int:
    """Erase single-sign-on accounts (no password) that never confirmed being 18 or older within 24 hours.

    Same commit semantics as :func:`purge_due`.
    """
    cutoff = now() - NEVER_CONFIRMED_AFTER
    linked = select(OidcIdentity.id).where(OidcIdentity.user_id == User.id).exists()
    found = session.exec(select(User.id).where(
        col(User.password_hash).is_(None), col(User.age_confirmed_at).is_(None), col(User.created_at) < cutoff,
        linked, holds.not_held(User.id)).order_by(col(User.created_at), col(User.id)).limit(limit)).all()
    if dry_run:
        return len(found)

    def still_unconfirmed(user: User) -> bool:  # confirmed, or given a password, meanwhile?
        return user.password_hash is None and user.age_confirmed_at is None and user.created_at < cutoff

    return _erase_each(session, storage, found, still_unconfirmed, lambda _session, _user: NEVER_CONFIRMED)


def _erase_each(session: Session, storage: MediaStorage, user_ids: Sequence[uuid.UUID],
                still: Callable[[User], bool], reason_for: Callable[[Session, User], str]) -> int:
    """Erase each account that still qualifies under its row lock (and is not on hold), committing after each."""
    erased = 0
    for user_id in user_ids:
        done = False
        try:
            # A savepoint per account: one that fails is logged and rolled back alone.
            with session.begin_nested():
                users.take_turn(session, user_id)  # a cancel at this moment is seen by still() below, or waits
                user = session.get(User, user_id, with_for_update=True, populate_existing=True)
                # A hold placed since the query: passed over quietly (purge_user would refuse it), kept pending.
                if user is not None and still(user) and not holds.is_held(session, user_id):
                    done = erasure.purge_user(session, storage, user_id, reason=reason_for(session, user)) is not None
        except Exception:
            log.exception("could not erase an account; the next run tries again")
            continue
        if done:
            session.commit()
            erased += 1
    return erased


def _reason_for_due(session: Session, user: User) -> str:
    """An operator scheduled it (``rupali users erase`` without ``--now``), or the person asked."""
    request = session.exec(select(PrivacyRequest).where(
        PrivacyRequest.user_id == user.id, PrivacyRequest.kind == RequestKind.ERASURE,
        PrivacyRequest.status == RequestStatus.OPEN).order_by(col(PrivacyRequest.received_at))).first()
    return ADMINISTRATOR if request is not None and request.source == RequestSource.ADMIN else SELF_SERVICE


# --- helpers ---------------------------------------------------------------------------------------------------------

def _account(session: Session, user: User, *, lock: bool = False) -> User:
    """The account's current row in this session (the caller's object may come from another session); with ``lock``,
    held until the transaction ends (the turn for SQLite, which drops FOR UPDATE)."""
    if lock:
        users.take_turn(session, user.id)
    current = session.get(User, user.id, with_for_update=lock, populate_existing=True)
    if current is None:
        raise DeletionError("This account no longer exists.")
    return current


def _when(moment: datetime) -> str:
    return dates.moment(moment, dates.FALLBACK)


def _issue_cancel_token(session: Session, user: User, *, expires_at: datetime) -> str:
    token = tokens.new_token()
    session.add(AccountToken(user_id=user.id, purpose=TokenPurpose.CANCEL_DELETION, token_hash=tokens.digest(token),
                             expires_at=expires_at))
    session.flush()
    return token


def _find_cancel_token(session: Session, token: str) -> AccountToken | None:
    if not token or len(token) > 200:
        return None
    record = session.exec(select(AccountToken).where(
        AccountToken.token_hash == tokens.digest(token), AccountToken.purpose == TokenPurpose.CANCEL_DELETION)).first()
    if record is None or record.used_at is not None or record.expires_at <= now():
        return None
    return record
