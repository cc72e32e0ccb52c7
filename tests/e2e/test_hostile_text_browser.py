"""Real browser: the hostile corpus shows verbatim on every page that shows people's text, and no script of it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from rupali.db import session_scope
from rupali.models import Role
from rupali.services import api_keys
from tests.e2e.helpers import evidence_on_failure, sign_in, wait
from tests.pages.test_hostile_text import HOSTILE
from tests.services.test_gallery import add_generation
from tests.utils.factories import PASSWORD, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite_only]  # about the pages, not the database


def _check(browser: WebDriver, where: str, expected: list[str]) -> None:
    wait(browser).until(lambda driver: driver.execute_script(
        "return !!window.socket && window.socket.connected"))
    body = browser.find_element(By.TAG_NAME, "body")
    try:
        wait(browser).until(lambda _: all(text in body.text for text in expected))
    except Exception:
        missing = [text for text in expected if text not in body.text]
        raise AssertionError(f"{where}: not shown verbatim: {missing!r}") from None
    assert "Something went wrong" not in body.text, where
    assert browser.execute_script("return window.__pwned") is None, f"script ran on {where}"


def test_hostile_text_is_shown_and_never_run(live_server: str, browser: WebDriver, tmp_path: Path) -> None:
    name = HOSTILE["attribute"]
    person = make_user(email="hostile.browser@example.com", full_name=name, role=Role.ADMIN)
    images = {}
    for key, text in HOSTILE.items():
        _, [image] = add_generation(person, text)
        images[key] = image.id
    with session_scope() as session:
        api_keys.create(session, person, HOSTILE["template"])
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, person.email, PASSWORD)
        # Verbatim, except the zero-width direction marks (U+200E/F) that the browser's innerText leaves out.
        visible = {key: text.replace("\u200e", "").replace("\u200f", "") for key, text in HOSTILE.items()}
        browser.get(live_server + "/studio")
        _check(browser, "studio", [visible["script"], visible["template"], visible["backslashes"]])
        browser.get(live_server + "/history")
        _check(browser, "history", list(visible.values()))
        for key, image_id in images.items():
            browser.get(f"{live_server}/gallery?image={image_id}")
            wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".r-detail-prompt")))
            _check(browser, f"detail ({key})", [visible[key]])
            names = {tile.get_attribute("aria-label") for tile in browser.find_elements(
                By.CSS_SELECTOR, ".r-gallery-grid button.r-tile-open")}
            assert HOSTILE[key] in names, (key, names)  # the tile's name is the prompt, attribute intact
        browser.get(live_server + "/account")
        _check(browser, "account", [HOSTILE["template"]])
        assert browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Full name']]//input"
                                    ).get_attribute("value") == name
        browser.get(live_server + "/admin")
        _check(browser, "admin", [name])
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
