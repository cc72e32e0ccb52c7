"""Operations records: the technical log of requests and page views, and the administrators' audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Column, Integer, Uuid, event
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit counter.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class RequestLog(SQLModel, table=True):
    """One HTTP request or page view. Written in batches, off the request path, by :mod:`rupali.techlog`.

    ``route`` is the route *template* (``/gallery/{image_id}``), never the path as sent and never a query string:
    paths and queries can carry tokens and people's words. ``user_id`` has no foreign key on purpose: a batch
    written just after an account was erased must not fail; erasure deletes the rows by this column all the same.
    """

    __tablename__ = "request_log"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Technical log: time, page or address pattern, status, duration, IP address, browser, operating "
              "system and device class of each request",
        export=True,
        erasure=Erasure.DELETE,
        retention=RetentionKey.TECHNICAL_LOGS,
        retained_from="at",
    )

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True, autoincrement=True))
    at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    kind: str = Field(max_length=8)  # "page", "api", "http" or "error"
    method: str = Field(max_length=10)
    route: str = Field(max_length=200, index=True)
    status: int = 0
    duration_ms: float = 0.0
    bytes: int = 0
    ip: str = Field(default="", max_length=64)
    browser: str = Field(default="", max_length=60)
    os: str = Field(default="", max_length=60)
    device: str = Field(default="", max_length=16)  # "desktop", "mobile", "tablet", "bot" or "other"
    user_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True, index=True))
    request_id: str = Field(default="", max_length=32)
    error_type: str | None = Field(default=None, max_length=120)
    trace_id: str | None = Field(default=None, max_length=16)


class AuditEntry(SQLModel, table=True):
    """One administrator action: who did what to whom, why and when. Append-only.

    The app offers no way to change or remove an entry, and the ORM refuses to (see the events below); only the
    privacy engine's statements touch them: erasure cuts the link to the person, retention removes entries years
    later. Ids are kept without foreign keys so the trail outlives the accounts it names.
    """

    __tablename__ = "audit_entry"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="target_user_id",
        holds="Administrator actions concerning you (suspension, role change, holds, removals) with their reasons",
        export=True,
        # Accountability for administrators' actions (GDPR Art. 5(2)): erasure cuts the link to the person, the
        # record of what was done, when and why stays until its retention period ends.
        erasure=Erasure.ANONYMIZE,
        anonymize={"target_user_id": None, "target_id": ""},
        retention=RetentionKey.REQUESTS,
        retained_from="at",
    )

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True, autoincrement=True))
    at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True, index=True))
    action: str = Field(max_length=64, index=True)  # e.g. "user.suspend", "account.erase", "credits.grant"
    target_kind: str = Field(default="", max_length=32)  # "user", "request", "image", "ticket", "outbox", …
    target_id: str = Field(default="", max_length=64)
    target_user_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True, index=True))
    reason: str = Field(default="", max_length=2000)
    detail: str = Field(default="", max_length=2000)


class AuditEntryImmutable(RuntimeError):
    """An attempt to change or delete an audit entry through the ORM."""


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_change(_mapper: Any, _connection: Any, target: AuditEntry) -> None:
    raise AuditEntryImmutable(f"audit entry {target.id} is append-only")
