"""Server-side sign-in sessions: start, hand off to the browser, resolve, list and revoke.

A sign-in form runs over NiceGUI's websocket and cannot set a cookie, so signing in creates a *pending* session
with a one-time handoff code bound to the visitor's browser. ``/auth/complete`` exchanges the code for the
session cookie (an HTTP response can set it) — a code sent to another browser is useless there.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction, object_session
from sqlmodel import Session, col, select
from user_agents import parse as parse_user_agent

from rupali import mail_templates, tokens
from rupali.clock import now
from rupali.config import Settings
from rupali.models import AuthSession, User
from rupali.services import mail

HANDOFF_LIFETIME = timedelta(seconds=60)
CACHE_SECONDS = timedelta(seconds=5)
TOUCH_INTERVAL = timedelta(seconds=60)  # last_seen is written at most once a minute per session


class InvalidHandoff(Exception):
    """The handoff code is unknown, expired, used, or belongs to another browser."""


class SessionNotFound(LookupError):
    """No such session among the user's own."""


@dataclass(frozen=True)
class SignedIn:
    """A resolved, valid session and its user."""

    user: User
    session: AuthSession


def start(session: Session, settings: Settings, user: User, *, method: str, ip: str, user_agent: str,
          visitor_id: str) -> str:
    """Create a pending session for ``user`` and return its handoff code; mails a notice for a new device."""
    device = describe_device(user_agent)
    created = now()
    code = tokens.new_token()
    known_device = session.exec(select(AuthSession.id).where(
        AuthSession.user_id == user.id, AuthSession.device == device, col(AuthSession.token_hash).is_not(None),
    ).limit(1)).first() is not None
    first_sign_in = session.exec(select(AuthSession.id).where(
        AuthSession.user_id == user.id, col(AuthSession.token_hash).is_not(None)).limit(1)).first() is None
    session.add(AuthSession(
        user_id=user.id, method=method, ip_address=ip[:64], user_agent=user_agent[:512], device=device,
        handoff_hash=tokens.digest(code), handoff_visitor=visitor_id, handoff_expires_at=created + HANDOFF_LIFETIME,
        created_at=created, last_seen_at=created, expires_at=created + timedelta(days=settings.session_absolute_days),
    ))
    if not known_device and not first_sign_in:
        mail.enqueue(session, to=user.email, user_id=user.id, mail=mail_templates.new_device_signin(
            user.full_name, device, ip or "unknown", f"{created:%Y-%m-%d %H:%M} UTC",
            settings.public_url + "/account#sessions"))
    session.flush()
    return code


def complete_handoff(session: Session, code: str, visitor_id: str) -> str:
    """Exchange a handoff code for the session token the browser will keep in its cookie."""
    if not code or len(code) > 200:
        raise InvalidHandoff()
    pending = session.exec(select(AuthSession).where(AuthSession.handoff_hash == tokens.digest(code))).first()
    if (pending is None or pending.revoked_at is not None or pending.handoff_expires_at is None
            or pending.handoff_expires_at <= now()
            or not hmac.compare_digest((pending.handoff_visitor or "").encode(), visitor_id.encode())):
        raise InvalidHandoff()
    token = tokens.new_token()
    pending.token_hash = tokens.digest(token)
    pending.handoff_hash = pending.handoff_visitor = pending.handoff_expires_at = None
    pending.last_seen_at = now()
    session.add(pending)
    session.flush()
    return token


def cached(settings: Settings, token: str | None) -> SignedIn | None:
    """A recent resolution of ``token`` that is still valid, without touching the database (or None)."""
    if not token or len(token) > 200:
        return None
    found = _recent.get(tokens.digest(token))
    if found is None:
        return None
    signed_in, remembered_at = found
    moment = now()
    record = signed_in.session
    if (moment - remembered_at > CACHE_SECONDS or record.expires_at <= moment
            or moment - record.last_seen_at >= min(TOUCH_INTERVAL, timedelta(minutes=settings.session_idle_minutes))):
        return None  # old enough to look again (and to record the session as used)
    return signed_in


def resolve(session: Session, settings: Settings, token: str | None) -> SignedIn | None:
    """The valid session behind a cookie token, touched as used; ``None`` when signed out, revoked or expired."""
    if not token or len(token) > 200:
        return None
    # One query for session and user: this runs for every request that carries the cookie.
    digest = tokens.digest(token)
    row = session.exec(select(AuthSession, User).join(User, col(User.id) == col(AuthSession.user_id))
                       .where(AuthSession.token_hash == digest)).first()
    signed_in = _valid(session, settings, row[0], touch=True, user=row[1]) if row else None
    if signed_in is not None:
        _recent.put(digest, signed_in)
    return signed_in


def by_id(session: Session, settings: Settings, session_id: uuid.UUID) -> SignedIn | None:
    """Re-check a session an open page was built for (every action of an open page does this)."""
    return _valid(session, settings, session.get(AuthSession, session_id), touch=True)


def active_for(session: Session, settings: Settings, user: User) -> list[AuthSession]:
    """The user's sessions that are still valid, most recently used first."""
    records = session.exec(select(AuthSession).where(
        AuthSession.user_id == user.id, col(AuthSession.token_hash).is_not(None), col(AuthSession.revoked_at).is_(None),
        col(AuthSession.expires_at) > now(),
    ).order_by(col(AuthSession.last_seen_at).desc())).all()
    idle = timedelta(minutes=settings.session_idle_minutes)
    return [record for record in records if now() - record.last_seen_at < idle]


