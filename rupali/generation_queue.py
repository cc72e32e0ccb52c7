"""Running generations in the server process: fair between people, limited per person and in total.

Waiting jobs sit in one queue per person, and the dispatcher takes from those queues in turn (round-robin), so
one person's burst cannot starve everyone else. A person can cancel their own queued or running job. After a
restart, jobs that were running are failed with a clear reason and queued ones are resumed.

This is the queue of one process, for SQLite. On PostgreSQL every instance claims jobs from the database instead
(:mod:`rupali.shared_queue`, a subclass that keeps the running of a job as it is here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from rupali import faults, image_signing, media, metrics, nsfw
from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope, transact
from rupali.models import Generation, GenerationStatus
from rupali.provenance import ContentCredentials, SigningUnavailable
from rupali.providers import ImageProviders
from rupali.providers.base import GeneratedImage, GenerationRequest, GenerationResult, ProviderError
from rupali.services import generation as generations
from rupali.services import uploads
from rupali.services.credits import CreditHook
from rupali.storage import Intent, MediaStorage

log = logging.getLogger(__name__)
_WRITER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="media-write")
UNEXPECTED = "Something went wrong while making these images. Nothing was charged; please try again."
# How long a draining instance still waits, after its deadline, for jobs that are storing their images.
STORING_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class JobState:
    """What the studio shows about a job that has not finished yet."""

    status: GenerationStatus
    position: int | None = None  # jobs that will start before this one (queued jobs)
    progress: float | None = None  # fraction done, when the provider reports progress
    elapsed: float | None = None  # seconds since it started running


class GenerationQueue:
    """The job runner. Start it on the server's event loop; all database work happens in worker threads."""

    def __init__(self, settings: Settings, providers: ImageProviders, storage: MediaStorage,
                 scorer: nsfw.NsfwScorer, credits: CreditHook, credentials: ContentCredentials) -> None:
        self._settings = settings
        self._credentials = credentials
        self._providers = providers
        self._storage = storage
        self._scorer = scorer
        self._credits = credits
        self._waiting: dict[uuid.UUID, deque[uuid.UUID]] = {}
        self._turns: deque[uuid.UUID] = deque()  # people with waiting jobs, in the order they get the next slot
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._running_per_user: Counter[uuid.UUID] = Counter()
        self._owner: dict[uuid.UUID, uuid.UUID] = {}
        self._progress: dict[uuid.UUID, float] = {}
        self._started: dict[uuid.UUID, float] = {}
        self._provider_of: dict[uuid.UUID, str] = {}  # the provider of each started job, for the metrics
        self._outcome: dict[uuid.UUID, str] = {}  # how a job that ran to the end finished (succeeded, blocked)
        self._generating: set[uuid.UUID] = set()  # jobs waiting for their provider: safe to hand back
        self._handed_back: set[uuid.UUID] = set()  # jobs a draining instance stopped, to run again from the start
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resolve what a restart interrupted, then begin dispatching."""
        for generation_id, user_id in await asyncio.to_thread(
                transact, generations.recover_after_restart, self._settings, self._credits):
            self.submit(generation_id, user_id)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="generation-dispatcher")

    async def stop(self) -> None:
        """Stop dispatching and cancel running jobs (they are failed with the restart message next start)."""
        tasks = [task for task in (self._dispatcher, *self._running.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def drain(self, seconds: float) -> int:
        """Stop starting jobs, give the running ones ``seconds`` to finish, and hand back those still waiting for
        their provider: queued again, they run from the start after the restart. Returns how many were handed back.

        A job already storing its images is never interrupted (that takes moments, and an interruption there would
        throw finished work away); queued jobs stay queued in the database and are resumed at the next start.
        """
        await self._stop_claiming()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=max(0.0, seconds))
        stopping = [generation_id for generation_id in self._running if generation_id in self._generating]
        for generation_id in stopping:
            self._handed_back.add(generation_id)
            self._running[generation_id].cancel()
        if self._running:
            # The handed-back ones record that in a moment; a job that is storing finishes its images.
            await asyncio.wait(list(self._running.values()), timeout=STORING_GRACE_SECONDS)
        if stopping:
            log.warning("handed back %d running generation(s) to run again after the restart", len(stopping))
        await self._stop_dispatcher()
        return len(stopping)

    async def _stop_claiming(self) -> None:
        """Start no more jobs (here: stop the dispatcher, which only starts jobs)."""
        await self._stop_dispatcher()

    async def _stop_dispatcher(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None

    def _holder(self, generation_id: uuid.UUID) -> str | None:
        """The claim by which this process holds the job, for the database to check when it ends (the shared queue);
        None here, where this process is the only one and holds them all."""
        return None

    def submit(self, generation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Queue a generation that is recorded as queued in the database."""
        self._owner[generation_id] = user_id
        if user_id not in self._waiting:
            self._waiting[user_id] = deque()
        if not self._waiting[user_id] and user_id not in self._turns:
            self._turns.append(user_id)
        self._waiting[user_id].append(generation_id)
        self._wakeup.set()

    async def cancel(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> None:
        """Cancel one of the person's own jobs (raises ``GenerationNotFound`` for anyone else's)."""
        await asyncio.to_thread(transact, generations.cancel, user_id, generation_id, self._credits)
        waiting = self._waiting.get(user_id)
        if waiting is not None and generation_id in waiting:
            waiting.remove(generation_id)
        if (task := self._running.get(generation_id)) is not None:
            task.cancel()

    def state(self, generation_id: uuid.UUID) -> JobState | None:
        """The live state of an unfinished job, or None once it has finished (read it from the database)."""
        if generation_id in self._running:
            started = self._started.get(generation_id)
            return JobState(GenerationStatus.RUNNING, progress=self._progress.get(generation_id),
                            elapsed=time.monotonic() - started if started else None)
        position = self._positions().get(generation_id)
        return JobState(GenerationStatus.QUEUED, position=position) if position is not None else None

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def waiting_count(self) -> int:
        # tuple(): read from other threads (health report, metrics scrape) while the loop may add a person.
        return sum(len(waiting) for waiting in tuple(self._waiting.values()))

    # --- dispatching ---------------------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while len(self._running) < self._settings.generation_concurrency and (picked := self._next()):
                generation_id, user_id = picked
                self._running_per_user[user_id] += 1
                self._running[generation_id] = asyncio.create_task(self._run(generation_id, user_id),
                                                                   name=f"generation-{generation_id}")

    def _next(self) -> tuple[uuid.UUID, uuid.UUID] | None:
        """The next job in turn: each person with waiting work gets one start before anyone gets a second."""
        for _ in range(len(self._turns)):
            user_id = self._turns.popleft()
            waiting = self._waiting.get(user_id)
            if not waiting:
                continue
            if self._running_per_user[user_id] >= self._settings.generation_per_user:
                self._turns.append(user_id)  # their turn comes again when one of their jobs ends
                continue
            generation_id = waiting.popleft()
            if waiting:
                self._turns.append(user_id)
            return generation_id, user_id
        return None

    def _positions(self) -> dict[uuid.UUID, int]:
        """Where every waiting job stands, simulating the round-robin the dispatcher will follow."""
        queues = {user: list(jobs) for user, jobs in self._waiting.items() if jobs}
        order = [user for user in self._turns if user in queues]
        positions: dict[uuid.UUID, int] = {}
        place = 0
        while order:
            for user in list(order):
                positions[queues[user].pop(0)] = place
                place += 1
                if not queues[user]:
                    order.remove(user)
        return positions

    async def _run(self, generation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        outcome = "succeeded"
        try:
            await self._execute(generation_id)
        except asyncio.CancelledError:
            if generation_id in self._handed_back:
                outcome = "handed_back"
                await asyncio.shield(asyncio.to_thread(transact, generations.hand_back, generation_id,
                                                       worker=self._holder(generation_id)))
            else:
                outcome = "cancelled"
                await asyncio.shield(asyncio.to_thread(
                    transact, generations.fail, generation_id, "Cancelled. Nothing was charged.", self._credits,
                    status=GenerationStatus.CANCELLED, worker=self._holder(generation_id)))
        except ProviderError as exc:
            # The kind and the provider's own detail, not the message shown to the person (it may quote them).
            log.warning("generation %s failed: %s %s", generation_id, exc.kind, exc.detail[:300])
            blocked = exc.kind == "content_blocked"
            outcome = "blocked" if blocked else "failed"
            status = GenerationStatus.BLOCKED if blocked else GenerationStatus.FAILED
            await asyncio.to_thread(transact, generations.fail, generation_id, exc.user_message, self._credits,
                                    status=status, blocked_by="provider" if blocked else None,
                                    worker=self._holder(generation_id))
        except Exception:
            outcome = "error"
            log.exception("generation %s failed unexpectedly", generation_id)
            await asyncio.to_thread(transact, generations.fail, generation_id, UNEXPECTED, self._credits,
                                    worker=self._holder(generation_id))
        finally:
            started = self._started.pop(generation_id, None)
            provider = self._provider_of.pop(generation_id, None)
            outcome = self._outcome.pop(generation_id, outcome)
            if provider is not None:  # None: cancelled before it began
                metrics.generations.labels(provider, outcome).inc()
                if started is not None:
                    metrics.generation_seconds.labels(provider).observe(time.monotonic() - started)
            self._running.pop(generation_id, None)
            self._handed_back.discard(generation_id)
            self._progress.pop(generation_id, None)
            self._owner.pop(generation_id, None)
            self._running_per_user[user_id] -= 1
            if self._waiting.get(user_id) and user_id not in self._turns:
                self._turns.append(user_id)
            self._wakeup.set()

    async def _execute(self, generation_id: uuid.UUID) -> None:
        self._started[generation_id] = time.monotonic()
        begun = await asyncio.to_thread(self._begin, generation_id)
        if begun is None:
            return  # cancelled while it waited
        generation, request = begun
        self._provider_of[generation_id] = generation.provider
        provider = self._providers.get(generation.provider)

        def report(fraction: float) -> None:
            self._progress[generation_id] = max(0.0, min(1.0, fraction))

        self._generating.add(generation_id)
        try:
            result = await provider.generate(request, progress=report)
        finally:
            self._generating.discard(generation_id)
        await asyncio.to_thread(self._finish, generation, result, request.source_image)

    def _finish(self, generation: Generation, result: GenerationResult, parent: bytes | None = None) -> None:
        """Score, sign, store and record the images, in one worker thread, in the crash-safe order of
        rupali.storage: intent, files, rows, commit; any failure before the commit deletes the files again."""
        stored, withheld = self._plan(generation, result.images)
        intent = None
        if stored:
            intent, stored = self._store(stored, lambda item: self._sign(generation, result, item, parent))
        try:
            with session_scope() as session:
                done = generations.complete(session, self._settings, generation.id, result, stored, withheld,
                                            self._credits, worker=self._holder(generation.id))
                self._outcome[generation.id] = str(done.status) if done is not None else "cancelled"
                session.flush()
                faults.reached(faults.BEFORE_COMMIT)
        except BaseException:
            if intent is not None:
                intent.rollback()  # no row names the files
            raise
        faults.reached(faults.AFTER_COMMIT)
        if intent is not None:
            if done is None:
                intent.rollback()  # it stopped running meanwhile: no row names the files
            else:
                intent.commit()

    def _begin(self, generation_id: uuid.UUID) -> tuple[Generation, GenerationRequest] | None:
        """Mark the job running and build its request, in one trip to a worker thread."""
        generation = transact(generations.start, generation_id)
        return None if generation is None else (generation, self._request_for(generation))

    def _request_for(self, generation: Generation) -> GenerationRequest:
        source = None
        if generation.upload_id is not None:
            source = transact(uploads.source_bytes, self._storage, generation.upload_id)
            if source is None:
                raise ProviderError("The source image is no longer available. Please upload it again.")
        return GenerationRequest(
            prompt=generation.prompt, negative_prompt=generation.negative_prompt, model=generation.model,
            width=generation.width, height=generation.height, steps=generation.steps, guidance=generation.guidance,
            count=generation.count, seed=generation.seed, scheduler=generation.scheduler, source_image=source,
            strength=generation.strength if generation.strength is not None else 0.8)

    def _plan(self, generation: Generation, images: list[GeneratedImage]
              ) -> tuple[list[generations.StoredImage], int]:
        """Score every image in one batch and name the files of the ones the policy lets through."""
        scores = self._scorer.scores([image.data for image in images])
        planned, withheld = [], 0
        folder = f"{generation.user_id.hex}/{generation.id.hex}"
        for image, score in zip(images, scores, strict=True):
            verdict = nsfw.judge(self._settings, score, image.provider_nsfw)
            if verdict.flagged or verdict.withheld:
                metrics.nsfw.labels("withheld" if verdict.withheld else "flagged").inc()
            if verdict.withheld:
                withheld += 1
                continue
            image_id = uuid.uuid4()
            planned.append(generations.StoredImage(
                image_id, image, verdict, original_key=f"images/{folder}/{image_id.hex}.{image.format.lower()}",
                thumbnail_key=f"thumbnails/{folder}/{image_id.hex}.webp"))
        return planned, withheld

    def _sign(self, generation: Generation, result: GenerationResult, item: generations.StoredImage,
              parent: bytes | None) -> generations.StoredImage:
        """The image with its Content Credentials (rupali.image_signing: a PNG gets a second file without the
        prompt, so either download is a signed file served as it is, never a re-written one)."""
        image = item.source
        try:
            files = image_signing.sign(self._credentials, generation, image.data, image.format, seed=image.seed,
                                       width=image.width, height=image.height, created_at=now(),
                                       model_version=result.model_version, parent=parent)
        except ValueError as exc:
            raise ProviderError("The image service sent back a damaged image. Please try again.",
                                detail=f"signing failed: {exc}") from None
        except SigningUnavailable as exc:  # no image leaves unmarked: the operator has to renew the certificate
            log.error("Content Credentials cannot sign: %s", exc)
            raise ProviderError("Images cannot be signed on this installation right now, so none were kept. Please "
                                "try again later.", detail=f"signing unavailable: {exc}") from None
        plain_key = image_signing.plain_key(item.original_key) if files.plain is not None else None
        return replace(item, source=replace(image, data=files.original), plain=files.plain, plain_key=plain_key,
                       signed=True)

    def _store(self, planned: list[generations.StoredImage],
               sign: Callable[[generations.StoredImage], generations.StoredImage]
               ) -> tuple[Intent, list[generations.StoredImage]]:
        """Sign, then write every original and thumbnail under a recorded intent, returned for the caller to resolve
        with the signed images.

        The writer thread signs the images (the C2PA library releases the GIL while it works), records the intent
        and writes the originals (fsync'd), overlapping the thumbnails' decoding in this thread (the pixels are the
        same signed or not), so neither the signing nor the fsyncs add much to a job's time.
        """
        writing = _WRITER.submit(self._sign_and_write, planned, sign)
        try:
            previews = [media.thumbnail(item.source.data) for item in planned]
        except BaseException as exc:
            futures.wait([writing])  # the originals must be in place before the rollback deletes them
            if writing.exception() is None:
                writing.result()[0].rollback()
            if isinstance(exc, OSError | SyntaxError | ValueError):
                raise ProviderError("The image service sent back a damaged image. Please try again.",
                                    detail=f"thumbnail failed: {exc}") from None
            raise
        intent, signed = writing.result()
        try:
            for item, preview in zip(signed, previews, strict=True):
                self._storage.put(item.thumbnail_key, preview, durable=False)  # a thumbnail can be made again
                faults.reached(faults.AFTER_THUMBNAIL)
        except BaseException:
            intent.rollback()
            raise
        return intent, signed

    def _sign_and_write(self, planned: list[generations.StoredImage],
                        sign: Callable[[generations.StoredImage], generations.StoredImage]
                        ) -> tuple[Intent, list[generations.StoredImage]]:
        signed = [sign(item) for item in planned]  # before the intent: a file that cannot be signed writes nothing
        return self._write_originals(signed), signed

    def _write_originals(self, planned: list[generations.StoredImage]) -> Intent:
        """On the writer thread: record the intent for every file of the job, then write the originals."""
        intent = self._storage.intend(key for item in planned
                                      for key in (item.original_key, item.thumbnail_key, item.plain_key) if key)
        try:
            faults.reached(faults.BEFORE_FILES)
            for item in planned:
                self._storage.put(item.original_key, item.source.data)
                if item.plain_key is not None and item.plain is not None:
                    self._storage.put(item.plain_key, item.plain)
                faults.reached(faults.AFTER_ORIGINAL)
        except BaseException:
            intent.rollback()
            raise
        return intent
