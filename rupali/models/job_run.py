"""The record of every scheduler job run (a technical log)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime


class JobRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobRun(SQLModel, table=True):
    """One run of a scheduled job. Holds no personal data; purged with the technical logs."""

    __tablename__ = "job_run"

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=64, index=True)
    trigger: str = Field(max_length=16)  # "schedule", "manual", "event" or "startup"
    status: JobRunStatus = Field(default=JobRunStatus.RUNNING, sa_type=String(16))
    detail: str = Field(default="", max_length=2000)
    started_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
