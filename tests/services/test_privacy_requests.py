"""The data-subject request log and the administrators' side of it: deadlines, the queue, closing, logging mailed
requests, "Erase now", and the daily reminder to administrators. Real database, the clock moved instead of waiting."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from rupali import clock, jobs
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import (
    ErasureRecord,
    JobRunStatus,
    OutboxMessage,
    PrivacyRequest,
    RequestKind,
    RequestSource,
    RequestStatus,
    Role,
    User,
)
from rupali.services import admin, privacy_requests
from rupali.services.privacy_requests import RequestError
from rupali.storage import LocalStorage
from tests.utils.factories import make_user

DAY = timedelta(days=1)


def _log(*, kind: RequestKind = RequestKind.OBJECTION, user_id: uuid.UUID | None = None, contact: str = "",
         note: str = "") -> PrivacyRequest:
    with session_scope() as session:
        return privacy_requests.log(session, get_settings(), kind=kind, user_id=user_id, contact=contact, note=note,
                                    source=RequestSource.MAIL if contact else RequestSource.SELF_SERVICE)


def _stored(request_id: uuid.UUID) -> PrivacyRequest:
    with session_scope() as session:
        request = session.get(PrivacyRequest, request_id)
        assert request is not None
        return request


def _queue_ids() -> dict[str, list[uuid.UUID]]:
    with session_scope() as session:
        queue = privacy_requests.queue(session)
    return {name: [request.id for request in getattr(queue, name)]
            for name in ("overdue", "due_soon", "later", "recently_closed")}


def _admin(email: str = "boss@example.com", **fields: object) -> User:
    return make_user(email=email, full_name="Boss", role=Role.ADMIN, **fields)  # type: ignore[arg-type]


def _reminders() -> list[OutboxMessage]:
    with session_scope() as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


# --- deadlines ---------------------------------------------------------------------------------------------------


def test_a_request_is_due_the_configured_number_of_days_after_it_arrived():
    before = clock.now()
    request = _log(contact="someone@example.org")
    assert before <= request.received_at <= clock.now()
    assert request.due_at - request.received_at == timedelta(days=30)
    assert (request.status, request.closed_at) == (RequestStatus.OPEN, None)


def test_a_changed_response_period_changes_the_deadline(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_GDPR_RESPONSE_DAYS", "14")
    reset_settings()
    request = _log(contact="someone@example.org")
    assert request.due_at - request.received_at == timedelta(days=14)
    with clock.travel(timedelta(days=8)):  # 6 days left: due soon already, where a 30-day deadline would not be
        assert _queue_ids()["due_soon"] == [request.id]


def test_the_queue_moves_requests_from_later_to_due_soon_to_overdue_as_time_passes():
    request = _log(contact="someone@example.org")
    assert _queue_ids() == {"overdue": [], "due_soon": [], "later": [request.id], "recently_closed": []}
    with clock.travel(timedelta(days=22)):  # 8 days left
        assert _queue_ids()["later"] == [request.id]
    with clock.travel(timedelta(days=24)):  # 6 days left
        assert _queue_ids()["due_soon"] == [request.id]
        with session_scope() as session:
            assert [r.id for r in privacy_requests.due_within(session)] == [request.id]
    with clock.travel(timedelta(days=30, seconds=1)):
        assert _queue_ids()["overdue"] == [request.id]
        with session_scope() as session:
            assert [r.id for r in privacy_requests.due_within(session)] == [request.id]


def test_the_queue_lists_the_oldest_deadline_first_and_closed_requests_apart():
    first = _log(contact="first@example.org")
    with clock.travel(DAY):
        second = _log(contact="second@example.org")
        third = _log(contact="third@example.org")
        with session_scope() as session:
            privacy_requests.close(session, session.get(PrivacyRequest, third.id), outcome="answered by letter")
        ids = _queue_ids()
    assert ids["later"] == [first.id, second.id]
    assert ids["recently_closed"] == [third.id]


@pytest.mark.parametrize(("due_in", "expected"), [
    (timedelta(days=5, hours=1), "due in 5 days"),
    (timedelta(days=1, hours=1), "due in 1 day"),
    (timedelta(minutes=5), "due today"),
    (-timedelta(minutes=5), "overdue since today"),
    (-timedelta(days=1), "1 day overdue"),
    (-timedelta(days=3), "3 days overdue"),
])
def test_deadline_text_counts_calendar_days(due_in: timedelta, expected: str):
    noon = datetime(2026, 3, 10, 12, 0, tzinfo=clock.now().tzinfo)
    assert admin.deadline_text(noon + due_in, noon) == expected


# --- closing -----------------------------------------------------------------------------------------------------


def test_closing_is_idempotent_the_first_outcome_stays():
    request = _log(contact="someone@example.org")
    with session_scope() as session:
        privacy_requests.close(session, session.get(PrivacyRequest, request.id), outcome="copy sent by mail")
    first = _stored(request.id)
    with clock.travel(DAY), session_scope() as session:
        again = privacy_requests.close(session, session.get(PrivacyRequest, request.id),
                                       status=RequestStatus.REFUSED, outcome="changed my mind")
        assert again.outcome == "copy sent by mail"
    stored = _stored(request.id)
    assert (stored.status, stored.outcome, stored.closed_at) == (RequestStatus.DONE, "copy sent by mail",
                                                                 first.closed_at)


def test_a_request_cannot_be_closed_as_open():
    request = _log(contact="someone@example.org")
    with session_scope() as session, pytest.raises(RequestError, match="closed as done, refused or withdrawn"):
        privacy_requests.close(session, session.get(PrivacyRequest, request.id), status=RequestStatus.OPEN)
    assert _stored(request.id).status == RequestStatus.OPEN


# --- text that cannot be stored ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "message"), [
    ({"contact": ""}, "Say who made the request: an account or a contact address."),
    ({"contact": "ada\ud800@example.org"}, "Contact contains characters that are not valid text."),
    ({"contact": "ada@example.org\x00"}, "Contact contains the control character U+0000"),
    ({"contact": "line\nbreak"}, "Contact contains a line break"),
    ({"contact": "x" * 10_000}, "Contact is 10000 characters long; the limit is 254."),
    ({"contact": "ada@example.org", "note": "n" * 10_000}, "Note is 10000 characters long; the limit is 4000."),
    ({"contact": "ada@example.org", "note": "bell\x07"}, "Note contains the control character U+0007"),
])
def test_text_that_cannot_be_stored_is_refused_with_a_sentence(fields: dict[str, str], message: str):
    with session_scope() as session, pytest.raises(RequestError) as refused:
        privacy_requests.log(session, get_settings(), kind=RequestKind.COMPLAINT, source=RequestSource.MAIL,
                             **fields)
    assert str(refused.value).startswith(message)
    with session_scope() as session:
        assert session.exec(select(PrivacyRequest)).all() == []


def test_hostile_but_valid_text_is_kept_verbatim():
    text = "<script>alert(1)</script> {{ constructor }} \\x41 \"quoted\" \u202eevil"
    request = _log(contact=text, note=text + "\nsecond line")
    assert (_stored(request.id).contact, _stored(request.id).note) == (text, text + "\nsecond line")


# --- logging a mailed request (administrators) -------------------------------------------------------------------


def _log_mailed(actor: User, **fields: object) -> PrivacyRequest:
    values: dict[str, object] = {"kind": "rectification", "contact": "writer@example.org", "note": ""} | fields
    with session_scope() as session:
        return admin.log_mailed_request(session, get_settings(), actor, **values)  # type: ignore[arg-type]


def test_a_mailed_request_from_an_account_holder_is_linked_to_the_account():
    boss, member = _admin(), make_user(email="ada@example.com")
    request = _log_mailed(boss, contact="  ADA@example.com ", kind=RequestKind.ACCESS)
    stored = _stored(request.id)
    assert (stored.user_id, stored.contact, stored.source, stored.kind) == (member.id, "", RequestSource.MAIL,
                                                                            RequestKind.ACCESS)
    with session_scope() as session:
        [row] = admin.request_queue(session).later
    assert (row.who, row.label, row.source) == ("ada@example.com", "Copy of my data", "by mail")


def test_a_mailed_request_from_someone_without_an_account_keeps_the_contact():
    request = _log_mailed(_admin(), contact="Jo Bloggs, 1 High Street, Leeds", note="letter dated 3 March")
    stored = _stored(request.id)
    assert (stored.user_id, stored.contact, stored.note) == (None, "Jo Bloggs, 1 High Street, Leeds",
                                                             "letter dated 3 March")
    assert stored.due_at - stored.received_at == timedelta(days=30)


def test_a_request_received_days_ago_is_due_that_many_days_sooner(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_GDPR_RESPONSE_DAYS", "20")
    reset_settings()
    ten_days_ago = (clock.now() - timedelta(days=10)).date()
    request = _log_mailed(_admin(), received_on=ten_days_ago.isoformat())
    assert request.received_at.date() == ten_days_ago
    assert request.due_at - request.received_at == timedelta(days=20)
    assert _stored(request.id).due_at.date() == (clock.now() + timedelta(days=10)).date()
    with clock.travel(timedelta(days=4)):  # 6 days left
        assert _queue_ids()["due_soon"] == [request.id]


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": None}, "Choose the kind of request."),
    ({"kind": "bogus"}, "Choose the kind of request."),
    ({"contact": "   "}, "Enter who made the request"),
    ({"contact": "x" * 10_000}, "The contact address is 10000 characters long; the limit is 254."),
    ({"contact": "ada\ud800"}, "The contact address contains characters that are not valid text."),
    ({"note": "n" * 10_000}, "The note is 10000 characters long; the limit is 4000."),
    ({"received_on": "next tuesday"}, "Enter the day the request arrived as a date, like 2026-11-28."),
    ({"received_on": "9999-01-01"}, "The day the request arrived cannot be in the future."),
    ({"received_on": "2001-01-01"}, "The day the request arrived is more than a year ago; check the date."),
])
def test_bad_input_for_a_mailed_request_is_refused_with_a_sentence(fields: dict[str, object], message: str):
    with pytest.raises(admin.AdminError) as refused:
        _log_mailed(_admin(), **fields)
    assert str(refused.value).startswith(message)
    with session_scope() as session:
        assert session.exec(select(PrivacyRequest)).all() == []


def test_only_administrators_log_and_close_requests():
    member = make_user(email="member@example.com")
    with pytest.raises(admin.AdminError, match="Only administrators"):
        _log_mailed(member)
    request = _log(contact="someone@example.org")
    with session_scope() as session, pytest.raises(admin.AdminError, match="Only administrators"):
        admin.close_request(session, member, request.id, status="done", outcome="done")
    assert _stored(request.id).status == RequestStatus.OPEN


def test_closing_from_the_queue_needs_a_result_and_an_outcome_and_happens_once():
    boss = _admin()
    request = _log(contact="someone@example.org")
    for status, outcome, message in (("open", "x", "Choose how the request ended"),
                                     ("", "x", "Choose how the request ended"),
                                     ("refused", "  ", "Describe the outcome"),
                                     ("refused", "o" * 501, "The outcome is 501 characters long; the limit is 500.")):
        with session_scope() as session, pytest.raises(admin.AdminError, match=message):
            admin.close_request(session, boss, request.id, status=status, outcome=outcome)
    with session_scope() as session:
        admin.close_request(session, boss, request.id, status="refused", outcome="Manifestly unfounded: see note.")
    with session_scope() as session, pytest.raises(admin.AdminError, match=r"already closed \(refused\)"):
        admin.close_request(session, boss, request.id, status="done", outcome="again")
    with session_scope() as session, pytest.raises(admin.AdminError, match="no longer exists"):
        admin.close_request(session, boss, uuid.uuid4(), status="done", outcome="x")
    stored = _stored(request.id)
    assert (stored.status, stored.outcome) == (RequestStatus.REFUSED, "Manifestly unfounded: see note.")
    with session_scope() as session:
        [row] = admin.request_queue(session).recently_closed
    assert (row.status, row.outcome, row.who) == (RequestStatus.REFUSED, "Manifestly unfounded: see note.",
                                                  "someone@example.org")


# --- Erase now ---------------------------------------------------------------------------------------------------


def _erase(actor: User, account: User, typed: str, reason: str = "under-age") -> ErasureRecord:
    settings = get_settings()
    with session_scope() as session:
        return admin.erase_account_now(session, settings, LocalStorage.from_settings(settings), actor, account.id,
                                       typed_email=typed, reason=reason)


def _account_exists(account_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return session.get(User, account_id) is not None


def test_erase_now_needs_the_accounts_address_typed_and_is_not_for_yourself():
    boss, minor = _admin(), make_user(email="minor@example.com")
    for actor, account, typed, reason, message in (
            (boss, minor, "someone-else@example.com", "under-age", "not this account's e-mail address"),
            (boss, minor, "", "under-age", "not this account's e-mail address"),
            (boss, minor, "minor@example.com", "because", "Choose why the account is erased."),
            (boss, boss, boss.email, "administrator", "cannot erase your own account here"),
            (minor, boss, boss.email, "administrator", "Only administrators")):
        with pytest.raises(admin.AdminError, match=message):
            _erase(actor, account, typed, reason)
    assert _account_exists(minor.id) and _account_exists(boss.id)


def test_erase_now_removes_the_account_at_once_and_leaves_an_anonymous_trace():
    boss, minor = _admin(), make_user(email="minor@example.com", full_name="Young Person")
    mailed = _log_mailed(boss, contact="minor@example.com", kind="objection")
    record = _erase(boss, minor, " Minor@Example.com ")
    assert record.reason == "under-age"
    assert not _account_exists(minor.id)
    with session_scope() as session:
        assert [r.reason for r in session.exec(select(ErasureRecord)).all()] == ["under-age"]
        queue = admin.request_queue(session)
    # The erasure itself (logged by an administrator) and the mailed objection are closed, and name nobody now.
    assert queue.open_count == 0
    assert {(row.kind, row.who) for row in queue.recently_closed} == {(RequestKind.ERASURE, admin.ERASED),
                                                                      (RequestKind.OBJECTION, admin.ERASED)}
    assert _stored(mailed.id).user_id is None


def test_accounts_waiting_out_their_grace_period_are_listed_soonest_first():
    later, sooner, _ = make_user(email="later@example.com"), make_user(email="sooner@example.com"), make_user()
    with session_scope() as session:
        for account, days in ((later, 20), (sooner, 3)):
            stored = session.get(User, account.id)
            stored.deletion_requested_at, stored.deletion_due_at = clock.now(), clock.now() + timedelta(days=days)
            session.add(stored)
    with session_scope() as session:
        assert [user.email for user in admin.overview(session).pending_deletion] == ["sooner@example.com",
                                                                                    "later@example.com"]


# --- the daily reminder ------------------------------------------------------------------------------------------


def test_the_reminder_job_is_registered_daily():
    assert jobs.get("remind_privacy_requests").interval(get_settings()) == timedelta(days=1)


def test_no_reminder_when_nothing_is_due_soon():
    _admin()
    _log(contact="someone@example.org")  # due in 30 days
    run = jobs.run("remind_privacy_requests")
    assert (run.status, run.detail) == (JobRunStatus.SUCCEEDED, "no requests due")
    assert _reminders() == []


def test_the_reminder_mails_each_administrator_once_about_every_request_due_within_a_week():
    first, second = _admin("first@example.com"), _admin("second@example.com")
    make_user(email="member@example.com")  # not an administrator: no mail
    _admin("gone@example.com")
    with session_scope() as session:  # a deactivated administrator gets no work notices
        gone = session.exec(select(User).where(User.email == "gone@example.com")).one()
        gone.is_active = False
        session.add(gone)
    soon = _log(kind=RequestKind.OBJECTION, contact="private-person@example.org")
    with clock.travel(timedelta(days=10)):
        later = _log(kind=RequestKind.COMPLAINT, contact="other@example.org")
    with clock.travel(timedelta(days=10)):
        _log(kind=RequestKind.RECTIFICATION, contact="third@example.org")  # closed: never reminded
        with session_scope() as session:
            [third] = session.exec(select(PrivacyRequest).where(PrivacyRequest.contact == "third@example.org")).all()
            privacy_requests.close(session, third, outcome="corrected")

    with clock.travel(timedelta(days=22)):  # nothing within a week yet: 8 days left for the first
        assert jobs.run("remind_privacy_requests").detail == "no requests due"
    with clock.travel(timedelta(days=31)):  # the first is overdue, the second due in 9 days
        run = jobs.run("remind_privacy_requests")
    assert (run.status, run.detail) == (JobRunStatus.SUCCEEDED, "1 request due; mailed 2 administrators")
    with clock.travel(timedelta(days=36)):  # the first overdue, the second due in 4 days
        jobs.run("remind_privacy_requests")

    messages = _reminders()
    assert [m.recipient for m in messages] == ["first@example.com", "second@example.com"] * 2
    assert {m.user_id for m in messages} == {first.id, second.id}
    last = messages[-1]
    assert last.subject == "2 data-protection requests to answer"
    assert "Overdue:" in last.text_body and "Objection (by mail)" in last.text_body
    assert "Due within 7 days:" in last.text_body and "Complaint (by mail)" in last.text_body
    assert "6 days overdue" in last.text_body and "due in 4 days" in last.text_body
    assert f"due {later.due_at:%Y-%m-%d}" in last.text_body and f"due {soon.due_at:%Y-%m-%d}" in last.text_body
    assert "Rectification" not in last.text_body
    assert "/admin#privacy-requests" in last.text_body
    # Who asked stays out of mailboxes: the queue behind the link shows it.
    assert not any("private-person" in m.text_body or "private-person" in m.html_body for m in messages)
