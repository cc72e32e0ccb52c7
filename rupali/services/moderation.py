"""Moderation: the queue of images the NSFW scorer or the AI provider flagged and of generations that were blocked,
what an administrator does with them (dismiss, remove the image, suspend its owner), and the repeat-offender rule
for prompts the blocklist stopped.

Like :mod:`rupali.services.admin`, every action re-reads the acting administrator (a page left open after a
demotion changes nothing) and appends its audit entry in the same transaction as the change. The queue pages are
cut with a keyset (``created_at`` and id, newest first), never OFFSET.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, func, or_, tuple_
from sqlmodel import Session, col, select

from rupali import dates, mail_templates
from rupali.clock import now
from rupali.config import Settings
from rupali.models import AuditEntry, Generation, GenerationStatus, Image, PromptStrike, User
from rupali.services import audit, gallery, mail
from rupali.services.suspension import suspend_account
from rupali.storage import MediaStorage
from rupali.text import InvalidText, clean

log = logging.getLogger(__name__)

PAGE_SIZE = 50
EXCERPT = 120  # characters of a prompt shown in the queue and quoted in the removal mail
REASON_MIN, REASON_MAX = 3, 500
STRIKE_WINDOW = timedelta(hours=24)
TERM_MAX = 200  # the width of PromptStrike.term
# What stopped a blocked generation (Generation.blocked_by), as the queue names it.
BLOCKED_BY_LABELS = {"blocklist": "Blocklist", "provider": "AI provider", "nsfw": "NSFW filter"}
IMAGE_GONE = "This image no longer exists."
GENERATION_GONE = "This generation is no longer in the moderation queue."
T = TypeVar("T")


class ModerationError(ValueError):
    """A moderation action that cannot be carried out; the message says why, for the administrator."""


# --- the queue -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlaggedImage:
    """An image waiting for review: the scorer's score reached the threshold, or the provider flagged it."""

    id: uuid.UUID
    user_id: uuid.UUID
    owner: str  # the owner's e-mail address
    owner_suspended: bool
    created_at: datetime
    score: float
    provider_nsfw: bool | None
    prompt: str  # an excerpt
    model_label: str


@dataclass(frozen=True)
class BlockedGeneration:
    """A blocked generation waiting for review, with what stopped it and the reason the person was given."""

    id: uuid.UUID
    user_id: uuid.UUID
    owner: str
    owner_suspended: bool
    created_at: datetime
    blocked_by: str | None  # "blocklist", "provider", "nsfw"; None for generations blocked before it was recorded
    reason: str
    prompt: str  # an excerpt
    model_label: str
    strikes: int  # the owner's blocklist hits in the last 24 hours

    @property
    def blocked_by_label(self) -> str:
        return BLOCKED_BY_LABELS.get(self.blocked_by or "", "Not recorded")


@dataclass(frozen=True)
class QueuePage(Generic[T]):
    items: list[T]
    total: int  # everything waiting in this queue, not only this page
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True)
class Queue:
    images: QueuePage[FlaggedImage]
    generations: QueuePage[BlockedGeneration]


def queue(session: Session, settings: Settings, *, limit: int = PAGE_SIZE) -> Queue:
    """The first page of both queues."""
    return Queue(flagged_images(session, settings, limit=limit), blocked_generations(session, limit=limit))


def flagged_images(session: Session, settings: Settings, *, cursor: str | None = None,
                   limit: int = PAGE_SIZE) -> QueuePage[FlaggedImage]:
    """Unreviewed, unexpired images scored at or above the NSFW threshold or flagged by the provider, newest first."""
    conditions = _flagged(settings)
    statement = (select(Image, Generation.prompt, Generation.model_label, User.email, User.suspended_at)
                 .join(Generation, col(Generation.id) == col(Image.generation_id))
                 .join(User, col(User.id) == col(Image.user_id))
                 .where(*conditions))
    if cursor:
        statement = statement.where(tuple_(col(Image.created_at), col(Image.id)) < tuple_(*_decode(cursor)))
    rows = session.exec(statement.order_by(col(Image.created_at).desc(), col(Image.id).desc())
                        .limit(limit + 1)).all()
    items = [FlaggedImage(image.id, image.user_id, email, suspended is not None, image.created_at, image.nsfw_score,
                          image.provider_nsfw, excerpt(prompt), model_label)
             for image, prompt, model_label, email, suspended in rows[:limit]]
    total = session.exec(select(func.count()).select_from(Image).where(*conditions)).one()
    last = items[-1] if len(rows) > limit else None
    return QueuePage(items, int(total), _encode(last.created_at, last.id) if last else None)


