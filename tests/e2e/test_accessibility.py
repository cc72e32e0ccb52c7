"""Real browser: every page and state passes axe-core's WCAG 2.2 A/AA rules with no serious or critical violation,
in light and dark (emulated ``prefers-color-scheme``), on a 1366x768 laptop and a 390x844 phone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from rupali.clock import now
from rupali.config import reset_settings
from rupali.db import session_scope
from rupali.models import CreditOrder, OrderStatus, Role
from rupali.models import User as Account
from tests.e2e import axe
from tests.e2e.helpers import acknowledge_cookie_notice, click, evidence_on_failure, sign_in, sign_out, wait
from tests.services.test_gallery import add_generation
from tests.utils.factories import PASSWORD, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]  # about the pages, not the database

SIZES = {"laptop": (1366, 768), "phone": (390, 844)}
PACKS = ('[{"key": "starter", "product_id": "prod_starter", "credits": 500, "price_cents": 500, "currency": "EUR", '
         '"label": "Starter"}, {"key": "studio", "product_id": "prod_studio", "credits": 2500, "price_cents": 2000, '
         '"currency": "EUR", "label": "Studio"}]')


@pytest.fixture(autouse=True)
def billing_with_creem(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages with everything billing shows (packs, VAT number, orders, chart, ledger, the admin's panel)."""
    for name, value in (("RUPALI_BILLING", "creem"), ("RUPALI_CREEM_API_KEY", "creem_test_key"),
                        ("RUPALI_CREEM_WEBHOOK_SECRET", "whsec_test"), ("RUPALI_CREDIT_PACKS", PACKS),
                        ("RUPALI_CREEM_API_URL", "http://127.0.0.1:9/v1")):
        monkeypatch.setenv(name, value)
    reset_settings()
Step = Callable[[WebDriver], None]


def _open_source_image(browser: WebDriver) -> None:
    click(browser, (By.XPATH, "//*[contains(@class, 'q-expansion-item')]"
                              "//*[normalize-space()='Start from an image (optional)']"))
    wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-drop")))


def _open_detail(browser: WebDriver) -> None:
    wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail-picture")))


def _ready(browser: WebDriver) -> None:
    """The page is built, connected and still (Quasar's transitions would show colours halfway)."""
    wait(browser).until(lambda driver: driver.execute_script(
        "return document.readyState === 'complete' && !!window.socket && window.socket.connected"))
    time.sleep(0.4)


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_passes_axe(live_server: str, browser: WebDriver, tmp_path: Path, theme: str, size: str) -> None:
    axe.source()  # fetch (or skip) before anything else happens
    admin = make_user(email="admin.a11y@example.com", role=Role.ADMIN)
    for index in range(3):
        add_generation(admin, f"a lighthouse number {index}", images=2)
    with session_scope() as session:  # an order with its receipt, and a flagged one for the admin's panel
        for status in (OrderStatus.PAID, OrderStatus.FLAGGED):
            session.add(CreditOrder(user_id=admin.id, pack_key="starter", product_id="prod_starter", label="Starter",
                                    credits=500, amount=500, currency="EUR", status=status, paid_at=now(),
                                    flag_reason="paid 4.00 EUR, expected 5.00 EUR" if status == "flagged" else ""))
    newcomer = make_user(email="new.a11y@example.com")  # an empty studio and gallery
    unconfirmed = make_user(email="unconfirmed.a11y@example.com", onboarded=False)
    with session_scope() as session:  # address confirmed, age and policies not yet: the welcome page
        record = session.get(Account, unconfirmed.id)
        record.email_verified_at = now()
        session.add(record)
    browser.set_window_size(*SIZES[size])
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": theme}]})
    failures: dict[str, str] = {}

    def scan(name: str, path: str | None = None, step: Step | None = None) -> None:
        if path is not None:
            browser.get(live_server + path)
        _ready(browser)
        if step is not None:
            step(browser)
            time.sleep(0.4)
        dark = browser.execute_script("return document.body.classList.contains('body--dark')")
        assert dark == (theme == "dark"), f"{name}: the page did not follow the {theme} theme"
        if found := axe.violations(browser):
            failures[name] = axe.describe(found)
            browser.save_screenshot(str(tmp_path / f"{name.replace(' ', '-').replace('/', '')}.png"))

    with evidence_on_failure(browser, tmp_path):
        scan("home with the cookie notice", "/")
        acknowledge_cookie_notice(browser)
        for name, path in (("home", "/"), ("sign-up", "/signup"), ("sign-in", "/signin"), ("forgot", "/forgot"),
                           ("reset, stale link", "/reset?token=stale"),
                           ("confirm e-mail, stale link", "/confirm-email?token=x"), ("check an image", "/verify"),
                           ("privacy policy", "/legal/privacy"), ("cookie policy", "/legal/cookies"),
                           ("terms", "/legal/terms"), ("sub-processors", "/legal/subprocessors")):
            scan(name, path)

        sign_in(browser, live_server, newcomer.email, PASSWORD, first_visit=False)
        scan("studio, empty", "/studio")
        scan("studio, source image open", "/studio", _open_source_image)
        scan("gallery, empty", "/gallery")
        sign_out(browser, live_server)

        sign_in(browser, live_server, admin.email, PASSWORD, first_visit=False)
        scan("studio with results", "/studio")
        scan("gallery", "/gallery")
        first = browser.find_element(By.CSS_SELECTOR, ".r-gallery-grid button.r-tile-open")
        first.click()
        scan("gallery detail", None, _open_detail)
        for name, path in (("history", "/history"), ("account", "/account"), ("admin", "/admin"),
                           ("billing", "/billing"), ("privacy center", "/privacy")):
            scan(name, path)
        sign_out(browser, live_server)

        browser.get(f"{live_server}/signin")
        for label, text in (("E-mail address", unconfirmed.email), ("Password", PASSWORD)):
            browser.find_element(By.XPATH, f"//label[.//div[contains(@class, 'q-field__label') and "
                                           f"normalize-space()='{label}']]//input").send_keys(text)
        click(browser, (By.XPATH, "//button[normalize-space()='Sign in']"))
        wait(browser).until(EC.url_to_be(live_server + "/welcome"))
        scan("welcome", None)

    report = "\n\n".join(f"== {name} ({theme}, {size})\n{found}" for name, found in failures.items())
    assert not failures, report


def test_the_scan_finds_what_it_should(browser: WebDriver) -> None:
    """The scanner itself: a page with an unnamed image, an unlabelled field and grey-on-grey text fails it."""
    axe.source()
    browser.get("data:text/html,<html lang=en><head><title>t</title></head><body><main><img src='x.png'>"
                "<input type=text><p style='color:%23999;background:%23aaa'>faint</p></main></body></html>")
    found = {violation["id"] for violation in axe.violations(browser)}
    assert {"image-alt", "label", "color-contrast"} <= found, found
