"""Accounts: creation and lookup. (Sign-up, sign-in and sessions build on these.)"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import false
from sqlmodel import Session, col, func, select, update

from rupali import passwords, text
from rupali.clock import now
from rupali.models import Role, User
from rupali.models.user import EMAIL_MAX, NAME_MAX

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is proven by the verification mail.
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


TEXT_LIMIT = 10_000  # beyond this, a field is refused before anything else is looked at


class InvalidAccount(ValueError):
    """Account details that cannot be accepted, with a user-facing sentence."""


def normalise_email(email: str) -> str:
    """Trim, lower-case and check the shape of an e-mail address."""
    email = _clean(email, "email", "The e-mail address", TEXT_LIMIT).lower()
    if not email:
        raise InvalidAccount("Enter an e-mail address.")
    if len(email) > EMAIL_MAX or not _EMAIL_SHAPE.match(email):
        raise InvalidAccount("Enter a valid e-mail address, like name@example.com.")
    return email


def clean_name(name: str) -> str:
    # Checked as text first (generously: runs of spaces collapse below), then for its length as a name.
    name = " ".join(_clean(name, "full_name", "Your name", TEXT_LIMIT).split())
    if not name:
        raise InvalidAccount("Enter your name.")
    if len(name) > NAME_MAX:
        raise InvalidAccount(f"Use at most {NAME_MAX} characters for your name.")
    return name


def _clean(value: str, field: str, label: str, limit: int) -> str:
    try:
        return text.clean(value, field=field, label=label, max_length=limit)
    except text.InvalidText as exc:
        raise InvalidAccount(str(exc)) from None


def by_email(session: Session, email: str) -> User | None:
    email = email.strip().lower()
    if not email or "\0" in email or not text.is_valid_unicode(email):
        return None  # no account can have such an address, and the database could not even be asked
    return session.exec(select(User).where(User.email == email)).first()


def count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def create(session: Session, *, email: str, full_name: str, password: str | None, role: Role | None = None) -> User:
    """Create an account. The first account of an installation becomes its admin."""
    email = normalise_email(email)
    full_name = clean_name(full_name)
    if password is not None:
        try:
            passwords.check_strength(password)
        except passwords.WeakPassword as exc:
            raise InvalidAccount(str(exc)) from None
    if by_email(session, email) is not None:
        raise InvalidAccount("An account with this e-mail address already exists.")
    if role is None:
        role = Role.ADMIN if count(session) == 0 else Role.USER
    user = User(email=email, full_name=full_name, role=role, created_at=now(), updated_at=now(),
                password_hash=passwords.hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    return user


def make_admin(session: Session, user: User) -> User:
    user.role = Role.ADMIN
    user.updated_at = now()
    session.add(user)
    session.flush()
    return user


def avatar_key(session: Session, user_id: object) -> str | None:
    """The storage key of a user's profile picture, if any."""
    user = session.get(User, user_id)
    return user.avatar_key if user is not None else None


def strips_metadata(session: Session, user_id: object) -> bool:
    """Whether the person's downloads leave out the prompt and parameters."""
    user = session.get(User, user_id)
    return bool(user and user.strip_metadata)


def set_strip_metadata(session: Session, user: User, strip: bool) -> User:
    user.strip_metadata = strip
    user.updated_at = now()
    session.add(user)
    return user


def take_turn(session: Session, user_id: uuid.UUID) -> None:
    """Hold the person's account row until the transaction ends, so that their requests that check and then record
    something (a submission against their limits, an export against its interval, a hold against an erasure) take
    turns: each check sees what every earlier one recorded, on any instance. Take it before those checks.

    A no-op update, because it locks on both engines: on PostgreSQL the row; on SQLite the whole database, which
    needs a write for that (a ``FOR UPDATE`` is dropped there, and a read keeps no snapshot). ``updated_at`` rather
    than a key column: setting a key makes SQLite check every table that refers to accounts.
    """
    session.execute(update(User).where(col(User.id) == user_id).values(updated_at=User.updated_at))


def take_every_turn(session: Session) -> None:
    """On SQLite, hold the database's write lock until the transaction ends (an update that matches no row takes it),
    so that a check across several accounts sees every earlier writer's commit. Nothing on PostgreSQL, where the
    caller locks the rows it reads with ``FOR UPDATE``, always in the same order."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(User).where(false()).values(updated_at=User.updated_at))
