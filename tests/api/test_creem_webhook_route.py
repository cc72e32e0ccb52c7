"""``POST /webhooks/creem`` through the app's HTTP stack: the gate lets it through without a session, the signature
decides, the body limit holds; and once end to end through ``rupali serve`` and the loopback Creem's payment page."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from nicegui.testing import User
from sqlmodel import select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, CreditOrder, DeliveryOutcome, OrderStatus, WebhookDelivery
from rupali.providers.creem import CreemClient
from rupali.services import creem_webhooks, orders
from tests.utils.creem_server import PRODUCTS, CreemServer, billing_env, envelope
from tests.utils.factories import make_user

PATH = "/webhooks/creem"


@pytest.fixture
def creem(monkeypatch: pytest.MonkeyPatch) -> Iterator[CreemServer]:
    with CreemServer(products=PRODUCTS) as server:
        for name, value in billing_env(server).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "0")
        reset_settings()
        yield server


def _pending_order() -> CreditOrder:
    """An order whose checkout is open at Creem, not paid yet (bought through the real client)."""
    person = make_user()
    settings = get_settings()
    url = orders.buy(settings, CreemClient.from_settings(settings), person.id, "starter")
    with session_scope() as session:
        return session.exec(select(CreditOrder).where(CreditOrder.checkout_url == url)).one()


def _paid_order(creem: CreemServer) -> tuple[CreditOrder, dict]:
    order = _pending_order()
    return order, creem.complete(order.checkout_id)


def _outcomes() -> list[str]:
    with session_scope() as session:
        return [delivery.outcome for delivery in session.exec(select(WebhookDelivery)).all()]


async def test_the_route_is_not_there_when_billing_is_not_creem(user: User):
    for mode in ("off", "credits"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RUPALI_BILLING", mode)
            reset_settings()
            response = await user.http_client.post(PATH, content=b"{}", headers={"creem-signature": "00"})
        assert response.status_code == 404, mode
    reset_settings()
    assert _outcomes() == []


async def test_signatures_decide_without_a_session_or_csrf_token(user: User, creem: CreemServer):
    order, event = _paid_order(creem)
    raw, signature = creem.signed(event)
    client = user.http_client
    assert not client.cookies  # an anonymous caller, as Creem is
    missing = await client.post(PATH, content=raw, headers={"content-type": "application/json"})
    assert missing.status_code == 401 and missing.json() == {"outcome": "rejected"}
    wrong = await client.post(PATH, content=raw, headers={"creem-signature": creem.forged(event)[1]})
    assert wrong.status_code == 401
    reserialised = await client.post(PATH, content=json.dumps(json.loads(raw), indent=1),
                                     headers={"creem-signature": signature})
    assert reserialised.status_code == 401  # the same JSON in other bytes
    malformed = b'{"id": "evt_1", "eventType": '
    invalid = await client.post(PATH, content=malformed,
                                headers={"creem-signature": creem_webhooks.sign(creem.webhook_secret, malformed)})
    assert invalid.status_code == 400 and invalid.json() == {"outcome": "invalid"}
    applied = await client.post(PATH, content=raw, headers={"creem-signature": signature})
    assert applied.status_code == 200 and applied.json() == {"outcome": "applied"}
    again = await client.post(PATH, content=raw, headers={"creem-signature": signature})
    assert again.status_code == 200 and again.json() == {"outcome": "duplicate"}
    unknown_raw, unknown_signature = creem.signed(envelope("subscription.active", {"id": "sub_1"}))
    unknown = await client.post(PATH, content=unknown_raw, headers={"creem-signature": unknown_signature})
    assert unknown.status_code == 200 and unknown.json() == {"outcome": "ignored"}
    assert "content-security-policy" in applied.headers  # answered through the same guards as everything else
    assert sorted(_outcomes()) == sorted(["rejected", "rejected", "rejected", "invalid", "applied", "duplicate",
                                          "ignored"])
    with session_scope() as session:
        assert session.get(CreditOrder, order.id).status == OrderStatus.PAID
        assert session.get(CreditAccount, order.user_id).balance == 100


async def test_an_oversized_body_is_refused_before_it_is_read(user: User, creem: CreemServer):
    response = await user.http_client.post(PATH, content=b"x" * (1024 * 1024 + 1), headers={"creem-signature": "0"})
    assert response.status_code == 413
    assert _outcomes() == []


def test_paying_on_the_hosted_page_credits_the_account_through_the_real_server(creem: CreemServer, live_server: str,
                                                                              monkeypatch: pytest.MonkeyPatch):
    creem.webhook_url = live_server + PATH
    monkeypatch.setenv("RUPALI_PUBLIC_URL", live_server)  # this process buys, the server it started takes the webhook
    reset_settings()
    order = _pending_order()
    page = httpx.get(order.checkout_url, timeout=10)
    assert '<button type="submit">Pay</button>' in page.text
    paid = httpx.post(f"{order.checkout_url}/pay", follow_redirects=False, timeout=30)
    assert paid.status_code == 303
    assert paid.headers["location"].startswith(f"{live_server}/billing/success?order={order.id}&checkout_id=")
    (delivery,) = creem.deliveries
    assert delivery.status == 200 and delivery.answer == {"outcome": "applied"}
    assert creem.send(delivery.event).answer == {"outcome": "duplicate"}  # Creem's retry
    forged = creem.send(delivery.event, raw=delivery.raw, signature=creem.forged(delivery.event)[1])
    assert forged.status == 401
    refund = creem.refund(order.checkout_id, 250)
    assert refund.status == 200 and refund.answer == {"outcome": "applied"}
    with session_scope() as session:
        stored = session.get(CreditOrder, order.id)
        assert stored.status == OrderStatus.PARTIALLY_REFUNDED
        assert session.get(CreditAccount, order.user_id).balance == 50
    assert sorted(_outcomes()) == sorted([DeliveryOutcome.APPLIED, DeliveryOutcome.DUPLICATE,
                                          DeliveryOutcome.REJECTED, DeliveryOutcome.APPLIED])

