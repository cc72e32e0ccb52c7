"""Abuse limits: how fast one person or one address may start generations and call the REST API, and an optional
cap on the generations one person may start in a UTC day.

The rates are moving windows kept by the ``limits`` library (per person and per IP, whichever runs out first). A
refusal is a :class:`Refused` carrying ``retry_after`` in seconds and a sentence for people; the boundaries (the
studio page and the API) ask here before the work, so the generation service itself stays free of limits and
tests or benchmarks that create many generations through it are unaffected.

The windows live in Redis when ``RUPALI_REDIS_URL`` is set, so several instances behind a load balancer count in
the same windows, and otherwise in this process's memory (:func:`_storage`, the one place that chooses). Addresses
are only ever stored as a keyed hash, so Redis does not hold them in the clear either.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MovingWindowSupport, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlmodel import Session, col, func, select

from rupali import clock
from rupali.config import Settings, storage_secret
from rupali.models import Generation, User
from rupali.providers import ModelChoice
from rupali.services import generation as generations
from rupali.services import users
from rupali.services.credits import CreditHook
from rupali.services.generation import GenerationForm

log = logging.getLogger(__name__)


class Refused(Exception):
    """Over a limit: ``retry_after`` is the whole number of seconds until a new try can succeed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class RateLimited(Refused):
    """Too many requests (or generations) within the last minute, by this person or from this address."""


class DailyCapReached(Refused):
    """The person has started as many generations today (UTC) as the installation allows per day."""


# --- the moving windows ------------------------------------------------------------------------------------------

