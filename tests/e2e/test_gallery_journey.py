"""Real browser: generate two batches, then browse, favourite, filter, search, open, remix and bulk-delete them
in the gallery."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC

from tests.e2e.helpers import (
    acknowledge_cookie_notice,
    clear,
    click,
    evidence_on_failure,
    images_button,
    quasar_field,
    value,
    wait,
)
from tests.utils.factories import PASSWORD, make_user

pytestmark = pytest.mark.e2e

EMAIL = "meera.gallery@example.com"
LIGHTHOUSE = "a teal lighthouse at night"
FOX = "a red fox in snow"

_TILES = (By.CSS_SELECTOR, ".r-gallery-grid figure.r-tile")
_DETAIL = (By.CSS_SELECTOR, ".r-detail")
_LOCK = "//*[@role='checkbox'][@aria-label='Keep this seed']"

# The finished job cards of the studio: prompt and number of thumbnails, to wait for a batch by its prompt.
_FINISHED_JOBS = """
return [...document.querySelectorAll("section[aria-label='Results'] .r-job")].map(card => {
  const prompt = card.querySelector('.r-job-prompt');
  return [prompt ? prompt.innerText : null, card.querySelectorAll('figure.r-tile').length];
});
"""

_THUMBNAILS_LOADED = """
const images = [...document.querySelectorAll('.r-gallery-grid figure.r-tile img')];
return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0);
"""


def test_generate_gallery_favourite_filter_search_detail_remix_delete(live_server: str, browser: WebDriver,
                                                                       tmp_path: Path) -> None:
    make_user(email=EMAIL, onboarded=True)

    with evidence_on_failure(browser, tmp_path):
        # Sign in and generate two batches of two with the offline generator.
        browser.get(live_server + "/signin")
        acknowledge_cookie_notice(browser)
        _type(browser, quasar_field("E-mail address"), EMAIL)
        _type(browser, quasar_field("Password"), PASSWORD)
        click(browser, _button("Sign in"))
        wait(browser).until(EC.url_to_be(live_server + "/studio"))
        click(browser, images_button("2"))
        wait(browser).until(EC.presence_of_element_located(images_button("2", pressed=True)))
        for prompt in (LIGHTHOUSE, FOX):
            _type(browser, quasar_field("Prompt", "textarea"), prompt)
            click(browser, _button("Generate"))
            wait(browser).until(lambda driver, prompt=prompt: [prompt, 2] in driver.execute_script(_FINISHED_JOBS))

        # The gallery holds all four, newest first; a fox opens in the detail dialog with its parameters.
        browser.get(live_server + "/gallery")
        wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//h1[normalize-space()='Gallery']")))
        tiles = _wait_tiles(browser, 4)
        assert [_tile_name(tile) for tile in tiles] == [FOX, FOX, LIGHTHOUSE, LIGHTHOUSE]
        ids = [_tile_image_id(tile) for tile in tiles]
        assert len(set(ids)) == 4, ids
        wait(browser).until(lambda driver: driver.execute_script(_THUMBNAILS_LOADED))
        browser.save_screenshot(str(tmp_path / "gallery.png"))

        fox = ids[0]
        tiles[0].click()
        detail = _wait_detail(browser, live_server, fox)
        assert detail.find_element(By.CSS_SELECTOR, ".r-detail-prompt").text == FOX
        parameters = _parameters(detail)
        assert parameters["Model"].startswith("Offline sketch"), parameters
        assert parameters["Size"] == "1024×1024", parameters
        assert parameters["Steps"] == "20", parameters
        assert parameters["Seed"].isdigit(), parameters
        assert parameters["Expires"] == "Never", parameters
        # The stored file is checked as the dialog opens: signed by this installation, when, and intact.
        assert re.fullmatch(r"signed by .+ on .+ UTC, intact", parameters["Content Credentials"]), parameters
        assert detail.find_element(By.CSS_SELECTOR, ".r-origin").text == "Procedural sketch"
        wait(browser).until(lambda _: detail.find_element(By.CSS_SELECTOR, ".r-detail-image img")
                             .get_attribute("naturalWidth") not in (None, "0"))
        browser.save_screenshot(str(tmp_path / "detail.png"))

        # Arrow keys move to the next (older) image and back, the URL following along.
        _press(browser, Keys.ARROW_RIGHT)
        detail = _wait_detail(browser, live_server, ids[1])
        assert detail.find_element(By.CSS_SELECTOR, ".r-detail-prompt").text == FOX
        assert _parameters(detail)["Seed"] != parameters["Seed"]
        _press(browser, Keys.ARROW_LEFT)
        detail = _wait_detail(browser, live_server, fox)

        # Favourite it; Esc closes the dialog and takes the image out of the URL.
        _click_in(browser, detail, _button("Favourite"))
        wait(browser).until(lambda _: _find(detail, _button("Unfavourite")))
        _press(browser, Keys.ESCAPE)
        wait(browser).until(EC.invisibility_of_element_located(_DETAIL))
        wait(browser).until(EC.url_to_be(live_server + "/gallery"))

        # Only the favourite under "Favourites"; only the lighthouses when searching for "lighthouse".
        _switch(browser, "Favourites only", on=True)
        favourites = _wait_tiles(browser, 1)
        assert _tile_image_id(favourites[0]) == fox
        assert favourites[0].find_elements(By.CSS_SELECTOR, ".r-tile-badges [aria-label='Favourite']")
        _switch(browser, "Favourites only", on=False)
        _wait_tiles(browser, 4)
        _type(browser, quasar_field("Search prompts"), "lighthouse")
        found = _wait_tiles(browser, 2)
        assert [_tile_name(tile) for tile in found] == [LIGHTHOUSE, LIGHTHOUSE]
        assert [_tile_image_id(tile) for tile in found] == ids[2:]
        clear(browser, quasar_field("Search prompts"))
        tiles = _wait_tiles(browser, 4)

        # Remix a lighthouse: the studio gets its prompt, with the seed left open.
        tiles[2].click()
        detail = _wait_detail(browser, live_server, ids[2])
        assert detail.find_element(By.CSS_SELECTOR, ".r-detail-prompt").text == LIGHTHOUSE
        _click_in(browser, detail, _button("Remix"))
        wait(browser).until(EC.url_contains("/studio?use="))
        assert parse_qs(urlsplit(browser.current_url).query)["remix"] == ["1"]
        wait(browser).until(lambda driver: value(driver, quasar_field("Prompt", "textarea")) == LIGHTHOUSE)
        assert value(browser, quasar_field("Seed")) == ""
        wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{_LOCK}[@aria-checked='false']")))

        # Select one fox and one lighthouse and delete them both, after the confirmation naming the count.
        browser.get(live_server + "/gallery")
        tiles = _wait_tiles(browser, 4)
        _switch(browser, "Select", on=True)
        for index in (1, 3):
            tiles[index].click()
            wait(browser).until(lambda _, index=index: "r-tile--selected" in (
                tiles[index].get_attribute("class") or ""))
        wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//*[normalize-space()='2 selected']")))
        bulk = browser.find_element(By.CSS_SELECTOR, ".r-bulk")
        _click_in(browser, bulk, _button("Delete"))
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, "//*[normalize-space()='Delete 2 images? This cannot be undone.']")))
        click(browser, _button("Delete 2"))
        kept, deleted = [ids[0], ids[2]], [ids[1], ids[3]]
        wait(browser).until(lambda driver: [_tile_image_id(t) for t in driver.find_elements(*_TILES)] == kept)
        browser.refresh()
        assert [_tile_image_id(tile) for tile in _wait_tiles(browser, 2)] == kept

        # The deleted images' files are gone; the kept ones are still served.
        cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
        with httpx.Client(base_url=live_server, cookies=cookies, timeout=10) as client:
            for image_id in deleted:
                assert client.get(f"/media/thumbnails/{image_id}").status_code == 404
                assert client.get(f"/media/images/{image_id}").status_code == 404
            for image_id in kept:
                assert client.get(f"/media/thumbnails/{image_id}").status_code == 200

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert (tmp_path / "gallery.png").stat().st_size > 0
    assert (tmp_path / "detail.png").stat().st_size > 0


def _button(text: str) -> tuple[str, str]:
    """A labelled Quasar button; its icon's ligature text is no part of the label."""
    return (By.XPATH, f".//button[.//span[normalize-space()='{text}']]")


