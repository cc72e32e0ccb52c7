"""Feedback on studio results: thumbs up or down, with optional words, on one of the person's own generations.

One row per person and generation: changing one's mind changes that row (the rating, and the comment when one is
given), so the counts say what people think now rather than how often they clicked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case
from sqlmodel import Session, col, func, select

from rupali.clock import now
from rupali.models import Feedback, Generation, User
from rupali.text import InvalidText, clean

COMMENT_MAX = 1000
SUMMARY_DAYS = 30
UP, DOWN = 1, -1


class FeedbackError(ValueError):
    """Feedback that cannot be accepted; the message is a sentence for the person."""


class GenerationNotFound(LookupError):
    """No such generation among the person's own (another person's ids are simply not found)."""


@dataclass(frozen=True)
class Given:
    """The person's current feedback on one generation."""

    rating: int  # +1 or -1
    comment: str


@dataclass(frozen=True)
class ModelFeedback:
    """Thumbs on one model's results within the summary's period."""

    provider: str
    model: str
    label: str
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down


def give_feedback(session: Session, user: User, generation_id: object, rating: int,
                  comment: str | None = None) -> Given:
    """Record (or change) the person's thumbs on their own finished generation. ``comment=None`` keeps the comment
    already given; ``""`` removes it."""
    if rating not in (UP, DOWN):
        raise FeedbackError("Choose thumbs up or thumbs down.")
    words = None
    if comment is not None:
        try:
            words = clean(comment, field="comment", label="The comment", max_length=COMMENT_MAX, multiline=True)
        except InvalidText as exc:
            raise FeedbackError(exc.message) from None
    found = _id(generation_id)
    # The generation's row is locked: two quick clicks take turns, and the second finds the first one's row.
    generation = session.get(Generation, found, with_for_update=True) if found else None
    if generation is None or generation.user_id != user.id:
        raise GenerationNotFound()
    if not generation.finished:
        raise FeedbackError("Wait until this generation has finished.")
    record = session.exec(select(Feedback).where(Feedback.user_id == user.id, Feedback.generation_id == generation.id)
                          .order_by(col(Feedback.id))).first()
    if record is None:
        record = Feedback(user_id=user.id, generation_id=generation.id, rating=rating, comment=words or "",
                          created_at=now())
    else:
        record.rating = rating
        if words is not None:
            record.comment = words
    session.add(record)
    session.flush()
    return Given(record.rating, record.comment)


def given(session: Session, user_id: uuid.UUID, generation_ids: list[uuid.UUID]) -> dict[uuid.UUID, Given]:
    """The person's feedback on these generations (those without any are left out)."""
    if not generation_ids:
        return {}
    rows = session.exec(select(Feedback).where(Feedback.user_id == user_id,
                                               col(Feedback.generation_id).in_(generation_ids))
                        .order_by(col(Feedback.id))).all()
    return {row.generation_id: Given(row.rating, row.comment) for row in rows if row.generation_id is not None}


def summary(session: Session, *, days: int = SUMMARY_DAYS) -> list[ModelFeedback]:
    """Thumbs up and down per model over the last ``days`` days (by when the feedback was first given), the
    models with the most feedback first. Feedback whose generation was deleted no longer names a model."""
    since = now() - timedelta(days=days)
    up = func.sum(case((col(Feedback.rating) > 0, 1), else_=0))
    down = func.sum(case((col(Feedback.rating) < 0, 1), else_=0))
    rows = session.exec(
        select(Generation.provider, Generation.model, func.max(Generation.model_label), up, down)
        .join(Generation, col(Generation.id) == col(Feedback.generation_id))
        .where(col(Feedback.created_at) >= since)
        .group_by(col(Generation.provider), col(Generation.model))).all()
    found = [ModelFeedback(provider, model, label or model, int(ups or 0), int(downs or 0))
             for provider, model, label, ups, downs in rows]
    return sorted(found, key=lambda row: (-row.total, row.label, row.provider))


def _id(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value or "").strip())
    except ValueError:
        return None
