"""Generations in the database: validation, submission, outcomes, cancellation, recovery after a restart.

The running of jobs lives in :mod:`rupali.generation_queue`; everything here is a plain function on a session.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session, col, delete, func, select, update

from rupali import job_events, metrics, text
from rupali.clock import now
from rupali.config import Settings
from rupali.models import Generation, GenerationStatus, Image, Upload, User
from rupali.nsfw import Verdict
from rupali.providers import ModelChoice
from rupali.providers.base import GeneratedImage, GenerationResult
from rupali.services import feedback, ledger, moderation, users
from rupali.services.credits import CreditHook
from rupali.storage import LocalStorage

log = logging.getLogger(__name__)

PROMPT_MAX = 2000
SCHEDULER_MAX = 60  # the column's width; names like "DPM++ 2M Karras" are far shorter
SEED_MAX = 2**32 - 1
BUSY_MESSAGE = "These images are still being made. Cancel the generation first, then delete it."
RESTART_MESSAGE = "The server restarted while these images were being made. Nothing was charged; please try again."


@dataclass(frozen=True)
class GenerationForm:
    """What the studio or the API asks for, before validation (``seed`` None means random)."""

    prompt: str
    model: str  # "provider:model"
    width: int
    height: int
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    count: int = 1
    seed: int | None = None
    scheduler: str | None = None
    upload_id: uuid.UUID | None = None
    strength: float | None = None


class InvalidGeneration(ValueError):
    """A request that cannot be accepted; ``field`` names the input, the message says what to change."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class GenerationNotFound(LookupError):
    """No such generation or image among the person's own (another person's ids are simply not found)."""


class GenerationBusy(Exception):
    """The generation is still queued or running: it has to be cancelled (or finish) before it can be deleted."""


@dataclass(frozen=True)
class StoredImage:
    """An image after scoring, ready to be recorded: its files are already in storage."""

    image_id: uuid.UUID
    source: GeneratedImage
    verdict: Verdict
    original_key: str
    thumbnail_key: str
    plain_key: str | None = None  # a PNG's second signed file, without the prompt and settings
    plain: bytes | None = None
    signed: bool = False


# --- validation ----------------------------------------------------------------------------------------------------

def validate(settings: Settings, choice: ModelChoice, form: GenerationForm) -> GenerationForm:
    """Check every field against the model's capabilities; returns the form with defaults and the seed filled."""
    info = choice.info
    try:
        prompt = text.clean(form.prompt, field="prompt", label="The prompt", max_length=PROMPT_MAX, multiline=True)
        negative = text.clean(form.negative_prompt, field="negative_prompt", label="The negative prompt",
                              max_length=PROMPT_MAX, multiline=True)
        scheduler = text.clean(form.scheduler, field="scheduler", label="The scheduler", max_length=SCHEDULER_MAX)
    except text.InvalidText as exc:
        raise InvalidGeneration(exc.message, exc.field) from None
    if not prompt:
        raise InvalidGeneration("Describe the image you want in the prompt.", "prompt")
    if len(prompt) < info.prompt_min:
        raise InvalidGeneration(f"{info.label} needs a prompt of at least {info.prompt_min} characters.", "prompt")
    if negative and not info.negative_prompt:
        raise InvalidGeneration(f"{info.label} does not use a negative prompt.", "negative_prompt")
    size = (form.width, form.height)
    if size not in info.sizes and not info.size_rule.allows(*size):
        raise InvalidGeneration(f"{form.width}x{form.height} is not a size {info.label} can make: use "
                                f"{info.size_rule.describe()}.", "size")
    steps = info.default_steps if form.steps is None else form.steps
    if not 1 <= steps <= info.max_steps:
        raise InvalidGeneration(f"Steps must be between 1 and {info.max_steps}.", "steps")
    guidance = info.default_guidance if form.guidance is None else form.guidance
    if not 0 <= guidance <= info.max_guidance:
        raise InvalidGeneration(f"Guidance must be between 0 and {info.max_guidance:g}.", "guidance")
    most = min(info.max_images, settings.max_images_per_request)
    if not 1 <= form.count <= most:
        raise InvalidGeneration(f"Ask for between 1 and {most} images.", "count")
    seed = secrets.randbelow(SEED_MAX + 1) if form.seed is None else form.seed
    if not 0 <= seed <= SEED_MAX:
        raise InvalidGeneration(f"The seed must be a whole number between 0 and {SEED_MAX}.", "seed")
    if scheduler and info.schedulers and scheduler not in info.schedulers:
        raise InvalidGeneration(f"{info.label} has no scheduler called “{scheduler}”.", "scheduler")
    strength = None
    if form.upload_id is not None:
        if not info.img2img:
            raise InvalidGeneration(f"{info.label} cannot start from an image.", "source")
        strength = 0.8 if form.strength is None else form.strength
        if not 0 <= strength <= 1:
            raise InvalidGeneration("Strength must be between 0 and 1.", "strength")
    return replace(form, prompt=prompt, negative_prompt=negative, steps=steps, guidance=guidance, seed=seed,
                   strength=strength, scheduler=scheduler or None)


