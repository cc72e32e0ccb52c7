"""Real browser: the journeys a new creator got stuck on, walked the way a person would.

The studio on a 1366 by 768 laptop, image-to-image uploads (and refusals that say what is wrong), the profile picture
by drag and drop, the "prompt in downloaded PNGs" switch, clearing the gallery search, the detail dialog (the whole
image, delete with confirmation, actions in reach on a phone) and History from the gallery's tabs.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from sqlmodel import select

from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus
from tests.e2e.helpers import (
    await_download,
    box,
    click,
    connected,
    drop_file,
    evidence_on_failure,
    images_button,
    quasar_field,
    sign_in,
    value,
    wait,
    wholly_in_view,
)
from tests.services.test_gallery import add_generation
from tests.utils.factories import PASSWORD, make_user

pytestmark = pytest.mark.e2e

RESULTS = "section[aria-label='Results']"
JOBS = (By.CSS_SELECTOR, f"{RESULTS} .r-job")
GENERATE = (By.XPATH, "//button[normalize-space()='Generate']")
ERROR_BANNER = (By.XPATH, "//*[@role='alert'][contains(@class, 'r-banner--error')]")
SUCCESS_BANNER = "//*[@role='alert'][contains(@class, 'r-banner--success')][normalize-space()='{}']"
LOCK = "//*[@role='checkbox'][@aria-label='Keep this seed']"

_JOB_DONE = """
const card = [...document.querySelectorAll(arguments[0])].find(c => c.querySelector('.r-job-prompt')?.innerText
                                                                    === arguments[1]);
if (!card) return null;
const images = [...card.querySelectorAll('figure.r-tile img')];
return images.length > 0 && images.every(img => img.complete && img.naturalWidth > 0) ? card : null;
"""


def _png(width: int, height: int, colour: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _button(text: str) -> tuple[str, str]:
    """A labelled Quasar button; its icon's ligature text is no part of the label."""
    return (By.XPATH, f"//button[.//span[normalize-space()='{text}']]")


def _type(browser: WebDriver, locator: tuple[str, str], text: str) -> WebElement:
    field = wait(browser).until(EC.element_to_be_clickable(locator))
    field.send_keys(text)
    wait(browser).until(lambda _: field.get_attribute("value") == text)
    return field


def _finished_card(browser: WebDriver, prompt: str) -> WebElement:
    return wait(browser).until(lambda driver: driver.execute_script(_JOB_DONE, f"{RESULTS} .r-job", prompt))


def _errors(browser: WebDriver) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


# --- the studio on a laptop -------------------------------------------------------------------------------------