def blocked_generations(session: Session, *, cursor: str | None = None,
                        limit: int = PAGE_SIZE) -> QueuePage[BlockedGeneration]:
    """Unreviewed blocked generations, newest first, with their owner's blocklist hits of the last 24 hours."""
    conditions = [col(Generation.status) == GenerationStatus.BLOCKED.value, col(Generation.reviewed_at).is_(None)]
    statement = (select(Generation, User.email, User.suspended_at)
                 .join(User, col(User.id) == col(Generation.user_id)).where(*conditions))
    if cursor:
        statement = statement.where(
            tuple_(col(Generation.created_at), col(Generation.id)) < tuple_(*_decode(cursor)))
    rows = session.exec(statement.order_by(col(Generation.created_at).desc(), col(Generation.id).desc())
                        .limit(limit + 1)).all()
    shown = rows[:limit]
    strikes = _strikes_by_user(session, {generation.user_id for generation, _, _ in shown})
    items = [BlockedGeneration(generation.id, generation.user_id, email, suspended is not None,
                               generation.created_at, generation.blocked_by, generation.error,
                               excerpt(generation.prompt), generation.model_label or generation.model,
                               strikes.get(generation.user_id, 0))
             for generation, email, suspended in shown]
    total = session.exec(select(func.count()).select_from(Generation).where(*conditions)).one()
    last = items[-1] if len(rows) > limit else None
    return QueuePage(items, int(total), _encode(last.created_at, last.id) if last else None)


def excerpt(prompt: str, length: int = EXCERPT) -> str:
    """The start of a prompt on one line, cut at ``length`` characters with an ellipsis."""
    line = " ".join(prompt.split())
    return line if len(line) <= length else line[:length - 1].rstrip() + "…"


# --- actions -------------------------------------------------------------------------------------------------------


def dismiss_image(session: Session, actor: User, image_id: object) -> Image:
    """Leave a flagged image as it is and take it off the queue."""
    current = _administrator(session, actor)
    image = _image(session, image_id)
    if image.reviewed_at is not None:
        raise ModerationError("This image was already dismissed.")
    image.reviewed_at = now()
    session.add(image)
    audit.record(session, current, "moderation.dismiss", target_kind="image", target_id=image.id,
                 target_user_id=image.user_id, detail=_flags(image))
    return image


def dismiss_generation(session: Session, actor: User, generation_id: object) -> Generation:
    """Take a blocked generation off the queue (it stays blocked; the person keeps it in their history)."""
    current = _administrator(session, actor)
    generation = _blocked_generation(session, generation_id)
    generation.reviewed_at = now()
    session.add(generation)
    audit.record(session, current, "moderation.dismiss", target_kind="generation", target_id=generation.id,
                 target_user_id=generation.user_id,
                 detail=f"stopped by: {BLOCKED_BY_LABELS.get(generation.blocked_by or '', 'not recorded')}")
    return generation


def remove_image(session: Session, settings: Settings, storage: MediaStorage, actor: User, image_id: object, *,
                 reason: str | None) -> None:
    """Remove an image for ``reason``: its row goes, its files go once the transaction has committed (as the
    gallery's own delete does, see :mod:`rupali.storage`), and its owner is mailed which image it was and why."""
    current = _administrator(session, actor)
    text = _reason(reason, "The reason for the removal")
    image = _image(session, image_id)
    owner = session.get(User, image.user_id)
    generation = session.get(Generation, image.generation_id)
    assert owner is not None and generation is not None  # both are foreign keys of the image
    # Read before the delete: the row goes with it.
    removed_id, flags, prompt, created = image.id, _flags(image), excerpt(generation.prompt), image.created_at
    keys = gallery.delete_images(session, owner.id, [removed_id])
    if not keys:  # expired in the meantime: the retention job deletes it anyway
        raise ModerationError(IMAGE_GONE)
    mail.enqueue(session, to=owner.email, user_id=owner.id, mail=mail_templates.image_removed(
        owner.full_name, prompt, dates.moment(created, dates.FALLBACK), text, settings.operator_email))
    audit.record(session, current, "moderation.remove", target_kind="image", target_id=removed_id,
                 target_user_id=owner.id, reason=text, detail=f"{flags}; generation {generation.id}")
    storage.settle_with(session, obsolete=keys)  # rows first, commit, then files


def suspend_owner(session: Session, actor: User, item_id: object, *, kind: str, reason: str | None) -> User:
    """Suspend the owner of a queued image (``kind="image"``) or blocked generation (``kind="generation"``), the
    way the administrator's own suspension does (:func:`rupali.services.admin.suspend_user`)."""
    # Imported here: admin → deletion → generation → moderation would otherwise be a cycle.
    from rupali.services import admin

    _administrator(session, actor)
    if kind == "image":
        owner_id = _image(session, item_id).user_id
    elif kind == "generation":
        owner_id = _blocked_generation(session, item_id, reviewed_too=True).user_id
    else:
        raise ModerationError("Choose an image or a generation of the queue.")
    try:
        return admin.suspend_user(session, actor, owner_id, reason=reason)
    except admin.AdminError as exc:
        raise ModerationError(str(exc)) from None


