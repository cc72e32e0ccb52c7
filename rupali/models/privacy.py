"""The privacy center's records: data exports, data-protection requests, the consent log, erasure records."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"


class DataExport(SQLModel, table=True):
    """One "download my data" archive: built in the background, downloadable by its owner for a week."""

    __tablename__ = "data_export"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id", holds="Your data exports: when you asked, their state, and the ZIP file itself",
        export=False, erasure=Erasure.DELETE, retention=RetentionKey.EXPORTS, retained_from="requested_at",
        expires_column="expires_at", file_columns=("storage_key",))

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    status: ExportStatus = Field(default=ExportStatus.QUEUED, sa_type=String(16))
    progress: float = 0.0  # 0 … 1 while running
    requested_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    storage_key: str | None = Field(default=None, max_length=300)
    bytes: int | None = None
    files: int | None = None
    error: str = Field(default="", max_length=500)


class RequestKind(StrEnum):
    ACCESS = "access"  # a copy of the data (export)
    ERASURE = "erasure"
    RECTIFICATION = "rectification"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    CONSENT_WITHDRAWAL = "consent_withdrawal"
    COMPLAINT = "complaint"


class RequestSource(StrEnum):
    SELF_SERVICE = "self_service"  # made by the person in the privacy center
    MAIL = "mail"  # arrived by e-mail or letter, logged by an administrator
    ADMIN = "admin"  # an administrator acted (e.g. erasing a minor's account)


class RequestStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class PrivacyRequest(SQLModel, table=True):
    """A data-subject request with the date it arrived, the date it must be answered by, and its outcome."""

    __tablename__ = "privacy_request"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Your data-protection requests: what you asked for, when, the deadline and the outcome",
        export=True, erasure=Erasure.ANONYMIZE, retention=RetentionKey.REQUESTS, retained_from="received_at",
        anonymize={"user_id": None, "contact": "", "note": ""})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID | None = Field(default=None,
                                      sa_column=fk_column("user.id", nullable=True, on_delete="SET NULL"))
    contact: str = Field(default="", max_length=254)  # who asked, when it is not (or no longer) an account
    kind: RequestKind = Field(sa_type=String(24))
    source: RequestSource = Field(default=RequestSource.SELF_SERVICE, sa_type=String(16))
    status: RequestStatus = Field(default=RequestStatus.OPEN, sa_type=String(16))
    received_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    outcome: str = Field(default="", max_length=500)
    note: str = Field(default="", sa_type=Text)  # an administrator's note (may describe the person)


class ConsentKind(StrEnum):
    ANALYTICS = "analytics"
    PRODUCT_UPDATES = "product_updates"
    MARKETING = "marketing"
    TERMS = "terms"
    PRIVACY = "privacy"
    AGE = "age"


class ConsentEvent(SQLModel, table=True):
    """One change of a consent or preference: what, to which value, under which policy version, from where."""

    __tablename__ = "consent_event"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Every change of your consents and e-mail preferences, with time, policy version and where you made it",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.ACCOUNT)

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    kind: ConsentKind = Field(sa_type=String(24))
    granted: bool
    policy_version: str = Field(default="", max_length=64)
    source: str = Field(max_length=24)  # "sign-up", "privacy-center", "unsubscribe-link", "cookie-notice", …
    at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class ErasureRecord(SQLModel, table=True):
    """Proof that an erasure was carried out: when, why, and how many rows and files went. Nobody is named."""

    __tablename__ = "erasure_record"

    id: int | None = Field(default=None, primary_key=True)
    erased_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    reason: str = Field(max_length=24)  # "self-service", "administrator", "under-age", "never-confirmed"
    counts: str = Field(default="{}", sa_type=Text)  # JSON: table -> rows deleted or anonymized, plus "files"
