"""Real browser: generate in the studio, watch the job, reuse its parameters and download an original PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC

from tests.e2e.helpers import (
    acknowledge_cookie_notice,
    await_download,
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

EMAIL = "meera.studio@example.com"
PROMPT = "a lighthouse on a cliff at golden hour"
SEED = "4242"
SIZE = "1024x1024"

# Records every live state a job card shows, so a state painted between two polls is not missed.
_WATCH_JOBS = """
window.__jobStates = [];
const record = () => document.querySelectorAll('.r-job').forEach(card => {
  const status = card.querySelector('.r-job-status');
  if (status && /Waiting to start|Generating —/.test(status.innerText)) {
    const bar = card.querySelector('.q-linear-progress');
    const prompt = card.querySelector('.r-job-prompt');
    window.__jobStates.push({text: status.innerText, prompt: prompt && prompt.innerText, bar: bar !== null,
                             value: bar && bar.getAttribute('aria-valuenow')});
  }
});
new MutationObserver(record).observe(document.body, {childList: true, subtree: true, characterData: true});
"""

_THUMBNAILS_LOADED = """
const images = [...arguments[0].querySelectorAll('figure.r-tile img')];
return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0);
"""


def test_generate_watch_reuse_and_download(live_server: str, browser: WebDriver, tmp_path: Path) -> None:
    make_user(email=EMAIL, onboarded=True)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})

    with evidence_on_failure(browser, tmp_path):
        # Sign in; the studio is where a signed-in person lands.
        browser.get(live_server + "/signin")
        acknowledge_cookie_notice(browser)
        _type(browser, quasar_field("E-mail address"), EMAIL)
        _type(browser, quasar_field("Password"), PASSWORD)
        click(browser, _button("Sign in"))
        wait(browser).until(EC.url_to_be(live_server + "/studio"))
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, "//*[normalize-space()='Your images will appear here']")))
        assert value(browser, _MODEL) == "Offline sketch (not AI)"

        # Describe the image, ask for 4 of them with a fixed seed, and generate with Ctrl+Enter.
        prompt = _type(browser, quasar_field("Prompt", "textarea"), PROMPT)
        click(browser, images_button("4"))
        wait(browser).until(EC.presence_of_element_located(images_button("4", pressed=True)))
        _type(browser, quasar_field("Seed"), SEED)  # typing a seed locks it
        wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{_LOCK}[@aria-checked='true']")))
        assert _pressed_size(browser) == SIZE
        browser.execute_script(_WATCH_JOBS)
        prompt.send_keys(Keys.CONTROL, Keys.ENTER)

        # The job shows its live state in a new card, then four loaded thumbnails arrive in that card.
        card = wait(browser).until(EC.presence_of_element_located(_JOB))
        wait(browser).until(lambda driver: driver.execute_script("return window.__jobStates.length") > 0)
        tiles = wait(browser).until(lambda _: len(card.find_elements(By.CSS_SELECTOR, "figure.r-tile")) == 4
                                     and card.find_elements(By.CSS_SELECTOR, "figure.r-tile"))
        states = browser.execute_script("return window.__jobStates")
        assert all(state["bar"] for state in states), states
        assert states[0]["text"].startswith(("Waiting to start", "Generating — ")), states
        assert all(state["prompt"] == PROMPT for state in states), states  # which job it is, while it runs
        assert card.find_element(By.CSS_SELECTOR, ".r-job-prompt").text == PROMPT
        assert f"seed {SEED}" in card.text
        assert "Procedural sketch · " in card.text  # the offline generator's output is labelled as what it is
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
        wait(browser).until(lambda driver: driver.execute_script(_THUMBNAILS_LOADED, card))
        alts = [tile.find_element(By.TAG_NAME, "img").get_attribute("alt") for tile in tiles]
        assert alts[0] == f"Generated image, seed {SEED}", alts
        browser.save_screenshot(str(tmp_path / "studio.png"))

        # Remix keeps the prompt and size but lets the seed go; "use these parameters" brings the seed back.
        _click_in(browser, card, "[aria-label='Remix: same parameters, new seed']")
        wait(browser).until(lambda driver: value(driver, quasar_field("Seed")) == "")
        wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{_LOCK}[@aria-checked='false']")))
        assert value(browser, quasar_field("Prompt", "textarea")) == PROMPT
        assert _pressed_size(browser) == SIZE
        clear(browser, quasar_field("Prompt", "textarea"))
        _click_in(browser, card, "[aria-label='Use these parameters']")
        wait(browser).until(lambda driver: value(driver, quasar_field("Seed")) == SEED)
        wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{_LOCK}[@aria-checked='true']")))
        wait(browser).until(lambda driver: value(driver, quasar_field("Prompt", "textarea")) == PROMPT)
        assert _pressed_size(browser) == SIZE

        # Download the first original through its button: a PNG carrying its parameters.
        image_id = tiles[0].find_element(By.TAG_NAME, "img").get_attribute("src").rsplit("/", 1)[1]
        _click_in(browser, tiles[0], "[aria-label='Download original']")
        path = await_download(downloads, f"rupali-{SEED}-{image_id.replace('-', '')[:8]}.png")

        # The download, dropped on the public check page, shows intact Content Credentials naming its maker.
        browser.get(live_server + "/verify")
        picker = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".r-drop input[type=file]")))
        picker.send_keys(str(path))
        result = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-verify-result dl")))
        verdict = browser.find_element(By.CSS_SELECTOR, ".r-verify-result .r-banner").text
        assert verdict.startswith("Content Credentials intact: signed by "), verdict
        facts = result.text
        for expected in ("Procedural (algorithmic media, no AI model)", "Rupali offline sketch generator / ",
                         "Signature and pixels\nintact", "Signer\nthis installation's own certificate"):
            assert expected in facts, facts
        browser.save_screenshot(str(tmp_path / "verify.png"))

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1024, 1024)
        parameters = image.info["parameters"]
    assert parameters.startswith(PROMPT + "\n"), parameters
    for expected in ("Steps: 20", f"Seed: {SEED}", f"Size: {SIZE}"):
        assert expected in parameters, parameters

    assert (tmp_path / "studio.png").stat().st_size > 0
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


_JOB = (By.CSS_SELECTOR, "section[aria-label='Results'] .r-job")
_MODEL = (By.XPATH, "//input[@role='combobox'][@aria-label='Model']")
_LOCK = "//*[@role='checkbox'][@aria-label='Keep this seed']"


def _type(browser: WebDriver, locator: tuple[str, str], text: str) -> WebElement:
    clear(browser, locator)
    field = browser.find_element(*locator)
    field.send_keys(text)
    wait(browser).until(lambda _: field.get_attribute("value") == text)
    return field


def _button(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//button[normalize-space()='{text}']")


def _pressed_size(browser: WebDriver) -> str:
    """The size the size toggle shows as chosen (under the chosen aspect ratio), as "WxH"."""
    label = browser.find_element(By.XPATH, "//*[@aria-label='Size in pixels']//button[@aria-checked='true']").text
    return label.replace(" × ", "x")


def _click_in(browser: WebDriver, container: WebElement, css: str) -> None:
    button = container.find_element(By.CSS_SELECTOR, css)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    wait(browser).until(lambda _: button.is_displayed() and button.is_enabled())
    button.click()

