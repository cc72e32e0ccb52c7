"""The gallery: a person's images with filters, prompt search and keyset pagination; deletion; history.

Pages are cut with a keyset (the last item's ``created_at`` and id), never OFFSET, so the ten-thousandth image
costs what the first does. Prompt search uses SQLite FTS5 on the embedded default and PostgreSQL full-text
search on PostgreSQL, behind the one function :func:`_matching_generations`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, false, func, or_, text, tuple_
from sqlmodel import Session, col, delete, select

from rupali.clock import now
from rupali.models import Generation, GenerationStatus, Image
from rupali.text import is_valid_unicode

PAGE_SIZE = 60
EXPIRING_SOON = timedelta(days=7)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class GalleryQuery:
    """Filters and order of the grid; the defaults show everything, newest first."""

    search: str = ""
    favourites: bool = False
    model: str | None = None  # "provider:model"
    since: date | None = None
    until: date | None = None
    show_nsfw: bool = True
    expiring_soon: bool = False
    oldest_first: bool = False


@dataclass(frozen=True)
class GalleryItem:
    image: Image
    prompt: str
    model_label: str


@dataclass(frozen=True)
class GalleryPage:
    items: list[GalleryItem]
    next_cursor: str | None  # None: this was the last page


class InvalidCursor(ValueError):
    """A cursor that was not produced by :func:`page` (tampered with, or from another query)."""


def page(session: Session, user_id: uuid.UUID, query: GalleryQuery, cursor: str | None = None,
         limit: int = PAGE_SIZE) -> GalleryPage:
    """One page of the person's images that match ``query``, continuing after ``cursor``."""
    statement = (select(Image, Generation.prompt, Generation.model_label)
                 .join(Generation, col(Generation.id) == col(Image.generation_id))
                 .where(*_conditions(session, user_id, query)))
    newest_first = not query.oldest_first
    if cursor:
        # A row-value comparison, so the database seeks straight to the cursor in ix_image_user_created_id
        # instead of walking every newer row: the ten-thousandth image costs what the first does.
        position = tuple_(col(Image.created_at), col(Image.id))
        mark = tuple_(*decode_cursor(cursor))
        statement = statement.where(position < mark if newest_first else position > mark)
    order = (col(Image.created_at).desc(), col(Image.id).desc()) if newest_first else \
        (col(Image.created_at).asc(), col(Image.id).asc())
    rows = session.exec(statement.order_by(*order).limit(limit + 1)).all()
    items = [GalleryItem(image, prompt, label) for image, prompt, label in rows[:limit]]
    next_cursor = _encode(items[-1].image) if len(rows) > limit else None
    return GalleryPage(items, next_cursor)


def models_used(session: Session, user_id: uuid.UUID) -> list[tuple[str, str]]:
    """(key, label) of every model the person has images from, for the model filter."""
    rows = session.exec(select(Generation.provider, Generation.model, func.max(Generation.model_label))
                        .where(Generation.user_id == user_id, Generation.status == GenerationStatus.SUCCEEDED)
                        .group_by(Generation.provider, Generation.model)).all()
    return sorted(((f"{provider}:{model}", label or model) for provider, model, label in rows), key=lambda r: r[1])


def detail(session: Session, user_id: uuid.UUID, image_id: uuid.UUID) -> tuple[Image, Generation] | None:
    """One of the person's own, unexpired images with its generation."""
    image = session.get(Image, image_id)
    if image is None or image.user_id != user_id or _expired(image):
        return None
    generation = session.get(Generation, image.generation_id)
    return (image, generation) if generation is not None else None


def neighbours(session: Session, user_id: uuid.UUID, image: Image, query: GalleryQuery
               ) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The images before and after ``image`` in the grid's order (for arrow-key navigation)."""
    base = select(Image.id).join(Generation, col(Generation.id) == col(Image.generation_id)).where(
        *_conditions(session, user_id, query))
    newer = or_(col(Image.created_at) > image.created_at,
                and_(col(Image.created_at) == image.created_at, col(Image.id) > image.id))
    older = or_(col(Image.created_at) < image.created_at,
                and_(col(Image.created_at) == image.created_at, col(Image.id) < image.id))
    first = session.exec(base.where(newer).order_by(col(Image.created_at).asc(), col(Image.id).asc()).limit(1)).first()
    last = session.exec(base.where(older).order_by(col(Image.created_at).desc(), col(Image.id).desc()).limit(1)).first()
    return (first, last) if not query.oldest_first else (last, first)


def set_favourites(session: Session, user_id: uuid.UUID, image_ids: list[uuid.UUID], favourite: bool) -> int:
    images = _own(session, user_id, image_ids)
    for image in images:
        image.favourite = favourite
        session.add(image)
    return len(images)


def delete_images(session: Session, user_id: uuid.UUID, image_ids: list[uuid.UUID]) -> list[str]:
    """Delete the person's images; returns the storage keys to remove once the transaction has committed."""
    images = _own(session, user_id, image_ids)
    keys = [key for image in images for key in image.file_keys()]
    if images:
        session.exec(delete(Image).where(col(Image.id).in_([image.id for image in images])))  # type: ignore[call-overload]
    return keys


def delete_generation(session: Session, user_id: uuid.UUID, generation_id: uuid.UUID) -> list[str] | None:
    """Delete a generation and its images; None when it is not the person's."""
    generation = session.get(Generation, generation_id)
    if generation is None or generation.user_id != user_id:
        return None
    images = session.exec(select(Image).where(Image.generation_id == generation_id)).all()
    keys = [key for image in images for key in image.file_keys()]
    session.exec(delete(Image).where(col(Image.generation_id) == generation_id))  # type: ignore[call-overload]
    session.delete(generation)
    return keys


