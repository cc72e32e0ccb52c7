"""Deleting an account with a grace period: confirmation, what the request ends at once, cancelling, the purge."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from rupali import clock
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import (
    AccountToken,
    ErasureRecord,
    Generation,
    GenerationStatus,
    OutboxMessage,
    PrivacyRequest,
    RequestKind,
    RequestSource,
    RequestStatus,
    TokenPurpose,
    User,
)
from rupali.privacy import erasure
from rupali.services import accounts, api_keys, deletion, oidc, sessions, users
from rupali.storage import LocalStorage
from tests.utils.at_once import ACCEPTED, at_once
from tests.utils.factories import PASSWORD, make_user

GRACE = timedelta(days=30)


@pytest.fixture
def storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def _signed_in(user: User) -> str:
    """A session cookie token for ``user``, as the sign-in handoff creates it."""
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip="198.51.100.1",
                              user_agent="pytest", visitor_id="visitor")
        return sessions.complete_handoff(session, code, "visitor")


def _resolves(token: str) -> bool:
    with session_scope() as session:
        return sessions.resolve(session, get_settings(), token) is not None


def _api_key(user: User) -> str:
    with session_scope() as session:
        return api_keys.create(session, user, "script")[1]


def _key_works(secret: str) -> bool:
    with session_scope() as session:
        return api_keys.resolve(session, secret) is not None


def _queued_generation(user: User) -> uuid.UUID:
    with session_scope() as session:
        generation = Generation(user_id=user.id, provider="offline", model="sketch-v1", prompt="a quiet harbour",
                                width=512, height=512, steps=4, guidance=5.0, count=1, seed=7)
        session.add(generation)
        session.flush()
        return generation.id


def _request(user: User, **confirmation: str) -> User:
    with session_scope() as session:
        return deletion.request_deletion(session, get_settings(), user, **confirmation)


def _reload(user_id: uuid.UUID) -> User | None:
    with session_scope() as session:
        return session.get(User, user_id)


def _mails(address: str) -> list[OutboxMessage]:
    with session_scope() as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.recipient == address)
                                 .order_by(col(OutboxMessage.id))).all())


def _cancel_token(address: str) -> str:
    match = re.search(r"/deletion/cancel\?token=(\S+)", _mails(address)[-1].text_body)
    assert match, _mails(address)[-1].text_body
    return match.group(1)


def _erasure_requests(user_id: uuid.UUID | None = None) -> list[PrivacyRequest]:
    with session_scope() as session:
        return list(session.exec(select(PrivacyRequest).where(
            PrivacyRequest.kind == RequestKind.ERASURE, PrivacyRequest.user_id == user_id)).all())


def _purge_due(**options) -> int:
    with session_scope() as session:
        return deletion.purge_due(session, get_settings(), LocalStorage.from_settings(get_settings()), **options)


def _purge_never_confirmed(**options) -> int:
    with session_scope() as session:
        return deletion.purge_never_confirmed(session, get_settings(), LocalStorage.from_settings(get_settings()),
                                              **options)


def _sso_user(email: str, *, confirmed: bool = False) -> User:
    identity = oidc.Identity(provider="https://id.example.com", subject=f"sub-{email}", email=email,
                             email_verified=True, name="Sam Single")
    with session_scope() as session:
        user = oidc.account_for(session, get_settings(), identity)
        if confirmed:
            accounts.record_consent(session, get_settings(), user, accounts.Consent(True, True))
        return user


# --- asking ----------------------------------------------------------------------------------------------------------

def test_a_wrong_password_is_refused_and_changes_nothing():
    member = make_user()
    token = _signed_in(member)
    for wrong in ("not my password", "", None):
        with pytest.raises(deletion.DeletionError, match="not your password"):
            _request(member, password=wrong)
    with pytest.raises(deletion.DeletionError, match="not your password"):
        _request(member, typed_email=member.email)  # the address is no substitute for a password
    assert _reload(member.id).deletion_requested_at is None
    assert _resolves(token) and _erasure_requests(member.id) == []


def test_an_account_without_password_confirms_by_typing_its_address():
    sam = _sso_user("sam@example.com", confirmed=True)
    for wrong in ("sam@example.org", "", None):
        with pytest.raises(deletion.DeletionError, match="Type your e-mail address"):
            _request(sam, typed_email=wrong)
    assert _reload(sam.id).deletion_requested_at is None
    pending = _request(sam, typed_email="  SAM@Example.com ")
    assert pending.deletion_requested_at is not None
    # Single sign-on still signs the person in during the grace period (the gate then offers only the cancel page).
    assert deletion.is_pending(_sso_user("sam@example.com")) and _sso_user("sam@example.com").id == sam.id


def test_the_request_ends_sessions_and_keys_cancels_generations_and_mails_a_cancel_link():
    member = make_user(email="ada@example.com")
    token, secret = _signed_in(member), _api_key(member)
    queued = _queued_generation(member)
    assert _resolves(token) and _key_works(secret)

    pending = _request(member, password=PASSWORD)
    assert pending.deletion_requested_at is not None
    assert pending.deletion_due_at - pending.deletion_requested_at == GRACE
    assert not _resolves(token) and not _key_works(secret)
    with session_scope() as session:
        assert session.get(Generation, queued).status == GenerationStatus.CANCELLED
    [request] = _erasure_requests(member.id)
    assert (request.status, request.source) == (RequestStatus.OPEN, RequestSource.SELF_SERVICE)
    mail = _mails("ada@example.com")[-1]
    assert mail.subject == "Your account will be deleted" and mail.user_id == member.id
    assert "Cancel deletion" in mail.text_body  # signing in offers it too
    with session_scope() as session:
        [link] = session.exec(select(AccountToken).where(AccountToken.purpose == TokenPurpose.CANCEL_DELETION)).all()
        assert link.expires_at == pending.deletion_due_at  # valid for the whole grace period
    with pytest.raises(deletion.DeletionError, match="already scheduled"):
        _request(member, password=PASSWORD)


def test_signing_in_during_the_grace_period_still_works():
    member = make_user(email="ada@example.com")
    _request(member, password=PASSWORD)
    with session_scope() as session:
        signed = accounts.authenticate(session, get_settings(), email="ada@example.com", password=PASSWORD, ip="::1")
        assert deletion.is_pending(signed)  # the gate then shows only the deletion page


# --- cancelling ------------------------------------------------------------------------------------------------------

def test_the_mailed_link_cancels_once_and_the_account_works_again():
    member = make_user(email="ada@example.com")
    _request(member, password=PASSWORD)
    link = _cancel_token("ada@example.com")
    with session_scope() as session:
        assert deletion.cancel_link_usable(session, link)
        restored = deletion.cancel_by_token(session, get_settings(), link)
    assert restored.deletion_requested_at is None and restored.deletion_due_at is None
    [request] = _erasure_requests(member.id)
    assert request.status == RequestStatus.WITHDRAWN
    assert _mails("ada@example.com")[-1].subject == "Your account will not be deleted"
    with session_scope() as session:
        assert not deletion.cancel_link_usable(session, link)
        with pytest.raises(deletion.DeletionError, match="expired or was already used"):
            deletion.cancel_by_token(session, get_settings(), link)
    # Everything works again: sign-in, sessions, new API keys.
    with session_scope() as session:
        accounts.authenticate(session, get_settings(), email="ada@example.com", password=PASSWORD, ip="::1")
    assert _resolves(_signed_in(member)) and _key_works(_api_key(member))
    # And the purge leaves it alone, however late.
    with clock.travel(GRACE * 2):
        assert _purge_due() == 0
    assert _reload(member.id) is not None


@pytest.mark.parametrize("token", ["", "nonsense", "x" * 500])
def test_unknown_cancel_links_are_refused(token):
    with session_scope() as session:
        assert not deletion.cancel_link_usable(session, token)
        with pytest.raises(deletion.DeletionError, match="expired or was already used"):
            deletion.cancel_by_token(session, get_settings(), token)


def test_the_cancel_link_expires_with_the_grace_period():
    member = make_user(email="ada@example.com")
    _request(member, password=PASSWORD)
    link = _cancel_token("ada@example.com")
    with clock.travel(GRACE + timedelta(seconds=1)), session_scope() as session:
        assert not deletion.cancel_link_usable(session, link)
        with pytest.raises(deletion.DeletionError):
            deletion.cancel_by_token(session, get_settings(), link)


def test_cancelling_from_the_page_restores_the_account():
    member = make_user(email="ada@example.com")
    _request(member, password=PASSWORD)
    with session_scope() as session:
        restored = deletion.cancel_deletion(session, get_settings(), member)
        assert not deletion.is_pending(restored)
        assert deletion.cancel_deletion(session, get_settings(), member) is restored  # twice is harmless
    link_mail_count = len([mail for mail in _mails("ada@example.com") if "not be deleted" in mail.subject])
    assert link_mail_count == 1


# --- the purge -------------------------------------------------------------------------------------------------------

def test_after_the_grace_period_the_account_is_erased_and_the_address_is_free_again():
    member = make_user(email="ada@example.com")
    bystander = make_user(email="bob@example.com")
    _request(member, password=PASSWORD)
    _request(bystander, password=PASSWORD)
    with session_scope() as session:
        deletion.cancel_deletion(session, get_settings(), bystander)
    with clock.travel(GRACE - timedelta(minutes=1)):
        assert _purge_due() == 0
    with clock.travel(GRACE + timedelta(seconds=1)):
        assert _purge_due(dry_run=True) == 1
        assert _reload(member.id) is not None  # a dry run erases nothing
        assert _purge_due() == 1
        assert _purge_due() == 0  # idempotent
    assert _reload(member.id) is None and _reload(bystander.id) is not None
    with session_scope() as session:
        [record] = session.exec(select(ErasureRecord)).all()
        assert record.reason == deletion.SELF_SERVICE and erasure.counts_of(record)["user"] == 1
    [request] = _erasure_requests(None)
    assert (request.status, request.outcome) == (RequestStatus.DONE, erasure.CARRIED_OUT)
    # Signing in is impossible now...
    with session_scope() as session, pytest.raises(accounts.AccountError, match="Wrong e-mail address or password"):
        accounts.authenticate(session, get_settings(), email="ada@example.com", password=PASSWORD, ip="::1")
    # ...and the address can sign up again, as a new account.
    with session_scope() as session:
        accounts.sign_up(session, get_settings(), email="ada@example.com", full_name="Ada Again", password=PASSWORD,
                         consent=accounts.Consent(True, True), ip="::1")
        again = users.by_email(session, "ada@example.com")
        assert again is not None and again.id != member.id and again.full_name == "Ada Again"
        assert not deletion.is_pending(again)
    assert _mails("ada@example.com")[-1].subject == "Confirm your e-mail address"


def test_a_grace_period_of_zero_days_is_due_at_once(monkeypatch):
    monkeypatch.setenv("RUPALI_RETENTION_ACCOUNT_GRACE_DAYS", "0")
    reset_settings()
    member = make_user()
    pending = _request(member, password=PASSWORD)
    assert pending.deletion_due_at == pending.deletion_requested_at
    assert _purge_due() == 1 and _reload(member.id) is None


def test_purge_due_takes_at_most_its_limit_oldest_first():
    members = [make_user() for _ in range(3)]
    for member in members:
        _request(member, password=PASSWORD)
    with clock.travel(GRACE + timedelta(seconds=1)):
        assert _purge_due(limit=2, dry_run=True) == 2
        assert _purge_due(limit=2) == 2
        assert [_reload(member.id) is None for member in members] == [True, True, False]
        assert _purge_due(limit=2) == 1


def test_an_operator_can_schedule_without_a_password_and_the_record_says_so():
    member = make_user(email="ada@example.com")
    with session_scope() as session:
        deletion.schedule_deletion(session, get_settings(), member, source=RequestSource.ADMIN)
    assert "operator of this service" in _mails("ada@example.com")[-1].text_body
    with clock.travel(GRACE + timedelta(seconds=1)):
        assert _purge_due() == 1
    with session_scope() as session:
        assert session.exec(select(ErasureRecord.reason)).all() == [deletion.ADMINISTRATOR]


def test_two_deletion_requests_at_the_same_moment_schedule_one():
    member, settings = make_user(email="twice@example.com"), get_settings()
    outcomes = at_once(3, lambda session, _n: deletion.schedule_deletion(
        session, settings, member, source=RequestSource.ADMIN), deletion.DeletionError)
    assert outcomes.count(ACCEPTED) == 1, outcomes
    assert len(_erasure_requests(member.id)) == 1 and len(_mails("twice@example.com")) == 1


def test_erase_now_skips_the_grace_period_and_is_logged_as_an_administrators_request(storage):
    member = make_user(email="young@example.com")
    token = _signed_in(member)
    with session_scope() as session:
        record = deletion.erase_now(session, get_settings(), storage, member, reason="under-age")
    assert record.reason == "under-age" and erasure.counts_of(record)["auth_session"] == 1
    assert _reload(member.id) is None and not _resolves(token)
    [request] = _erasure_requests(None)
    assert (request.source, request.status, request.outcome) == (RequestSource.ADMIN, RequestStatus.DONE,
                                                                 erasure.CARRIED_OUT)
    with session_scope() as session, pytest.raises(deletion.DeletionError, match="no longer exists"):
        deletion.erase_now(session, get_settings(), storage, member)


# --- accounts whose 18+ confirmation never came ------------------------------------------------------------------

def test_single_sign_on_accounts_never_confirmed_are_erased_after_24_hours():
    unconfirmed = _sso_user("new@example.com")
    confirmed = _sso_user("adult@example.com", confirmed=True)
    password_account = make_user(email="pw@example.com", onboarded=False)  # never confirmed either
    with clock.travel(timedelta(hours=23)):
        assert _purge_never_confirmed(dry_run=True) == 0
        assert _purge_never_confirmed() == 0
    assert _reload(unconfirmed.id) is not None
    with clock.travel(timedelta(hours=24, minutes=1)):
        assert _purge_never_confirmed(dry_run=True) == 1
        assert _purge_never_confirmed() == 1
        assert _purge_never_confirmed() == 0
    assert _reload(unconfirmed.id) is None
    assert _reload(confirmed.id) is not None and _reload(password_account.id) is not None
    with session_scope() as session:
        assert session.exec(select(ErasureRecord.reason)).all() == [deletion.NEVER_CONFIRMED]
    # The address is free for a fresh start through single sign-on.
    again = _sso_user("new@example.com")
    assert again.id != unconfirmed.id


def test_an_account_that_cannot_be_erased_does_not_hold_back_the_others(rupali_env, caplog):
    """A database that refuses one erasure (here a trigger): that account is logged and kept, the rest go."""
    stuck, free = make_user(email="stuck@example.com"), make_user(email="free@example.com")
    for member in (stuck, free):
        _request(member, password=PASSWORD)
    postgres = rupali_env.startswith("postgresql")
    statements = [
        "CREATE FUNCTION refuse_stuck() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_stuck BEFORE DELETE ON \"user\" FOR EACH ROW "
        "WHEN (OLD.email = 'stuck@example.com') EXECUTE FUNCTION refuse_stuck()",
    ] if postgres else [
        "CREATE TRIGGER refuse_stuck BEFORE DELETE ON user WHEN OLD.email = 'stuck@example.com' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ]
    with session_scope() as session:
        for statement in statements:
            session.exec(text(statement))
    try:
        with clock.travel(GRACE + timedelta(seconds=1)):
            assert _purge_due() == 1
    finally:
        with session_scope() as session:
            session.exec(text('DROP TRIGGER refuse_stuck ON "user"' if postgres else "DROP TRIGGER refuse_stuck"))
            if postgres:
                session.exec(text("DROP FUNCTION refuse_stuck()"))
    assert "could not erase an account" in caplog.text
    assert _reload(free.id) is None
    kept = _reload(stuck.id)
    assert kept is not None and deletion.is_pending(kept)
    with session_scope() as session:  # nothing of the failed erasure stayed half done
        assert session.exec(select(ErasureRecord.reason)).all() == [deletion.SELF_SERVICE]
        assert session.exec(select(AccountToken).where(AccountToken.user_id == stuck.id)).all() != []
    with clock.travel(GRACE + timedelta(seconds=1)):
        assert _purge_due() == 1  # tried again at the next run
    assert _reload(stuck.id) is None
