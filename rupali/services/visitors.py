"""What the frame needs to know about an anonymous visitor on every page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from rupali import legal as documents
from rupali.config import Settings
from rupali.services import consent, legal


@dataclass(frozen=True)
class VisitorState:
    cookie_policy_version: str
    needs_cookie_notice: bool
    analytics_allowed: bool


def state(session: Session, settings: Settings, visitor_id: str) -> VisitorState:
    """Whether the cookie notice must show and whether analytics may run for this visitor."""
    version = legal.current(session, "cookies", settings).document.version
    return VisitorState(
        cookie_policy_version=version,
        needs_cookie_notice=consent.active(session, visitor_id, version) is None,
        analytics_allowed=consent.analytics_allowed(session, visitor_id),
    )


def newcomer(settings: Settings) -> VisitorState:
    """The state of a visitor whose browser brought no visitor cookie: a new id, so nothing recorded can be theirs.

    Known without the database: first visits (and crawlers) are most anonymous page views.
    """
    return VisitorState(cookie_policy_version=documents.document("cookies", settings).version,
                        needs_cookie_notice=True, analytics_allowed=True)
