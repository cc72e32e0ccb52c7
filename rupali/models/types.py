"""Column types shared by all models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from rupali.clock import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC and given their
    zone back on the way out. Naive datetimes are refused on the way in: they are a bug waiting to happen.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use rupali.clock.now()")
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def new_id() -> uuid.UUID:
    """An unguessable identifier for rows whose ids reach URLs."""
    return uuid.uuid4()


def fk_column(target: str, *, nullable: bool = False, on_delete: str = "CASCADE") -> Column:
    """An indexed UUID foreign key; rows go with their owner unless ``on_delete`` says otherwise."""
    return Column(Uuid(), ForeignKey(target, ondelete=on_delete), nullable=nullable, index=True)