def blocked_term(settings: Settings, text: str) -> str | None:
    """The first operator-blocked word or phrase found in ``text`` (whole words, any case)."""
    for term in (part.strip() for part in settings.prompt_blocklist.split(",")):
        if term and re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, flags=re.IGNORECASE):
            return term
    return None


# --- lifecycle -----------------------------------------------------------------------------------------------------

def submit(session: Session, settings: Settings, user: User, choice: ModelChoice, form: GenerationForm,
           credits: CreditHook) -> Generation:
    """Record a request. A blocked prompt is recorded as blocked (it costs nothing); otherwise it is queued."""
    form = validate(settings, choice, form)
    users.take_turn(session, user.id)  # the count below then sees every earlier submission of theirs
    waiting = session.exec(select(func.count()).select_from(Generation).where(
        Generation.user_id == user.id,
        col(Generation.status).in_([GenerationStatus.QUEUED, GenerationStatus.RUNNING]))).one()
    if waiting >= settings.generation_queue_per_user:
        raise InvalidGeneration(f"You already have {waiting} generations waiting. Let them finish first.")
    if form.upload_id is not None:
        upload = session.get(Upload, form.upload_id)
        if upload is None or upload.user_id != user.id:
            raise InvalidGeneration("That source image is no longer available. Please upload it again.", "source")
    generation = Generation(
        user_id=user.id, provider=choice.provider, model=choice.info.id, model_label=choice.info.label,
        model_version=choice.info.version, prompt=form.prompt, negative_prompt=form.negative_prompt,
        width=form.width, height=form.height, steps=form.steps or 0, guidance=form.guidance or 0.0,
        count=form.count, seed=form.seed or 0, scheduler=form.scheduler, upload_id=form.upload_id,
        strength=form.strength, created_at=now())
    term = blocked_term(settings, form.prompt)
    if term is not None:
        metrics.nsfw.labels("prompt_blocked").inc()
        generation.status, generation.finished_at = GenerationStatus.BLOCKED, now()
        generation.blocked_by = "blocklist"
        generation.error = f"This prompt contains “{term}”, which this service does not allow. Nothing was charged."
        session.add(generation)
        session.flush()
        moderation.record_strike(session, settings, user, term)  # may suspend a repeat offender
        return generation
    session.add(generation)
    session.flush()
    credits.reserve(session, user, generation)
    session.add(generation)
    job_events.notify(session, job_events.QUEUED, generation.id)  # wakes every instance's dispatcher at the commit
    return generation


def start(session: Session, generation_id: uuid.UUID) -> Generation | None:
    """Mark a queued generation running; ``None`` when it is no longer queued (cancelled meanwhile, or started by
    another instance: the update is conditional, so of two starters exactly one gets it)."""
    claimed = session.execute(
        update(Generation).where(col(Generation.id) == generation_id, col(Generation.status) == GenerationStatus.QUEUED)
        .values(status=GenerationStatus.RUNNING, started_at=now())).rowcount
    if claimed != 1:
        return None
    return session.get(Generation, generation_id, populate_existing=True)


def hand_back(session: Session, generation_id: uuid.UUID, *, worker: str | None = None) -> bool:
    """Queue a running generation again: the instance running it is stopping before its provider answered.

    Its credit reservation stays; it runs from the start (on another instance, or after the restart) and is charged
    once, when it finishes. False when it is not running any more (it finished or was cancelled meanwhile), or,
    given ``worker``, when that instance no longer holds it.
    """
    generation = session.get(Generation, generation_id, with_for_update=True)
    if generation is None or generation.status != GenerationStatus.RUNNING or not _holds(generation, worker):
        return False
    generation.status, generation.started_at = GenerationStatus.QUEUED, None
    generation.worker, generation.lease_until = None, None
    generation.attempts = max(0, generation.attempts - 1)  # a hand-back is not a death: it does not use up an attempt
    session.add(generation)
    job_events.notify(session, job_events.QUEUED, generation.id)
    return True