# --- repeat offenders ----------------------------------------------------------------------------------------------


def record_strike(session: Session, settings: Settings, user: User, term: str) -> bool:
    """Count a prompt the blocklist stopped against its author. When their strikes of the last 24 hours reach
    ``moderation_strikes_per_day`` (0: never), the account is suspended pending review; True if it was.

    Strikes from before an administrator last lifted a suspension of the account do not count: the review starts
    the count afresh. Administrators are never suspended automatically (they try out the blocklist, and the last
    one must keep the console).
    """
    # Locked (PostgreSQL) so two stopped prompts at once are counted one after the other.
    account = session.get(User, user.id, with_for_update=True, populate_existing=True)
    if account is None:
        return False
    moment = now()
    session.add(PromptStrike(user_id=account.id, term=term[:TERM_MAX], at=moment))
    session.flush()
    limit = settings.moderation_strikes_per_day
    if limit <= 0 or account.suspended_at is not None or account.is_admin:
        return False
    since = moment - STRIKE_WINDOW
    lifted = session.exec(select(func.max(AuditEntry.at)).where(
        AuditEntry.action == "user.unsuspend", AuditEntry.target_user_id == account.id)).one()
    if lifted is not None and lifted > since:
        since = lifted
    strikes = session.exec(select(func.count()).select_from(PromptStrike).where(
        PromptStrike.user_id == account.id, col(PromptStrike.at) > since)).one()
    if strikes < limit:
        return False
    suspend_account(session, account, actor=None, reason=(
        f"{strikes} prompts within 24 hours were stopped by the content rules (suspended automatically, "
        "pending review)"))
    log.warning("account %s suspended automatically after %d blocked prompts within 24 hours", account.id, strikes)
    return True


# --- helpers -------------------------------------------------------------------------------------------------------


def _flagged(settings: Settings) -> list[ColumnElement[bool]]:
    return [col(Image.reviewed_at).is_(None),
            or_(col(Image.nsfw_score) >= settings.nsfw_threshold, col(Image.provider_nsfw).is_(True)),
            or_(col(Image.expires_at).is_(None), col(Image.expires_at) > now())]


def _strikes_by_user(session: Session, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not user_ids:
        return {}
    rows = session.exec(select(PromptStrike.user_id, func.count()).where(
        col(PromptStrike.user_id).in_(user_ids), col(PromptStrike.at) > now() - STRIKE_WINDOW)
        .group_by(col(PromptStrike.user_id))).all()
    return {user_id: int(count) for user_id, count in rows}


def _administrator(session: Session, actor: User) -> User:
    """The acting administrator as stored now (a role taken away while the page was open counts)."""
    current = session.get(User, actor.id, populate_existing=True)
    if current is None or not current.is_admin or not current.is_active:
        raise ModerationError("Only administrators can do this.")
    return current


def _image(session: Session, image_id: object) -> Image:
    """The image, locked for the action (a second administrator acting at once waits, then finds it changed)."""
    parsed = _parse_id(image_id)
    image = session.get(Image, parsed, with_for_update=True, populate_existing=True) if parsed else None
    if image is None or (image.expires_at is not None and image.expires_at <= now()):
        raise ModerationError(IMAGE_GONE)
    return image


def _blocked_generation(session: Session, generation_id: object, *, reviewed_too: bool = False) -> Generation:
    parsed = _parse_id(generation_id)
    generation = session.get(Generation, parsed, with_for_update=True, populate_existing=True) if parsed else None
    if generation is None or generation.status != GenerationStatus.BLOCKED or (
            generation.reviewed_at is not None and not reviewed_too):
        raise ModerationError(GENERATION_GONE)
    return generation


def _parse_id(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)[:64])
    except ValueError:
        return None


def _flags(image: Image) -> str:
    flags = f"NSFW score {image.nsfw_score:.2f}"
    return flags + ", flagged by the provider" if image.provider_nsfw else flags


def _reason(value: str | None, label: str) -> str:
    try:
        text = clean(value, field="reason", label=label, max_length=REASON_MAX)
    except InvalidText as exc:
        raise ModerationError(str(exc)) from None
    if len(text) < REASON_MIN:
        raise ModerationError(f"Give a reason of at least {REASON_MIN} characters: it is recorded in the audit log "
                              "and sent to the owner.")
    return text


def _encode(created: datetime, item_id: uuid.UUID) -> str:
    return gallery.encode_cursor(created, item_id)  # the gallery's keyset cursor, one format everywhere


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        return gallery.decode_cursor(cursor)
    except gallery.InvalidCursor as exc:
        raise ModerationError(str(exc)) from None
