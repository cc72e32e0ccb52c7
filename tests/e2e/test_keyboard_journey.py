"""Real browser, keyboard only: prompt, image count, Generate, the gallery, a tile opened with Space and with Enter,
favourite, and Escape back to the tile. Every focused control shows a visible focus indicator (measured on screen),
and a screen reader's live region hears the job's progress and its result."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC

from tests.e2e.helpers import evidence_on_failure, sign_in, wait
from tests.utils.factories import PASSWORD, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]  # about the pages, not the database

PROMPT = "a lantern in the snow"
MOST_STOPS_TO_GENERATE = 20
SETTLE = 0.2  # seconds for a control's focus styles (and Quasar's transitions) to settle

# Records every message of the studio's live region, as a screen reader would hear them.
_LISTEN = """
window.__heard = [];
const region = document.querySelector("[role='status'][aria-live='polite']");
new MutationObserver(() => { if (region.innerText) window.__heard.push(region.innerText); })
  .observe(region, {childList: true, subtree: true, characterData: true});
"""

_BOX = """
const box = arguments[0].getBoundingClientRect(), margin = 8;
return [Math.max(0, box.left - margin), Math.max(0, box.top - margin),
        Math.min(innerWidth, box.right + margin), Math.min(innerHeight, box.bottom + margin)];
"""


def _focused(browser: WebDriver) -> WebElement:
    return browser.switch_to.active_element


def _press(browser: WebDriver, *keys: str) -> None:
    ActionChains(browser).send_keys(*keys).perform()


def _shows_focus(browser: WebDriver) -> bool:
    """Whether the focused element looks different from its unfocused self: screenshots of it (and a margin
    around it, where a focus ring is drawn) with and without focus, compared pixel by pixel."""
    element = _focused(browser)
    # The field around a text input is what shows its focus.
    target = browser.execute_script("return arguments[0].closest('.q-field') || arguments[0]", element)
    region = browser.execute_script(_BOX, target)

    def shot() -> Image.Image:
        return Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB").crop(region)

    focused = shot()
    browser.execute_script("arguments[0].blur()", element)
    time.sleep(SETTLE)  # Quasar fields let go of their focused look a moment after the blur
    unfocused = shot()
    browser.execute_script("arguments[0].focus({focusVisible: true})", element)
    time.sleep(SETTLE)
    difference = ImageChops.difference(focused, unfocused).convert("L").point(lambda value: 255 if value > 40 else 0)
    changed = difference.histogram()[255]
    return changed >= 40  # a 3 px ring around even a small button changes far more pixels than this


def _focus_in_dialog(browser: WebDriver) -> bool:
    """Focus has moved into the open dialog (so Tab walks its controls, not the page behind it)."""
    return browser.execute_script("return !!document.activeElement.closest('.q-dialog')")


def _tab_until(browser: WebDriver, matches, limit: int = 40) -> int:
    """Press Tab until ``matches(focused element)``; every stop on the way must show its focus. Returns the stops."""
    for stops in range(1, limit + 1):
        _press(browser, Keys.TAB)
        element = _focused(browser)
        assert _shows_focus(browser), f"stop {stops} shows no focus: {element.get_attribute('outerHTML')[:200]}"
        if matches(element):
            return stops
    raise AssertionError(f"not reached in {limit} tab stops")


def test_the_core_journey_by_keyboard_alone(live_server: str, browser: WebDriver, tmp_path: Path) -> None:
    person = make_user(email="keyboard@example.com")
    browser.set_window_size(1366, 768)
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, person.email, PASSWORD)
        prompt = wait(browser).until(lambda driver: (element := _focused(driver)).tag_name == "textarea" and element)
        assert _shows_focus(browser)  # the prompt has focus when the studio opens
        prompt.send_keys(PROMPT)

        # The image count is one stop (a radio group), chosen with the arrow keys; Generate follows soon after.
        count_stops = _tab_until(browser, lambda element: element.get_attribute("role") == "radio" and browser.
                                 execute_script("return !!arguments[0].closest(\"[aria-label='Number of images']\")",
                                                element))
        _press(browser, Keys.ARROW_RIGHT)
        wait(browser).until(lambda driver: _focused(driver).text == "2"
                            and _focused(driver).get_attribute("aria-checked") == "true")
        assert _shows_focus(browser)
        generate_stops = _tab_until(browser, lambda element: element.text == "Generate")
        assert count_stops + generate_stops <= MOST_STOPS_TO_GENERATE, (count_stops, generate_stops)

        browser.execute_script(_LISTEN)
        _press(browser, Keys.ENTER)
        wait(browser).until(lambda driver: any("images ready" in message for message in driver.execute_script(
            "return window.__heard")))
        heard = browser.execute_script("return window.__heard")
        assert any(message.startswith(("Waiting to start", "Generating")) for message in heard), heard
        assert heard[-1] == f"2 images ready: {PROMPT}", heard

        # The gallery: the first tile is a reachable button; Space opens it, Escape brings focus back to it.
        browser.get(live_server + "/gallery")
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".r-gallery-grid .r-tile-open")))
        _tab_until(browser, lambda element: "r-tile-open" in (element.get_attribute("class") or ""))
        tile = _focused(browser)
        assert tile.get_attribute("aria-label") == PROMPT
        _press(browser, Keys.SPACE)
        dialog = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail")))
        wait(browser).until(_focus_in_dialog)
        assert browser.execute_script("return window.scrollY") == 0  # Space opened the image, it did not scroll
        _press(browser, Keys.ESCAPE)
        wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, ".r-detail")))
        wait(browser).until(lambda driver: _focused(driver) == tile)
        assert _shows_focus(browser)

        # Enter opens it too; Tab reaches Favourite, Enter presses it, Escape returns to the tile.
        _press(browser, Keys.ENTER)
        dialog = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail")))
        wait(browser).until(_focus_in_dialog)
        _tab_until(browser, lambda element: "Favourite" in element.text and "Unfavourite" not in element.text)
        _press(browser, Keys.ENTER)
        wait(browser).until(lambda _: dialog.find_elements(
            By.XPATH, ".//button[.//span[normalize-space()='Unfavourite']]"))
        _press(browser, Keys.ESCAPE)
        wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, ".r-detail")))
        wait(browser).until(lambda driver: _focused(driver) == tile)
        assert _shows_focus(browser)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
