"""Moderation records: blocklist strikes against a person, and evidence holds on accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import Column, Uuid
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData


class PromptStrike(SQLModel, table=True):
    """One prompt the operator's blocklist stopped. Counted per person per day for the repeat-offender rule.

    Kept apart from the generation row because a person can delete their history; the strike stays its period.
    """

    __tablename__ = "prompt_strike"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="When a prompt of yours was stopped by the blocklist, and the blocked word or phrase",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.TECHNICAL_LOGS,
        retained_from="at",
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    term: str = Field(default="", max_length=200)
    at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))


class EvidenceHold(SQLModel, table=True):
    """An administrator's hold on an account: while it lasts, erasure and retention leave the account's data alone.

    Not part of the person's export: telling someone under investigation that their data is held for an authority
    can defeat its purpose (GDPR Art. 23(1)(d)). The hold, its release and every evidence download are in the audit
    log under the hold's id.
    """

    __tablename__ = "evidence_hold"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Holds an administrator placed on the account to preserve evidence, with their reasons",
        export=False,
        erasure=Erasure.DELETE,  # only possible once released: a held account is not erased
        retention=RetentionKey.ACCOUNT,
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    reason: str = Field(max_length=2000)
    placed_by: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    placed_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    released_by: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True))
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=True))
    release_reason: str = Field(default="", max_length=2000)
