"""Personal API keys: names, scopes, lifetimes, and what resolving a key gives (or does not)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rupali import clock
from rupali.db import session_scope
from rupali.models import ApiKey, ApiKeyScope
from rupali.services import api_keys
from tests.utils.factories import make_user


def _create(person, **options) -> tuple[ApiKey, str]:
    with session_scope() as session:
        return api_keys.create(session, person, "script", **options)


def _resolve(secret: str):
    with session_scope() as session:
        return api_keys.resolve(session, secret)


def test_a_key_carries_its_scope_and_expiry():
    person = make_user()
    key, secret = _create(person, scope="read", expires_in_days=30)
    assert key.scope == ApiKeyScope.READ and key.expires_at == key.created_at + timedelta(days=30)
    assert secret.startswith(api_keys.PREFIX) and key.key_hash != secret
    user, scope = _resolve(secret)
    assert user.id == person.id and scope is ApiKeyScope.READ
    forever, forever_secret = _create(person)  # the defaults: may generate, never expires
    assert forever.scope == ApiKeyScope.GENERATE and forever.expires_at is None
    assert _resolve(forever_secret)[1] is ApiKeyScope.GENERATE


def test_an_expired_key_resolves_to_nothing_but_stays_listed_until_revoked():
    person = make_user()
    key, secret = _create(person, expires_in_days=7)
    with clock.travel(timedelta(days=7) - timedelta(minutes=1)):
        assert _resolve(secret) is not None
    with clock.travel(timedelta(days=7)):
        assert _resolve(secret) is None
        assert api_keys.is_expired(key)
        with session_scope() as session:
            assert [listed.id for listed in api_keys.active(session, person.id)] == [key.id]
            api_keys.revoke(session, person.id, key.id)
            assert api_keys.active(session, person.id) == []


@pytest.mark.parametrize(("options", "fragment"), [
    ({"scope": "admin"}, "read only, or read and generate"),
    ({"scope": ""}, "read only, or read and generate"),
    ({"expires_in_days": 0}, "from 1 to 3650 days"),
    ({"expires_in_days": -5}, "from 1 to 3650 days"),
    ({"expires_in_days": api_keys.MAX_LIFETIME_DAYS + 1}, "from 1 to 3650 days"),
])
def test_scopes_and_lifetimes_outside_the_choices_are_refused(options, fragment):
    person = make_user()
    with session_scope() as session, pytest.raises(api_keys.InvalidApiKey, match=fragment):
        api_keys.create(session, person, "script", **options)
    with session_scope() as session:
        assert api_keys.active(session, person.id) == []


def test_generate_includes_read_and_read_includes_nothing_more():
    assert api_keys.allows(ApiKeyScope.GENERATE, ApiKeyScope.GENERATE)
    assert api_keys.allows(ApiKeyScope.GENERATE, ApiKeyScope.READ)
    assert api_keys.allows(ApiKeyScope.READ, ApiKeyScope.READ)
    assert not api_keys.allows(ApiKeyScope.READ, ApiKeyScope.GENERATE)


def test_a_scope_this_version_does_not_know_grants_only_reading():
    person = make_user()
    key, secret = _create(person)
    with session_scope() as session:
        stored = session.get(ApiKey, key.id)
        stored.scope = "everything"  # written by a newer version, say
    assert _resolve(secret)[1] is ApiKeyScope.READ


def test_revoked_forged_and_malformed_secrets_resolve_to_nothing():
    person = make_user()
    key, secret = _create(person)
    for forged in ("", "rk_", "rk_forged", "not-a-key", "rk_" + "a" * 500, "rk_\ud800", "rk_\x00"):
        assert _resolve(forged) is None, forged
    with session_scope() as session:
        api_keys.revoke(session, person.id, key.id)
    assert _resolve(secret) is None
