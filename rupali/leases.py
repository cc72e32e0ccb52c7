"""Leases in ``job_lock``: one holder at a time for a named claim, across every process sharing the database.

A lock in memory would guard one process only; several servers (or a server and ``rupali jobs run``) share the
database, so the claim lives there. Each lease has an expiry: a holder that crashed, was killed or hangs blocks the
claim for one lease at most, and whoever takes it over afterwards makes the old holder's renewals fail, so the old
holder learns it lost the claim the next time it checks (:class:`LeaseLost`).

Each statement is atomic on SQLite and PostgreSQL alike (a conditional UPDATE, or an INSERT that the primary key
lets only one racer win), so no advisory-lock feature of one engine is needed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.exc import IntegrityError

from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import JobLock


class LeaseLost(RuntimeError):
    """The lease expired and another holder took it over: whatever it guarded must stop at once."""


@dataclass
class Lease:
    """A held claim: renewed while its work goes on, released at its end."""

    settings: Settings
    name: str
    holder: str
    length: timedelta
    renewed: float = field(default_factory=time.monotonic)

    def renew(self, *, force: bool = False) -> None:
        """Push the expiry out again (at most every quarter lease); raises :class:`LeaseLost` if it was taken."""
        if not force and time.monotonic() - self.renewed < self.length.total_seconds() / 4:
            return
        table = JobLock.__table__  # type: ignore[attr-defined]
        with session_scope(self.settings) as session:
            renewed = session.execute(update(table).where(table.c.name == self.name, table.c.holder == self.holder)
                                      .values(expires_at=now() + self.length)).rowcount
        if renewed != 1:
            raise LeaseLost(f"the {self.name} lock was taken over after its lease ran out; this run stopped")
        self.renewed = time.monotonic()


def acquire(settings: Settings, name: str, *, length: timedelta, holder: str | None = None) -> Lease | None:
    """Take the claim ``name`` if nobody holds it (or the holder's lease ran out); None when someone else does.

    A ``holder`` that already holds the claim gets it again with a fresh expiry, so a long-lived holder (the
    scheduler's leader) can call this on every check. Two conditional statements: take over an expired (or our
    own) row, else create the row; of two processes racing for a free claim, the primary key lets exactly one
    insert win.
    """
    holder = holder or uuid.uuid4().hex
    moment = now()
    table = JobLock.__table__  # type: ignore[attr-defined]
    claim = {"holder": holder, "acquired_at": moment, "expires_at": moment + length}
    with session_scope(settings) as session:
        taken = session.execute(
            update(table).where(table.c.name == name, or_(table.c.expires_at <= moment, table.c.holder == holder))
            .values(**claim)).rowcount
    if not taken:
        try:
            with session_scope(settings) as session:
                session.execute(insert(table).values(name=name, **claim))
        except IntegrityError:
            return None  # the row exists and its lease has not run out: held by someone else
    return Lease(settings, name, holder, length)


def release(settings: Settings, lease: Lease) -> None:
    """Give the claim back (only if it is still this lease's: a taken-over claim stays with its new holder)."""
    release_holder(settings, lease.name, lease.holder)


def release_holder(settings: Settings, name: str, holder: str) -> None:
    """Give the claim ``name`` back if ``holder`` has it."""
    table = JobLock.__table__  # type: ignore[attr-defined]
    with session_scope(settings) as session:
        session.execute(delete(table).where(table.c.name == name, table.c.holder == holder))


def holder_of(settings: Settings, name: str) -> str | None:
    """Who holds the claim ``name`` right now (None when it is free or its lease ran out)."""
    table = JobLock.__table__  # type: ignore[attr-defined]
    with session_scope(settings) as session:
        row = session.execute(table.select().where(table.c.name == name, table.c.expires_at > now())).first()
    return row.holder if row is not None else None