def test_studio_on_a_laptop_keeps_generate_in_reach_and_the_new_job_in_view(live_server: str, browser: WebDriver,
                                                                            tmp_path: Path) -> None:
    owner = make_user(email="laptop@example.com")
    browser.set_window_size(1366, 768)
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, owner.email, PASSWORD)

        # An empty studio offers example prompts; Generate is on screen without scrolling.
        examples = wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".r-examples button"))
        assert len(examples) == 4
        assert wholly_in_view(browser, browser.find_element(*GENERATE))

        # The keyboard shortcut is offered with a mouse, not on a touch screen.
        assert _shortcut_hint(browser) == "Ctrl+Enter"
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        browser.refresh()
        wait(browser).until(EC.presence_of_element_located(GENERATE))
        assert _shortcut_hint(browser) is None
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        browser.refresh()
        examples = wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".r-examples button"))

        example = examples[1].text
        examples[1].click()
        wait(browser).until(lambda driver: value(driver, quasar_field("Prompt", "textarea")) == example)
        click(browser, GENERATE)
        card = _finished_card(browser, example)

        # One list under one heading, the new job first.
        heading = browser.find_element(By.CSS_SELECTOR, f"{RESULTS} h2")
        assert heading.text == "Recent" and heading.is_displayed()
        assert browser.execute_script(
            "return !!(arguments[0].compareDocumentPosition(arguments[1]) & Node.DOCUMENT_POSITION_FOLLOWING)",
            heading, card)
        assert not browser.find_element(By.CSS_SELECTOR, ".r-studio-empty").is_displayed()

        # The seed stays "random" while unlocked; the one just used is offered as a hint.
        used = card.find_element(By.CSS_SELECTOR, ".r-job-head .text-sm").text.split("seed ")[1].split()[0]
        seed = browser.find_element(*quasar_field("Seed"))
        assert seed.get_attribute("value") == "" and seed.get_attribute("placeholder") == "random"
        assert browser.find_elements(By.XPATH, f"{LOCK}[@aria-checked='false']")
        hint = (By.XPATH, "//label[.//div[contains(@class, 'q-field__label') and normalize-space()='Seed']]"
                          "//*[contains(@class, 'q-field__messages')]")
        wait(browser).until(lambda driver: driver.find_element(*hint).text == f"Last used: {used}")

        # With a long history, scroll to the bottom: Generate is still in reach, and the new job comes into view.
        for index in range(6):
            add_generation(owner, f"an older picture {index}")
        browser.refresh()
        wait(browser).until(lambda driver: len(driver.find_elements(*JOBS)) == 7)
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        wait(browser).until(lambda driver: driver.execute_script("return window.scrollY") > 300)
        assert wholly_in_view(browser, browser.find_element(*GENERATE))
        prompt = "a paper boat on a pond"
        field = browser.find_element(*quasar_field("Prompt", "textarea"))
        field.send_keys(prompt)
        wait(browser).until(lambda _: field.get_attribute("value") == prompt)
        click(browser, GENERATE)
        card = _finished_card(browser, prompt)
        wait(browser).until(lambda _: wholly_in_view(browser, card))
        for tile in card.find_elements(By.CSS_SELECTOR, "figure.r-tile"):
            assert wholly_in_view(browser, tile), box(browser, tile)
        browser.save_screenshot(str(tmp_path / "studio-laptop.png"))
    assert _errors(browser) == []


# --- image-to-image ---------------------------------------------------------------------------------------------


def test_image_to_image_upload_is_kept_and_refusals_say_what_is_wrong(live_server: str, browser: WebDriver,
                                                                      tmp_path: Path) -> None:
    owner = make_user(email="img2img@example.com")
    gif, big, png = tmp_path / "animation.gif", tmp_path / "huge.png", tmp_path / "sketch.png"
    Image.new("RGB", (32, 32), "orange").save(gif, "GIF")
    big.write_bytes(_png(8, 8) + b"\0" * (10 * 1024 * 1024 + 1))
    png.write_bytes(_png(96, 64, "purple"))
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, owner.email, PASSWORD)
        click(browser, (By.XPATH, "//*[contains(@class, 'q-expansion-item')]"
                                  "//*[normalize-space()='Start from an image (optional)']"))
        picker = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".r-drop input[type=file]")))
        # The file input is named by the visible label next to it.
        label = wait(browser).until(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, f"label[for='{picker.get_attribute('id')}']")))
        assert label.text.endswith("Choose a source image"), label.text

        picker.send_keys(str(gif))
        wait(browser).until(EC.text_to_be_present_in_element(
            ERROR_BANNER, "That file is a GIF. Choose a PNG, JPEG or WebP image."))
        picker.send_keys(str(big))
        wait(browser).until(EC.text_to_be_present_in_element(
            ERROR_BANNER, "That file is larger than 10 MB. Choose a smaller image."))

        picker.send_keys(str(png))
        preview = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "img.r-source-preview")))
        wait(browser).until(lambda _: "/media/uploads/" in (preview.get_attribute("src") or "")
                             and preview.get_attribute("naturalWidth") == "96")
        assert not [banner for banner in browser.find_elements(*ERROR_BANNER) if banner.text]

        prompt = "the same sketch, in watercolour"
        _type(browser, quasar_field("Prompt", "textarea"), prompt)
        click(browser, GENERATE)
        _finished_card(browser, prompt)
    with session_scope() as session:
        generation = session.exec(select(Generation)).one()
    assert generation.status == GenerationStatus.SUCCEEDED, generation.error
    assert generation.upload_id is not None and generation.strength == 0.8
    assert _errors(browser) == []


