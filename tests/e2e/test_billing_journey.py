"""Real browser: buy a credit pack on the loopback Creem's hosted page, see the credits arrive, generate, see the
usage in the credit history and download the receipt; a refund then takes the credits back."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from sqlmodel import select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import CreditOrder, OrderStatus
from rupali.services import ledger
from tests.e2e.helpers import (
    await_download,
    click,
    connected,
    evidence_on_failure,
    quasar_field,
    sign_in,
    wait,
)
from tests.utils.creem_server import PRODUCTS, CreemServer, billing_env
from tests.utils.factories import PASSWORD, make_user

pytestmark = pytest.mark.e2e

EMAIL = "meera.billing@example.com"


@pytest.fixture
def creem(monkeypatch: pytest.MonkeyPatch) -> Iterator[CreemServer]:
    """The loopback Creem, and the app configured to sell its packs (set before ``live_server`` starts)."""
    with CreemServer(products=PRODUCTS) as server:
        for name, value in billing_env(server).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "0")  # every credit in this journey is bought
        reset_settings()
        yield server


def _text(text: str) -> tuple[str, str]:
    return (By.XPATH, f"//*[contains(normalize-space(), \"{text}\")][not(*)]")


def _balance(browser: WebDriver) -> int:
    label = wait(browser).until(EC.presence_of_element_located(
        (By.XPATH, "//div[starts-with(normalize-space(), 'Balance: ')][not(*)]")))
    found = re.search(r"Balance: (-?[\d,]+) credit", label.get_attribute("textContent") or "")
    assert found, label.get_attribute("textContent")
    return int(found.group(1).replace(",", ""))


def test_buy_a_pack_generate_and_download_the_receipt_then_a_refund(creem: CreemServer, live_server: str,
                                                                    browser: WebDriver, tmp_path: Path) -> None:
    creem.webhook_url = live_server + "/webhooks/creem"
    person = make_user(email=EMAIL, full_name="Meera Iyer")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    with evidence_on_failure(browser, tmp_path):
        sign_in(browser, live_server, EMAIL, PASSWORD)
        browser.get(live_server + "/billing")
        assert _balance(browser) == 0
        connected(browser)

        # Buy: Rupali creates the order and sends the browser to Creem's page, where the person pays.
        click(browser, (By.CSS_SELECTOR, "button[aria-label='Buy Starter: 100 credits for 5.00 EUR']"))
        wait(browser).until(lambda driver: driver.current_url.startswith(creem.url.removesuffix("/v1")))
        [checkout] = [request for request in creem.posts if request.path == "/v1/checkouts"]
        assert checkout.headers["x-api-key"] == creem.api_key
        click(browser, (By.XPATH, "//button[normalize-space()='Pay']"))

        # Back on Rupali: the success page waits for the signed webhook, which has granted the pack once.
        wait(browser).until(lambda driver: "/billing/success" in driver.current_url)
        wait(browser).until(EC.visibility_of_element_located(_text("100 credits added to your balance")))
        with session_scope() as session:
            [order] = session.exec(select(CreditOrder).where(CreditOrder.user_id == person.id)).all()
            assert order.status == OrderStatus.PAID
        browser.get(live_server + "/billing")
        assert _balance(browser) == 100
        wait(browser).until(EC.visibility_of_element_located(_text("Paid")))

        # Generate: the studio shows what it costs and what is left, and the balance pays for it.
        browser.get(live_server + "/studio")
        cost_line = "//div[contains(normalize-space(), 'credits · ') and contains(normalize-space(), ' left')][not(*)]"
        cost = wait(browser).until(EC.visibility_of_element_located((By.XPATH, cost_line)))
        spent = int(re.match(r"(\d+) credits? · 100 left", cost.text).group(1))  # type: ignore[union-attr]
        connected(browser)
        prompt = wait(browser).until(EC.element_to_be_clickable(quasar_field("Prompt", "textarea")))
        prompt.send_keys("a lighthouse on a cliff at golden hour")
        prompt.send_keys(Keys.CONTROL, Keys.ENTER)
        wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".r-job figure.r-tile"))

        # The usage is in the credit history and the chart's summary; the receipt downloads as a PDF.
        browser.get(live_server + "/billing")
        assert _balance(browser) == 100 - spent
        wait(browser).until(EC.visibility_of_element_located(_text("Generation (held)")))
        wait(browser).until(EC.visibility_of_element_located(_text(f"{spent} credit")))
        link = wait(browser).until(EC.element_to_be_clickable((By.XPATH, "//a[normalize-space()='Receipt (PDF)']")))
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        link.click()
        receipt = await_download(downloads, f"receipt-{order.paid_at:%Y-%m-%d}-{order.id}.pdf")
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(receipt.read_bytes())).pages)
        assert str(order.id) in text and "5.00 EUR" in text and "merchant of record" in text

        # A full refund in Creem's dashboard: the credits go back, here below zero since some were spent.
        delivery = creem.refund(order.checkout_id)
        assert delivery.status == 200
        browser.get(live_server + "/billing")
        assert _balance(browser) == -spent
        wait(browser).until(EC.visibility_of_element_located(_text("Refunded")))
        wait(browser).until(EC.visibility_of_element_located(_text("below zero after a refund")))
    with session_scope() as session:
        assert ledger.ledger_sum(session, person.id) == ledger.balance(session, get_settings(), person.id) == -spent
