"""Real browser: sign up, confirm the address from the mail, sign in, rename on /account, sign out."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from tests.e2e.helpers import (
    acknowledge_cookie_notice,
    await_mail,
    click,
    evidence_on_failure,
    quasar_field,
    tick,
    type_into,
    wait,
)
from tests.utils.smtp import Inbox, url_in

pytestmark = pytest.mark.e2e

EMAIL = "priya.journey@example.com"
PASSWORD = "correct horse battery staple"
NAME = "Priya Sharma"
NEW_NAME = "Priya Sharma-Rao"


def test_sign_up_verify_sign_in_rename_sign_out(inbox: Inbox, live_server: str, browser: WebDriver,
                                                tmp_path: Path) -> None:
    with evidence_on_failure(browser, tmp_path):
        # Sign up.
        browser.get(live_server + "/signup")
        acknowledge_cookie_notice(browser)
        type_into(browser, "Full name", NAME)
        type_into(browser, "E-mail address", EMAIL)
        type_into(browser, "Password (at least 10 characters)", PASSWORD)
        tick(browser, "//*[@role='checkbox'][contains(normalize-space(), 'I am at least 18 years old')]")
        tick(browser, "//*[@role='checkbox'][@aria-label='I accept the Terms of Service and the Privacy Policy']")
        click(browser, _button("Create account"))
        _expect(browser, "//*[normalize-space()='Check your inbox']")

        # The verification mail arrives at the loopback SMTP server; its link confirms the address.
        message = await_mail(inbox, EMAIL)
        assert message["Subject"] == "Confirm your e-mail address"
        # The link is followed as written: it leads to the port this server really listens on.
        link = url_in(message, "/confirm-email")
        assert link.startswith(live_server + "/confirm-email?token="), link
        browser.get(link)
        click(browser, _button("Confirm my e-mail address"))
        _expect(browser, "//*[@role='alert'][contains(., 'Your e-mail address is confirmed')]")
        assert not browser.find_elements(By.XPATH, "//*[normalize-space()='One click and your account is ready.']")

        # Sign in, continuing from the confirmation.
        click(browser, _button("Continue"))
        wait(browser).until(EC.url_to_be(live_server + "/signin"))
        type_into(browser, "E-mail address", EMAIL)
        type_into(browser, "Password", PASSWORD)
        click(browser, _button("Sign in"))
        wait(browser).until(EC.url_to_be(live_server + "/studio"))
        assert _account_menu_name(browser) == NAME

        # Rename on the account page; after a reload both the field and the header carry the new name.
        browser.get(live_server + "/account")
        type_into(browser, "Full name", NEW_NAME)
        click(browser, _button("Save name"))
        _expect(browser, "//*[@role='alert'][normalize-space()='Your name was saved.']")
        browser.save_screenshot(str(tmp_path / "account.png"))
        browser.refresh()
        wait(browser).until(lambda driver: driver.find_element(*quasar_field("Full name")).get_attribute("value")
                             == NEW_NAME)
        assert _account_menu_name(browser) == NEW_NAME

        # Sign out through the header's account menu.
        click(browser, _ACCOUNT_MENU)
        click(browser, (By.XPATH, "//*[contains(@class, 'q-menu')]//*[contains(@class, 'q-item')]"
                                   "[normalize-space()='Sign out']"))
        wait(browser).until(EC.url_to_be(live_server + "/"))
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, "//header//a[@href='/signin'][normalize-space()='Sign in']")))
        assert not browser.find_elements(*_ACCOUNT_MENU)

    assert (tmp_path / "account.png").stat().st_size > 0
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


_ACCOUNT_MENU = (By.CSS_SELECTOR, "header button.r-avatar-button")
_ERROR_BANNER = (By.XPATH, "//*[@role='alert'][contains(@class, 'r-banner--error')]")




def _button(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//button[normalize-space()='{text}']")


def _expect(browser: WebDriver, xpath: str) -> None:
    """Wait for ``xpath`` to show; if an error banner shows instead, fail with its text."""
    outcome = wait(browser).until(EC.any_of(EC.visibility_of_element_located((By.XPATH, xpath)),
                                             EC.visibility_of_element_located(_ERROR_BANNER)))
    assert "r-banner--error" not in (outcome.get_attribute("class") or ""), f"the page said: {outcome.text}"


def _account_menu_name(browser: WebDriver) -> str:
    button = wait(browser).until(EC.visibility_of_element_located(_ACCOUNT_MENU))
    name = button.find_element(By.CSS_SELECTOR, ".r-sr-only").get_attribute("textContent") or ""
    return name.removeprefix("Account menu for ")
