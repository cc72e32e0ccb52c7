"""Support tickets with their message threads, and feedback on studio results."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, SmallInteger, String, Text, Uuid
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData


class TicketStatus(StrEnum):
    OPEN = "open"  # waiting for the operator
    ANSWERED = "answered"  # the operator replied; waiting for the person
    CLOSED = "closed"


class SupportTicket(SQLModel, table=True):
    """A conversation started from ``/support``: by a signed-in person, or by a visitor who left an address."""

    __tablename__ = "support_ticket"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Support requests: your e-mail address and name as given, the subject and status",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.SUPPORT,
        retained_from="updated_at",  # a year after the last message, whoever wrote it
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID | None = Field(default=None, sa_column=fk_column("user.id", nullable=True))
    email: str = Field(max_length=254)
    name: str = Field(default="", max_length=200)
    subject: str = Field(max_length=200)
    status: TicketStatus = Field(default=TicketStatus.OPEN, sa_type=String(16), index=True)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))


class SupportMessage(SQLModel, table=True):
    """One message of a ticket's thread, from the person or from an administrator."""

    __tablename__ = "support_message"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="The messages of your support requests and the operator's replies",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.SUPPORT,  # the thread goes with its ticket (ON DELETE CASCADE), a year after its end
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: uuid.UUID = Field(sa_column=fk_column("support_ticket.id"))
    # The ticket's person (not the author): what export and erasure find the thread by.
    user_id: uuid.UUID | None = Field(default=None, sa_column=fk_column("user.id", nullable=True))
    from_staff: bool = False
    author_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))  # the replying admin
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class Feedback(SQLModel, table=True):
    """Thumbs up or down, with optional words, on one studio result."""

    __tablename__ = "feedback"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Your thumbs up or down on studio results, with any comment you added",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.ACCOUNT,
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    generation_id: uuid.UUID | None = Field(default=None,
                                            sa_column=fk_column("generation.id", nullable=True, on_delete="SET NULL"))
    rating: int = Field(sa_column=Column(SmallInteger(), nullable=False))  # +1 or -1
    comment: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
