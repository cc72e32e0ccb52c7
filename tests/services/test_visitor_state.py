"""A visitor without a visitor cookie gets, without the database, what the database would have said."""

from __future__ import annotations

import uuid

from rupali.config import get_settings
from rupali.db import transact
from rupali.services import consent, visitors


def test_a_newcomer_is_known_without_asking_the_database():
    settings = get_settings()
    fresh = str(uuid.uuid4())
    assert visitors.newcomer(settings) == transact(visitors.state, settings, fresh)


def test_a_returning_visitor_is_looked_up():
    settings = get_settings()
    known = str(uuid.uuid4())
    version = visitors.newcomer(settings).cookie_policy_version
    transact(consent.record, settings, known, version, analytics=False)
    found = transact(visitors.state, settings, known)
    assert (found.needs_cookie_notice, found.analytics_allowed) == (False, False)
