"""Local accounts through their services, with mail delivered to a real SMTP server on loopback."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from argon2 import PasswordHasher
from sqlmodel import select

from rupali import clock, jobs
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import AuthSession, PolicyAcceptance, TokenPurpose, User
from rupali.services import accounts, ratelimit, sessions, users
from tests.utils.factories import PASSWORD, make_user
from tests.utils.smtp import link_in, text_of

IP = "203.0.113.7"
YES = accounts.Consent(age_confirmed=True, accepted_policies=True)


def _sign_up(email: str = "new@example.com", name: str = "Grace Hopper", password: str = PASSWORD,
             consent: accounts.Consent = YES) -> None:
    with session_scope() as session:
        accounts.sign_up(session, get_settings(), email=email, full_name=name, password=password, consent=consent,
                         ip=IP)


def _token(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


def _deliver() -> None:
    assert jobs.run("deliver_mail").status == "succeeded"


def test_sign_up_records_age_and_policy_versions_and_mails_a_single_use_link(inbox):
    _sign_up()
    _deliver()
    message = inbox.last_to("new@example.com")
    assert message["Subject"] == "Confirm your e-mail address"
    token = _token(link_in(message, "/confirm-email"))
    with session_scope() as session:
        user = users.by_email(session, "new@example.com")
        assert user.age_confirmed_at is not None and user.email_verified_at is None
        assert user.role == "admin"  # the first account of an installation
        accepted = session.exec(select(PolicyAcceptance).where(PolicyAcceptance.user_id == user.id)).all()
        assert sorted(row.document for row in accepted) == ["privacy", "terms"]
        assert all(row.version.startswith("1.0-") for row in accepted)
        accounts.verify_email(session, token)
    with session_scope() as session:
        assert users.by_email(session, "new@example.com").email_verified_at is not None
        with pytest.raises(accounts.InvalidToken):
            accounts.verify_email(session, token)


def test_verification_link_expires(inbox):
    _sign_up()
    _deliver()
    token = _token(link_in(inbox.last_to("new@example.com"), "/confirm-email"))
    with clock.travel(timedelta(hours=49)), session_scope() as session, pytest.raises(accounts.InvalidToken):
        accounts.verify_email(session, token)


@pytest.mark.parametrize(("consent", "message"), [
    (accounts.Consent(age_confirmed=False, accepted_policies=True), "at least 18 years old"),
    (accounts.Consent(age_confirmed=True, accepted_policies=False), "accept the Terms of Service"),
])
def test_sign_up_requires_age_and_acceptance(consent, message):
    with pytest.raises(accounts.AccountError, match=message):
        _sign_up(consent=consent)
    with session_scope() as session:
        assert users.count(session) == 0


@pytest.mark.parametrize(("email", "name", "password", "message"), [
    ("", "Grace", PASSWORD, "Enter an e-mail address"),
    ("not-an-address", "Grace", PASSWORD, "valid e-mail address"),
    ("a@b.c" + "x" * 300, "Grace", PASSWORD, "valid e-mail address"),
    ("ok@example.com", "   ", PASSWORD, "Enter your name"),
    ("ok@example.com", "x" * 10_000, PASSWORD, "at most 200 characters"),
    ("ok@example.com", "Grace", "short", "at least 10 characters"),
    ("ok@example.com", "Grace", "p" * 5000, "at most 1024 characters"),
])
def test_hostile_sign_up_input_gets_a_clear_message_and_stores_nothing(email, name, password, message):
    with pytest.raises(users.InvalidAccount, match=message):
        _sign_up(email=email, name=name, password=password)
    with session_scope() as session:
        assert users.count(session) == 0


def test_markup_and_sql_in_names_are_stored_as_text():
    hostile = "<script>alert(1)</script>'; DROP TABLE \"user\"; --"
    _sign_up(name=hostile)
    with session_scope() as session:
        assert users.by_email(session, "new@example.com").full_name == hostile
        assert users.count(session) == 1


def test_unicode_names_are_kept():
    _sign_up(name="Søren Kierkegaard 山田太郎 👩‍🎨")
    with session_scope() as session:
        assert users.by_email(session, "new@example.com").full_name == "Søren Kierkegaard 山田太郎 👩‍🎨"


def test_sign_up_with_a_known_address_looks_the_same_and_warns_the_owner(inbox):
    owner = make_user(email="taken@example.com")
    _sign_up(email="Taken@Example.com")  # no error: the form cannot tell whether the address exists
    _deliver()
    assert inbox.last_to("taken@example.com")["Subject"] == "Someone tried to create an account with your address"
    with session_scope() as session:
        assert users.count(session) == 1
        assert users.by_email(session, "taken@example.com").id == owner.id


def test_wrong_password_and_unknown_address_get_the_same_answer():
    make_user(email="known@example.com")
    messages = []
    for email, password in (("known@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)):
        with pytest.raises(accounts.AccountError) as caught, session_scope() as session:
            accounts.authenticate(session, get_settings(), email=email, password=password, ip=IP)
        messages.append(str(caught.value))
    assert messages == ["Wrong e-mail address or password."] * 2


def test_five_failures_lock_the_address_for_fifteen_minutes():
    make_user(email="target@example.com")
    for _ in range(5):
        with pytest.raises(accounts.AccountError), session_scope() as session:
            accounts.authenticate(session, get_settings(), email="target@example.com", password="nope nope!", ip=IP)
    with pytest.raises(ratelimit.RateLimited, match="wait 15 minutes"), session_scope() as session:
        accounts.authenticate(session, get_settings(), email="target@example.com", password=PASSWORD, ip="198.51.100.1")
    with clock.travel(timedelta(minutes=16)), session_scope() as session:
        assert accounts.authenticate(session, get_settings(), email="target@example.com", password=PASSWORD, ip=IP)


def test_unverified_accounts_are_sent_a_new_link_instead_of_signed_in(inbox):
    make_user(email="pending@example.com", onboarded=False)
    with pytest.raises(accounts.EmailNotVerified), session_scope() as session:
        accounts.authenticate(session, get_settings(), email="pending@example.com", password=PASSWORD, ip=IP)
    _deliver()
    assert inbox.last_to("pending@example.com")["Subject"] == "Confirm your e-mail address"


def test_outdated_password_hashes_are_upgraded_at_sign_in():
    user = make_user(email="old@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with session_scope() as session:
        stored = session.get(User, user.id)
        stored.password_hash = weak
    with session_scope() as session:
        accounts.authenticate(session, get_settings(), email="old@example.com", password=PASSWORD, ip=IP)
    with session_scope() as session:
        upgraded = session.get(User, user.id).password_hash
    assert upgraded != weak and upgraded.startswith("$argon2id$")


def test_password_reset_is_single_use_and_ends_every_session(inbox):
    user = make_user(email="forgetful@example.com")
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip=IP, user_agent="", visitor_id="v")
        sessions.complete_handoff(session, code, "v")
        accounts.request_password_reset(session, get_settings(), email="nobody@example.com", ip=IP)  # silent
        accounts.request_password_reset(session, get_settings(), email="forgetful@example.com", ip=IP)
    _deliver()
    assert inbox.to("nobody@example.com") == []
    token = _token(link_in(inbox.last_to("forgetful@example.com"), "/reset"))
    with session_scope() as session:
        accounts.reset_password(session, get_settings(), token=token, new_password="a brand new passphrase")
    with session_scope() as session:
        assert all(record.revoked_at for record in session.exec(select(AuthSession)))
        assert accounts.authenticate(session, get_settings(), email="forgetful@example.com",
                                     password="a brand new passphrase", ip=IP)
        with pytest.raises(accounts.InvalidToken):
            accounts.reset_password(session, get_settings(), token=token, new_password="yet another passphrase")
    _deliver()
    assert inbox.last_to("forgetful@example.com")["Subject"] == "Your password was changed"


def test_reset_links_expire_after_an_hour_and_forged_ones_never_work(inbox):
    make_user(email="late@example.com")
    with session_scope() as session:
        accounts.request_password_reset(session, get_settings(), email="late@example.com", ip=IP)
    _deliver()
    token = _token(link_in(inbox.last_to("late@example.com"), "/reset"))
    with session_scope() as session:
        assert not accounts.token_is_usable(session, "forged-" + token, TokenPurpose.RESET_PASSWORD)
        assert not accounts.token_is_usable(session, "", TokenPurpose.RESET_PASSWORD)
        assert not accounts.token_is_usable(session, token, TokenPurpose.VERIFY_EMAIL)  # wrong kind of link
    with clock.travel(timedelta(minutes=61)), session_scope() as session, pytest.raises(accounts.InvalidToken):
        accounts.reset_password(session, get_settings(), token=token, new_password="too late passphrase")


def test_change_password_needs_the_current_one_and_signs_out_other_sessions():
    user = make_user()
    settings = get_settings()
    with session_scope() as session:
        kept = sessions.start(session, settings, user, method="password", ip=IP, user_agent="", visitor_id="a")
        other = sessions.start(session, settings, user, method="password", ip=IP, user_agent="", visitor_id="b")
        kept_token = sessions.complete_handoff(session, kept, "a")
        other_token = sessions.complete_handoff(session, other, "b")
    with session_scope() as session:
        current = sessions.resolve(session, settings, kept_token)
        with pytest.raises(accounts.AccountError, match="current password is not correct"):
            accounts.change_password(session, settings, current.user, current="wrong one!", new="new passphrase!",
                                     keep_session_id=current.session.id)
        accounts.change_password(session, settings, current.user, current=PASSWORD, new="new passphrase!",
                                 keep_session_id=current.session.id)
    with session_scope() as session:
        assert sessions.resolve(session, settings, kept_token) is not None
        assert sessions.resolve(session, settings, other_token) is None


def test_email_change_is_confirmed_from_the_new_address_and_announced_to_the_old(inbox):
    user = make_user(email="before@example.com")
    with session_scope() as session:
        accounts.request_email_change(session, get_settings(), user, new_email="After@Example.com", password=PASSWORD)
    _deliver()
    token = _token(link_in(inbox.last_to("after@example.com"), "/confirm-email"))
    with session_scope() as session:
        assert users.by_email(session, "before@example.com") is not None  # nothing changes before confirmation
        assert accounts.link_purpose(session, token) == TokenPurpose.CHANGE_EMAIL
        accounts.confirm_email_change(session, token)
    _deliver()
    assert "after@example.com" in text_of(inbox.last_to("before@example.com"))
    with session_scope() as session:
        assert users.by_email(session, "after@example.com").id == user.id


def test_email_change_to_a_taken_address_reveals_nothing(inbox):
    user = make_user(email="me@example.com")
    make_user(email="someone@example.com")
    with session_scope() as session:
        accounts.request_email_change(session, get_settings(), user, new_email="someone@example.com",
                                      password=PASSWORD)
        with pytest.raises(accounts.AccountError, match="password is not correct"):
            accounts.request_email_change(session, get_settings(), user, new_email="x@example.com", password="nope")
    _deliver()
    assert inbox.messages == []
