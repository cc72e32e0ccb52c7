"""Personal API keys: shown once when created, stored as SHA-256, revocable, scoped, and optionally expiring.

A key's scope says what it may do: ``read`` keys list and download, ``generate`` keys may also start generations
and change images. The REST API declares the scope each route needs (:func:`allows` decides); the browser session
is not a key and keeps full access.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from rupali import text, tokens
from rupali.clock import now
from rupali.models import ApiKey, ApiKeyScope, User

PREFIX = "rk_"
NAME_MAX = 80
MAX_LIFETIME_DAYS = 3650  # ten years: long enough for any script, short enough to fit every database's dates
TOUCH_INTERVAL = timedelta(minutes=1)


class InvalidApiKey(ValueError):
    """A key name, scope or lifetime that cannot be accepted, or an unknown key id."""


def create(session: Session, user: User, name: str, *, scope: ApiKeyScope | str = ApiKeyScope.GENERATE,
           expires_in_days: int | None = None) -> tuple[ApiKey, str]:
    """A new key for ``user``, valid for ``expires_in_days`` (None: until revoked); the secret is returned once and
    never stored."""
    try:
        name = " ".join(text.clean(name, field="name", label="The name", max_length=10_000).split())
    except text.InvalidText as exc:
        raise InvalidApiKey(str(exc)) from None
    if not name:
        raise InvalidApiKey("Give the key a name, so you can recognise it later.")
    if len(name) > NAME_MAX:
        raise InvalidApiKey(f"Use at most {NAME_MAX} characters for the name.")
    try:
        scope = ApiKeyScope(scope)
    except ValueError:
        raise InvalidApiKey("Choose what the key may do: read only, or read and generate.") from None
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_LIFETIME_DAYS:
        raise InvalidApiKey(f"A key can last from 1 to {MAX_LIFETIME_DAYS} days, or until you revoke it.")
    created = now()
    secret = PREFIX + tokens.new_token()
    key = ApiKey(user_id=user.id, name=name, prefix=secret[:10], key_hash=tokens.digest(secret), scope=scope,
                 created_at=created,
                 expires_at=created + timedelta(days=expires_in_days) if expires_in_days is not None else None)
    session.add(key)
    session.flush()
    return key, secret


def active(session: Session, user_id: uuid.UUID) -> list[ApiKey]:
    """The person's keys that are not revoked, newest first; expired ones too, so they can be seen and revoked."""
    return list(session.exec(select(ApiKey).where(ApiKey.user_id == user_id, col(ApiKey.revoked_at).is_(None))
                             .order_by(col(ApiKey.created_at).desc())).all())


def revoke(session: Session, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    key = session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise InvalidApiKey("That key does not exist.")
    key.revoked_at = key.revoked_at or now()
    session.add(key)


def is_expired(key: ApiKey, moment: datetime | None = None) -> bool:
    return key.expires_at is not None and key.expires_at <= (moment or now())


def scope_of(key: ApiKey) -> ApiKeyScope:
    """The key's scope; a value this version does not know grants the least (fail closed, never a 500)."""
    try:
        return ApiKeyScope(key.scope)
    except ValueError:
        return ApiKeyScope.READ


def allows(granted: ApiKeyScope, needed: ApiKeyScope) -> bool:
    """Whether a key of scope ``granted`` may use a route that needs ``needed`` (generate includes read)."""
    return granted == ApiKeyScope.GENERATE or needed == ApiKeyScope.READ


def resolve(session: Session, secret: str) -> tuple[User, ApiKeyScope] | None:
    """The active user behind a key and the key's scope, or None (unknown, revoked and expired keys alike)."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == tokens.digest(secret))).first()
    if key is None or key.revoked_at is not None or is_expired(key):
        return None
    user = session.get(User, key.user_id)
    if user is None or not user.is_active or not user.onboarded:
        return None
    if key.last_used_at is None or now() - key.last_used_at >= TOUCH_INTERVAL:
        key.last_used_at = now()
        session.add(key)
    return user, scope_of(key)