def complete(session: Session, settings: Settings, generation_id: uuid.UUID, result: GenerationResult,
             stored: list[StoredImage], withheld: int, credits: CreditHook, *,
             worker: str | None = None) -> Generation | None:
    """Record the images; a generation whose every image was withheld by the NSFW policy ends as blocked.

    None, recording nothing, when it is not running any more: cancelled while its images were made (its credits
    were given back then), or failed by a restart meanwhile; or, given ``worker``, when that instance no longer
    holds it (re-queued after its lease ran out). The caller discards the images.
    """
    generation = session.get(Generation, generation_id, with_for_update=True)
    if generation is None or generation.status != GenerationStatus.RUNNING or not _holds(generation, worker):
        return None
    moment = now()
    expires = moment + timedelta(days=settings.content_expiry_days) if settings.content_expiry_days else None
    for position, item in enumerate(stored):
        session.add(Image(
            id=item.image_id, user_id=generation.user_id, generation_id=generation.id, position=position,
            seed=item.source.seed, width=item.source.width, height=item.source.height, format=item.source.format,
            bytes=len(item.source.data), original_key=item.original_key, thumbnail_key=item.thumbnail_key,
            plain_key=item.plain_key, signed=item.signed,
            nsfw_score=item.verdict.score, provider_nsfw=item.source.provider_nsfw, nsfw=item.verdict.flagged,
            created_at=moment, expires_at=expires))
    generation.model_version = result.model_version or generation.model_version
    generation.provider_cost = result.cost
    generation.finished_at = moment
    generation.duration_ms = _duration_ms(generation)
    if stored:
        generation.status = GenerationStatus.SUCCEEDED
        if withheld:
            generation.error = f"{withheld} of the images were withheld by the content filter."
        credits.settle(session, generation, delivered=len(stored))
    else:
        generation.status, generation.blocked_by = GenerationStatus.BLOCKED, "nsfw"
        generation.error = "The content filter withheld every image. Nothing was charged."
        credits.release(session, generation)
    generation.lease_until = None
    session.add(generation)
    job_events.notify(session, job_events.ENDED, generation.id)
    return generation


def fail(session: Session, generation_id: uuid.UUID, message: str, credits: CreditHook, *,
         status: GenerationStatus = GenerationStatus.FAILED, blocked_by: str | None = None,
         worker: str | None = None) -> Generation | None:
    """End a generation without images (failed, blocked by the provider, or cancelled); credits go back.

    ``blocked_by`` says what stopped a blocked one (``"provider"``): the moderation queue shows it. Given
    ``worker``, only while that instance holds the job (a job re-queued meanwhile is someone else's now).
    """
    # Locked before it is judged: a job completing at this moment is seen completed, never overwritten (and the
    # row before the credit account, the order complete() takes them in).
    generation = session.get(Generation, generation_id, with_for_update=True, populate_existing=True)
    if generation is None or generation.finished:
        return generation
    if not _holds(generation, worker):
        return generation
    generation.status, generation.error, generation.finished_at = status, message[:500], now()
    generation.lease_until = None
    if blocked_by is not None:
        generation.blocked_by = blocked_by
    generation.duration_ms = _duration_ms(generation)
    credits.release(session, generation)
    session.add(generation)
    job_events.notify(session, job_events.ENDED, generation.id)
    return generation


def cancel(session: Session, user_id: uuid.UUID, generation_id: uuid.UUID, credits: CreditHook) -> Generation:
    """Cancel one of the person's own queued or running generations."""
    generation = session.get(Generation, generation_id, with_for_update=True, populate_existing=True)
    if generation is None or generation.user_id != user_id:
        raise GenerationNotFound()
    if generation.finished:
        return generation
    fail(session, generation.id, "Cancelled. Nothing was charged.", credits, status=GenerationStatus.CANCELLED)
    job_events.notify(session, job_events.CANCELLED, generation.id)  # the instance running it stops it
    return generation


def delete_generation(session: Session, storage: LocalStorage, user: User, generation_id: uuid.UUID) -> bool:
    """Delete one of the person's generations: its prompt and parameters, its images and thumbnails, and its source
    upload unless another generation still uses it. The files go once the transaction has committed.

    False for an unknown id or anyone else's (their data is not touched). A queued or running generation is refused
    with :class:`GenerationBusy` rather than cancelled here: the job lives in the server's queue, which cancels it
    (``GenerationQueue.cancel``), and a job still writing its images must not find its row gone. Callers that have
    the queue also refuse while it still holds the job (a cancelled job takes a moment to stop).
    """
    generation = session.get(Generation, generation_id)
    if generation is None or generation.user_id != user.id:
        return False
    if not generation.finished:
        raise GenerationBusy(BUSY_MESSAGE)
    images = session.exec(select(Image).where(Image.generation_id == generation.id)).all()
    obsolete = [key for image in images for key in image.file_keys()]
    session.exec(delete(Image).where(col(Image.generation_id) == generation.id))  # type: ignore[call-overload]
    upload_id = generation.upload_id
    session.delete(generation)
    session.flush()
    if upload_id is not None:
        upload = session.get(Upload, upload_id)
        used = session.exec(select(Generation.id).where(Generation.upload_id == upload_id).limit(1)).first()
        if upload is not None and upload.user_id == user.id and used is None:
            obsolete.append(upload.key)
            session.delete(upload)
    storage.settle_with(session, obsolete=obsolete)  # rows first, commit, then files (see rupali.storage)
    return True


