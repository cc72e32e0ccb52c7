"""The Creem client and webhook signatures against a loopback server speaking the documented contract (no mocks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from rupali.config import Settings
from rupali.providers.creem import CreemClient, CreemError
from rupali.services import creem_webhooks
from tests.utils.creem_server import PRODUCTS, CreemServer
from tests.utils.loopback import JoiningHTTPServer, LoopbackHandler, LoopbackHTTPServer

pytestmark = pytest.mark.sqlite_only

API_KEY = "creem_live_0123456789abcdefSECRET"
SECRET = "whsec_0123456789abcdef"
REQUEST_ID = "5b2f6a2e-0000-4000-8000-000000000001"


@pytest.fixture
def creem() -> Iterator[CreemServer]:
    with CreemServer(api_key=API_KEY, webhook_secret=SECRET, products=PRODUCTS) as server:
        yield server


def _client(server: CreemServer, **options: Any) -> CreemClient:
    return CreemClient(server.url, API_KEY, **options)


def _checkout(client: CreemClient, **changes: Any):
    values = {"product_id": "prod_starter", "request_id": REQUEST_ID, "email": "ada@example.com",
              "success_url": "http://127.0.0.1:8080/billing/success?order=" + REQUEST_ID,
              "metadata": {"order_id": REQUEST_ID, "user_id": "u-1"}} | changes
    return client.create_checkout(**values)


def test_a_checkout_sends_the_key_and_the_documented_fields(creem: CreemServer):
    checkout = _checkout(_client(creem))
    sent = creem.posts[-1]
    assert sent.path == "/v1/checkouts" and sent.headers["x-api-key"] == API_KEY
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == {"product_id": "prod_starter", "request_id": REQUEST_ID, "units": 1,
                         "customer": {"email": "ada@example.com"},
                         "success_url": f"http://127.0.0.1:8080/billing/success?order={REQUEST_ID}",
                         "metadata": {"order_id": REQUEST_ID, "user_id": "u-1"}}
    assert checkout.status == "pending" and checkout.id in creem.checkouts
    assert checkout.checkout_url == f"{creem.url.removesuffix('/v1')}/checkout/{checkout.id}"
    fetched = _client(creem).get_checkout(checkout.id)
    assert fetched["id"] == checkout.id and fetched["request_id"] == REQUEST_ID and fetched["status"] == "pending"


def test_the_hosted_page_pays_signs_the_webhook_and_redirects_with_the_documented_parameters(creem: CreemServer):
    with _Receiver() as receiver:
        creem.webhook_url = receiver.url
        checkout = _checkout(_client(creem))
        page = httpx.get(checkout.checkout_url)
        assert page.status_code == 200 and '<button type="submit">Pay</button>' in page.text
        paid = httpx.post(f"{checkout.checkout_url}/pay", follow_redirects=False)
    assert paid.status_code == 303
    target = urlsplit(paid.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "http://127.0.0.1:8080/billing/success"
    query = {name: values[0] for name, values in parse_qs(target.query).items()}
    assert query["order"] == REQUEST_ID and query["checkout_id"] == checkout.id
    assert query["request_id"] == REQUEST_ID and query["product_id"] == "prod_starter"
    assert {"order_id", "customer_id", "signature"} <= set(query)
    (raw, headers), = receiver.received
    settings = Settings(creem_webhook_secret=SecretStr(SECRET))
    assert creem_webhooks.signature_valid(settings, raw, headers["creem-signature"])  # over the exact bytes
    event = json.loads(raw)
    assert event["eventType"] == "checkout.completed" and isinstance(event["created_at"], int)
    obj = event["object"]
    assert obj["id"] == checkout.id and obj["request_id"] == REQUEST_ID and obj["status"] == "completed"
    assert (obj["order"]["amount"], obj["order"]["currency"], obj["order"]["product"]) == (500, "EUR", "prod_starter")
    assert obj["customer"]["email"] == "ada@example.com" and obj["customer"]["country"] == "DK"
    assert _client(creem).get_checkout(checkout.id)["status"] == "completed"


def test_the_signature_covers_the_raw_bytes_not_the_json():
    settings = Settings(creem_webhook_secret=SecretStr(SECRET))
    raw = b'{"id":"evt_1","eventType":"checkout.completed","created_at":1,"object":{"id":"ch_1"}}'
    signature = creem_webhooks.sign(SECRET, raw)
    assert creem_webhooks.signature_valid(settings, raw, signature)
    assert creem_webhooks.signature_valid(settings, raw, f"  {signature.upper()} ")
    for body in (json.dumps(json.loads(raw)).encode(), json.dumps(json.loads(raw), indent=2).encode(), raw + b"\n"):
        assert json.loads(body) == json.loads(raw)
        assert not creem_webhooks.signature_valid(settings, body, signature)  # the same JSON, other bytes
    assert not creem_webhooks.signature_valid(settings, raw, None)
    assert not creem_webhooks.signature_valid(settings, raw, "")
    assert not creem_webhooks.signature_valid(settings, raw, creem_webhooks.sign("another secret", raw))
    assert not creem_webhooks.signature_valid(Settings(), raw, signature)  # no secret configured: nothing passes


@pytest.mark.parametrize(("status", "words"), [
    (400, "refused the checkout"), (401, "refused our key"), (403, "refused our key"), (404, "not available"),
    (429, "busy"), (500, "having trouble"), (502, "having trouble"), (503, "having trouble"),
])
def test_every_documented_failure_is_a_plain_sentence_without_the_key(creem: CreemServer, status: int, words: str):
    creem.fail_next(status, {"error": f"boom {API_KEY}", "statusCode": status})
    with pytest.raises(CreemError) as failure:
        _checkout(_client(creem))
    assert failure.value.status == status and words in failure.value.message
    assert API_KEY not in failure.value.message and API_KEY not in failure.value.detail
    assert API_KEY not in str(failure.value) and API_KEY not in repr(_client(creem))
    assert str(status) in failure.value.detail


def test_the_real_server_refuses_a_wrong_key_and_a_bad_body(creem: CreemServer):
    with pytest.raises(CreemError, match="refused our key") as wrong_key:
        _checkout(CreemClient(creem.url, "creem_wrong_key"))
    assert wrong_key.value.status == 401
    with pytest.raises(CreemError, match="refused the checkout") as unknown_product:
        _checkout(_client(creem), product_id="prod_nope")
    assert unknown_product.value.status == 400 and "prod_nope" in unknown_product.value.detail
    with pytest.raises(CreemError, match="not available") as missing:
        _client(creem).get_checkout("ch_missing")
    assert missing.value.status == 404


def test_timeouts_unreachable_servers_and_unreadable_answers(creem: CreemServer):
    creem.fail_next(200, {"id": "ch_1"}, delay=1.0)
    with pytest.raises(CreemError, match="did not answer in time"):
        _checkout(_client(creem, timeout=0.2))
    creem.fail_next(200, b"<html>not json</html>")
    with pytest.raises(CreemError, match="could not be read"):
        _checkout(_client(creem))
    creem.fail_next(200, {"id": "ch_1", "checkout_url": "javascript:alert(1)", "status": "pending"})
    with pytest.raises(CreemError, match="could not be read"):
        _checkout(_client(creem))
    url = creem.url
    creem.stop()
    with pytest.raises(CreemError, match="could not be reached") as unreachable:
        _checkout(CreemClient(url, API_KEY))
    assert API_KEY not in unreachable.value.detail


# --- a webhook receiver, to see exactly what the stand-in sends -------------------------------------------------------

class _ReceiverServer(JoiningHTTPServer):
    owner: _Receiver


class _ReceiverHandler(LoopbackHandler):
    server: _ReceiverServer

    def _dispatch(self, method: str) -> None:
        raw = self.read_body()
        with self.server.owner.lock:
            self.server.owner.received.append((raw, {name.lower(): value for name, value in self.headers.items()}))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class _Receiver(LoopbackHTTPServer):
    handler_class = _ReceiverHandler
    server_class = _ReceiverServer
    thread_name = "loopback-webhook-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.received: list[tuple[bytes, dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"{self._origin}/webhooks/creem"
