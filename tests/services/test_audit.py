"""The audit log: every administrator action leaves exactly one entry (who, what, target, reason, when), in the same
transaction as the action; refused actions leave none; entries cannot be changed or deleted; the log reads newest
first and filters by action. Real database, every action driven through its service."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from rupali.clock import now
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import AuditEntry, AuditEntryImmutable, CreditAccount, PrivacyRequest, Role, User
from rupali.services import admin, audit, billing, ledger, privacy_requests
from rupali.storage import LocalStorage
from tests.utils.factories import make_user

ADMIN_MODULES = (admin, billing)


@dataclass(frozen=True)
class Drive:
    """One administrator action: ``prepare`` sets the scene (it may act itself), ``act`` is the action under test."""

    action: str  # the entry it must leave
    target_kind: str
    act: Callable[[Any, User, User, Any], object]  # (session, actor, person, prepared)
    prepare: Callable[[User, User], Any] = lambda _boss, _person: None
    names_the_person: bool = True  # whether the entry's target_user_id is the person


def _settings():
    return get_settings()


def _open_request(_boss: User, person: User) -> uuid.UUID:
    with session_scope() as session:
        return privacy_requests.log(session, _settings(), kind="objection", user_id=person.id).id


def _suspended(boss: User, person: User) -> None:
    with session_scope() as session:
        admin.suspend_user(session, boss, person.id, reason="Spam")


def _frozen(_boss: User, person: User) -> None:
    with session_scope() as session:
        ledger.open_account(session, _settings(), person.id)
        session.get(CreditAccount, person.id).purchases_frozen_at = now()


# Every function of the admin services that takes an ``actor``, with how to drive it.
DRIVES: dict[Callable[..., object], Drive] = {
    admin.suspend_user: Drive("user.suspend", "user", lambda s, actor, person, _: admin.suspend_user(
        s, actor, person.id, reason="Spam")),
    admin.unsuspend_user: Drive("user.unsuspend", "user", lambda s, actor, person, _: admin.unsuspend_user(
        s, actor, person.id, reason="Appeal accepted"), prepare=_suspended),
    admin.change_role: Drive("user.role", "user", lambda s, actor, person, _: admin.change_role(
        s, actor, person.id, role="admin", reason="Moderator")),
    admin.erase_account_now: Drive("account.erase", "user", lambda s, actor, person, _: admin.erase_account_now(
        s, _settings(), LocalStorage.from_settings(_settings()), actor, person.id, typed_email=person.email,
        reason="under-age")),
    admin.log_mailed_request: Drive("request.log", "request", lambda s, actor, person, _: admin.log_mailed_request(
        s, _settings(), actor, kind="objection", contact=person.email, note="by letter")),
    admin.close_request: Drive("request.close", "request", lambda s, actor, _person, request_id: admin.close_request(
        s, actor, request_id, status="done", outcome="Processing stopped."), prepare=_open_request),
    billing.admin_grant: Drive("credits.grant", "credit-entry", lambda s, actor, person, _: billing.admin_grant(
        s, _settings(), actor, person.email, 25, reason="Hackathon")),
    billing.admin_set_allowance: Drive("credits.allowance", "user",
                                       lambda s, actor, person, _: billing.admin_set_allowance(
                                           s, _settings(), actor, person.email, 20)),
    billing.admin_resume_purchases: Drive("purchases.resume", "user",
                                          lambda s, actor, person, _: billing.admin_resume_purchases(
                                              s, actor, person.email), prepare=_frozen),
}


@pytest.fixture
def billing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "50")
    reset_settings()


def _entries() -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.exec(select(AuditEntry).order_by(AuditEntry.id)).all())


def _actor_functions() -> set[Callable[..., object]]:
    return {function for module in ADMIN_MODULES for name, function in inspect.getmembers(module, inspect.isfunction)
            if function.__module__ == module.__name__ and not name.startswith("_")
            and "actor" in inspect.signature(function).parameters}


def test_every_administrator_action_is_driven_here():
    """A new action taking an ``actor`` fails this until it is added to DRIVES (and so checked for its entry)."""
    assert _actor_functions() == set(DRIVES)


@pytest.mark.parametrize("function", list(DRIVES), ids=lambda function: function.__name__)
def test_every_administrator_action_leaves_one_entry(billing_on, function: Callable[..., object]):
    drive = DRIVES[function]
    boss = make_user(email="boss@example.com", role=Role.ADMIN)
    person = make_user(email="ada@example.com")
    prepared = drive.prepare(boss, person)
    before = len(_entries())
    with session_scope() as session:
        drive.act(session, boss, person, prepared)
    new = _entries()[before:]
    assert [(entry.actor_id, entry.action, entry.target_kind) for entry in new] == [
        (boss.id, drive.action, drive.target_kind)]
    [entry] = new
    assert entry.target_id and entry.at <= now()
    if drive.names_the_person:
        assert entry.target_user_id == person.id


@pytest.mark.parametrize("function", list(DRIVES), ids=lambda function: function.__name__)
def test_a_refused_action_leaves_no_entry(billing_on, function: Callable[..., object]):
    drive = DRIVES[function]
    boss = make_user(email="boss@example.com", role=Role.ADMIN)
    member, person = make_user(email="member@example.com"), make_user(email="ada@example.com")
    prepared = drive.prepare(boss, person)
    before = _entries()
    with session_scope() as session, pytest.raises((admin.AdminError, billing.BillingAdminError)):
        drive.act(session, member, person, prepared)
    assert len(_entries()) == len(before)


def test_an_action_and_its_entry_commit_or_roll_back_together():
    boss, person = make_user(email="boss@example.com", role=Role.ADMIN), make_user(email="ada@example.com")
    with pytest.raises(RuntimeError), session_scope() as session:
        admin.suspend_user(session, boss, person.id, reason="Spam")
        raise RuntimeError("the transaction fails after the action")
    assert _entries() == []
    with session_scope() as session:
        assert session.get(User, person.id).is_active


def test_a_grant_sent_twice_is_one_entry(billing_on):
    boss, person = make_user(email="boss@example.com", role=Role.ADMIN), make_user(email="ada@example.com")
    for _ in range(2):
        with session_scope() as session:
            billing.admin_grant(session, _settings(), boss, person.email, -10, reason="Refund reversal", key="form-1")
    [entry] = _entries()
    assert (entry.action, entry.reason, entry.detail) == ("credits.revoke", "Refund reversal",
                                                          "-10 credits; balance 40")


def test_entries_cannot_be_changed_or_deleted():
    boss, person = make_user(email="boss@example.com", role=Role.ADMIN), make_user(email="ada@example.com")
    with session_scope() as session:
        admin.suspend_user(session, boss, person.id, reason="Spam")
    [entry] = _entries()
    with pytest.raises(AuditEntryImmutable), session_scope() as session:
        stored = session.get(AuditEntry, entry.id)
        stored.reason = "nothing happened"
        session.flush()
    with pytest.raises(AuditEntryImmutable), session_scope() as session:
        session.delete(session.get(AuditEntry, entry.id))
        session.flush()
    assert [(stored.id, stored.reason) for stored in _entries()] == [(entry.id, "Spam")]
    # Nor does the service offer it: reading, counting and appending are all there is.
    public = {name for name, function in inspect.getmembers(audit, inspect.isfunction)
              if not name.startswith("_") and function.__module__ == audit.__name__}
    assert public == {"record", "recent", "label", "actions", "count", "recorded"}


def test_the_log_reads_newest_first_filters_by_action_and_outlives_the_accounts_it_names():
    boss = make_user(email="boss@example.com", role=Role.ADMIN)
    minor, person = make_user(email="minor@example.com"), make_user(email="ada@example.com")
    settings = _settings()
    with session_scope() as session:
        admin.suspend_user(session, boss, person.id, reason="Spam")
    with session_scope() as session:
        admin.change_role(session, boss, person.id, role="admin", reason="Moderator")
    with session_scope() as session:
        admin.erase_account_now(session, settings, LocalStorage.from_settings(settings), boss, minor.id,
                                typed_email=minor.email, reason="under-age")
    with session_scope() as session:
        audit.record(session, None, "retention.sweep", detail="a system action")
        rows = audit.recent(session)
        assert [row.action for row in rows] == ["retention.sweep", "account.erase", "user.role", "user.suspend"]
        assert [row.label for row in rows] == ["retention.sweep", "Account erased now", "Role changed",
                                               "Account suspended"]
        assert [row.actor for row in rows] == ["system", "boss@example.com", "boss@example.com", "boss@example.com"]
        assert rows[1].target == f"erased account {str(minor.id)[:8]}" and rows[1].target_user_id is None
        assert (rows[2].target, rows[2].target_user_id) == ("ada@example.com", person.id)
        assert rows[1].reason == admin.ERASE_REASONS["under-age"]
        assert "minor@example.com" not in rows[1].detail  # the entry outlives the person without naming them
        assert [row.action for row in audit.recent(session, action="user.role")] == ["user.role"]
        assert audit.recent(session, action="no.such.action") == []
        assert audit.actions(session) == ["user.suspend", "user.role", "account.erase", "retention.sweep"]
        assert (audit.count(session), audit.count(session, action="user.suspend")) == (4, 1)
        assert [row.action for row in audit.recent(session, target_user_id=person.id)] == ["user.role",
                                                                                           "user.suspend"]
        assert len(audit.recent(session, limit=2)) == 2
    with session_scope() as session:  # the request logged by the erasure is there, the person is not
        assert session.get(User, minor.id) is None
        assert session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id == minor.id)).all() == []
