"""Sign-in sessions: the browser handoff, lifetimes, revocation, new-device notices."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rupali import clock, jobs
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.services import sessions
from tests.utils.factories import make_user

FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")


def _signed_in(user, visitor="browser-1", agent=FIREFOX) -> str:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip="203.0.113.9", user_agent=agent,
                              visitor_id=visitor)
        return sessions.complete_handoff(session, code, visitor)


def _resolve(token: str):
    with session_scope() as session:
        return sessions.resolve(session, get_settings(), token)


def test_handoff_works_once_only_in_the_browser_that_signed_in():
    user = make_user()
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip="", user_agent="",
                              visitor_id="mine")
    with session_scope() as session, pytest.raises(sessions.InvalidHandoff):
        sessions.complete_handoff(session, code, "someone-else")
    with session_scope() as session:
        token = sessions.complete_handoff(session, code, "mine")
    with session_scope() as session, pytest.raises(sessions.InvalidHandoff):
        sessions.complete_handoff(session, code, "mine")
    assert _resolve(token).user.id == user.id


def test_handoff_expires_after_a_minute():
    user = make_user()
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip="", user_agent="", visitor_id="v")
    with clock.travel(timedelta(seconds=61)), session_scope() as session, pytest.raises(sessions.InvalidHandoff):
        sessions.complete_handoff(session, code, "v")


@pytest.mark.parametrize("token", ["", "x" * 5000, "forged-token", "' OR 1=1 --"])
def test_unknown_or_hostile_tokens_resolve_to_nobody(token):
    make_user()
    assert _resolve(token) is None


def test_sessions_end_when_idle_or_too_old_and_activity_keeps_them_alive(monkeypatch):
    monkeypatch.setenv("RUPALI_SESSION_IDLE_MINUTES", "60")
    from rupali.config import reset_settings

    reset_settings()
    token = _signed_in(make_user())
    with clock.travel(timedelta(minutes=59)):
        assert _resolve(token) is not None  # and touches last_seen
    with clock.travel(timedelta(minutes=118)):
        assert _resolve(token) is not None
    with clock.travel(timedelta(minutes=240)):
        assert _resolve(token) is None

    monkeypatch.setenv("RUPALI_SESSION_IDLE_MINUTES", str(60 * 24 * 90))  # only the absolute limit applies
    reset_settings()
    fresh = _signed_in(make_user())
    with clock.travel(timedelta(days=29, hours=23)):
        assert _resolve(fresh) is not None
    with clock.travel(timedelta(days=30, minutes=1)):
        assert _resolve(fresh) is None


def test_revocation_ends_a_session_at_once_and_only_the_owner_can_revoke():
    owner, stranger = make_user(), make_user()
    token = _signed_in(owner)
    session_id = _resolve(token).session.id
    with session_scope() as session, pytest.raises(sessions.SessionNotFound):
        sessions.revoke(session, stranger, session_id)
    assert _resolve(token) is not None
    with session_scope() as session:
        sessions.revoke(session, owner, session_id)
    assert _resolve(token) is None


def test_disabled_accounts_lose_their_sessions():
    user = make_user()
    token = _signed_in(user)
    with session_scope() as session:
        stored = session.merge(user)
        stored.is_active = False
    assert _resolve(token) is None


def test_active_sessions_list_and_sign_out_everywhere_else():
    user = make_user()
    first, second = _signed_in(user, "a", FIREFOX), _signed_in(user, "b", SAFARI)
    with session_scope() as session:
        listed = sessions.active_for(session, get_settings(), user)
        assert {record.device for record in listed} == {"Firefox 130 on Ubuntu", "Mobile Safari 17 on iOS 17.5"}
        keep = sessions.resolve(session, get_settings(), first).session.id
        assert sessions.revoke_others(session, user, keep) == 1
    assert _resolve(first) is not None and _resolve(second) is None


def test_a_sign_in_from_a_new_device_is_announced_by_mail(inbox):
    user = make_user(email="watchful@example.com")
    _signed_in(user, agent=FIREFOX)  # the first sign-in ever: nothing to compare with
    _signed_in(user, agent=FIREFOX)  # a known device
    jobs.run("deliver_mail")
    assert inbox.messages == []
    _signed_in(user, agent=SAFARI)
    jobs.run("deliver_mail")
    notice = inbox.last_to("watchful@example.com")
    assert notice["Subject"] == "New sign-in to your account"
    assert "Mobile Safari 17 on iOS 17.5" in notice.get_body(("plain",)).get_content()


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("agent", "device"), [
    (FIREFOX, "Firefox 130 on Ubuntu"), ("", "Unknown device"), ("curl/8.5.0", "curl 8 on Other"),
    ("\x00<script>" * 100, "Unknown device")])
def test_devices_are_described_from_the_user_agent(agent, device):
    assert sessions.describe_device(agent) == device


def test_the_short_cache_never_outlives_a_revocation_or_a_user_change():
    user = make_user()
    token = _signed_in(user)
    assert _resolve(token) is not None
    assert sessions.cached(get_settings(), token) is not None  # served without a query for a few seconds
    with session_scope() as session:
        sessions.revoke(session, user, sessions.resolve(session, get_settings(), token).session.id)
    assert sessions.cached(get_settings(), token) is None and _resolve(token) is None

    other = _signed_in(user, visitor="second")
    assert _resolve(other) is not None and sessions.cached(get_settings(), other) is not None
    with session_scope() as session:
        session.merge(user).is_active = False
    assert sessions.cached(get_settings(), other) is None and _resolve(other) is None
    with clock.travel(timedelta(seconds=6)):
        assert sessions.cached(get_settings(), other) is None  # and entries age out on their own
