"""The privacy center, the unsubscribe page and one-click POST, the policy-change notice and cookie settings."""

from __future__ import annotations

from datetime import timedelta

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali import clock, legal
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import ConsentEvent, ConsentKind, CookieConsent, PolicyAcceptance, PrivacyRequest, RequestKind
from rupali.models import User as Account
from rupali.privacy import inventory
from rupali.privacy.inventory import Subject
from rupali.services import preferences, privacy_requests
from tests.utils import cookie_notice
from tests.utils.factories import make_user
from tests.utils.links import press
from tests.utils.signin import sign_in, wait_for_page


async def test_privacy_center_lists_every_declared_kind_of_data_with_counts_and_rules(user: User):
    person = make_user(full_name="Grace Hopper")
    await sign_in(user, person.email)
    await user.open("/privacy")
    await user.should_see("What Rupali holds about you")
    # Every USER table of the inventory is shown by its own description: a new declaration appears by itself.
    # Billing is off (the default): records only billing fills are left out while they hold nothing.
    for entry in inventory.entries():
        if entry.declaration.subject is Subject.USER:
            if legal.applies(get_settings(), entry):
                await user.should_see(entry.declaration.holds)
            else:
                await user.should_not_see(entry.declaration.holds)
    for word in ("credit", "order", "VAT"):
        await user.should_not_see(word)
    await user.should_see("Each record is deleted automatically 90 days after it was made.")  # technical logs
    await user.should_see("Download my data")
    await user.should_see("Delete my account")
    await user.should_see("Complain to the supervisory authority")


async def test_preference_switches_save_and_log_and_statistics_off_removes_the_tracker(user: User, monkeypatch):
    monkeypatch.setenv("RUPALI_UMAMI_WEBSITE_ID", "5b2f6a2e-0000-4000-8000-000000000001")
    monkeypatch.setenv("RUPALI_UMAMI_SCRIPT_URL", "https://stats.example/script.js")
    reset_settings()
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/privacy")
    assert "data-website-id" in user.client._head_html  # on by default (legitimate interest)
    cookie_notice.acknowledge(user)  # the visitor's cookie notice, with its own statistics switch (left on)
    await user.should_not_see("Essential cookies only", retries=50)
    user.find(kind=ui.switch, content="Product updates by e-mail").click()
    await user.should_see("Product updates by e-mail: on. Saved.", retries=50)
    user.find(kind=ui.switch, content="Cookie-less usage statistics").click()
    await user.should_see("Cookie-less usage statistics: off. Saved.", retries=50)
    with session_scope() as session:
        stored = session.get(Account, person.id)
        assert (stored.product_updates, stored.analytics, stored.marketing_emails) == (True, False, False)
        sources = session.exec(select(ConsentEvent.kind, ConsentEvent.granted, ConsentEvent.source).where(
            ConsentEvent.user_id == person.id, ConsentEvent.source == "privacy-center")).all()
    assert sorted(sources) == [(ConsentKind.ANALYTICS, False, "privacy-center"),
                               (ConsentKind.PRODUCT_UPDATES, True, "privacy-center")]
    await user.open("/gallery")
    assert "data-website-id" not in user.client._head_html
    await user.open("/privacy")
    await user.should_see("Objection")  # the switch-off is in "My requests"


async def test_my_requests_show_due_dates_and_only_my_own(user: User):
    person, other = make_user(), make_user()
    with session_scope() as session:
        privacy_requests.log(session, get_settings(), kind=RequestKind.RECTIFICATION, user_id=person.id)
        privacy_requests.log(session, get_settings(), kind=RequestKind.COMPLAINT, user_id=other.id)
    await sign_in(user, person.email)
    await user.open("/privacy")
    await user.should_see("Correct my data")
    await user.should_not_see("Complaint")
    await user.should_see("Open")


async def test_unsubscribe_page_needs_one_click_and_no_sign_in(user: User):
    person = make_user()
    with session_scope() as session:
        preferences.set_preference(session, get_settings(), session.get(Account, person.id),
                                   ConsentKind.MARKETING, True, source="test")
    token = preferences.unsubscribe_token(get_settings(), person.id, ConsentKind.MARKETING)
    await user.open(f"/unsubscribe?t={token}")  # a GET changes nothing: mail scanners follow links
    await user.should_see(f"Stop offers and news by e-mail to {person.email}?")
    with session_scope() as session:
        assert session.get(Account, person.id).marketing_emails is True
    user.find(kind=ui.button, content="Unsubscribe").click()
    await user.should_see("Done: no more offers and news by e-mail.", retries=50)
    with session_scope() as session:
        assert session.get(Account, person.id).marketing_emails is False


async def test_unsubscribe_page_with_a_broken_link_explains_itself(user: User):
    await user.open("/unsubscribe?t=not-a-real-token")
    await user.should_see("This link does not work")


async def test_one_click_post_without_a_session_and_forged_links_refused(user: User):
    person = make_user()
    with session_scope() as session:
        preferences.set_preference(session, get_settings(), session.get(Account, person.id),
                                   ConsentKind.PRODUCT_UPDATES, True, source="test")
    token = preferences.unsubscribe_token(get_settings(), person.id, ConsentKind.PRODUCT_UPDATES)
    body = {"content": b"List-Unsubscribe=One-Click",
            "headers": {"content-type": "application/x-www-form-urlencoded"}}
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (await user.http_client.post(f"/unsubscribe?t={forged}", **body)).status_code == 400
    assert (await user.http_client.post(f"/unsubscribe?t={token}", content=b"")).status_code == 400
    with session_scope() as session:
        assert session.get(Account, person.id).product_updates is True
    response = await user.http_client.post(f"/unsubscribe?t={token}", **body)
    assert response.status_code == 200 and "Unsubscribed" in response.text
    with session_scope() as session:
        assert session.get(Account, person.id).product_updates is False
        event = session.exec(select(ConsentEvent).where(ConsentEvent.user_id == person.id,
                                                        ConsentEvent.source == "one-click")).one()
        assert event.granted is False


