"""Selenium helpers shared by the real-browser journeys (NiceGUI renders Quasar components)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 20


@contextmanager
def evidence_on_failure(browser: WebDriver, tmp_path: Path) -> Iterator[None]:
    """Keep the page's HTML and a screenshot in ``tmp_path`` when a step fails."""
    try:
        yield
    except BaseException:
        (tmp_path / "failure.html").write_text(browser.page_source)
        browser.save_screenshot(str(tmp_path / "failure.png"))
        raise


def wait(browser: WebDriver) -> WebDriverWait:
    # NiceGUI re-renders elements on updates, so a found element may go stale between polls.
    return WebDriverWait(browser, TIMEOUT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))


def acknowledge_cookie_notice(browser: WebDriver) -> None:
    notice = (By.CSS_SELECTOR, "[aria-label='Cookie notice']")
    wait(browser).until(EC.visibility_of_element_located(notice))
    click(browser, (By.XPATH, "//*[@aria-label='Cookie notice']//button[normalize-space()='OK, got it']"))
    wait(browser).until(EC.invisibility_of_element_located(notice))


def quasar_field(label: str, tag: str = "input") -> tuple[str, str]:
    """The control of a Quasar field: the label text is a sibling inside the field's <label>."""
    return (By.XPATH, f"//label[.//div[contains(@class, 'q-field__label') and normalize-space()='{label}']]//{tag}")


def click(browser: WebDriver, locator: tuple[str, str]) -> None:
    wait(browser).until(EC.element_to_be_clickable(locator)).click()


def tick(browser: WebDriver, xpath: str) -> None:
    """Tick a Quasar checkbox (the element with role=checkbox) and wait until it reports being ticked."""
    click(browser, (By.XPATH, xpath))
    wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{xpath}[@aria-checked='true']")))


def value(browser: WebDriver, locator: tuple[str, str]) -> str:
    return browser.find_element(*locator).get_attribute("value") or ""


def clear(browser: WebDriver, locator: tuple[str, str]) -> None:
    field = wait(browser).until(EC.element_to_be_clickable(locator))
    # Select all and delete: WebElement.clear() does not fire the input event Vue's v-model listens to.
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    wait(browser).until(lambda _: field.get_attribute("value") == "")


def images_button(count: str, *, pressed: bool = False) -> tuple[str, str]:
    state = "[@aria-pressed='true']" if pressed else ""
    return (By.XPATH, f"//*[@aria-label='Number of images']//button[normalize-space()='{count}']{state}")
