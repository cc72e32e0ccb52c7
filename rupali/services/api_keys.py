"""Personal API keys: shown once when created, stored as SHA-256, revocable."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, col, select

from rupali import tokens
from rupali.clock import now
from rupali.models import ApiKey, User

PREFIX = "rk_"
NAME_MAX = 80
TOUCH_INTERVAL = timedelta(minutes=1)


class InvalidApiKey(ValueError):
    """A key name that cannot be accepted, or an unknown key id."""


def create(session: Session, user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``; the secret is returned once and never stored."""
    name = " ".join(name.split())
    if not name:
        raise InvalidApiKey("Give the key a name, so you can recognise it later.")
    if len(name) > NAME_MAX:
        raise InvalidApiKey(f"Use at most {NAME_MAX} characters for the name.")
    secret = PREFIX + tokens.new_token()
    key = ApiKey(user_id=user.id, name=name, prefix=secret[:10], key_hash=tokens.digest(secret))
    session.add(key)
    session.flush()
    return key, secret


def active(session: Session, user_id: uuid.UUID) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).where(ApiKey.user_id == user_id, col(ApiKey.revoked_at).is_(None))
                             .order_by(col(ApiKey.created_at).desc())).all())


def revoke(session: Session, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    key = session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise InvalidApiKey("That key does not exist.")
    key.revoked_at = key.revoked_at or now()
    session.add(key)


def resolve(session: Session, secret: str) -> User | None:
    """The active user behind a key, or None."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == tokens.digest(secret))).first()
    if key is None or key.revoked_at is not None:
        return None
    user = session.get(User, key.user_id)
    if user is None or not user.is_active or not user.onboarded:
        return None
    if key.last_used_at is None or now() - key.last_used_at >= TOUCH_INTERVAL:
        key.last_used_at = now()
        session.add(key)
    return user
