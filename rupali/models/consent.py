"""Cookie-notice acknowledgements."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData, Subject

VISITOR_ID_MAX = 64


class CookieConsent(SQLModel, table=True):
    """One visitor's acknowledgement of one cookie-policy version, valid until ``expires_at``."""

    __tablename__ = "cookie_consent"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject=Subject.VISITOR,
        subject_column="visitor_id",
        holds="Anonymous visitor id, cookie-policy version, analytics choice, time of the choice",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.COOKIE_CONSENT,
        retained_from="created_at",
    )

    id: int | None = Field(default=None, primary_key=True)
    visitor_id: str = Field(max_length=VISITOR_ID_MAX, index=True)
    policy_version: str = Field(max_length=64)
    analytics: bool = True
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
