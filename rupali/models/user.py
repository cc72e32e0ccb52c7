"""Accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData

EMAIL_MAX = 254
NAME_MAX = 200


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class UserBase(SQLModel):
    email: str = Field(max_length=EMAIL_MAX, unique=True, index=True)
    full_name: str = Field(max_length=NAME_MAX)


class User(UserBase, table=True):
    """A person with an account. E-mail addresses are stored lower-cased."""

    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="id",
        holds="E-mail address, full name, password hash, role, profile picture, sign-up, verification and "
              "age-confirmation times, suspension and its reason",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.ACCOUNT,
        file_columns=("avatar_key",),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    password_hash: str | None = Field(default=None, max_length=512)
    role: Role = Field(default=Role.USER, sa_type=String(16))
    is_active: bool = True
    email_verified_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    age_confirmed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    password_changed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    avatar_key: str | None = Field(default=None, max_length=200)
    # Downloads carry the A1111 "parameters" text unless the person asks for files without their prompt.
    strip_metadata: bool = False
    # Consents and preferences (each change is also written to the consent log).
    analytics: bool = True  # cookie-less usage statistics: legitimate interest, switched off on request
    product_updates: bool = False  # opt-in
    marketing_emails: bool = False  # opt-in
    # Erasure with a grace period: asked for at ``deletion_requested_at``, carried out at ``deletion_due_at``.
    deletion_requested_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    deletion_due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True,
                                                                             index=True))
    # Suspension by an administrator: every session and API key stops working (``is_active`` is false) and the
    # person is told the reason when they try to sign in.
    suspended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    suspension_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def onboarded(self) -> bool:
        """Age confirmed and e-mail verified: the account may use the product."""
        return self.age_confirmed_at is not None and self.email_verified_at is not None
