"""APScheduler in-process, on the web server's event loop, with one leader per database; job bodies run in threads.

Every instance runs a scheduler, but only the **leader** runs jobs: the instance that holds the ``scheduler`` lease
in ``job_lock`` (:mod:`rupali.leases`). Each instance tries to take or renew it every third of a lease, so when the
leader dies another one takes over within one lease and one check. An instance that loses the lease (it hung past
its expiry) pauses its jobs at its next check.

**Once per tick.** Each job's next due time lives in the database too (a ``tick:<job>`` row in ``job_lock``). A run
first claims its tick: a compare-and-set that moves the due time one interval on, allowed only to the holder of a
live leader lease. So a job runs once per interval across the cluster even while leadership changes hands (an old
leader that has not noticed yet loses the compare-and-set), and a new leader continues the old leader's timetable
instead of starting its own. A job whose due time passed while nobody led runs once at takeover, then on the
timetable again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from rupali import jobs, leases
from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import JobLock

log = logging.getLogger(__name__)
LEADER = "scheduler"
TICK_PREFIX = "tick:"
# APScheduler fires a job a little after its due time, never before; the tolerance only absorbs clock rounding
# between the timetable APScheduler keeps and the one in the database.
TOLERANCE = timedelta(seconds=1)
JOB_THREADS = 4  # more than the jobs that can be due at once after a takeover would need to wait in turn


class JobScheduler:
    """Runs every registered job on its interval, once per interval across every instance sharing the database."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Job bodies get threads of their own: a long job (retention) must not starve the lease checks, which use
        # the event loop's default executor.
        self._scheduler = AsyncIOScheduler(timezone=UTC, executors={
            "default": AsyncIOExecutor(), "jobs": ThreadPoolExecutor(JOB_THREADS)})
        self.instance = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease: leases.Lease | None = None
        self._checking = asyncio.Lock()
        self._stopping = False

    def start(self) -> None:
        """Start on the running event loop: the jobs wait, paused, until this instance leads."""
        for job in jobs.JOBS.values():
            # APScheduler reads next_run_time=None as "paused": nothing runs before the lease is ours.
            self._scheduler.add_job(
                self._tick, IntervalTrigger(seconds=job.interval(self._settings).total_seconds()), args=[job.name],
                id=job.name, name=job.name, executor="jobs", max_instances=1, coalesce=True,
                misfire_grace_time=None, replace_existing=True, next_run_time=None,
            )
        self._scheduler.add_job(
            self.check_leadership, IntervalTrigger(seconds=self._check_seconds), id="leadership", name="leadership",
            max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()

    async def shutdown(self) -> None:
        """Stop, and hand the lease back so another instance leads at its next check instead of after the lease."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        async with self._checking:  # a check under way finishes first, so it cannot take the lease back after this
            self._lease = None
            try:
                await asyncio.to_thread(leases.release_holder, self._settings, LEADER, self.instance)
            except Exception:  # the database may be gone at shutdown; the lease then simply runs out
                log.warning("could not hand the scheduler lease back; another instance leads when it runs out")

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    @property
    def leading(self) -> bool:
        """Whether this instance runs the jobs (as far as it knew at its last check)."""
        return self._lease is not None

    @property
    def _lease_length(self) -> timedelta:
        return timedelta(seconds=self._settings.scheduler_lease_seconds)

    @property
    def _check_seconds(self) -> float:
        return self._settings.scheduler_lease_seconds / 3

    async def check_leadership(self) -> bool:
        """Take or renew the leader lease; start the timetable on becoming leader, pause it on losing the lease."""
        async with self._checking:
            if self._stopping:
                return False
            try:
                lease = await asyncio.to_thread(leases.acquire, self._settings, LEADER, length=self._lease_length,
                                                holder=self.instance)
            except Exception:
                # Without the database no tick could be claimed either; the lease runs out and another may lead.
                log.exception("could not check the scheduler lease")
                return self.leading
            if lease is not None and self._lease is None:
                due = await asyncio.to_thread(plan, self._settings, self._intervals())
                intervals = self._intervals()
                for name, first in due.items():
                    # next_run_time given outright: from a start date just past, APScheduler would skip to the
                    # second point of the timetable.
                    self._scheduler.modify_job(name, trigger=IntervalTrigger(
                        seconds=intervals[name].total_seconds(), start_date=first), next_run_time=first)
                log.info("this instance (%s) now runs the scheduled jobs", self.instance)
            elif lease is None and self._lease is not None:
                for name in jobs.JOBS:
                    self._scheduler.pause_job(name)
                log.warning("this instance (%s) lost the scheduler lease; another one runs the jobs", self.instance)
            self._lease = lease
            return lease is not None

    def _intervals(self) -> dict[str, timedelta]:
        return {job.name: job.interval(self._settings) for job in jobs.JOBS.values()}

    def _tick(self, name: str) -> None:
        lease = self._lease
        if lease is None or not claim_tick(self._settings, name, jobs.get(name).interval(self._settings), lease):
            return  # not the leader (any more), or this tick already ran elsewhere
        jobs.run(name, trigger="schedule", settings=self._settings)


def plan(settings: Settings, intervals: dict[str, timedelta]) -> dict[str, datetime]:
    """Each job's next due time from the database, for a new leader's timetable.

    A job never planned before is due after one interval (the heartbeat at once); one whose due time passed while
    no instance led is moved to now, so it runs once and the timetable goes on from there.
    """
    moment = now()
    table = JobLock.__table__  # type: ignore[attr-defined]
    due: dict[str, datetime] = {}
    for name, interval in intervals.items():
        key = TICK_PREFIX + name
        with session_scope(settings) as session:
            current = session.execute(select(table.c.expires_at).where(table.c.name == key)).scalar_one_or_none()
        if current is None:
            current = moment if name == "heartbeat" else moment + interval
            try:
                with session_scope(settings) as session:
                    session.execute(insert(table).values(name=key, holder="", acquired_at=moment, expires_at=current))
            except IntegrityError:  # planned by another instance this instant: follow its plan
                with session_scope(settings) as session:
                    current = session.execute(select(table.c.expires_at).where(table.c.name == key)).scalar_one()
        elif current < moment:
            with session_scope(settings) as session:
                session.execute(update(table).where(table.c.name == key, table.c.expires_at == current)
                                .values(expires_at=moment))
            current = moment
        due[name] = current
    return due


def claim_tick(settings: Settings, name: str, interval: timedelta, lease: leases.Lease) -> bool:
    """Claim the current tick of job ``name`` for the holder of ``lease``; False if it is not due or not ours.

    The claim moves the due time to the next point of the timetable after now (a run that comes late, past several
    points, runs once). It succeeds only while ``lease`` is the live leader lease, and only for one claimer: the
    update is conditional on the due time it read.
    """
    moment = now()
    table = JobLock.__table__  # type: ignore[attr-defined]
    key = TICK_PREFIX + name
    with session_scope(settings) as session:
        leading = session.execute(select(table.c.holder).where(
            table.c.name == lease.name, table.c.holder == lease.holder, table.c.expires_at > moment)).first()
        if leading is None:
            return False
        due = session.execute(select(table.c.expires_at).where(table.c.name == key)).scalar_one_or_none()
        if due is None or due > moment + TOLERANCE:
            return False
        passed = max(0, math.floor((moment - due) / interval))
        claimed = session.execute(update(table).where(table.c.name == key, table.c.expires_at == due).values(
            holder=lease.holder, acquired_at=moment, expires_at=due + (passed + 1) * interval)).rowcount
    return claimed == 1
