"""Cookie-notice acknowledgements: recorded per anonymous visitor, valid for the configured retention period."""

from __future__ import annotations

from sqlmodel import Session, col, select

from rupali.clock import now
from rupali.config import Settings
from rupali.models import CookieConsent
from rupali.models.consent import VISITOR_ID_MAX
from rupali.policy import RetentionKey, retention_rules


class InvalidVisitor(ValueError):
    """The visitor id is missing or not one we issued."""


def active(session: Session, visitor_id: str, policy_version: str) -> CookieConsent | None:
    """The visitor's unexpired acknowledgement of ``policy_version``, if any."""
    query = (
        select(CookieConsent)
        .where(CookieConsent.visitor_id == visitor_id, CookieConsent.policy_version == policy_version,
               CookieConsent.expires_at > now())
        .order_by(col(CookieConsent.created_at).desc())
    )
    return session.exec(query).first()


def record(session: Session, settings: Settings, visitor_id: str, policy_version: str, *,
           analytics: bool = True) -> CookieConsent:
    """Record an acknowledgement; it expires after the cookie-consent retention period."""
    if not visitor_id or len(visitor_id) > VISITOR_ID_MAX:
        raise InvalidVisitor("missing or malformed visitor id")
    period = retention_rules(settings)[RetentionKey.COOKIE_CONSENT].period
    assert period is not None
    created = now()
    consent = CookieConsent(visitor_id=visitor_id, policy_version=policy_version, analytics=analytics,
                            created_at=created, expires_at=created + period)
    session.add(consent)
    session.flush()
    return consent


def analytics_allowed(session: Session, visitor_id: str) -> bool:
    """Whether analytics may run for this visitor: yes unless their latest valid choice switched it off."""
    query = (
        select(CookieConsent.analytics)
        .where(CookieConsent.visitor_id == visitor_id, CookieConsent.expires_at > now())
        .order_by(col(CookieConsent.created_at).desc())
    )
    choice = session.exec(query).first()
    return True if choice is None else choice
