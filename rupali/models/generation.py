"""Generations, their images, uploads for image-to-image, and personal API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Numeric, String, Text, Uuid, text
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData


class GenerationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in {GenerationStatus.QUEUED, GenerationStatus.RUNNING}


class Upload(SQLModel, table=True):
    """An image a person uploaded as the source for image-to-image, stored without its metadata."""

    __tablename__ = "upload"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id", holds="Images you uploaded as a starting point (metadata removed)",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.CONTENT, file_columns=("key",))

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    key: str = Field(max_length=300)
    width: int
    height: int
    bytes: int
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class Generation(SQLModel, table=True):
    """One request for images, from queued to its outcome, with every parameter that produced them."""

    __tablename__ = "generation"
    __table_args__ = (
        Index("ix_generation_user_created_id", "user_id", "created_at", "id"),
        # The shared queue reads the unfinished jobs every second: a partial index keeps that off the history.
        Index("ix_generation_unfinished", "status", "created_at",
              postgresql_where=text("status IN ('queued', 'running')"),
              sqlite_where=text("status IN ('queued', 'running')")),
    )
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Prompts, negative prompts, parameters, model and version, status, timings, provider cost",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.PROMPTS)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    status: GenerationStatus = Field(default=GenerationStatus.QUEUED, sa_type=String(16))
    provider: str = Field(max_length=20)
    model: str = Field(max_length=200)
    model_label: str = Field(default="", max_length=200)
    model_version: str = Field(default="", max_length=120)
    prompt: str = Field(sa_type=Text)
    negative_prompt: str = Field(default="", sa_type=Text)
    width: int
    height: int
    steps: int
    guidance: float
    count: int
    seed: int = Field(sa_column=Column(BigInteger(), nullable=False))
    scheduler: str | None = Field(default=None, max_length=60)
    upload_id: uuid.UUID | None = Field(default=None,
                                        sa_column=fk_column("upload.id", nullable=True, on_delete="SET NULL"))
    strength: float | None = None
    error: str = Field(default="", max_length=500)  # the reason in plain words, shown to the person
    # Why a BLOCKED generation was stopped: "blocklist" (the prompt), "provider" (the AI provider refused) or "nsfw"
    # (every image withheld). Blocked generations wait in the moderation queue until reviewed.
    blocked_by: str | None = Field(default=None, max_length=16)
    reviewed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    provider_cost: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 6), nullable=True))
    credits: int = 0  # what the generation cost in credits (0 while generation is free)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    duration_ms: int | None = None
    # The shared queue (PostgreSQL): which instance runs the job, until when its claim holds unless renewed, and how
    # many times it was started (a job whose instance died is queued once more, then failed).
    worker: str | None = Field(default=None, max_length=80)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    attempts: int = Field(default=0, sa_column=Column(Integer(), nullable=False, server_default="0"))

    @property
    def finished(self) -> bool:
        # The column holds a plain string: compare through the enum.
        return GenerationStatus(self.status).finished


class Image(SQLModel, table=True):
    """One generated image: original in the provider's format, a WebP thumbnail, its NSFW score."""

    __tablename__ = "image"
    # (created_at, id) is the gallery's keyset: with both in the index a page is one range scan, in either order.
    __table_args__ = (Index("ix_image_user_created_id", "user_id", "created_at", "id"),)
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id", holds="Generated images with their seed, size, NSFW score, favourite mark",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.CONTENT, expires_column="expires_at",
        file_columns=("original_key", "thumbnail_key", "plain_key"))

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    generation_id: uuid.UUID = Field(sa_column=fk_column("generation.id"))
    position: int  # 0-based index within its generation
    seed: int = Field(sa_column=Column(BigInteger(), nullable=False))
    width: int
    height: int
    format: str = Field(max_length=8)  # PNG, JPEG, WEBP
    bytes: int
    original_key: str = Field(max_length=300)
    thumbnail_key: str = Field(max_length=300)
    # A PNG's second signed file, without the prompt and settings (downloads for people who leave them out). Also
    # None for PNGs stored before images were signed: their downloads are prepared from the original as before.
    plain_key: str | None = Field(default=None, max_length=300)
    # Whether the stored files carry Content Credentials (images from before signing do not, until the
    # ``sign_images`` job has signed them; indexed so that job finds the few left quickly).
    signed: bool = Field(default=False, index=True)
    # Set when the ``sign_images`` job found the stored file impossible to sign (damaged): it is not tried again.
    signing_failed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    nsfw_score: float
    provider_nsfw: bool | None = None
    nsfw: bool = False  # the combined verdict: blurred until revealed (when the policy blurs)
    favourite: bool = False
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=True))
    # Set when a moderator dismissed the image from the moderation queue (flagged by score or provider).
    reviewed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # Set by the media sweep when the original or thumbnail is gone from storage (the row is kept, and says so).
    files_missing_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))

    def file_keys(self) -> list[str]:
        """Every storage key this image's files live under."""
        return [key for key in (self.original_key, self.thumbnail_key, self.plain_key) if key]


class ApiKeyScope(StrEnum):
    READ = "read"  # list and download your generations and images
    GENERATE = "generate"  # everything, including starting generations and changing images


class ApiKey(SQLModel, table=True):
    """A personal API key. Only its SHA-256 is stored; the key itself is shown once."""

    __tablename__ = "api_key"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id", holds="Your API keys' names, first characters and when they were used",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.ACCOUNT)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
    name: str = Field(max_length=80)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    scope: ApiKeyScope = Field(default=ApiKeyScope.GENERATE, sa_type=String(16),
                               sa_column_kwargs={"server_default": "generate"})
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