def emptied_generations(session: Session, user_id: uuid.UUID, generation_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of the person's finished generations among ``generation_ids`` that have no image left (after a delete),
    oldest first: the gallery offers to delete their prompts too."""
    if not generation_ids:
        return []
    has_image = select(Image.id).where(col(Image.generation_id) == col(Generation.id)).exists()
    return list(session.exec(select(Generation.id).where(
        col(Generation.id).in_(generation_ids), Generation.user_id == user_id,
        col(Generation.status).notin_([GenerationStatus.QUEUED, GenerationStatus.RUNNING]), ~has_image)
        .order_by(col(Generation.created_at), col(Generation.id))).all())


def owned_images(session: Session, user_id: uuid.UUID, image_ids: list[uuid.UUID]) -> list[tuple[Image, Generation]]:
    """The person's unexpired images among ``image_ids`` with their generations (for a ZIP download)."""
    images = _own(session, user_id, image_ids)
    generations = {g.id: g for g in session.exec(select(Generation).where(
        col(Generation.id).in_({image.generation_id for image in images})))} if images else {}
    return [(image, generations[image.generation_id]) for image in images]


def history(session: Session, user_id: uuid.UUID, *, status: GenerationStatus | None = None,
            cursor: str | None = None, limit: int = 50) -> tuple[list[tuple[Generation, int]], str | None]:
    """Every generation, newest first, with its image count; keyset-paged like the gallery."""
    image_count = (select(func.count()).select_from(Image).where(col(Image.generation_id) == col(Generation.id))
                   .scalar_subquery())
    statement = select(Generation, image_count).where(Generation.user_id == user_id)
    if status is not None:
        statement = statement.where(Generation.status == status)
    if cursor:
        mark = tuple_(*decode_cursor(cursor))
        statement = statement.where(tuple_(col(Generation.created_at), col(Generation.id)) < mark)
    rows = session.exec(statement.order_by(col(Generation.created_at).desc(), col(Generation.id).desc())
                        .limit(limit + 1)).all()
    items = [(generation, count) for generation, count in rows[:limit]]
    last = items[-1][0] if len(rows) > limit else None
    return items, encode_cursor(last.created_at, last.id) if last else None


# --- helpers -------------------------------------------------------------------------------------------------------

def _conditions(session: Session, user_id: uuid.UUID, query: GalleryQuery) -> list[ColumnElement[bool]]:
    moment = now()
    conditions: list[ColumnElement[bool]] = [
        col(Image.user_id) == user_id,
        or_(col(Image.expires_at).is_(None), col(Image.expires_at) > moment),  # expired images are never shown
    ]
    if query.favourites:
        conditions.append(col(Image.favourite).is_(True))
    if not query.show_nsfw:
        conditions.append(col(Image.nsfw).is_(False))
    if query.expiring_soon:
        conditions.append(and_(col(Image.expires_at).is_not(None), col(Image.expires_at) <= moment + EXPIRING_SOON))
    if query.model:
        if "\0" in query.model or not is_valid_unicode(query.model):
            conditions.append(false())  # no model has such a name, and the database could not even compare it
        else:
            provider, _, model = query.model.partition(":")
            conditions += [col(Generation.provider) == provider, col(Generation.model) == model]
    if query.since:
        conditions.append(col(Image.created_at) >= datetime.combine(query.since, time.min, tzinfo=UTC))
    if query.until and query.until < date.max:  # "until the end of time" is no condition (and would overflow)
        conditions.append(col(Image.created_at) < datetime.combine(query.until + timedelta(days=1), time.min,
                                                                   tzinfo=UTC))
    if words := _WORD.findall(query.search)[:12]:
        conditions.append(_matching_generations(session, words))
    return conditions


def _matching_generations(session: Session, words: list[str]) -> ColumnElement[bool]:
    """Generations whose prompt or negative prompt contains every word (as a prefix): FTS5 or PostgreSQL FTS."""
    if session.get_bind().dialect.name == "sqlite":
        match = " ".join(f'"{word}"*' for word in words)  # quoted: user text is never FTS5 syntax
        found = text("SELECT generation_id FROM generation_fts WHERE generation_fts MATCH :match").bindparams(
            bindparam("match", match))
        return col(Image.generation_id).in_(found)
    # Spelled exactly like the index expression of migration 0004, so PostgreSQL uses the GIN index.
    return text("to_tsvector('simple', generation.prompt || ' ' || generation.negative_prompt) "
                "@@ to_tsquery('simple', :tsquery)").bindparams(
        bindparam("tsquery", " & ".join(f"{word}:*" for word in words)))


def _own(session: Session, user_id: uuid.UUID, image_ids: list[uuid.UUID]) -> list[Image]:
    if not image_ids:
        return []
    images = session.exec(select(Image).where(col(Image.id).in_(image_ids), col(Image.user_id) == user_id)).all()
    return [image for image in images if not _expired(image)]


def _expired(image: Image) -> bool:
    return image.expires_at is not None and image.expires_at <= now()


def _encode(image: Image) -> str:
    return encode_cursor(image.created_at, image.id)


def encode_cursor(created: datetime, item_id: uuid.UUID) -> str:
    raw = f"{created.isoformat()}|{item_id.hex}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, item_id = raw.partition("|")
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None:
            raise ValueError("naive")
        return created, uuid.UUID(hex=item_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("This list position is not valid any more; start from the top.") from None