def revoke(session: Session, user: User, session_id: uuid.UUID) -> None:
    """End one of the user's own sessions; another user's session id is simply not found."""
    record = session.get(AuthSession, session_id)
    if record is None or record.user_id != user.id:
        raise SessionNotFound()
    record.revoked_at = record.revoked_at or now()
    session.add(record)


def revoke_others(session: Session, user: User, keep_id: object) -> int:
    """End every session of the user except ``keep_id``; returns how many ended."""
    ended = 0
    for record in session.exec(select(AuthSession).where(
            AuthSession.user_id == user.id, col(AuthSession.revoked_at).is_(None))):
        if record.id != keep_id:
            record.revoked_at = now()
            session.add(record)
            ended += 1
    return ended


def revoke_all(session: Session, user: User) -> int:
    return revoke_others(session, user, keep_id=None)


def describe_device(user_agent: str) -> str:
    """'Firefox 130 on Ubuntu' from a user agent string; 'Unknown device' when it says nothing useful."""
    if not user_agent:
        return "Unknown device"
    parsed = parse_user_agent(user_agent[:512])
    browser = " ".join(part for part in (parsed.browser.family, parsed.browser.version_string.split(".")[0]) if part)
    system = " ".join(part for part in (parsed.os.family, parsed.os.version_string) if part)
    if browser == "Other" and system == "Other":
        return "Unknown device"
    return f"{browser} on {system}"[:120]


def _valid(session: Session, settings: Settings, record: AuthSession | None, *, touch: bool,
           user: User | None = None) -> SignedIn | None:
    moment = now()
    if (record is None or record.token_hash is None or record.revoked_at is not None or record.expires_at <= moment
            or moment - record.last_seen_at >= timedelta(minutes=settings.session_idle_minutes)):
        return None
    user = user or session.get(User, record.user_id)
    if user is None or not user.is_active:
        return None
    if touch and moment - record.last_seen_at >= TOUCH_INTERVAL:
        record.last_seen_at = moment
        session.add(record)
    return SignedIn(user, record)


class _RecentSessions:
    """Sessions resolved in the last few seconds, so a page's burst of thumbnail requests is not a burst of queries.

    Correctness does not rest on the time limit: every change to a session or to a user row (revocation, sign-out
    everywhere, a new password, deactivation, confirmed e-mail or age) drops that user's entries at once, through
    the SQLAlchemy events below, so revoking a session still ends it at the very next request. A change made by
    another instance arrives over Redis when several share the database (:mod:`rupali.revocations`); the time limit
    bounds anything else (a change made outside the app, or one whose message was lost).
    """

    def __init__(self, size: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[SignedIn, object]] = OrderedDict()
        self._size = size

    def get(self, digest: str) -> tuple[SignedIn, object] | None:
        with self._lock:
            return self._items.get(digest)

    def put(self, digest: str, signed_in: SignedIn) -> None:
        with self._lock:
            self._items[digest] = (signed_in, now())
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def forget_user(self, user_id: object) -> None:
        with self._lock:
            for digest in [key for key, (entry, _) in self._items.items() if entry.user.id == user_id]:
                del self._items[digest]


_recent = _RecentSessions()


_CHANGED = "rupali.sessions.changed_users"  # key in a database session's info: users whose sign-ins changed
_announce: Callable[[Iterable[uuid.UUID]], None] | None = None


def announce_with(publish: Callable[[Iterable[uuid.UUID]], None] | None) -> None:
    """Tell ``publish`` (the other instances, see :mod:`rupali.revocations`) after each commit that changed sessions
    or accounts; None stops it."""
    global _announce
    _announce = publish


def forget(user_id: uuid.UUID) -> None:
    """Drop the person's cached sign-ins here (a change made on another instance arrived)."""
    _recent.forget_user(user_id)


def forget_all() -> None:
    """Drop every cached sign-in here (this instance may have missed changes made on others)."""
    _recent.clear()


def _changed(target: object, user_id: uuid.UUID) -> None:
    _recent.forget_user(user_id)
    if (owner := object_session(target)) is not None:
        owner.info.setdefault(_CHANGED, set()).add(user_id)


@event.listens_for(AuthSession, "after_update")
@event.listens_for(AuthSession, "after_delete")
def _session_changed(_mapper: object, _connection: object, target: AuthSession) -> None:
    _changed(target, target.user_id)


@event.listens_for(User, "after_update")
@event.listens_for(User, "after_delete")
def _user_changed(_mapper: object, _connection: object, target: User) -> None:
    _changed(target, target.id)


@event.listens_for(OrmSession, "after_commit")
def _committed(session: OrmSession) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release is not the commit: the outer transaction may still roll back
    changed = session.info.pop(_CHANGED, None)
    if not changed:
        return
    # Again after the commit: a request on another thread may have cached the old rows between flush and commit.
    for user_id in changed:
        _recent.forget_user(user_id)
    if _announce is not None:
        _announce(changed)


@event.listens_for(OrmSession, "after_soft_rollback")
def _rolled_back(session: OrmSession, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint inside it
        session.info.pop(_CHANGED, None)
