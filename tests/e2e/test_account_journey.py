"""Real browser: sign up, confirm the address from the mail, sign in, rename on /account, sign out."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.utils.smtp import Inbox, link_in

pytestmark = pytest.mark.e2e

TIMEOUT = 20
EMAIL = "priya.journey@example.com"
PASSWORD = "correct horse battery staple"
NAME = "Priya Sharma"
NEW_NAME = "Priya Sharma-Rao"


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """Like the shared ``inbox`` fixture, but on a concrete port.

    ``tests.utils.smtp.smtp_server`` passes ``port=0`` to aiosmtpd's ``Controller``, whose start-up self-check
    then connects to port 0 and is refused, so the shared fixture cannot start (aiosmtpd 1.4.6).
    """
    from rupali.config import reset_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received = Inbox()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("RUPALI_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("RUPALI_SMTP_PORT", str(port))
        monkeypatch.setenv("RUPALI_SMTP_SECURITY", "none")
        reset_settings()
        yield received
    finally:
        controller.stop()


def test_sign_up_verify_sign_in_rename_sign_out(inbox: Inbox, live_server: str, browser: WebDriver,
                                                tmp_path: Path) -> None:
    wait = WebDriverWait(browser, TIMEOUT, ignored_exceptions=(StaleElementReferenceException,))

    # Sign up.
    browser.get(live_server + "/signup")
    _acknowledge_cookie_notice(wait)
    _type(wait, "Full name", NAME)
    _type(wait, "E-mail address", EMAIL)
    _type(wait, "Password (at least 10 characters)", PASSWORD)
    _click(wait, (By.XPATH, "//*[@role='checkbox'][contains(normalize-space(), 'I am at least 18 years old')]"))
    _click(wait, (By.XPATH, "//*[@role='checkbox']"
                            "[@aria-label='I accept the Terms of Service and the Privacy Policy']"))
    _click(wait, _button("Create account"))
    try:
        wait.until(EC.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Check your inbox']")))
    except Exception:
        (tmp_path / "page.html").write_text(browser.page_source)
        browser.save_screenshot(str(tmp_path / "fail.png"))
        raise

    # The verification mail arrives at the loopback SMTP server.
    message = _await_mail(inbox, EMAIL)
    assert message["Subject"] == "Confirm your e-mail address"
    browser.get(live_server + link_in(message, "/verify"))
    _click(wait, _button("Confirm my e-mail address"))
    wait.until(EC.visibility_of_element_located(
        (By.XPATH, "//*[@role='alert'][contains(., 'Your e-mail address is confirmed')]")))

    # Sign in.
    browser.get(live_server + "/signin")
    _type(wait, "E-mail address", EMAIL)
    _type(wait, "Password", PASSWORD)
    _click(wait, _button("Sign in"))
    wait.until(EC.url_to_be(live_server + "/studio"))
    wait.until(EC.visibility_of_element_located(_account_menu()))
    assert _account_menu_name(wait) == NAME

    # Rename on the account page.
    browser.get(live_server + "/account")
    field = _type(wait, "Full name", NEW_NAME)
    assert field.get_attribute("value") == NEW_NAME
    _click(wait, _button("Save name"))
    wait.until(EC.visibility_of_element_located(
        (By.XPATH, "//*[@role='alert'][normalize-space()='Your name was saved.']")))
    browser.save_screenshot(str(tmp_path / "account.png"))
    assert (tmp_path / "account.png").stat().st_size > 0

    browser.refresh()
    wait.until(lambda driver: _input(driver, "Full name").get_attribute("value") == NEW_NAME)
    assert _account_menu_name(wait) == NEW_NAME

    # Sign out through the header's account menu.
    _click(wait, _account_menu())
    _click(wait, (By.XPATH, "//*[contains(@class, 'q-menu')]//*[contains(@class, 'q-item')]"
                            "[normalize-space()='Sign out']"))
    wait.until(EC.url_to_be(live_server + "/"))
    wait.until(EC.visibility_of_element_located(
        (By.XPATH, "//header//a[@href='/signin'][normalize-space()='Sign in']")))
    assert not browser.find_elements(*_account_menu())

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def _await_mail(inbox: Inbox, address: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not inbox.to(address) and time.monotonic() < deadline:
        time.sleep(0.25)
    return inbox.last_to(address)


def _acknowledge_cookie_notice(wait: WebDriverWait) -> None:
    notice = (By.CSS_SELECTOR, "[aria-label='Cookie notice']")
    wait.until(EC.visibility_of_element_located(notice))
    _click(wait, (By.XPATH, "//*[@aria-label='Cookie notice']//button[contains(., 'OK, got it')]"))
    wait.until(EC.invisibility_of_element_located(notice))


def _field(label: str) -> tuple[str, str]:
    return (By.XPATH, f"//label[.//div[contains(@class, 'q-field__label') and normalize-space()='{label}']]//input")


def _input(driver: WebDriver, label: str) -> WebElement:
    return driver.find_element(*_field(label))


def _type(wait: WebDriverWait, label: str, text: str) -> WebElement:
    field = wait.until(EC.element_to_be_clickable(_field(label)))
    # Select-all and type over it: WebElement.clear() does not fire the input event Vue's v-model listens to.
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)
    wait.until(lambda _: field.get_attribute("value") == text)
    return field


def _button(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//button[normalize-space()='{text}']")


def _click(wait: WebDriverWait, locator: tuple[str, str]) -> None:
    wait.until(EC.element_to_be_clickable(locator)).click()


def _account_menu() -> tuple[str, str]:
    return (By.XPATH, "//header//button[starts-with(@aria-label, 'Account menu for ')]")


def _account_menu_name(wait: WebDriverWait) -> str:
    button = wait.until(EC.visibility_of_element_located(_account_menu()))
    return button.get_attribute("aria-label").removeprefix("Account menu for ")
