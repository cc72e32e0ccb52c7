"""Real browser: every cookie the app sets is declared (rupali/cookies.py) with the flags and lifetime it really has.

The walk a new person takes: sign up, confirm the address, sign in, use the studio, sign out. Every ``Set-Cookie``
header Chromium receives on the way is read from its network log and held against the declaration, which is also
what the Cookie Policy and the cookie notice are rendered from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC

from rupali import cookies
from rupali.config import get_settings
from tests.e2e.helpers import (
    acknowledge_cookie_notice,
    await_mail,
    click,
    evidence_on_failure,
    sign_out,
    tick,
    type_into,
    wait,
)
from tests.utils.smtp import Inbox, url_in

pytestmark = pytest.mark.e2e

EMAIL = "cookie.walk@example.com"
PASSWORD = "correct horse battery staple"


def test_every_cookie_set_on_the_way_is_declared_with_its_flags(inbox: Inbox, live_server: str,
                                                               network_browser: WebDriver, tmp_path: Path) -> None:
    browser = network_browser
    with evidence_on_failure(browser, tmp_path):
        browser.get(live_server + "/signup")
        acknowledge_cookie_notice(browser)
        for label, text in (("Full name", "Ines Duarte"), ("E-mail address", EMAIL),
                            ("Password (at least 10 characters)", PASSWORD)):
            type_into(browser, label, text)
        tick(browser, "//*[@role='checkbox'][contains(normalize-space(), 'I am at least 18 years old')]")
        tick(browser, "//*[@role='checkbox'][@aria-label='I accept the Terms of Service and the Privacy Policy']")
        click(browser, _button("Create account"))
        wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Check your inbox']")))

        browser.get(url_in(await_mail(inbox, EMAIL), "/confirm-email"))
        click(browser, _button("Confirm my e-mail address"))
        click(browser, _button("Continue"))
        wait(browser).until(EC.url_to_be(live_server + "/signin"))
        type_into(browser, "E-mail address", EMAIL)
        type_into(browser, "Password", PASSWORD)
        click(browser, _button("Sign in"))
        wait(browser).until(EC.url_to_be(live_server + "/studio"))
        wait(browser).until(EC.visibility_of_element_located((By.XPATH, "//button[normalize-space()='Generate']")))
        sign_out(browser, live_server)

    declared = {cookie.name: cookie for cookie in cookies.declared(get_settings())}
    seen = _set_cookies(browser)
    assert seen, "no Set-Cookie header was seen at all: the network log is not being read"
    set_names = set()
    for url, name, attributes in seen:
        assert name in declared, f"{url} set the undeclared cookie {name!r} ({attributes})"
        cookie = declared[name]
        assert ("httponly" in attributes) == cookie.http_only, (url, name, attributes)
        assert attributes.get("samesite", "").lower() == cookie.same_site, (url, name, attributes)
        assert ("secure" in attributes) == cookie.secure, (url, name, attributes)
        if _is_deletion(attributes):
            continue
        set_names.add(name)
        assert int(attributes["max-age"]) == cookie.max_age, (url, name, attributes)
    assert set_names == set(declared), f"declared but never set on this walk: {set(declared) - set_names}"
    deleted = {name for _, name, attributes in seen if _is_deletion(attributes)}
    assert cookies.AUTH_COOKIE in deleted  # signing out removes the sign-in cookie


def _set_cookies(browser: WebDriver) -> list[tuple[str, str, dict[str, str]]]:
    """(url, name, attributes) of every Set-Cookie header in Chromium's network log; attribute names lowercased."""
    urls: dict[str, str] = {}
    found = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        if message.get("method") != "Network.responseReceivedExtraInfo":
            continue
        headers = {name.lower(): value for name, value in params.get("headers", {}).items()}
        for line in headers.get("set-cookie", "").split("\n"):
            if not line.strip():
                continue
            pair, *parts = [part.strip() for part in line.split(";")]
            name = pair.partition("=")[0]
            attributes = {}
            for part in parts:
                key, _, value = part.partition("=")
                attributes[key.lower()] = value
            found.append((urls.get(params["requestId"], "?"), name, attributes))
    return found


def _is_deletion(attributes: dict[str, str]) -> bool:
    return attributes.get("max-age") == "0" or "1970" in attributes.get("expires", "")




def _button(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//button[normalize-space()='{text}']")