async def test_a_changed_policy_must_be_accepted_before_going_on(user: User, monkeypatch):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/gallery")
    await user.should_see("Gallery")
    monkeypatch.setenv("RUPALI_RETENTION_TECHNICAL_LOG_DAYS", "60")  # the privacy policy's text changes with it
    reset_settings()
    response = await user.http_client.get("/gallery", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/policy-update?next=%2Fgallery"
    assert (await user.http_client.get("/privacy", follow_redirects=False)).status_code == 200  # can still leave
    await user.open("/policy-update?next=/gallery")
    await user.should_see("We updated our policies")
    await user.should_see("Privacy Policy, in force since")
    user.find(kind=ui.button, content="Accept and continue").click()
    await wait_for_page(user, lambda path: path == "/gallery")
    assert (await user.http_client.get("/gallery", follow_redirects=False)).status_code == 200
    with session_scope() as session:
        versions = session.exec(select(PolicyAcceptance.version).where(PolicyAcceptance.user_id == person.id,
                                                                      PolicyAcceptance.document == "privacy")).all()
        logged = session.exec(select(ConsentEvent).where(ConsentEvent.user_id == person.id,
                                                         ConsentEvent.source == "policy-update")).all()
    assert len(set(versions)) == 2 and [event.kind for event in logged] == [ConsentKind.PRIVACY]


async def test_visitors_change_statistics_any_time_from_the_footer(user: User, monkeypatch):
    monkeypatch.setenv("RUPALI_UMAMI_WEBSITE_ID", "5b2f6a2e-0000-4000-8000-000000000001")
    monkeypatch.setenv("RUPALI_UMAMI_SCRIPT_URL", "https://stats.example/script.js")
    reset_settings()
    await user.open("/")
    cookie_notice.acknowledge(user)  # acknowledged with statistics on
    await user.should_not_see("Essential cookies only", retries=50)
    await user.open("/legal/terms")
    assert "data-website-id" in user.client._head_html
    press(user, "Cookie settings")  # the footer's button
    user.find(kind=ui.switch, content="Cookie-less usage statistics (Umami)").click()
    user.find(kind=ui.button, content="Save").click()
    await user.should_see("Your cookie settings were saved.", retries=50)
    await user.open("/legal/terms")
    assert "data-website-id" not in user.client._head_html
    with session_scope() as session:
        choices = session.exec(select(CookieConsent.analytics).order_by(CookieConsent.id)).all()
    assert choices == [True, False]


async def test_requests_past_their_due_date_show_as_overdue(user: User):
    person = make_user()
    with session_scope() as session:
        privacy_requests.log(session, get_settings(), kind=RequestKind.RESTRICTION, user_id=person.id)
    with clock.travel(timedelta(days=31)):
        await sign_in(user, person.email)
        await user.open("/privacy")
        await user.should_see("Overdue")
    with session_scope() as session:
        assert session.exec(select(PrivacyRequest)).one().due_at.tzinfo is not None


async def test_download_my_data_from_the_page_shows_progress_then_a_link_only_the_owner_can_use(user: User):
    import asyncio
    import io
    import json
    import zipfile

    person = make_user(email="owner@example.com")
    await sign_in(user, person.email)
    await user.open("/privacy")
    user.find(kind=ui.button, content="Prepare my download").click()
    for _ in range(250):  # the build runs in a worker thread; the page polls its progress
        await asyncio.sleep(0.04)
        try:
            await user.should_see("Your download is ready", retries=1)
            break
        except AssertionError:
            continue
    await user.should_see("Download my data (ZIP)")
    link = next(element for element in user.find(kind=ui.link).elements if element.text == "Download my data (ZIP)")
    response = await user.http_client.get(link.props["href"])
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert "README.txt" in archive.namelist()
    users_json = json.loads(archive.read("data/user.json"))
    assert [row["email"] for row in users_json] == ["owner@example.com"]
    await user.should_see("You can ask for a fresh one from")  # one a day

    stranger = make_user(email="stranger@example.com")
    user.http_client.cookies.clear()
    await sign_in(user, stranger.email)
    assert (await user.http_client.get(link.props["href"])).status_code == 404


async def test_delete_my_account_asks_for_the_password_then_schedules_and_signs_out(user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/privacy")
    user.find(kind=ui.button, content="Delete account…").click()
    user.find(kind=ui.input, content="Your password").type("not my password")
    user.find(kind=ui.button, content="Delete my account").click()
    await user.should_see("That is not your password. Your account was not changed.", retries=100)
    with session_scope() as session:
        assert session.get(Account, person.id).deletion_requested_at is None
    user.find(kind=ui.input, content="Your password").clear().type("correct horse battery staple")
    user.find(kind=ui.button, content="Delete my account").click()
    await user.should_see("Your account is scheduled for deletion", retries=100)
    with session_scope() as session:
        stored = session.get(Account, person.id)
        assert stored.deletion_requested_at is not None and stored.deletion_due_at > stored.deletion_requested_at
        assert session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id == person.id,
                                                         PrivacyRequest.kind == RequestKind.ERASURE)).one()
