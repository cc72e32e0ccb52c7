"""Which version of each legal document this installation has published, and since when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime


class LegalDocumentVersion(SQLModel, table=True):
    """A rendered legal document version; its effective date is when this installation first served it."""

    __tablename__ = "legal_document_version"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=32)
    version: str = Field(max_length=32)
    effective_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