def _type(browser: WebDriver, locator: tuple[str, str], text: str) -> WebElement:
    clear(browser, locator)
    field = browser.find_element(*locator)
    field.send_keys(text)
    wait(browser).until(lambda _: field.get_attribute("value") == text)
    return field


def _click_in(browser: WebDriver, container: WebElement, locator: tuple[str, str]) -> None:
    button = wait(browser).until(lambda _: _find(container, locator))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    wait(browser).until(lambda _: button.is_displayed() and button.is_enabled())
    button.click()


def _find(container: WebElement, locator: tuple[str, str]) -> WebElement | None:
    found = [element for element in container.find_elements(*locator) if element.is_displayed()]
    return found[0] if found else None


def _press(browser: WebDriver, key: str) -> None:
    ActionChains(browser).send_keys(key).perform()


def _switch(browser: WebDriver, label: str, *, on: bool) -> None:
    """Flip a Quasar toggle (role=switch) and wait until it reports the new state."""
    switch = f"//*[@role='switch'][.//*[contains(@class, 'q-toggle__label') and normalize-space()='{label}']]"
    click(browser, (By.XPATH, f"{switch}[@aria-checked='{str(not on).lower()}']"))
    wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{switch}[@aria-checked='{str(on).lower()}']")))


def _wait_tiles(browser: WebDriver, count: int) -> list[WebElement]:
    """The gallery's tiles once there are exactly ``count`` of them."""
    return wait(browser).until(lambda driver: (tiles := driver.find_elements(*_TILES)) and len(tiles) == count
                                and tiles)


def _tile_name(tile: WebElement) -> str:
    """What a screen reader calls the tile: the name of the button that opens it."""
    return tile.find_element(By.CSS_SELECTOR, "button.r-tile-open").get_attribute("aria-label") or ""


def _tile_image_id(tile: WebElement) -> str:
    return (tile.find_element(By.TAG_NAME, "img").get_attribute("src") or "").rsplit("/", 1)[-1]


def _wait_detail(browser: WebDriver, live_server: str, image_id: str) -> WebElement:
    """The one open detail dialog, once it shows ``image_id`` and the URL names that image."""
    def shown(driver: WebDriver) -> WebElement | None:
        dialogs = [element for element in driver.find_elements(*_DETAIL) if element.is_displayed()]
        if len(dialogs) != 1:
            return None
        source = dialogs[0].find_element(By.CSS_SELECTOR, ".r-detail-image img").get_attribute("src") or ""
        return dialogs[0] if source.endswith(f"/media/images/{image_id}") else None

    detail = wait(browser).until(shown)
    wait(browser).until(EC.url_to_be(f"{live_server}/gallery?image={image_id}"))
    return detail


def _parameters(detail: WebElement) -> dict[str, str]:
    terms = detail.find_elements(By.CSS_SELECTOR, ".r-params dt")
    values = detail.find_elements(By.CSS_SELECTOR, ".r-params dd")
    return {term.text: value.text for term, value in zip(terms, values, strict=True)}
