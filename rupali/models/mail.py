"""The e-mail outbox: every message is a row until it is delivered (or printed to the log)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData


class MailKind(StrEnum):
    TRANSACTIONAL = "transactional"  # verification, reset, security notices: always sent
    PRODUCT = "product"  # opt-in
    MARKETING = "marketing"  # opt-in, with unsubscribe


class MailStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a delivery run; back to queued if that run died
    SENT = "sent"
    LOGGED = "logged"  # no SMTP configured: printed to the log instead
    FAILED = "failed"  # gave up after the last retry
    CANCELLED = "cancelled"  # stopped by an administrator before it was sent


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="E-mails we sent you: address, subject, text, delivery status",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.TECHNICAL_LOGS,
        retained_from="created_at",
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID | None = Field(
        default=None, sa_column=fk_column("user.id", nullable=True))
    recipient: str = Field(max_length=254)
    kind: MailKind = Field(sa_type=String(16))
    subject: str = Field(max_length=300)
    text_body: str = Field(sa_type=Text)
    html_body: str = Field(sa_type=Text)
    status: MailStatus = Field(default=MailStatus.QUEUED, sa_type=String(16), index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str = Field(default="", max_length=1000)
    # Non-transactional mail only: the signed one-click unsubscribe link (RFC 8058 ``List-Unsubscribe``).
    unsubscribe_url: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
