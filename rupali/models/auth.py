"""Sign-in records: sessions, single-use account tokens, OIDC identities, policy acceptances, attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData, Subject


class AuthSession(SQLModel, table=True):
    """One sign-in. The browser holds a random token whose SHA-256 is ``token_hash``.

    A session starts *pending*: the sign-in form (a websocket event) cannot set cookies, so it creates a one-time
    handoff code bound to the visitor's browser; ``/auth/complete`` exchanges it for the session cookie.
    """

    __tablename__ = "auth_session"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Sign-in sessions: when they started and were last used, IP address, browser and device",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.TECHNICAL_LOGS,
        retained_from="created_at",
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    handoff_hash: str | None = Field(default=None, max_length=64, unique=True)
    handoff_visitor: str | None = Field(default=None, max_length=64)
    handoff_expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    method: str = Field(max_length=40)  # "password" or "oidc"
    ip_address: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=512)
    device: str = Field(default="", max_length=120)  # "Firefox 130 on Ubuntu", parsed from the user agent
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105  (a purpose name, not a password)
    CHANGE_EMAIL = "change_email"
    CANCEL_DELETION = "cancel_deletion"  # the link in the "your account will be deleted" mail


class AccountToken(SQLModel, table=True):
    """A single-use, expiring token mailed to a person (verification, reset, e-mail change)."""

    __tablename__ = "account_token"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Pending e-mail verifications, password resets and e-mail changes (the new address)",
        export=False,  # hashes of one-time secrets: nothing a person can use
        erasure=Erasure.DELETE,
        retention=RetentionKey.TECHNICAL_LOGS,
        retained_from="created_at",
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    purpose: TokenPurpose = Field(sa_type=String(24))
    token_hash: str = Field(max_length=64, unique=True)
    new_email: str | None = Field(default=None, max_length=254)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class OidcIdentity(SQLModel, table=True):
    """An account at the OpenID Connect provider linked to a Rupali account."""

    __tablename__ = "oidc_identity"
    __table_args__ = (UniqueConstraint("provider", "subject"),)
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Linked single-sign-on identity: provider, its user id, e-mail address",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.ACCOUNT,
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    provider: str = Field(max_length=200)
    subject: str = Field(max_length=255)
    email: str = Field(max_length=254)
    linked_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class PolicyAcceptance(SQLModel, table=True):
    """A person's acceptance of one version of the Terms or the Privacy Policy."""

    __tablename__ = "policy_acceptance"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Which versions of the Terms and Privacy Policy you accepted, and when",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.ACCOUNT,
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    document: str = Field(max_length=32)
    version: str = Field(max_length=32)
    accepted_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class AuthAttempt(SQLModel, table=True):
    """One sign-in, sign-up or reset attempt, for rate limiting. Keys are keyed hashes, never raw addresses."""

    __tablename__ = "auth_attempt"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject=Subject.VISITOR,
        subject_column="key",
        holds="Keyed hashes of e-mail and IP addresses used in sign-in, sign-up, password-reset and support-form "
              "attempts (rate limiting)",
        export=False,  # only hashes, which identify nobody without the server's secret
        erasure=Erasure.DELETE,
        retention=RetentionKey.TECHNICAL_LOGS,
        retained_from="created_at",
    )

    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(max_length=16, index=True)
    key: str = Field(max_length=80, index=True)
    succeeded: bool = False
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