def recover_after_restart(session: Session, settings: Settings,
                          credits: CreditHook) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Resolve what a restart interrupted: running jobs fail (nothing charged), queued ones are resumed.

    Then the ledger is reconciled: a reservation whose generation ended or vanished without giving it back (ended
    through another hook, say while billing was switched off, or by code that did not have the ledger) is released.
    Queued generations keep theirs; it is settled when they finish. In the same transaction, so a crash during the
    recovery leaves it all to be done again.

    Returns ``(generation_id, user_id)`` of the queued generations, oldest first, for the queue to pick up.
    """
    for generation in session.exec(select(Generation).where(Generation.status == GenerationStatus.RUNNING)).all():
        fail(session, generation.id, RESTART_MESSAGE, credits)
    session.flush()  # the failed ones are finished before the ledger looks for ended generations
    released = ledger.reconcile(session, settings)
    if released:
        log.warning("start-up: gave back %d credit reservation(s) whose generation had ended without it", released)
    queued = session.exec(select(Generation).where(Generation.status == GenerationStatus.QUEUED)
                          .order_by(col(Generation.created_at))).all()
    return [(generation.id, generation.user_id) for generation in queued]


# --- reading -------------------------------------------------------------------------------------------------------

def for_user(session: Session, user_id: uuid.UUID, generation_id: uuid.UUID) -> Generation:
    generation = session.get(Generation, generation_id)
    if generation is None or generation.user_id != user_id:
        raise GenerationNotFound()
    return generation


def recent(session: Session, user_id: uuid.UUID, limit: int = 20) -> list[Generation]:
    return list(session.exec(select(Generation).where(Generation.user_id == user_id)
                             .order_by(col(Generation.created_at).desc()).limit(limit)).all())


@dataclass(frozen=True)
class StudioOpening:
    """What the studio shows once its page is open, read in one transaction."""

    balance: int | None  # None: billing is off
    recent: list[Generation]  # newest first
    images: dict[uuid.UUID, list[Image]]  # of the recent generations, in their order
    given: dict[uuid.UUID, feedback.Given]  # the person's thumbs on them

    @property
    def last_seed(self) -> int | None:
        """The seed of the latest generation, offered as the seed field's hint."""
        return self.recent[0].seed if self.recent else None


def studio_opening(session: Session, credits: CreditHook, user: User, limit: int) -> StudioOpening:
    """The balance, the ``limit`` latest generations with their images and the person's feedback on them."""
    latest = recent(session, user.id, limit)
    ids = [generation.id for generation in latest]
    return StudioOpening(credits.balance(session, user), latest, images_of(session, ids),
                         feedback.given(session, user.id, ids))


def images_of(session: Session, generation_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Image]]:
    """Each generation's images in their order (one query for all of them)."""
    found: dict[uuid.UUID, list[Image]] = {generation_id: [] for generation_id in generation_ids}
    if generation_ids:
        for image in session.exec(select(Image).where(col(Image.generation_id).in_(generation_ids))
                                  .order_by(col(Image.generation_id), col(Image.position))):
            found[image.generation_id].append(image)
    return found


def image_for_user(session: Session, user: User, image_id: uuid.UUID) -> tuple[Image, Generation]:
    """One of the person's images with its generation (admins may open anyone's)."""
    image = session.get(Image, image_id)
    if image is None or (image.user_id != user.id and not user.is_admin):
        raise GenerationNotFound()
    if image.expires_at is not None and image.expires_at <= now():
        raise GenerationNotFound()
    generation = session.get(Generation, image.generation_id)
    assert generation is not None
    return image, generation


def set_favourite(session: Session, user: User, image_id: uuid.UUID, favourite: bool) -> Image:
    image = session.get(Image, image_id)
    if image is None or image.user_id != user.id:
        raise GenerationNotFound()
    image.favourite = favourite
    session.add(image)
    return image


def _holds(generation: Generation, worker: str | None) -> bool:
    """Whether ``worker`` holds the job (None: the single-process queue, which holds them all)."""
    return worker is None or generation.worker == worker


def _duration_ms(generation: Generation) -> int | None:
    if generation.started_at is None or generation.finished_at is None:
        return None
    return int((generation.finished_at - generation.started_at).total_seconds() * 1000)


def thumbnail_facts(session: Session, image_id: uuid.UUID) -> tuple[uuid.UUID, str, datetime | None] | None:
    """Owner, thumbnail key and expiry of an image, in one narrow query (the thumbnail route's only lookup)."""
    row = session.exec(select(Image.user_id, Image.thumbnail_key, Image.expires_at)
                       .where(col(Image.id) == image_id)).first()
    return (row[0], row[1], row[2]) if row else None
