"""Real browser: download my data from the privacy center and open the ZIP; delete the account, see the grace notice
on signing in again, and cancel the deletion."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from rupali.db import session_scope
from rupali.models import User
from rupali.services import users
from tests.e2e.helpers import click, evidence_on_failure, quasar_field, sign_in, wait
from tests.utils.factories import PASSWORD, make_user

pytestmark = pytest.mark.e2e

EMAIL = "meera.privacy@example.com"


def _text(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//*[contains(normalize-space(), '{text}')]")


def _button(label: str) -> tuple[str, str]:
    return (By.XPATH, f"//button[normalize-space()='{label}']")


def _zip_in(folder: Path, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [path for path in folder.glob("*.zip")]
        if found and not list(folder.glob("*.crdownload")):
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no ZIP downloaded; the folder holds {sorted(p.name for p in folder.iterdir())}")


def test_download_my_data_then_delete_and_cancel_during_the_grace_period(live_server: str, browser: WebDriver,
                                                                          tmp_path: Path) -> None:
    make_user(email=EMAIL, full_name="Meera Iyer")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, EMAIL, PASSWORD)
        browser.get(live_server + "/privacy")
        wait(browser).until(EC.visibility_of_element_located(_text("What Rupali holds about you")))

        # Ask for the export and watch it: a progress bar (or, on a fast machine, at once the finished state).
        click(browser, (By.XPATH, "//button[contains(normalize-space(), 'Prepare my download')]"))
        wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "[role=progressbar]")
                            or b.find_elements(By.XPATH, "//a[normalize-space()='Download my data (ZIP)']"))
        link = wait(browser).until(EC.element_to_be_clickable(
            (By.XPATH, "//a[normalize-space()='Download my data (ZIP)']")))
        assert not browser.find_elements(By.CSS_SELECTOR, "[role=progressbar]")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        link.click()
        archive = zipfile.ZipFile(_zip_in(downloads))
        names = archive.namelist()
        assert "README.txt" in names and "data/user.json" in names
        assert [row["email"] for row in json.loads(archive.read("data/user.json"))] == [EMAIL]
        assert "data/consent_event.json" in names

        # Delete the account: confirmed with the password, then signed out everywhere.
        click(browser, _button("Delete account…"))
        field = wait(browser).until(EC.element_to_be_clickable(quasar_field("Your password")))
        field.send_keys(PASSWORD)
        click(browser, _button("Delete my account"))
        wait(browser).until(EC.visibility_of_element_located(_text("Your account is scheduled for deletion")))
        click(browser, _button("OK"))
        wait(browser).until(EC.url_to_be(live_server + "/"))

        # Signing in during the grace period offers to cancel, and nothing else.
        browser.get(live_server + "/signin")
        for label, text in (("E-mail address", EMAIL), ("Password", PASSWORD)):
            wait(browser).until(EC.element_to_be_clickable(quasar_field(label))).send_keys(text)
        click(browser, _button("Sign in"))
        wait(browser).until(EC.url_to_be(live_server + "/deletion"))
        wait(browser).until(EC.visibility_of_element_located(_text("Your account is scheduled for deletion on")))
        browser.get(live_server + "/gallery")
        wait(browser).until(EC.url_to_be(live_server + "/deletion"))
        click(browser, _button("Cancel deletion"))
        wait(browser).until(EC.visibility_of_element_located(_text("The deletion is cancelled")))
        click(browser, _button("Continue"))
        wait(browser).until(EC.url_to_be(live_server + "/studio"))
    with session_scope() as session:
        account: User | None = users.by_email(session, EMAIL)
        assert account is not None and account.deletion_requested_at is None and account.deletion_due_at is None