# --- account: profile picture and the PNG switch ----------------------------------------------------------------


def test_profile_picture_by_drag_and_drop_and_the_png_prompt_switch(live_server: str, browser: WebDriver,
                                                                     tmp_path: Path) -> None:
    owner = make_user(email="profile@example.com", full_name="Meera Iyer")
    _, [image] = add_generation(owner, "a quiet harbour at dawn")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    remove = _button("Remove picture")
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, owner.email, PASSWORD)
        browser.get(live_server + "/account")
        zone = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#profile .r-drop")))
        assert not [button for button in browser.find_elements(*remove) if button.is_displayed()]

        drop_file(browser, zone, "me.png", _png(300, 200, "crimson"), "image/png")
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, SUCCESS_BANNER.format("Your picture was updated."))))
        wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".r-avatar--large img"))
        click(browser, remove)
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, SUCCESS_BANNER.format("Your picture was removed."))))
        wait(browser).until(lambda driver: not driver.find_elements(By.CSS_SELECTOR, ".r-avatar--large img"))
        wait(browser).until(lambda driver: not [b for b in driver.find_elements(*remove) if b.is_displayed()])

        # Leave the prompt out of downloaded PNGs; the choice survives a reload.
        switch = "//*[@role='switch'][.//*[normalize-space()='Include prompt and settings in downloaded PNGs']]"
        click(browser, (By.XPATH, f"{switch}[@aria-checked='true']"))
        wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{switch}[@aria-checked='false']")))
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, "//*[normalize-space()='Downloads leave out the prompt.']")))
        browser.refresh()
        wait(browser).until(EC.presence_of_element_located((By.XPATH, f"{switch}[@aria-checked='false']")))

        # The detail dialog's Download follows the choice; its menu can still add the prompt to one file.
        browser.get(f"{live_server}/gallery?image={image.id}")
        toolbar = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail-toolbar")))
        connected(browser)
        toolbar.find_element(By.XPATH, ".//button[.//span[normalize-space()='Download']]").click()
        name = f"rupali-{image.seed}-{image.id.hex[:8]}.png"
        with Image.open(await_download(downloads, name)) as plain:
            assert "parameters" not in plain.info, plain.info
        (downloads / name).unlink()
        toolbar.find_element(By.CSS_SELECTOR, "[aria-label='More download options']").click()
        click(browser, (By.XPATH, "//*[contains(@class, 'q-menu')]//*[normalize-space()='With prompt and settings']"))
        with Image.open(await_download(downloads, name)) as annotated:
            assert annotated.info["parameters"].startswith("a quiet harbour at dawn\n"), annotated.info
    assert _errors(browser) == []


# --- gallery: search, detail, history ---------------------------------------------------------------------------