class ClockMemoryStorage(Storage, MovingWindowSupport):
    """``limits``' moving window kept in this process, on :func:`rupali.clock.now`.

    ``limits``' own memory storage reads the system clock, which tests cannot move; on Rupali's clock they travel
    past a window instead of sleeping through it. Only the moving window is supported: it is the only strategy
    used here, and counting exactly "the last 60 seconds" never lets a burst through at a window's edge.
    """

    STORAGE_SCHEME = None  # built directly by _storage(), never from a URI
    _SWEEP_EVERY = 1024  # acquisitions between sweeps of keys whose entries have all expired

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._events: dict[str, list[float]] = {}  # oldest first, at most `limit` per key
        self._expiry: dict[str, int] = {}
        self._acquired = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock:
            moment = _seconds()
            live = self._live(key, moment, expiry)
            if len(live) + amount > limit:
                return False
            for _ in range(amount):
                bisect.insort(live, moment)  # an append, unless the clock was moved back
            self._events[key], self._expiry[key] = live, expiry
            self._acquired += 1
            if self._acquired % self._SWEEP_EVERY == 0:
                self._sweep(moment)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        with self._lock:
            moment = _seconds()
            live = self._live(key, moment, expiry)
            return (live[0], len(live)) if live else (moment, 0)

    def _live(self, key: str, moment: float, expiry: int) -> list[float]:
        """The key's entries still in the window, with the expired ones dropped."""
        events = self._events.get(key, [])
        # An entry counts for `expiry` seconds after it was made, and not a moment longer: Retry-After is exact.
        del events[:bisect.bisect_right(events, moment - expiry)]
        return events

    def _sweep(self, moment: float) -> None:
        """Forget keys with nothing left in their window (addresses come and go; memory must not grow with them)."""
        for key in [key for key in self._events if not self._live(key, moment, self._expiry[key])]:
            del self._events[key], self._expiry[key]

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            count = len(self._events)
            self._events.clear()
            self._expiry.clear()
            return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)
            self._expiry.pop(key, None)

    # Counters belong to the fixed-window strategies, which Rupali does not use.
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("ClockMemoryStorage keeps moving windows only")

    def get(self, key: str) -> int:
        raise NotImplementedError("ClockMemoryStorage keeps moving windows only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("ClockMemoryStorage keeps moving windows only")


REDIS_TIMEOUT = 1.0  # seconds per Redis connect or reply


def _seconds() -> float:
    return clock.now().timestamp()


def _storage(settings: Settings) -> Storage:
    """Where the windows are kept: in Redis when configured, so every instance counts in the same windows (the
    moving window is atomic there; its time is then the system clock), else in this process."""
    if settings.redis_url is not None:
        # Short timeouts and one retry: redis-py's default of ten retries would hold a request for most of a
        # minute when Redis stops answering.
        return RedisStorage(settings.redis_url.get_secret_value(), key_prefix=f"{settings.redis_key_prefix}limits",
                            socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
                            retry=Retry(NoBackoff(), 1))
    return ClockMemoryStorage()


@dataclass(frozen=True)
class _Limiter:
    """The limits of one Settings object, and the windows counted against them."""

    settings: Settings
    strategy: MovingWindowRateLimiter
    secret: bytes  # keys the hash of an address
    generations: tuple[RateLimitItem, RateLimitItem]  # per person, per address
    api: tuple[RateLimitItem, RateLimitItem]

    @classmethod
    def build(cls, settings: Settings) -> _Limiter:
        return cls(
            settings=settings, strategy=MovingWindowRateLimiter(_storage(settings)),
            secret=storage_secret(settings).encode(),
            generations=(RateLimitItemPerMinute(settings.rate_limit_generations_per_minute, namespace="gen-person"),
                         RateLimitItemPerMinute(settings.rate_limit_generations_per_ip_minute, namespace="gen-ip")),
            api=(RateLimitItemPerMinute(settings.rate_limit_api_per_minute, namespace="api-person"),
                 RateLimitItemPerMinute(settings.rate_limit_api_per_ip_minute, namespace="api-ip")))

    def address(self, ip: str) -> str:
        return hmac.new(self.secret, ip.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    def admit(self, items: tuple[RateLimitItem, RateLimitItem], user_id: uuid.UUID | None, ip: str,
              message: str) -> None:
        """Count one request against the person's and the address's window, or raise :class:`RateLimited`."""
        person, address = items
        checks = ([(person, str(user_id))] if user_id is not None else []) + \
                 ([(address, self.address(ip))] if ip else [])
        # Look at every window before counting in any, so a request refused by one limit uses up nothing in the
        # others; a hit can still lose a race with a concurrent request, and is then refused the same way.
        try:
            full = [(item, key) for item, key in checks if not self.strategy.test(item, key)]
            if not full:
                full = [(item, key) for item, key in checks if not self.strategy.hit(item, key)][:1]
            wait = max((self.strategy.get_window_stats(item, key).reset_time - _seconds() for item, key in full),
                       default=0.0)
        except self.strategy.storage.base_exceptions as exc:
            # Open, not closed: Redis being away must not take the studio and the API with it. Logged once a minute.
            _storage_down(exc)
            return
        if full:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(message.format(wait=_duration(seconds)), seconds)


_lock = threading.Lock()
_current: _Limiter | None = None


def _limiter(settings: Settings) -> _Limiter:
    """The limiter of ``settings``: the process keeps one Settings object, tests make a new one for each app, and a
    new one starts with empty windows (and its own limits)."""
    global _current
    with _lock:
        if _current is None or _current.settings is not settings:
            _current = _Limiter.build(settings)
        return _current


def reset() -> None:
    """Forget every window (tests)."""
    global _current
    with _lock:
        _current = None


_last_warning = 0.0


def _storage_down(error: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning >= 60:
        _last_warning = time.monotonic()
        log.warning("rate limits are not enforced while their store does not answer: %s", error)


# --- the checks ----------------------------------------------------------------------------------------------------

async def checked(check: Callable[..., None], settings: Settings,
                  user_id: uuid.UUID | None, ip: str) -> None:
    """Run one of the checks below from async code: at once when the windows are in this process, in a worker
    thread when they are in Redis (a network round trip must not hold the event loop)."""
    if settings.redis_url is None:
        check(settings, user_id, ip)
    else:
        await asyncio.to_thread(check, settings, user_id, ip)


def check_api(settings: Settings, user_id: uuid.UUID | None, ip: str) -> None:
    """Count one REST API request; raise :class:`RateLimited` when the person or the address is over its limit."""
    limiter = _limiter(settings)
    limiter.admit(limiter.api, user_id, ip, "You are making requests too quickly. Try again in {wait}.")


def check_image_check(settings: Settings, user_id: uuid.UUID | None, ip: str) -> None:
    """Count one file checked on /verify against the REST API's per-minute limits (the API's own checks are
    counted as API requests already); raise :class:`RateLimited` when over either."""
    limiter = _limiter(settings)
    limiter.admit(limiter.api, user_id, ip, "You are checking images too quickly. Try again in {wait}.")


def check_generation(settings: Settings, user_id: uuid.UUID, ip: str) -> None:
    """Count one generation submission (studio or API), after its input was found valid; raise
    :class:`RateLimited` when the person or the address has started too many within the last minute."""
    limiter = _limiter(settings)
    limiter.admit(limiter.generations, user_id, ip, "You are starting generations too quickly. Try again in {wait}.")


def check_daily_cap(session: Session, settings: Settings, user_id: uuid.UUID) -> None:
    """Raise :class:`DailyCapReached` when the person has started ``generation_daily_cap`` generations since 00:00
    UTC (whatever became of them). :func:`submit` calls it in the transaction that records the new one."""
    cap = settings.generation_daily_cap
    if cap is None:
        return
    users.take_turn(session, user_id)  # two submissions at once cannot both see the last free place
    moment = clock.now()
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    started = session.exec(select(func.count()).select_from(Generation).where(
        Generation.user_id == user_id, col(Generation.created_at) >= midnight)).one()
    if started >= cap:
        seconds = max(1, math.ceil((midnight + timedelta(days=1) - moment).total_seconds()))
        what = "generation" if cap == 1 else "generations"
        raise DailyCapReached(f"You have started the {cap} {what} allowed per day. You can start more after "
                              f"midnight UTC, in {_duration(seconds)}.", seconds)


def submit(session: Session, settings: Settings, user: User, choice: ModelChoice, form: GenerationForm,
           credits: CreditHook) -> Generation:
    """:func:`rupali.services.generation.submit` within the daily cap (the studio's and the API's way in)."""
    check_daily_cap(session, settings, user.id)
    return generations.submit(session, settings, user, choice, form, credits)


def _duration(seconds: int) -> str:
    """``23 seconds``, ``5 minutes``, ``3 hours and 1 minute``: rounded up, so waiting that long is enough."""
    if seconds < 60:
        return _plural(seconds, "second")
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    return _plural(hours, "hour") + (f" and {_plural(minutes, 'minute')}" if minutes else "")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
