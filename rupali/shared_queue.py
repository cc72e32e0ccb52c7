"""The generation queue on PostgreSQL: every instance claims jobs from the database, so fairness and the limits hold
across the cluster, and a job whose instance dies is taken up by another.

The decisions are in :mod:`rupali.services.job_claims` (one transaction a turn, under an advisory lock); this class
runs the turns: about once a second while anything is unfinished (every few seconds when idle) and at once when an
event says something changed (:mod:`rupali.job_events`: a job queued anywhere, one that ended, a cancel). Running a
job (provider, scoring, signing, storing) is :class:`rupali.generation_queue.GenerationQueue`'s, fenced by this
instance's ``worker`` name so a job it lost is never recorded by it.

Pages ask :meth:`state` as before; for jobs on other instances it answers from the last turn's snapshot and the
progress events, so a page open here follows a job running anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter

from rupali import job_events
from rupali.clock import now
from rupali.db import transact
from rupali.generation_queue import GenerationQueue, JobState
from rupali.models import Generation, GenerationStatus
from rupali.providers.base import GenerationRequest
from rupali.services import generation as generations
from rupali.services import job_claims

log = logging.getLogger(__name__)
BUSY_TURN = 1.0  # seconds between turns while jobs are unfinished: heartbeats, progress, positions
IDLE_TURN = 5.0  # and while nothing is (an event still wakes it at once)
MIN_GAP = 0.05  # a burst of events makes one turn, not one each
STOP_WAIT = 15.0  # seconds a stopping instance waits for its last turn
ENDED_MEMORY = 10.0  # seconds a job heard to have ended is kept out of views read before the end


class SharedGenerationQueue(GenerationQueue):
    """The job runner of one instance among several, all claiming from the same PostgreSQL database."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._worker = job_claims.new_worker()
        self._tokens: dict[uuid.UUID, str] = {}  # the claim by which this instance holds each job it runs
        self._claimed: dict[uuid.UUID, Generation] = {}  # claimed, not yet begun
        self._ended: dict[uuid.UUID, float] = {}  # jobs heard to have ended or been cancelled, and when
        self._unfinished: dict[uuid.UUID, job_claims.Unfinished] = {}  # the cluster's, as of the last turn
        self._remote_progress: dict[uuid.UUID, float] = {}
        self._sent_progress: dict[uuid.UUID, float] = {}
        self._claiming = True
        self._stopping = False
        self._listener: job_events.JobEventListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing_since: float | None = None

    @property
    def worker(self) -> str:
        """This instance's name (its claims' tokens start with it)."""
        return self._worker

    def _holder(self, generation_id: uuid.UUID) -> str | None:
        # A job this instance does not hold gets a token no row has: whatever it tries to record is refused.
        return self._tokens.get(generation_id, f"{self._worker}|none")

    async def start(self) -> None:
        await asyncio.to_thread(transact, job_claims.recover, self._settings)
        self._loop = asyncio.get_running_loop()
        self._listener = job_events.JobEventListener(self._settings.effective_database_url, self._heard,
                                                     self._wake_from_thread)
        self._listener.start()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="generation-dispatcher")

    async def stop(self) -> None:
        await self._stop_dispatcher()  # first, and cooperatively: see there
        await super().stop()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
            self._listener = None

    def submit(self, generation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """A job recorded as queued: the database holds it; it shows as waiting until the next turn places it."""
        if generation_id not in self._unfinished:
            self._place(generation_id, user_id)
        self._wakeup.set()

    async def cancel(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> None:
        await super().cancel(user_id, generation_id)  # recorded; the instance running it hears at the commit
        self._ended[generation_id] = time.monotonic()
        self._forget(generation_id)

    def state(self, generation_id: uuid.UUID) -> JobState | None:
        if generation_id in self._running:
            return super().state(generation_id)
        job = self._unfinished.get(generation_id)
        if job is None:
            return None
        if job.status == GenerationStatus.QUEUED:
            return JobState(GenerationStatus.QUEUED, position=job.position)
        elapsed = (now() - job.started_at).total_seconds() if job.started_at is not None else None
        return JobState(GenerationStatus.RUNNING, progress=self._remote_progress.get(generation_id), elapsed=elapsed)

    @property
    def waiting_count(self) -> int:
        """Jobs waiting across the cluster."""
        return sum(1 for job in tuple(self._unfinished.values()) if job.status == GenerationStatus.QUEUED)

    # --- turns ---------------------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            await self._turn()
            busy = self._running or self._unfinished
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that arrives as the event
            # is set, and the dispatcher would outlive its queue's stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BUSY_TURN if busy else IDLE_TURN):
                    await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(MIN_GAP)

    async def _turn(self) -> None:
        free = self._settings.generation_concurrency - len(self._running) if self._claiming else 0
        mine = {generation_id: (self._tokens[generation_id], self._progress_to_send(generation_id))
                for generation_id in self._running if generation_id in self._tokens}
        try:
            turn = await asyncio.to_thread(transact, job_claims.cycle, self._settings, self._credits, self._worker,
                                           free=max(0, free), mine=mine)
        except Exception:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.exception("shared queue: a turn failed; trying again (jobs here keep running while their lease "
                              "of %d s holds)", self._settings.job_lease_seconds)
            return
        if self._failing_since is not None:
            log.warning("shared queue: turns work again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        if turn.reaped:
            log.warning("shared queue: took up %d job(s) of instance(s) that stopped", turn.reaped)
        for generation_id in turn.lost:
            if (task := self._running.get(generation_id)) is not None:
                log.warning("generation %s is no longer held by this instance; stopping it", generation_id)
                task.cancel()
        # Jobs that ended (here, or heard of) since the turn began are not brought back by its snapshot.
        horizon = time.monotonic() - ENDED_MEMORY
        self._ended = {key: moment for key, moment in self._ended.items() if moment > horizon}
        self._unfinished = {generation_id: job for generation_id, job in turn.unfinished.items()
                            if generation_id not in self._ended
                            and (generation_id in self._running or job_claims.instance_of(job.worker) != self._worker
                                 or job.status == GenerationStatus.QUEUED)}
        for generation_id in list(self._remote_progress):
            if generation_id not in self._unfinished:
                del self._remote_progress[generation_id]
        claimed = [generation for generation in turn.claimed if generation.id not in self._ended]
        if not self._claiming or len(claimed) < len(turn.claimed):
            # Claimed as draining began, or cancelled before the claim came back: give them back, run nothing.
            back = [generation for generation in turn.claimed if not self._claiming or generation.id in self._ended]
            await asyncio.shield(asyncio.to_thread(self._give_back, back))
            claimed = [generation for generation in claimed if generation not in back]
        for generation in claimed:
            self._tokens[generation.id] = generation.worker or ""
            self._claimed[generation.id] = generation
            self._owner[generation.id] = generation.user_id
            self._running_per_user[generation.user_id] += 1
            self._running[generation.id] = asyncio.create_task(self._run(generation.id, generation.user_id),
                                                               name=f"generation-{generation.id}")

    def _place(self, generation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Show a new job at once where the fair order will put it (the next turn gives the cluster's view)."""
        jobs = self._unfinished
        queued = sorted((job.position or 0, key) for key, job in jobs.items() if job.status == GenerationStatus.QUEUED)
        waiting = [(key, jobs[key].user_id) for _, key in queued] + [(generation_id, user_id)]
        running = Counter(job.user_id for job in jobs.values() if job.status == GenerationStatus.RUNNING)
        for position, (key, owner) in enumerate(job_claims.fair_order(waiting, running, {})):
            jobs[key] = job_claims.Unfinished(owner, GenerationStatus.QUEUED, position=position)

    def _give_back(self, claimed: list[Generation]) -> None:
        for generation in claimed:
            transact(generations.hand_back, generation.id, worker=generation.worker)

    def _progress_to_send(self, generation_id: uuid.UUID) -> float | None:
        """This job's progress when it moved since it was last told (so idle heartbeats send no events)."""
        progress = self._progress.get(generation_id)
        if progress is None or abs(progress - self._sent_progress.get(generation_id, -1.0)) < 0.01:
            return None
        self._sent_progress[generation_id] = progress
        return progress

    async def _run(self, generation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        try:
            await super()._run(generation_id, user_id)
        finally:
            self._claimed.pop(generation_id, None)
            self._tokens.pop(generation_id, None)
            self._sent_progress.pop(generation_id, None)
            self._forget(generation_id)

    def _begin(self, generation_id: uuid.UUID) -> tuple[Generation, GenerationRequest] | None:
        """The job was marked running by its claim: build its request."""
        generation = self._claimed.pop(generation_id, None)
        return None if generation is None else (generation, self._request_for(generation))

    async def _stop_claiming(self) -> None:
        """Draining: claim nothing more, but keep the turns going, so the jobs still running keep their leases."""
        self._claiming = False
        self._wakeup.set()

    async def _stop_dispatcher(self) -> None:
        """Let the current turn finish rather than cancel it: a cancelled turn would still commit in its thread,
        and any job it claimed would be left running with nobody to run it until its lease ran out."""
        self._claiming = False
        self._stopping = True
        self._wakeup.set()
        if self._dispatcher is not None:
            done, _ = await asyncio.wait({self._dispatcher}, timeout=STOP_WAIT)
            if not done:  # the database does not answer: nothing this turn claims can be recorded anyway
                log.warning("shared queue: its last turn did not finish within %.0f s; stopping it", STOP_WAIT)
                await super()._stop_dispatcher()
            self._dispatcher = None

    # --- events --------------------------------------------------------------------------------------------------

    def _heard(self, event: job_events.JobEvent) -> None:
        """On the listener's thread: hand the event to the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _wake_from_thread(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _on_event(self, event: job_events.JobEvent) -> None:
        generation_id = event.generation_id
        if event.kind == job_events.PROGRESS:
            if generation_id not in self._running and event.progress is not None:
                self._remote_progress[generation_id] = event.progress
            return
        if event.kind == job_events.CANCELLED and (task := self._running.get(generation_id)) is not None:
            task.cancel()  # the person cancelled it on another instance
        if event.kind in (job_events.CANCELLED, job_events.ENDED):
            self._ended[generation_id] = time.monotonic()
            self._forget(generation_id)
        self._wakeup.set()  # queued: someone may claim it; ended: a slot or a person's turn came free

    def _forget(self, generation_id: uuid.UUID) -> None:
        if generation_id not in self._running:
            self._unfinished.pop(generation_id, None)
            self._remote_progress.pop(generation_id, None)
