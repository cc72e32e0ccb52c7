"""Real-browser fixtures: the real ``rupali serve`` process and headless Debian Chromium via Selenium.

Without Chromium these tests skip with the reason; CI installs it and sets ``RUPALI_REQUIRE_BROWSER=1`` so a
missing browser fails there instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium with its console log available."""
    yield from _chromium(tmp_path, log_network=False)


@pytest.fixture
def network_browser(tmp_path: Path) -> Iterator[object]:
    """Like ``browser``, and Chromium's network events (every response's headers) readable from its log."""
    yield from _chromium(tmp_path, log_network=True)


def _chromium(tmp_path: Path, *, log_network: bool) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("RUPALI_REQUIRE_BROWSER"):
            pytest.fail("Chromium and chromedriver are required (apt-get install chromium chromium-driver)")
        pytest.skip("Chromium not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    logs = {"browser": "ALL", **({"performance": "ALL"} if log_network else {})}
    options.set_capability("goog:loggingPrefs", logs)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
