"""The app shell: frame, placeholders, legal pages, cookie notice, analytics tag, health."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User, UserInteraction
from sqlmodel import select

from components.cookie_notice import CookieNotice
from rupali import clock
from rupali.db import session_scope
from rupali.models import CookieConsent
from tests.utils import cookie_notice
from tests.utils.factories import make_user
from tests.utils.links import link_lists, links, press
from tests.utils.signin import sign_in
from tests.utils.tiles import of_kind

NAVIGATION = ["Studio", "Gallery", "Privacy"]  # Billing only when billing is on (tests/pages/test_billing_page.py)
FOOTER = ["Privacy Policy", "Cookie Policy", "Terms", "Sub-processors", "Cookie settings", "support@rupali.ai"]


async def test_home_has_navigation_and_legal_footer(user: User):
    await user.open("/")
    await user.should_see("Make images. Keep them yours.")
    assert set(NAVIGATION + FOOTER) <= set(links(user)), links(user)


async def test_with_billing_off_nothing_about_money_is_shown(user: User):
    account = make_user()
    await sign_in(user, account.email)
    await user.open("/studio")
    await user.should_see("Generate")
    assert "Studio" in links(user) and "Billing" not in links(user)
    await user.open("/billing")  # an old bookmark
    await user.should_see("Image generation is free on this installation")
    for word in ("credit", "Buy", "VAT", "Creem", "receipt"):
        await user.should_not_see(word)


async def test_navigation_links_lead_to_their_pages(user: User):
    await user.open("/")
    await user.should_see("Make images. Keep them yours.")
    targets = links(user)
    assert targets["Gallery"] == "/gallery" and targets["Terms"] == "/legal/terms"


@pytest.mark.parametrize(("slug", "title"), [
    ("privacy", "Privacy Policy"), ("cookies", "Cookie Policy"), ("terms", "Terms of Service"),
    ("subprocessors", "Sub-processors")])
async def test_legal_pages_show_version_and_effective_date(user: User, slug: str, title: str):
    await user.open(f"/legal/{slug}")
    await user.should_see(title)
    await user.should_see("Version 1.0-")
    await user.should_see("effective ")


async def test_privacy_policy_renders_the_enforced_retention_table(user: User):
    await user.open("/legal/privacy")
    markdown = "\n".join(element.content for element in user.find(ui.markdown).elements)
    for row in ("Until account deletion + 30 days", "7 years", "90 days", "365 days"):
        assert row in markdown


async def test_operator_details_come_from_configuration(user: User, monkeypatch):
    monkeypatch.setenv("RUPALI_OPERATOR_NAME", "Example ApS")
    monkeypatch.setenv("RUPALI_OPERATOR_EMAIL", "dpo@example.dk")
    from rupali.config import reset_settings

    reset_settings()
    await user.open("/legal/privacy")
    await user.should_see("dpo@example.dk")
    markdown = "\n".join(element.content for element in user.find(ui.markdown).elements)
    assert "**Example ApS**" in markdown


async def test_cookie_notice_is_acknowledged_once_and_returns_after_a_year(user: User):
    await user.open("/")
    await user.should_see("Essential cookies only")
    await user.should_see("OK, got it")
    cookie_notice.acknowledge(user)
    await user.should_not_see("Essential cookies only", retries=50)
    with session_scope() as session:
        consent = session.exec(select(CookieConsent)).one()
    assert consent.analytics and consent.policy_version.startswith("1.0-")
    assert consent.expires_at - consent.created_at == timedelta(days=365)

    await user.open("/gallery")
    await user.should_not_see("Essential cookies only")
    with clock.travel(timedelta(days=366)):
        await user.open("/")
        await user.should_see("Essential cookies only")


async def test_the_cookie_notice_records_only_what_it_offers(user: User):
    await user.open("/")
    [notice] = of_kind(user, CookieNotice)
    for hostile in ({}, {"analytics": "false"}, {"analytics": None}, {"analytics": 0}, ["x"], "\ud800"):
        UserInteraction(user, {notice}, None).trigger("acknowledge", hostile)
    await asyncio.sleep(0.2)
    await user.should_see("Essential cookies only")  # still asked: nothing it sends was received
    with session_scope() as session:
        assert session.exec(select(CookieConsent)).all() == []
    # Statistics not offered on this installation: a "no" to them is not a choice the notice offered.
    cookie_notice.acknowledge(user, analytics=False)
    await user.should_not_see("Essential cookies only", retries=50)
    with session_scope() as session:
        assert session.exec(select(CookieConsent.analytics)).all() == [True]


async def test_analytics_tag_only_when_configured_and_allowed(user: User, monkeypatch):
    await user.open("/")
    assert "data-website-id" not in _head_html(user)

    monkeypatch.setenv("RUPALI_UMAMI_WEBSITE_ID", "5b2f6a2e-0000-4000-8000-000000000001")
    monkeypatch.setenv("RUPALI_UMAMI_SCRIPT_URL", "https://stats.example/script.js")
    from rupali.config import reset_settings

    reset_settings()
    await user.open("/")
    head = _head_html(user)
    assert 'src="https://stats.example/script.js"' in head and 'data-do-not-track="true"' in head

    await user.should_see("Cookie-less usage statistics (Umami)")
    cookie_notice.acknowledge(user, analytics=False)  # with the statistics switched off
    await user.should_not_see("Essential cookies only", retries=50)
    await user.open("/")
    assert "data-website-id" not in _head_html(user)


async def test_health_reports_database_scheduler_and_version(user: User):
    # The only instance on its database takes the scheduler lease at its first check, right after start.
    for _ in range(50):
        response = await user.http_client.get("/healthz")
        if response.json()["scheduler_leader"]:
            break
        await asyncio.sleep(0.1)
    assert response.status_code == 200
    # The version declared for the package, read independently of the code that reports it.
    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
    body = response.json()
    providers = body.pop("providers")
    assert list(providers) == ["offline"] and providers["offline"]["reachable"] is True
    assert body == {"status": "ok", "database": True, "scheduler": True, "scheduler_leader": True, "version": declared,
                    "queue": {"waiting": 0, "running": 0, "concurrency": 2}}


async def test_unknown_page_is_a_404_not_an_error(user: User):
    anonymous = await user.http_client.get("/no-such-page")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/signin?next=%2Fno-such-page"
    await sign_in(user, make_user().email)
    assert (await user.http_client.get("/no-such-page")).status_code == 404


def _head_html(user: User) -> str:
    # What the page adds to <head>, as the browser receives it.
    return user.client._head_html


async def test_the_footer_runs_only_the_actions_it_offers(user: User):
    await user.open("/legal/terms")
    [footer] = [lst for lst in link_lists(user) if lst.props["label"] == "Legal"]
    for hostile in ({"action": "delete-everything"}, {"action": None}, {}, {"action": "cookie-settings\x00"}):
        UserInteraction(user, {footer}, None).trigger("action", hostile)
    await user.should_not_see("Cookie-less usage statistics")
    await user.should_not_see("There is nothing to switch off there", retries=3)
    press(user, "Cookie settings")
    await user.should_see("There is nothing to switch off there", retries=50)
