"""Real browser: the home page loads cleanly and the cookie notice can be acknowledged."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.e2e


def test_home_loads_without_console_errors_and_cookie_notice_is_acknowledged(live_server, browser):
    wait = WebDriverWait(browser, 15)
    browser.get(live_server + "/")
    wait.until(EC.visibility_of_element_located((By.XPATH, "//h1[contains(., 'Make images')]")))
    notice = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[aria-label='Cookie notice']")))
    assert "Essential cookies only" in notice.text

    notice.find_element(By.XPATH, ".//button[contains(., 'OK, got it')]").click()
    wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "[aria-label='Cookie notice']")))

    browser.get(live_server + "/legal/privacy")
    wait.until(EC.visibility_of_element_located((By.XPATH, "//h1[contains(., 'Privacy Policy')]")))
    assert not browser.find_elements(By.CSS_SELECTOR, "[aria-label='Cookie notice']")
    assert "90 days" in browser.find_element(By.TAG_NAME, "main").text

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
