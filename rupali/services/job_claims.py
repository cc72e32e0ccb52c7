"""The generation queue shared by every instance on PostgreSQL: jobs are claimed from the database.

Each instance runs :func:`cycle` about once a second (and at once when something happens), in one transaction under
an advisory lock, so the counts it goes by are the cluster's and two instances never decide at the same time:

1. **reap**: a running job whose lease ran out belongs to an instance that died (or lost the database for a whole
   lease). It is queued again to run from the start, once; a job whose instance died twice fails with a clear
   reason. Its credit reservation stays while it waits and is given back when it fails (the usual rules).
2. **heartbeat**: the instance renews the lease of the jobs it runs; any of them it no longer holds (cancelled,
   or reaped while it was cut off) are returned, for it to stop them and record nothing.
3. **claim**: up to its free slots, fairly: each person with waiting work gets one start before anyone gets a
   second, never more running than ``generation_per_user`` each, nor more than ``generation_cluster_limit`` in all.
   Rows are locked ``FOR UPDATE SKIP LOCKED``, so a job being cancelled at that moment is simply passed over.
4. **snapshot**: every unfinished job, with the position of the queued ones in the same fair order, for the pages.

A job is fenced by its claim: each claim writes a token of its own to ``worker`` (the instance's name and a random
part), and completing, failing or handing back a job takes effect only with the token of the claim that holds it
(:mod:`rupali.services.generation`). So a job re-queued from a live but cut-off instance ends exactly once, even
when that same instance claims it again.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, text, update
from sqlmodel import Session, col, select

from rupali import job_events, processes
from rupali.clock import now
from rupali.config import Settings
from rupali.models import Generation, GenerationStatus
from rupali.services import generation as generations
from rupali.services import ledger
from rupali.services.credits import CreditHook

log = logging.getLogger(__name__)
CLAIM_LOCK = 0x52555041  # "RUPA": the advisory lock every instance's cycle takes
MAX_ATTEMPTS = 2  # a job is started at most twice: once, and once more if its instance died
LOST_MESSAGE = ("The server making these images stopped twice while working on them. Nothing was charged; "
                "please try again.")


def new_worker() -> str:
    """This instance's name: host, process and a random part (process ids repeat). Its claims' tokens in the
    ``worker`` column are this name, ``|`` and a random part of their own."""
    return f"{processes.host_name()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def instance_of(token: str | None) -> str:
    """The instance a claim's token belongs to."""
    return (token or "").split("|", 1)[0]


@dataclass(frozen=True)
class Unfinished:
    """One unfinished job as the pages see it."""

    user_id: uuid.UUID
    status: GenerationStatus
    position: int | None = None  # queued: jobs that start before it
    started_at: datetime | None = None  # running
    worker: str | None = None  # the claim's token (running)


@dataclass
class Cycle:
    claimed: list[Generation] = field(default_factory=list)
    lost: set[uuid.UUID] = field(default_factory=set)  # jobs this instance runs that it no longer holds
    unfinished: dict[uuid.UUID, Unfinished] = field(default_factory=dict)
    reaped: int = 0


