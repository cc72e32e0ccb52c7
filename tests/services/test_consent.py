"""Cookie acknowledgements: recorded per visitor and version, expire after the configured period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from rupali import clock, jobs
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import CookieConsent
from rupali.services import consent, visitors


def _record(visitor: str = "visitor-1", version: str = "1.0-abc", analytics: bool = True) -> None:
    with session_scope() as session:
        consent.record(session, get_settings(), visitor, version, analytics=analytics)


def test_acknowledgement_is_found_for_the_same_visitor_and_version_only():
    _record()
    with session_scope() as session:
        assert consent.active(session, "visitor-1", "1.0-abc") is not None
        assert consent.active(session, "visitor-2", "1.0-abc") is None
        assert consent.active(session, "visitor-1", "1.1-def") is None


def test_acknowledgement_expires_after_the_retention_period():
    _record()
    with session_scope() as session:
        row = session.exec(select(CookieConsent)).one()
        assert row.expires_at - row.created_at == timedelta(days=365)
    with clock.travel(timedelta(days=364)), session_scope() as session:
        assert consent.active(session, "visitor-1", "1.0-abc") is not None
    with clock.travel(timedelta(days=365, seconds=1)), session_scope() as session:
        assert consent.active(session, "visitor-1", "1.0-abc") is None


def test_configured_period_is_what_the_code_enforces(monkeypatch):
    """A 30-day setting keeps the choice through day 29 and drops it by day 31 (not the 365-day default)."""
    monkeypatch.setenv("RUPALI_RETENTION_COOKIE_CONSENT_DAYS", "30")
    from rupali.config import reset_settings

    reset_settings()
    _record()
    with clock.travel(timedelta(days=29)), session_scope() as session:  # just inside the period: still valid
        assert consent.active(session, "visitor-1", "1.0-abc") is not None
    with clock.travel(timedelta(days=31)), session_scope() as session:
        assert consent.active(session, "visitor-1", "1.0-abc") is None


def test_purge_job_deletes_only_expired_acknowledgements():
    _record("old")
    with clock.travel(timedelta(days=300)):
        _record("recent")
    with clock.travel(timedelta(days=366)):
        run = jobs.run("apply_retention")
        assert run.status == "succeeded" and "cookie_consent 1" in run.detail
        with session_scope() as session:
            assert [row.visitor_id for row in session.exec(select(CookieConsent))] == ["recent"]


def test_switching_analytics_off_is_remembered():
    with session_scope() as session:
        assert consent.analytics_allowed(session, "visitor-1")
    _record(analytics=False)
    with session_scope() as session:
        assert not consent.analytics_allowed(session, "visitor-1")


@pytest.mark.parametrize("visitor", ["", "x" * 65])
def test_malformed_visitor_id_is_refused(visitor):
    with pytest.raises(consent.InvalidVisitor), session_scope() as session:
        consent.record(session, get_settings(), visitor, "1.0")


def test_visitor_state_asks_again_when_the_cookie_policy_changes(monkeypatch):
    settings = get_settings()
    with session_scope() as session:
        state = visitors.state(session, settings, "visitor-1")
        assert state.needs_cookie_notice
        consent.record(session, settings, "visitor-1", state.cookie_policy_version)
    with session_scope() as session:
        assert not visitors.state(session, settings, "visitor-1").needs_cookie_notice
    monkeypatch.setenv("RUPALI_UMAMI_WEBSITE_ID", "site")
    monkeypatch.setenv("RUPALI_UMAMI_SCRIPT_URL", "https://stats.example/script.js")
    from rupali.config import reset_settings

    reset_settings()
    with session_scope() as session:
        assert visitors.state(session, get_settings(), "visitor-1").needs_cookie_notice
