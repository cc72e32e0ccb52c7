"""Locks that let one job run at a time across every process sharing the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime


class JobLock(SQLModel, table=True):
    """A job's claim: who holds it and until when. Past ``expires_at`` anyone may take it over.

    A lock in memory would guard one process only; several servers (or a server and ``rupali jobs run``) share the
    database, so the claim lives there. The expiry means a holder that crashed blocks the job for one lease at most.
    Three kinds of row (see :mod:`rupali.leases` and :mod:`rupali.scheduler`): a run's lock (``apply_retention``),
    the scheduler leader's lease (``scheduler``, held by ``host:pid:random``), and each job's timetable
    (``tick:<job>``, whose ``expires_at`` is the job's next due time). Holds no personal data.
    """

    __tablename__ = "job_lock"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=64)  # a random id per run or instance: only it may renew or release the claim
    acquired_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
