"""Abuse protection: per-address and per-IP limits on sign-in, sign-up, reset and verification mails.

Attempts are rows keyed by a keyed hash of the address or IP, so the table never holds either in the clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, func, select

from rupali import tokens
from rupali.clock import now
from rupali.config import Settings
from rupali.models import AuthAttempt


@dataclass(frozen=True)
class Limit:
    per_email: int
    per_ip: int
    window: timedelta
    failures_only: bool  # sign-in counts failures; mail-sending actions count every attempt


class RateLimited(Exception):
    """Too many attempts; ``minutes`` says how long until the next one is allowed."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(f"Too many attempts. Please wait {minutes} {unit} and try again.")


def limits(settings: Settings) -> dict[str, Limit]:
    lockout = timedelta(minutes=settings.lockout_minutes)
    failures = settings.signin_max_failures
    return {
        "signin": Limit(failures, failures * 4, lockout, failures_only=True),
        "signup": Limit(3, 10, timedelta(hours=1), failures_only=False),
        "reset": Limit(3, 10, timedelta(hours=1), failures_only=False),
        "resend": Limit(3, 10, timedelta(hours=1), failures_only=False),
    }


def keys(settings: Settings, *, email: str | None, ip: str | None) -> dict[str, str]:
    found = {}
    if email:
        found["email"] = "e:" + tokens.keyed(email.strip().lower(), settings)[:64]
    if ip:
        found["ip"] = "i:" + tokens.keyed(ip, settings)[:64]
    return found


def check(session: Session, settings: Settings, action: str, *, email: str | None, ip: str | None) -> None:
    """Raise :class:`RateLimited` when the address or the IP has used up its attempts for ``action``."""
    limit = limits(settings)[action]
    since = now() - limit.window
    for kind, key in keys(settings, email=email, ip=ip).items():
        query = select(func.count(), func.min(AuthAttempt.created_at)).where(
            AuthAttempt.action == action, AuthAttempt.key == key, col(AuthAttempt.created_at) > since)
        if limit.failures_only:
            query = query.where(AuthAttempt.succeeded == False)  # noqa: E712  (SQL comparison)
        count, oldest = session.exec(query).one()
        allowed = limit.per_email if kind == "email" else limit.per_ip
        if count >= allowed:
            wait = (oldest + limit.window - now()).total_seconds() if oldest else limit.window.total_seconds()
            raise RateLimited(max(1, math.ceil(wait / 60)))


def record(session: Session, settings: Settings, action: str, *, email: str | None, ip: str | None,
           succeeded: bool) -> None:
    for key in keys(settings, email=email, ip=ip).values():
        session.add(AuthAttempt(action=action, key=key, succeeded=succeeded))
    session.flush()
