"""Consents and e-mail preferences: defaults, the consent log, withdrawals as requests, signed one-click links."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from rupali import jobs, legal
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.mail_templates import verify_email
from rupali.models import (
    ConsentEvent,
    ConsentKind,
    MailKind,
    OutboxMessage,
    PrivacyRequest,
    RequestKind,
    RequestStatus,
    User,
)
from rupali.services import mail, preferences
from tests.utils.factories import make_user


def _set(user_id, kind: ConsentKind, granted: bool, source: str = "privacy-center") -> bool:
    with session_scope() as session:
        return preferences.set_preference(session, get_settings(), session.get(User, user_id), kind, granted,
                                          source=source)


def _events(user_id) -> list[ConsentEvent]:
    with session_scope() as session:
        return list(session.exec(select(ConsentEvent).where(ConsentEvent.user_id == user_id)
                                 .order_by(ConsentEvent.id)).all())


def _token(user_id, kind: ConsentKind = ConsentKind.PRODUCT_UPDATES) -> str:
    return preferences.unsubscribe_token(get_settings(), user_id, kind)


def test_mailing_lists_are_off_and_statistics_on_by_default_and_sign_up_is_in_the_consent_log():
    person = make_user()
    assert preferences.current(person) == {ConsentKind.ANALYTICS: True, ConsentKind.PRODUCT_UPDATES: False,
                                           ConsentKind.MARKETING: False}
    logged = {(event.kind, event.granted) for event in _events(person.id)}
    assert logged == {(ConsentKind.AGE, True), (ConsentKind.TERMS, True), (ConsentKind.PRIVACY, True)}


def test_every_change_is_logged_with_time_policy_version_and_source_and_withdrawals_are_requests():
    person = make_user()
    assert _set(person.id, ConsentKind.PRODUCT_UPDATES, True)
    assert not _set(person.id, ConsentKind.PRODUCT_UPDATES, True)  # no change, nothing logged
    assert _set(person.id, ConsentKind.PRODUCT_UPDATES, False, source="unsubscribe-link")
    assert _set(person.id, ConsentKind.ANALYTICS, False)
    changes = [event for event in _events(person.id) if event.kind not in (ConsentKind.AGE, ConsentKind.TERMS,
                                                                          ConsentKind.PRIVACY)]
    version = legal.document("privacy", get_settings()).version
    assert [(e.kind, e.granted, e.source) for e in changes] == [
        (ConsentKind.PRODUCT_UPDATES, True, "privacy-center"),
        (ConsentKind.PRODUCT_UPDATES, False, "unsubscribe-link"),
        (ConsentKind.ANALYTICS, False, "privacy-center")]
    assert all(e.policy_version == version and e.at.tzinfo is not None for e in changes)
    with session_scope() as session:
        stored = session.get(User, person.id)
        assert (stored.product_updates, stored.analytics) == (False, False)
        requests = session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id == person.id)).all()
    # Switching off is a request answered on the spot: a consent withdrawal, and an objection for statistics.
    assert sorted((r.kind, r.status) for r in requests) == [
        (RequestKind.CONSENT_WITHDRAWAL, RequestStatus.DONE), (RequestKind.OBJECTION, RequestStatus.DONE)]
    assert all(r.closed_at is not None and r.outcome for r in requests)


def test_one_click_unsubscribe_switches_the_topic_off_and_is_idempotent():
    person = make_user()
    _set(person.id, ConsentKind.PRODUCT_UPDATES, True)
    _set(person.id, ConsentKind.MARKETING, True)
    with session_scope() as session:
        first = preferences.unsubscribe(session, get_settings(), _token(person.id))
        second = preferences.unsubscribe(session, get_settings(), _token(person.id))
    assert (first.changed, second.changed) == (True, False)
    with session_scope() as session:
        stored = session.get(User, person.id)
        assert (stored.product_updates, stored.marketing_emails) == (False, True)  # only the link's topic


@pytest.mark.parametrize("forge", ["empty", "altered topic", "other secret", "garbage", "analytics"])
def test_a_forged_or_altered_link_is_refused(forge, monkeypatch):
    person = make_user()
    _set(person.id, ConsentKind.MARKETING, True)
    token = _token(person.id, ConsentKind.MARKETING)
    if forge == "empty":
        token = ""
    elif forge == "altered topic":
        _payload, _, signature = token.rpartition(".")
        token = _token(person.id, ConsentKind.PRODUCT_UPDATES).rpartition(".")[0] + "." + signature
    elif forge == "other secret":
        from itsdangerous import URLSafeSerializer

        token = URLSafeSerializer("x" * 40, salt="rupali-unsubscribe-v1").dumps([str(person.id), "marketing"])
    elif forge == "garbage":
        token = "\x00'\"\\<script>" * 10
    elif forge == "analytics":  # validly signed, but statistics are not a mailing list
        token = _token(person.id, ConsentKind.ANALYTICS)
    with session_scope() as session, pytest.raises(preferences.InvalidLink):
        preferences.unsubscribe(session, get_settings(), token)
    with session_scope() as session:
        assert session.get(User, person.id).marketing_emails is True


def test_non_transactional_mail_goes_only_to_people_who_opted_in_and_carries_its_link():
    keen = make_user(email="keen@example.com")
    make_user(email="quiet@example.com")
    _set(keen.id, ConsentKind.PRODUCT_UPDATES, True)
    with session_scope() as session:
        queued = preferences.enqueue_newsletter(session, get_settings(), MailKind.PRODUCT, subject="New: styles",
                                                text="We added styles.\n\nEnjoy.")
    assert queued == 1
    with session_scope() as session:
        messages = session.exec(select(OutboxMessage).where(OutboxMessage.kind == MailKind.PRODUCT)).all()
    assert [m.recipient for m in messages] == ["keen@example.com"]
    link = urlsplit(messages[0].unsubscribe_url)
    assert link.path == "/unsubscribe" and messages[0].unsubscribe_url in messages[0].text_body
    with session_scope() as session:
        preferences.unsubscribe(session, get_settings(), parse_qs(link.query)["t"][0])
        assert preferences.enqueue_newsletter(session, get_settings(), MailKind.PRODUCT, subject="s", text="t") == 0


def test_non_transactional_mail_without_an_unsubscribe_link_is_refused():
    with session_scope() as session, pytest.raises(ValueError, match="unsubscribe"):
        mail.enqueue(session, to="a@example.com", kind=MailKind.MARKETING, mail=verify_email("A", "https://x", 1))


def test_delivered_mail_carries_rfc_8058_headers_and_transactional_mail_does_not(inbox):
    keen = make_user(email="keen@example.com")
    _set(keen.id, ConsentKind.MARKETING, True)
    with session_scope() as session:
        preferences.enqueue_newsletter(session, get_settings(), MailKind.MARKETING, subject="Offer", text="Hi")
        mail.enqueue(session, to="keen@example.com", mail=verify_email("K", "https://x.test/verify?token=t", 48))
    assert jobs.run("deliver_mail").detail.startswith("2 sent")
    offer, notice = sorted(inbox.to("keen@example.com"), key=lambda m: m["Subject"] != "Offer")
    assert offer["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert offer["List-Unsubscribe"].startswith("<http") and "/unsubscribe?t=" in offer["List-Unsubscribe"]
    assert notice["List-Unsubscribe"] is None


def test_corrections_of_name_and_address_are_logged_as_rectification_requests():
    from rupali.services import accounts

    person = make_user(full_name="Ada Lovelace")
    with session_scope() as session:
        accounts.rename(session, session.get(User, person.id), "Ada Lovelace")  # unchanged: nothing to log
        accounts.rename(session, session.get(User, person.id), "Ada King")
        logged = session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id == person.id)).all()
    assert [(r.kind, r.status, r.outcome) for r in logged] == [
        (RequestKind.RECTIFICATION, RequestStatus.DONE, "Name corrected on the account page")]