def cycle(session: Session, settings: Settings, credits: CreditHook, worker: str, *, free: int,
          mine: dict[uuid.UUID, tuple[str, float | None]]) -> Cycle:
    """One turn of the shared queue for instance ``worker``: reap, heartbeat ``mine`` (job -> its claim's token and
    progress to tell), claim up to ``free`` jobs (never one of ``mine``: a job it lost is claimed again only once its
    old run has ended), and read what is unfinished. One transaction; see the module docstring."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK})
    moment = now()
    lease = timedelta(seconds=settings.job_lease_seconds)
    result = Cycle(reaped=_reap(session, credits, moment, lease, worker))
    if mine:
        held = set(session.execute(
            update(Generation).where(col(Generation.worker).in_([token for token, _ in mine.values()]),
                                     col(Generation.status) == GenerationStatus.RUNNING)
            .values(lease_until=moment + lease).returning(col(Generation.id))).scalars())
        result.lost = set(mine) - held
        for generation_id, (_token, progress) in mine.items():
            if generation_id in held and progress is not None:
                job_events.notify(session, job_events.PROGRESS, generation_id, progress)
    running = Counter(dict(session.execute(
        select(Generation.user_id, func.count()).where(col(Generation.status) == GenerationStatus.RUNNING)
        .group_by(col(Generation.user_id))).all()))
    room = free
    if settings.generation_cluster_limit is not None:
        room = min(room, settings.generation_cluster_limit - sum(running.values()))
    if room > 0:
        result.claimed = _claim(session, settings, worker, room, running, moment + lease, moment, set(mine))
    result.unfinished = _snapshot(session)
    return result


def recover(session: Session, settings: Settings) -> int:
    """At start-up on the shared queue: only the ledger is reconciled. Running jobs may belong to live instances;
    those of a dead one are reaped when their lease runs out."""
    released = ledger.reconcile(session, settings)
    if released:
        log.warning("start-up: gave back %d credit reservation(s) whose generation had ended without it", released)
    return released


def fair_order(queued: list[tuple[uuid.UUID, uuid.UUID]], running: Counter[uuid.UUID],
               last_start: dict[uuid.UUID, datetime]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """``queued`` (job, person), oldest first, in the order the queue starts them: the person with the fewest
    running jobs first, then the one who started least recently (never before anyone), then the longest waiting."""
    waiting: dict[uuid.UUID, deque[uuid.UUID]] = {}
    for generation_id, user_id in queued:
        waiting.setdefault(user_id, deque()).append(generation_id)
    arrival = {user_id: index for index, user_id in enumerate(waiting)}
    load = Counter(running)
    # (0, 0) never started, (1, seconds) started at that moment, (2, n) the n-th start of this simulation.
    recency = {user: (1, stamp.timestamp()) for user, stamp in last_start.items() if stamp is not None}
    order: list[tuple[uuid.UUID, uuid.UUID]] = []
    while waiting:
        user = min(waiting, key=lambda person: (load[person], recency.get(person, (0, 0.0)), arrival[person]))
        order.append((waiting[user].popleft(), user))
        if not waiting[user]:
            del waiting[user]
        load[user] += 1
        recency[user] = (2, float(len(order)))
    return order


# --- the steps ----------------------------------------------------------------------------------------------------

def _reap(session: Session, credits: CreditHook, moment: datetime, lease: timedelta, worker: str) -> int:
    dead = _dead_here(session, worker)
    # A running job without a lease was started outside the shared queue (an instance from before the leases, or a
    # maintenance command): it gets the same grace as a leased one, counted from its start, rather than none.
    unleased = col(Generation.lease_until).is_(None) & (
        col(Generation.started_at).is_(None) | (col(Generation.started_at) < moment - lease))
    expired = session.exec(select(Generation).where(
        col(Generation.status) == GenerationStatus.RUNNING,
        (col(Generation.lease_until) < moment) | unleased | col(Generation.id).in_(dead))
        .with_for_update(skip_locked=True)).all()
    for generation in expired:
        if generation.attempts < MAX_ATTEMPTS:
            log.warning("generation %s: its instance %s stopped; queued again", generation.id, generation.worker)
            generation.status, generation.worker, generation.lease_until = GenerationStatus.QUEUED, None, None
            generation.started_at = None
            session.add(generation)
            job_events.notify(session, job_events.QUEUED, generation.id)
        else:
            log.warning("generation %s: its instance %s stopped again; failed", generation.id, generation.worker)
            generations.fail(session, generation.id, LOST_MESSAGE, credits)
    return len(expired)


def _dead_here(session: Session, worker: str) -> list[uuid.UUID]:
    """Running jobs of another instance on this host whose process is gone: no need to wait out their lease.

    Only for the same host name: two containers with the same host name would see each other as dead and re-queue
    early; the fencing still ends such a job once.
    """
    host = worker.rsplit(":", 2)[0]
    found = session.execute(select(Generation.id, Generation.worker).where(
        col(Generation.status) == GenerationStatus.RUNNING,
        col(Generation.worker).startswith(f"{host}:", autoescape=True),
        ~col(Generation.worker).startswith(f"{worker}|", autoescape=True))).all()
    dead = []
    for generation_id, other in found:
        try:
            pid = int(instance_of(other).rsplit(":", 2)[1])
        except (ValueError, IndexError):
            continue  # not one of ours
        if processes.gone(pid):
            dead.append(generation_id)
    return dead


def _claim(session: Session, settings: Settings, worker: str, room: int, running: Counter[uuid.UUID],
           lease_until: datetime, moment: datetime, exclude: set[uuid.UUID]) -> list[Generation]:
    queued = session.execute(
        select(Generation.id, Generation.user_id).where(col(Generation.status) == GenerationStatus.QUEUED,
                                                        col(Generation.id).not_in(list(exclude)))
        .order_by(col(Generation.created_at), col(Generation.id)).limit(1000)
        .with_for_update(skip_locked=True)).all()
    if not queued:
        return []
    eligible = [(generation_id, user_id) for generation_id, user_id in queued
                if running[user_id] < settings.generation_per_user]
    picked: list[uuid.UUID] = []
    load = Counter(running)
    for generation_id, user_id in fair_order(eligible, running, _last_starts(session, {u for _, u in eligible})):
        if len(picked) == room:
            break
        if load[user_id] < settings.generation_per_user:
            picked.append(generation_id)
            load[user_id] += 1
    if not picked:
        return []
    for generation_id in picked:
        session.execute(update(Generation).where(col(Generation.id) == generation_id).values(
            status=GenerationStatus.RUNNING, worker=f"{worker}|{uuid.uuid4().hex[:12]}", lease_until=lease_until,
            started_at=moment, attempts=Generation.attempts + 1))
    claimed = list(session.exec(select(Generation).where(col(Generation.id).in_(picked))
                                .execution_options(populate_existing=True)).all())
    claimed.sort(key=lambda generation: picked.index(generation.id))
    for generation in claimed:
        job_events.notify(session, job_events.STARTED, generation.id)
    return claimed


def _last_starts(session: Session, users: set[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    if not users:
        return {}
    return dict(session.execute(select(Generation.user_id, func.max(Generation.started_at))
                                .where(col(Generation.user_id).in_(list(users)),
                                       col(Generation.started_at).is_not(None))
                                .group_by(col(Generation.user_id))).all())


def _snapshot(session: Session) -> dict[uuid.UUID, Unfinished]:
    rows = session.execute(
        select(Generation.id, Generation.user_id, Generation.status, Generation.started_at, Generation.worker)
        .where(col(Generation.status).in_([GenerationStatus.QUEUED, GenerationStatus.RUNNING]))
        .order_by(col(Generation.created_at), col(Generation.id))).all()
    running = Counter(user_id for _, user_id, status, _, _ in rows if status == GenerationStatus.RUNNING)
    unfinished = {generation_id: Unfinished(user_id, GenerationStatus.RUNNING, started_at=started_at, worker=worker)
                  for generation_id, user_id, status, started_at, worker in rows
                  if status == GenerationStatus.RUNNING}
    queued = [(generation_id, user_id) for generation_id, user_id, status, _, _ in rows
              if status == GenerationStatus.QUEUED]
    last = _last_starts(session, {user_id for _, user_id in queued})
    for position, (generation_id, user_id) in enumerate(fair_order(queued, running, last)):
        unfinished[generation_id] = Unfinished(user_id, GenerationStatus.QUEUED, position=position)
    return unfinished
