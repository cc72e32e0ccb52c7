"""Real browser: sign up, confirm the address from the mail, sign in, rename on /account, sign out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.utils.smtp import Inbox, link_in

pytestmark = pytest.mark.e2e

TIMEOUT = 20
EMAIL = "priya.journey@example.com"
PASSWORD = "correct horse battery staple"
NAME = "Priya Sharma"
NEW_NAME = "Priya Sharma-Rao"


def test_sign_up_verify_sign_in_rename_sign_out(inbox: Inbox, live_server: str, browser: WebDriver,
                                                tmp_path: Path) -> None:
    with _evidence_on_failure(browser, tmp_path):
        # Sign up.
        browser.get(live_server + "/signup")
        _acknowledge_cookie_notice(browser)
        _type(browser, "Full name", NAME)
        _type(browser, "E-mail address", EMAIL)
        _type(browser, "Password (at least 10 characters)", PASSWORD)
        _tick(browser, "//*[@role='checkbox'][contains(normalize-space(), 'I am at least 18 years old')]")
        _tick(browser, "//*[@role='checkbox'][@aria-label='I accept the Terms of Service and the Privacy Policy']")
        _click(browser, _button("Create account"))
        _expect(browser, "//*[normalize-space()='Check your inbox']")

        # The verification mail arrives at the loopback SMTP server; its link confirms the address.
        message = _await_mail(inbox, EMAIL)
        assert message["Subject"] == "Confirm your e-mail address"
        browser.get(live_server + link_in(message, "/verify"))
        _click(browser, _button("Confirm my e-mail address"))
        _expect(browser, "//*[@role='alert'][contains(., 'Your e-mail address is confirmed')]")

        # Sign in.
        browser.get(live_server + "/signin")
        _type(browser, "E-mail address", EMAIL)
        _type(browser, "Password", PASSWORD)
        _click(browser, _button("Sign in"))
        _wait(browser).until(EC.url_to_be(live_server + "/studio"))
        assert _account_menu_name(browser) == NAME

        # Rename on the account page; after a reload both the field and the header carry the new name.
        browser.get(live_server + "/account")
        _type(browser, "Full name", NEW_NAME)
        _click(browser, _button("Save name"))
        _expect(browser, "//*[@role='alert'][normalize-space()='Your name was saved.']")
        browser.save_screenshot(str(tmp_path / "account.png"))
        browser.refresh()
        _wait(browser).until(lambda driver: driver.find_element(*_field("Full name")).get_attribute("value")
                             == NEW_NAME)
        assert _account_menu_name(browser) == NEW_NAME

        # Sign out through the header's account menu.
        _click(browser, _ACCOUNT_MENU)
        _click(browser, (By.XPATH, "//*[contains(@class, 'q-menu')]//*[contains(@class, 'q-item')]"
                                   "[normalize-space()='Sign out']"))
        _wait(browser).until(EC.url_to_be(live_server + "/"))
        _wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, "//header//a[@href='/signin'][normalize-space()='Sign in']")))
        assert not browser.find_elements(*_ACCOUNT_MENU)

    assert (tmp_path / "account.png").stat().st_size > 0
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


_ACCOUNT_MENU = (By.XPATH, "//header//button[starts-with(@aria-label, 'Account menu for ')]")
_ERROR_BANNER = (By.XPATH, "//*[@role='alert'][contains(@class, 'r-banner--error')]")


@contextmanager
def _evidence_on_failure(browser: WebDriver, tmp_path: Path) -> Iterator[None]:
    """Keep the page's HTML and a screenshot in ``tmp_path`` when a step fails."""
    try:
        yield
    except BaseException:
        (tmp_path / "failure.html").write_text(browser.page_source)
        browser.save_screenshot(str(tmp_path / "failure.png"))
        raise


def _wait(browser: WebDriver) -> WebDriverWait:
    # NiceGUI re-renders elements on updates, so a found element may go stale between polls.
    return WebDriverWait(browser, TIMEOUT, ignored_exceptions=(StaleElementReferenceException,))


def _await_mail(inbox: Inbox, address: str, timeout: float = 20) -> EmailMessage:
    deadline = time.monotonic() + timeout
    while not inbox.to(address) and time.monotonic() < deadline:
        time.sleep(0.25)
    return inbox.last_to(address)


def _acknowledge_cookie_notice(browser: WebDriver) -> None:
    notice = (By.CSS_SELECTOR, "[aria-label='Cookie notice']")
    _wait(browser).until(EC.visibility_of_element_located(notice))
    _click(browser, (By.XPATH, "//*[@aria-label='Cookie notice']//button[normalize-space()='OK, got it']"))
    _wait(browser).until(EC.invisibility_of_element_located(notice))


def _field(label: str) -> tuple[str, str]:
    """The <input> of a Quasar field: the label text is a sibling inside the field's <label>."""
    return (By.XPATH, f"//label[.//div[contains(@class, 'q-field__label') and normalize-space()='{label}']]//input")


def _type(browser: WebDriver, label: str, text: str) -> None:
    field = _wait(browser).until(EC.element_to_be_clickable(_field(label)))
    # Select all and type over it: WebElement.clear() does not fire the input event Vue's v-model listens to.
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)
    _wait(browser).until(lambda _: field.get_attribute("value") == text)


def _button(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//button[normalize-space()='{text}']")


def _click(browser: WebDriver, locator: tuple[str, str]) -> None:
    _wait(browser).until(EC.element_to_be_clickable(locator)).click()


def _tick(browser: WebDriver, xpath: str) -> None:
    """Tick a Quasar checkbox (the element with role=checkbox) and wait until it reports being ticked."""
    _click(browser, (By.XPATH, xpath))
    _wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{xpath}[@aria-checked='true']")))


def _expect(browser: WebDriver, xpath: str) -> None:
    """Wait for ``xpath`` to show; if an error banner shows instead, fail with its text."""
    outcome = _wait(browser).until(EC.any_of(EC.visibility_of_element_located((By.XPATH, xpath)),
                                             EC.visibility_of_element_located(_ERROR_BANNER)))
    assert "r-banner--error" not in (outcome.get_attribute("class") or ""), f"the page said: {outcome.text}"


def _account_menu_name(browser: WebDriver) -> str:
    button = _wait(browser).until(EC.visibility_of_element_located(_ACCOUNT_MENU))
    return (button.get_attribute("aria-label") or "").removeprefix("Account menu for ")