def test_gallery_search_clears_detail_fits_deletes_with_confirmation_and_history_is_a_tab(
        live_server: str, browser: WebDriver, tmp_path: Path) -> None:
    owner = make_user(email="gallery.polish@example.com")
    tiles = (By.CSS_SELECTOR, ".r-gallery-grid figure.r-tile")
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, owner.email, PASSWORD)
        # Two tall images (9:16), made in the studio.
        click(browser, (By.XPATH, "//*[@aria-label='Aspect ratio']//button[normalize-space()='Tall 9:16']"))
        click(browser, images_button("2"))
        wait(browser).until(EC.presence_of_element_located(images_button("2", pressed=True)))
        _type(browser, quasar_field("Prompt", "textarea"), "a tall lighthouse")
        click(browser, GENERATE)
        _finished_card(browser, "a tall lighthouse")

        browser.get(live_server + "/gallery")
        wait(browser).until(lambda driver: len(driver.find_elements(*tiles)) == 2)

        # A search that finds nothing names itself; the field's clear button brings everything back.
        _type(browser, quasar_field("Search prompts"), "zzz")
        wait(browser).until(EC.visibility_of_element_located(
            (By.XPATH, "//*[normalize-space()='No images match “zzz”.']")))
        assert browser.find_element(*_button("Clear filters")).is_displayed()
        click(browser, (By.CSS_SELECTOR, ".r-search .q-field__focusable-action"))
        wait(browser).until(lambda driver: len(driver.find_elements(*tiles)) == 2)
        assert value(browser, quasar_field("Search prompts")) == ""

        # The detail shows the whole image, never cropped.
        browser.find_elements(*tiles)[0].click()
        picture = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail-picture")))
        wait(browser).until(lambda _: picture.get_attribute("naturalWidth") == "576")
        assert picture.get_attribute("naturalHeight") == "1024"
        assert browser.execute_script("return getComputedStyle(arguments[0]).objectFit", picture) == "contain"
        assert wholly_in_view(browser, picture), box(browser, picture)
        details = browser.find_element(By.CSS_SELECTOR, ".r-params").text
        assert "Offline sketch (not AI)\n" in details + "\n" and "(offline)" not in details
        assert "Sampler" not in details and "—" not in details
        browser.save_screenshot(str(tmp_path / "detail-laptop.png"))

        # Delete asks first; Cancel keeps the image.
        toolbar = browser.find_element(By.CSS_SELECTOR, ".r-detail-toolbar")
        toolbar.find_element(By.XPATH, ".//button[.//span[normalize-space()='Delete']]").click()
        question = (By.XPATH, "//*[contains(@class, 'r-confirm')]"
                              "[.//*[normalize-space()='Delete this image? This cannot be undone.']]")
        confirm = wait(browser).until(EC.visibility_of_element_located(question))
        confirm.find_element(By.XPATH, ".//button[normalize-space()='Cancel']").click()
        wait(browser).until(EC.invisibility_of_element_located(question))
        assert browser.find_element(By.CSS_SELECTOR, ".r-detail").is_displayed()
        toolbar.find_element(By.XPATH, ".//button[.//span[normalize-space()='Delete']]").click()
        confirm = wait(browser).until(EC.visibility_of_element_located(question))
        confirm.find_element(By.XPATH, ".//button[normalize-space()='Delete']").click()
        wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, ".r-detail")))
        wait(browser).until(lambda driver: len(driver.find_elements(*tiles)) == 1)

        # On a phone the actions are on screen as the dialog opens, above the image.
        browser.set_window_size(390, 844)
        browser.find_elements(*tiles)[0].click()
        toolbar = wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail-toolbar")))
        for button in toolbar.find_elements(By.CSS_SELECTOR, "button"):
            assert wholly_in_view(browser, button), (button.text, box(browser, button))
        browser.save_screenshot(str(tmp_path / "detail-phone.png"))
        click(browser, (By.CSS_SELECTOR, ".r-detail [aria-label='Close']"))
        wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, ".r-detail")))

        # History is the gallery's second tab; the header keeps "Gallery" as the current section.
        click(browser, (By.XPATH, "//nav[@aria-label='Gallery views']//a[normalize-space()='History']"))
        wait(browser).until(EC.url_to_be(live_server + "/history"))
        current = browser.find_element(By.XPATH, "//nav[@aria-label='Gallery views']//a[@aria-current='page']")
        assert current.text == "History"
        assert browser.find_element(By.XPATH, "//nav[@aria-label='Main']//a[@aria-current='page']").text == "Gallery"
        wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//*[normalize-space()='a tall lighthouse']")))
        click(browser, (By.XPATH, "//nav[@aria-label='Gallery views']//a[normalize-space()='Images']"))
        wait(browser).until(EC.url_to_be(live_server + "/gallery"))
    assert _errors(browser) == []


def _shortcut_hint(browser) -> str | None:
    """The keyboard hint the stylesheet draws after the studio's cost line, or None when it is not shown."""
    return browser.execute_script(
        "const after = getComputedStyle(document.querySelector('.r-cost'), '::after');"
        "return after.display === 'none' ? null : after.content.split('/')[0].trim().replace(/^\"|\"$/g, '');")
