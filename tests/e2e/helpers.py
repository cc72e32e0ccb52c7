"""Selenium helpers shared by the real-browser journeys (NiceGUI renders Quasar components)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.utils.smtp import Inbox

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


def connected(browser: WebDriver) -> None:
    """Wait until the page's websocket is up and Quasar's transitions (a dialog opening) are over: a click before
    that reaches no handler, or lands on an element still moving, and is lost."""
    wait(browser).until(lambda driver: driver.execute_script(
        "return document.readyState === 'complete' && !!window.socket && window.socket.connected"
        " && !document.querySelector('[class*=\"q-transition--\"][class*=\"-active\"]')"))


def acknowledge_cookie_notice(browser: WebDriver) -> None:
    notice = (By.CSS_SELECTOR, "[aria-label='Cookie notice']")
    wait(browser).until(EC.visibility_of_element_located(notice))
    click(browser, (By.XPATH, "//*[@aria-label='Cookie notice']//button[normalize-space()='OK, got it']"))
    wait(browser).until(EC.invisibility_of_element_located(notice))


def quasar_field(label: str, tag: str = "input") -> tuple[str, str]:
    """The control of a Quasar field: the label text is a sibling inside the field's <label>."""
    return (By.XPATH, f"//label[.//div[contains(@class, 'q-field__label') and normalize-space()='{label}']]//{tag}")


def click(browser: WebDriver, locator: tuple[str, str]) -> None:
    element = wait(browser).until(EC.element_to_be_clickable(locator))
    # Centred, so neither the sticky header nor the studio's sticky action row covers it, as a person would see it.
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
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
    state = "[@aria-checked='true']" if pressed else ""
    return (By.XPATH, f"//*[@aria-label='Number of images']//button[normalize-space()='{count}']{state}")


def sign_in(browser: WebDriver, base: str, email: str, password: str, *, first_visit: bool = True) -> None:
    """Sign in through the form (on a first visit acknowledging the cookie notice first) and wait for the studio."""
    browser.get(base + "/signin")
    if first_visit:
        acknowledge_cookie_notice(browser)
    for label, text in (("E-mail address", email), ("Password", password)):
        field = wait(browser).until(EC.element_to_be_clickable(quasar_field(label)))
        field.send_keys(text)
    click(browser, (By.XPATH, "//button[normalize-space()='Sign in']"))
    wait(browser).until(EC.url_to_be(base + "/studio"))


def await_download(folder: Path, name: str, timeout: float = TIMEOUT) -> Path:
    """The finished download (Chromium writes ``*.crdownload`` until it is complete)."""
    path = folder / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"no download {name!r}; the folder holds {sorted(p.name for p in folder.iterdir())}")


_BOX = """
const box = arguments[0].getBoundingClientRect();
return {top: box.top, bottom: box.bottom, left: box.left, right: box.right, height: innerHeight, width: innerWidth};
"""


def box(browser: WebDriver, element: WebElement) -> dict[str, float]:
    """The element's box in the viewport, with the viewport's ``height`` and ``width``."""
    return browser.execute_script(_BOX, element)


def wholly_in_view(browser: WebDriver, element: WebElement) -> bool:
    """True when the element is inside the viewport without scrolling."""
    found = box(browser, element)
    return (found["top"] >= 0 and found["left"] >= 0 and found["bottom"] <= found["height"]
            and found["right"] <= found["width"])


_DROP = """
const [zone, name, type, base64] = arguments;
const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
const data = new DataTransfer();
data.items.add(new File([bytes], name, {type}));
for (const kind of ['dragenter', 'dragover', 'drop']) {
  zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
}
"""


def drop_file(browser: WebDriver, zone: WebElement, name: str, data: bytes, mime: str) -> None:
    """Drag a file from the desktop onto ``zone`` (the browser's own drag-and-drop events, with a real File)."""
    browser.execute_script(_DROP, zone, name, mime, base64.b64encode(data).decode("ascii"))


def await_mail(inbox: Inbox, address: str, timeout: float = 20) -> EmailMessage:
    """The newest message to ``address`` at the loopback SMTP server, waiting for it to arrive."""
    deadline = time.monotonic() + timeout
    while not inbox.to(address) and time.monotonic() < deadline:
        time.sleep(0.25)
    return inbox.last_to(address)


def type_into(browser: WebDriver, label: str, text: str) -> None:
    """Type over the labelled field's content (select all, delete, type) and wait until it holds ``text``."""
    field = wait(browser).until(EC.element_to_be_clickable(quasar_field(label)))
    # WebElement.clear() does not fire the input event Vue's v-model listens to.
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)
    wait(browser).until(lambda _: field.get_attribute("value") == text)


def sign_out(browser: WebDriver, base: str) -> None:
    """Sign out the way the account menu does (a POST), and wait for the start page."""
    browser.execute_script("rupaliSignOut()")
    wait(browser).until(EC.url_to_be(base + "/"))
