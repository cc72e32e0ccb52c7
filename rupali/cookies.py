"""Every cookie Rupali sets, declared once.

The code that sets a cookie takes its name, lifetime and flags from here, and the cookie notice and the Cookie
Policy list exactly these; tests/e2e/test_cookie_declaration.py walks sign-up, sign-in, the studio and sign-out in
a real browser and fails on any ``Set-Cookie`` that is not declared here or does not carry the declared flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rupali.config import Settings
from rupali.policy import RetentionKey, retention_rules

SESSION_COOKIE = "rupali_session"
AUTH_COOKIE = "rupali_auth"


@dataclass(frozen=True)
class Cookie:
    """One cookie: what it is for, how long it lives, and its flags."""

    name: str
    purpose: str
    lifetime: timedelta
    lifetime_note: str  # how the lifetime behaves, e.g. "renewed on each visit"
    http_only: bool
    same_site: str  # "lax" or "strict"
    secure: bool  # sent over HTTPS only (on in production)

    def describe_lifetime(self) -> str:
        days = self.lifetime.days
        text = f"{days} day{'s' if days != 1 else ''}"
        return f"{text}, {self.lifetime_note}" if self.lifetime_note else text

    def describe_flags(self) -> str:
        flags = (["HttpOnly"] if self.http_only else []) + [f"SameSite={self.same_site.capitalize()}"]
        return ", ".join(flags + (["Secure"] if self.secure else []))

    @property
    def max_age(self) -> int:
        return int(self.lifetime.total_seconds())


def declared(settings: Settings) -> tuple[Cookie, ...]:
    """The cookies this configuration sets, all of them essential."""
    consent_period = retention_rules(settings)[RetentionKey.COOKIE_CONSENT].period
    assert consent_period is not None
    return (
        Cookie(SESSION_COOKIE,
               "Remembers this browser: an anonymous visitor id, your cookie choice and, while you sign in, the "
               "state of that sign-in. Signed by the server, so it cannot be altered.",
               consent_period, "renewed on each visit", http_only=True, same_site="lax",
               secure=settings.is_production),
        Cookie(AUTH_COOKIE,
               "Keeps you signed in: a random token for your sign-in session (the server stores only its hash). "
               "Removed when you sign out.",
               timedelta(days=settings.session_absolute_days), "or until you sign out", http_only=True,
               same_site="lax", secure=settings.is_production),
    )


def by_name(settings: Settings, name: str) -> Cookie:
    return next(cookie for cookie in declared(settings) if cookie.name == name)
