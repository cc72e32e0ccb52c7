"""The one source of time for Rupali.

Every timestamp in the system comes from :func:`now`, so retention, expiry and token tests can travel in
time (:func:`travel`) instead of sleeping. Times are always timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """Return the current time as an aware UTC datetime (shifted while travelling)."""
    return datetime.now(UTC) + _offset


@contextmanager
def travel(delta: timedelta) -> Iterator[None]:
    """Shift :func:`now` by ``delta`` for the duration of the block (tests and what-if tooling)."""
    global _offset
    previous = _offset
    _offset = previous + delta
    try:
        yield
    finally:
        _offset = previous


def as_utc(value: datetime) -> datetime:
    """Interpret a naive datetime as UTC and convert an aware one to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
