"""Suspending an account and changing roles: everything the account holds stops working in the same transaction,
the person learns why at sign-in (password or single sign-on), the rules that keep an administrator in charge, and
the account search and detail the console shows. Real database throughout."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlmodel import select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import AuditEntry, OidcIdentity, Role, User
from rupali.services import accounts, admin, api_keys, ledger, oidc, sessions
from tests.pages.test_hostile_text import HOSTILE
from tests.services.test_gallery import add_generation
from tests.utils.at_once import ACCEPTED, at_once
from tests.utils.factories import PASSWORD, make_user

REASON = "Repeated attempts to generate images of real people"


def _boss(email: str = "boss@example.com") -> User:
    return make_user(email=email, full_name="Boss", role=Role.ADMIN)


def _signed_in(user: User, visitor: str = "browser") -> str:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip="203.0.113.9",
                              user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
                              visitor_id=visitor)
        return sessions.complete_handoff(session, code, visitor)


def _key(user: User, name: str = "script") -> str:
    with session_scope() as session:
        return api_keys.create(session, user, name)[1]


def _works(token: str | None = None, secret: str | None = None) -> bool:
    with session_scope() as session:
        if token is not None:
            return sessions.resolve(session, get_settings(), token) is not None
        return api_keys.resolve(session, secret or "") is not None


def _act(action, actor: User, account: User | uuid.UUID | str, **values: object) -> User:
    target = account.id if isinstance(account, User) else account
    with session_scope() as session:
        return action(session, actor, target, **values)


def _stored(user_id: uuid.UUID) -> User:
    with session_scope() as session:
        return session.get(User, user_id)


def _entries() -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.exec(select(AuditEntry).order_by(AuditEntry.id)).all())


def _sign_in(email: str, password: str = PASSWORD) -> User:
    with session_scope() as session:
        return accounts.authenticate(session, get_settings(), email=email, password=password, ip="198.51.100.1")


# --- suspension ------------------------------------------------------------------------------------------------


def test_a_suspension_ends_every_session_and_api_key_at_once_and_is_audited():
    boss, person = _boss(), make_user(email="ada@example.com")
    tokens = [_signed_in(person, "laptop"), _signed_in(person, "phone")]
    secrets = [_key(person, "one"), _key(person, "two")]
    assert all(_works(token) for token in tokens) and all(_works(secret=secret) for secret in secrets)

    _act(admin.suspend_user, boss, person, reason=REASON)

    assert not any(_works(token) for token in tokens)
    assert not any(_works(secret=secret) for secret in secrets)
    stored = _stored(person.id)
    assert (stored.is_active, stored.suspension_reason) == (False, REASON) and stored.suspended_at is not None
    [entry] = _entries()
    assert (entry.actor_id, entry.action, entry.target_kind, entry.target_user_id, entry.reason, entry.detail) == (
        boss.id, "user.suspend", "user", person.id, REASON, "ended 2 sessions and 2 API keys")
    with session_scope() as session:
        assert api_keys.active(session, person.id) == []
        assert sessions.active_for(session, get_settings(), stored) == []


def test_the_suspended_person_learns_why_at_sign_in_but_only_with_the_right_password():
    boss, person = _boss(), make_user(email="ada@example.com")
    _act(admin.suspend_user, boss, person, reason=REASON)
    with pytest.raises(accounts.AccountError) as wrong:
        _sign_in("ada@example.com", "not the password at all")
    assert str(wrong.value) == "Wrong e-mail address or password."  # the address alone reveals nothing
    with pytest.raises(accounts.AccountSuspended) as refused:
        _sign_in("ADA@example.com")
    assert str(refused.value) == (f"This account is suspended: {REASON}. Contact {get_settings().operator_email} "
                                  "if you think this is a mistake.")


def test_the_operator_address_in_the_notice_is_the_configured_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_OPERATOR_EMAIL", "trust@studio.example")
    reset_settings()
    boss, person = _boss(), make_user(email="ada@example.com")
    _act(admin.suspend_user, boss, person, reason="Spam.")
    with pytest.raises(accounts.AccountSuspended,
                       match=r"^This account is suspended: Spam\. Contact trust@studio\.example if you think"):
        _sign_in("ada@example.com")


def test_single_sign_on_of_a_suspended_account_gives_the_same_notice():
    boss = _boss()
    linked, by_address = make_user(email="linked@example.com"), make_user(email="other@example.com")
    with session_scope() as session:
        session.add(OidcIdentity(user_id=linked.id, provider="https://id.example", subject="sub-linked",
                                 email=linked.email))
    for person in (linked, by_address):
        _act(admin.suspend_user, boss, person, reason=REASON)
    for identity in (oidc.Identity("https://id.example", "sub-linked", "linked@example.com", True, "Linked"),
                     oidc.Identity("https://id.example", "sub-new", "other@example.com", True, "Other")):
        with session_scope() as session, pytest.raises(oidc.OidcRefused) as refused:
            oidc.account_for(session, get_settings(), identity)
        assert str(refused.value).startswith(f"This account is suspended: {REASON}. Contact ")
    with session_scope() as session:  # the unlinked account was not linked while suspended
        assert session.exec(select(OidcIdentity).where(OidcIdentity.subject == "sub-new")).first() is None


def test_lifting_a_suspension_lets_them_sign_in_again_but_ended_sessions_and_keys_stay_ended():
    boss, person = _boss(), make_user(email="ada@example.com")
    token, secret = _signed_in(person), _key(person)
    _act(admin.suspend_user, boss, person, reason=REASON)
    _act(admin.unsuspend_user, boss, person, reason="Appeal accepted")
    stored = _stored(person.id)
    assert (stored.is_active, stored.suspended_at, stored.suspension_reason) == (True, None, None)
    assert _sign_in("ada@example.com").id == person.id
    assert not _works(token) and not _works(secret=secret)
    assert _works(_signed_in(person, "new-browser"))
    assert [(entry.action, entry.reason) for entry in _entries()] == [("user.suspend", REASON),
                                                                      ("user.unsuspend", "Appeal accepted")]


def test_suspending_twice_or_lifting_what_is_not_suspended_is_refused():
    boss, person = _boss(), make_user(email="ada@example.com")
    with pytest.raises(admin.AdminError, match="This account is not suspended"):
        _act(admin.unsuspend_user, boss, person, reason="Appeal accepted")
    _act(admin.suspend_user, boss, person, reason=REASON)
    with pytest.raises(admin.AdminError, match="This account is already suspended"):
        _act(admin.suspend_user, boss, person, reason="Again")
    assert [entry.action for entry in _entries()] == ["user.suspend"]


@pytest.mark.parametrize(("reason", "message"), [
    (None, "Give a reason of at least 3 characters"),
    ("", "Give a reason of at least 3 characters"),
    ("  ab  ", "Give a reason of at least 3 characters"),
    ("x" * 501, "The reason for the suspension is 501 characters long; the limit is 500."),
    ("bell \x07", "The reason for the suspension contains the control character U+0007"),
    ("two\nlines", "The reason for the suspension contains a line break"),
    ("bad \ud800", "The reason for the suspension contains characters that are not valid text."),
])
def test_a_suspension_needs_a_reason_of_3_to_500_characters_of_text(reason: str | None, message: str):
    boss, person = _boss(), make_user(email="ada@example.com")
    token = _signed_in(person)
    with pytest.raises(admin.AdminError) as refused:
        _act(admin.suspend_user, boss, person, reason=reason)
    assert str(refused.value).startswith(message)
    assert _stored(person.id).is_active and _works(token)
    assert _entries() == []


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_reasons_are_stored_and_told_verbatim(name: str):
    reason = HOSTILE[name]
    boss, person = _boss(), make_user(email="ada@example.com")
    _act(admin.suspend_user, boss, person, reason=reason)
    assert _stored(person.id).suspension_reason == reason
    with pytest.raises(accounts.AccountSuspended) as refused:
        _sign_in("ada@example.com")
    assert reason.rstrip(". ") in str(refused.value)


def test_nobody_suspends_themselves_and_only_active_administrators_suspend_anyone():
    boss, other_boss, person = _boss(), _boss("second@example.com"), make_user(email="ada@example.com")
    with pytest.raises(admin.AdminError, match="You cannot suspend your own account"):
        _act(admin.suspend_user, boss, boss, reason=REASON)
    with pytest.raises(admin.AdminError, match="Only administrators can do this"):
        _act(admin.suspend_user, person, boss, reason=REASON)
    _act(admin.suspend_user, boss, other_boss, reason="Compromised account")  # an administrator can be suspended
    with pytest.raises(admin.AdminError, match="Only administrators can do this"):  # and then acts no more
        _act(admin.suspend_user, other_boss, person, reason=REASON)
    for target in (uuid.uuid4(), "not-an-id", "", "' OR 1=1 --"):
        with pytest.raises(admin.AdminError, match="This account no longer exists"):
            _act(admin.suspend_user, boss, target, reason=REASON)
    assert _stored(person.id).is_active and _stored(boss.id).is_active


# --- roles -----------------------------------------------------------------------------------------------------


def test_a_role_change_is_audited_and_takes_effect():
    boss, person = _boss(), make_user(email="ada@example.com")
    _act(admin.change_role, boss, person, role="admin", reason="Joins the moderation team")
    assert _stored(person.id).is_admin
    _act(admin.change_role, person, boss, role=Role.USER, reason="Handing over")  # the new admin can act at once
    assert not _stored(boss.id).is_admin
    assert [(entry.actor_id, entry.action, entry.target_user_id, entry.reason, entry.detail) for entry in _entries()] \
        == [(boss.id, "user.role", person.id, "Joins the moderation team", "user → admin"),
            (person.id, "user.role", boss.id, "Handing over", "admin → user")]


def test_nobody_demotes_themselves_so_the_last_active_administrator_stays_one():
    boss, person = _boss(), make_user(email="ada@example.com")
    with pytest.raises(admin.AdminError, match="You cannot change your own role"):
        _act(admin.change_role, boss, boss, role="user", reason="Stepping down")
    with pytest.raises(admin.AdminError, match="Only administrators can do this"):
        _act(admin.change_role, person, boss, role="user", reason="Coup")
    assert _stored(boss.id).is_admin and _entries() == []


def test_a_demoted_administrator_with_a_stale_account_object_can_no_longer_act():
    """Two administrators demoting each other: the second finds its role gone (re-read under lock)."""
    first, second = _boss(), _boss("second@example.com")
    _act(admin.change_role, first, second, role="user", reason="Reorganisation")
    assert second.is_admin  # the object the second administrator's open page holds
    with pytest.raises(admin.AdminError, match="Only administrators can do this"):
        _act(admin.change_role, second, first, role="user", reason="Reorganisation")
    with pytest.raises(admin.AdminError, match="Only administrators can do this"):
        _act(admin.suspend_user, second, first, reason="Revenge")
    assert _stored(first.id).is_admin and _stored(first.id).is_active


def test_two_administrators_demoting_each_other_at_the_same_moment_leave_one():
    first, second = _boss(), _boss("second@example.com")
    pairs = [(first, second), (second, first)]
    outcomes = at_once(2, lambda session, n: admin.change_role(
        session, pairs[n][0], pairs[n][1].id, role="user", reason="Reorganisation"), admin.AdminError)
    assert sorted(outcomes) == sorted([ACCEPTED, "Only administrators can do this."]), outcomes
    assert [_stored(first.id).is_admin, _stored(second.id).is_admin].count(True) == 1


@pytest.mark.parametrize(("role", "reason", "message"), [
    ("owner", "Because", "Choose a role: member or administrator."),
    (None, "Because", "Choose a role: member or administrator."),
    ("user", "Because", "This account is already a member."),
    ("admin", "no", "Give a reason of at least 3 characters"),
])
def test_bad_role_changes_are_refused_with_a_sentence(role: str | None, reason: str, message: str):
    boss, person = _boss(), make_user(email="ada@example.com")
    with pytest.raises(admin.AdminError, match=re.escape(message)):
        _act(admin.change_role, boss, person, role=role, reason=reason)
    assert not _stored(person.id).is_admin and _entries() == []


# --- search and detail -----------------------------------------------------------------------------------------


def _search(query: str, show: str = "all") -> list[str]:
    with session_scope() as session:
        return [row.email for row in admin.search_users(session, query, show=show).rows]


def test_search_finds_accounts_by_address_name_or_id_newest_first():
    boss = _boss()
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    grace = make_user(email="grace@navy.example", full_name="Grace HOPPER")
    make_user(email="percent%@example.com", full_name="Under_Score")
    assert _search("") == ["percent%@example.com", "grace@navy.example", "ada@example.com", "boss@example.com"]
    assert _search("  ADA@ ") == ["ada@example.com"]
    assert _search("hopper") == ["grace@navy.example"]
    assert _search(str(ada.id)) == ["ada@example.com"]
    assert _search("%") == ["percent%@example.com"]  # wildcards are searched for, not used
    assert _search("_") == ["percent%@example.com"]
    assert _search("nobody") == []
    assert _search("", show="admins") == ["boss@example.com"]
    _act(admin.suspend_user, boss, grace, reason=REASON)
    assert _search("", show="suspended") == ["grace@navy.example"]
    assert _search("example", show="pending-deletion") == []
    with session_scope() as session:
        found = admin.search_users(session, "", limit=2)
    assert (len(found.rows), found.total) == (2, 4)
    assert [row.status for row in found.rows] == ["Active", "Suspended"]


@pytest.mark.parametrize(("query", "show", "message"), [
    ("x" * 255, "all", "The search is 255 characters long; the limit is 254."),
    ("nul \x00", "all", "The search contains the control character U+0000"),
    ("", "everyone-ever", "Choose which accounts to show."),
])
def test_bad_searches_get_a_sentence(query: str, show: str, message: str):
    with pytest.raises(admin.AdminError, match=re.escape(message)):
        _search(query, show)


def test_the_detail_counts_usage_and_lists_sessions_and_what_was_done():
    boss, person = _boss(), make_user(email="ada@example.com")
    add_generation(person, "a lighthouse", images=3)
    add_generation(person, "a harbour", images=1)
    _signed_in(person)
    _key(person)
    with session_scope() as session:
        detail = admin.user_detail(session, get_settings(), str(person.id))
    assert (detail.user.email, detail.status, detail.generations, detail.images, detail.api_keys) == (
        "ada@example.com", "Active", 2, 4, 1)
    assert (detail.credits, detail.credits_used) == (None, None)  # billing is off
    assert [record.device for record in detail.sessions] == ["Firefox 130 on Linux"]
    assert detail.history == []
    _act(admin.suspend_user, boss, person, reason=REASON)
    with session_scope() as session:
        detail = admin.user_detail(session, get_settings(), person.id)
    assert (detail.status, detail.sessions, detail.api_keys) == ("Suspended", [], 0)
    assert [(row.actor, row.action, row.reason) for row in detail.history] == [
        ("boss@example.com", "user.suspend", REASON)]


def test_the_detail_shows_credits_when_billing_is_on(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "50")
    reset_settings()
    person = make_user(email="ada@example.com")
    with session_scope() as session:
        detail = admin.user_detail(session, get_settings(), person.id)
    assert (detail.credits, detail.credits_used) == (None, 0)  # looking did not open the account
    with session_scope() as session:
        ledger.open_account(session, get_settings(), person.id)
    with session_scope() as session:
        assert admin.user_detail(session, get_settings(), person.id).credits == 50


@pytest.mark.parametrize("user_id", ["", "nope", "00000000-0000-4000-8000-000000000000", "../etc/passwd", "1" * 5000])
def test_unknown_or_malformed_ids_have_no_detail(user_id: str):
    make_user()
    with session_scope() as session:
        assert admin.user_detail(session, get_settings(), user_id) is None
