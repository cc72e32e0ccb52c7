"""A Creem stand-in on loopback that speaks the documented contract, for testing payments over real HTTP.

The API (``x-api-key`` required, 401 otherwise):

- ``POST /v1/checkouts``: the body is checked strictly (``product_id`` required and one of the server's products,
  ``request_id``, ``units``, ``customer{id,email}``, ``success_url``, ``metadata`` object, ``discount_code``;
  unknown fields refused), 400 naming the problem otherwise. Answers ``{id, object, product, units, status:
  "pending", checkout_url, success_url, request_id, metadata, mode}``.
- ``GET /v1/checkouts?checkout_id=``: the checkout as it is now (with ``order`` and ``customer`` once paid), 404
  for an unknown one.

The hosted payment page, as a browser sees it (no key): ``GET /checkout/<id>`` shows the pack, the price and a
plain HTML form with a button labelled "Pay"; posting it pays: the checkout is completed, a signed
``checkout.completed`` webhook (envelope ``{id, eventType, created_at (ms), object}``, ``creem-signature`` = hex
HMAC-SHA256 of the exact raw bytes) is POSTed to ``webhook_url``, and the browser is sent (303) to the checkout's
``success_url`` with ``checkout_id, order_id, customer_id, product_id, request_id, signature`` in the query.

Scripting and helpers::

    with CreemServer(api_key="k", webhook_secret="s", products={"prod_1": Product(500, "EUR")}) as creem:
        creem.webhook_url = "http://127.0.0.1:8080/webhooks/creem"
        creem.fail_next(503)                           # canned failures for the next API calls
        creem.pay(checkout_id)                         # what the Pay button does, without a browser
        creem.refund(checkout_id, amount=250)          # a refund.created webhook (partial; full by default)
        creem.dispute(checkout_id)                     # a dispute.created webhook
        raw, signature = creem.signed(event)           # a delivery to hand to the app yourself
        creem.forged(event)                            # the same with a wrong signature
"""

from __future__ import annotations

import hashlib
import hmac
import html
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.utils.loopback import JoiningHTTPServer, LoopbackHandler, LoopbackHTTPServer

CHECKOUT_FIELDS = frozenset({"product_id", "request_id", "units", "customer", "success_url", "metadata",
                             "discount_code"})
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}{hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:10]}"


class CreemServerError(RuntimeError):
    """The loopback server was used in a way it does not support."""


@dataclass(frozen=True)
class Product:
    price: int  # minor units
    currency: str = "EUR"
    name: str = "Credit pack"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON when it parsed, else the raw bytes


@dataclass
class Delivery:
    """A webhook the server sent (or built): the exact bytes, their signature, and the app's answer."""

    event: dict[str, Any]
    raw: bytes
    signature: str
    status: int | None = None
    answer: Any = None


@dataclass
class _Checkout:
    id: str
    product_id: str
    request_id: str | None
    email: str | None
    success_url: str | None
    metadata: dict[str, Any]
    units: int = 1
    status: str = "pending"
    order: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    refunded: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def sign(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def envelope(event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """Creem's webhook envelope (the field is ``eventType``; ``created_at`` in milliseconds)."""
    return {"id": event_id or new_id("evt"), "eventType": event_type, "created_at": int(time.time() * 1000),
            "object": obj}


class _Server(JoiningHTTPServer):
    owner: CreemServer


Reply = tuple[int, bytes, dict[str, str]]


class _Handler(LoopbackHandler):
    server: _Server

    def _dispatch(self, method: str) -> None:
        creem = self.server.owner
        try:
            status, body, headers = creem._handle(self, method)
        except Exception as exc:  # a bug in the stand-in: answer 500 rather than drop the connection
            status, body, headers = 500, json.dumps({"error": repr(exc)}).encode(), {}
        try:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class CreemServer(LoopbackHTTPServer):
    """Creem's checkout API, hosted payment page and webhook sender, over real HTTP on 127.0.0.1."""

    handler_class = _Handler
    server_class = _Server
    error_class = CreemServerError
    thread_name = "loopback-creem"
    _server: _Server | None

    def __init__(self, *, api_key: str = "creem_test_key", webhook_secret: str = "whsec_test_secret",  # noqa: S107 (a test secret)
                 products: dict[str, Product] | None = None, webhook_url: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.products = dict(products or {"prod_starter": Product(500, "EUR", "Starter")})
        self.webhook_url = webhook_url
        self.country = "DK"
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[Delivery] = []
        self.checkouts: dict[str, _Checkout] = {}
        self._canned: deque[tuple[int, bytes, float]] = deque()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The API base, what ``RUPALI_CREEM_API_URL`` points at."""
        return f"{self._origin}/v1"

    # -- scripting ---------------------------------------------------------------------------------------------

    def fail_next(self, status: int, body: dict[str, Any] | bytes | None = None, *, times: int = 1,
                  delay: float = 0.0) -> None:
        """Answer the next ``times`` API calls with ``status`` (after ``delay`` seconds)."""
        payload = body if body is not None else {"error": f"Scripted failure {status}", "statusCode": status}
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with self._lock:
            self._canned.extend([(status, raw, delay)] * times)

    @property
    def posts(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.method == "POST"
                    and request.path.startswith("/v1/")]

    # -- webhooks ----------------------------------------------------------------------------------------------

    def signed(self, event: dict[str, Any]) -> tuple[bytes, str]:
        """The exact bytes Creem would send for ``event``, with their ``creem-signature``."""
        raw = json.dumps(event, separators=(",", ":")).encode()
        return raw, sign(self.webhook_secret, raw)

    def forged(self, event: dict[str, Any]) -> tuple[bytes, str]:
        """The same bytes signed with another secret: what an attacker without the secret can send."""
        raw = json.dumps(event, separators=(",", ":")).encode()
        return raw, sign(self.webhook_secret + "-not", raw)

    def send(self, event: dict[str, Any], *, raw: bytes | None = None, signature: str | None = None) -> Delivery:
        """POST ``event`` (or these exact ``raw`` bytes) to ``webhook_url``, signed unless told otherwise."""
        if self.webhook_url is None:
            raise CreemServerError("set webhook_url before sending webhooks")
        if raw is None:
            raw, computed = self.signed(event)
            signature = computed if signature is None else signature
        headers = {"content-type": "application/json"}
        if signature:
            headers["creem-signature"] = signature
        delivery = Delivery(event, raw, signature or "")
        response = httpx.post(self.webhook_url, content=raw, headers=headers, timeout=30)
        delivery.status = response.status_code
        try:
            delivery.answer = response.json()
        except ValueError:
            delivery.answer = response.text
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def checkout_object(self, checkout_id: str) -> dict[str, Any]:
        """The checkout as Creem documents it (with ``order``, ``customer`` and ``product`` once paid)."""
        with self._lock:
            checkout = self.checkouts[checkout_id]
            product = self.products[checkout.product_id]
            obj: dict[str, Any] = {
                "id": checkout.id, "object": "checkout", "request_id": checkout.request_id,
                "product": {"id": checkout.product_id, "object": "product", "name": product.name,
                            "price": product.price, "currency": product.currency, "billing_type": "onetime",
                            "status": "active", "mode": "test"},
                "units": checkout.units, "status": checkout.status,
                "checkout_url": f"{self._origin}/checkout/{checkout.id}", "success_url": checkout.success_url,
                "metadata": checkout.metadata, "mode": "test", **checkout.extra}
            if checkout.order is not None:
                obj["order"] = dict(checkout.order)
            if checkout.customer is not None:
                obj["customer"] = dict(checkout.customer)
            return obj

    def completed_event(self, checkout_id: str, *, event_id: str | None = None) -> dict[str, Any]:
        return envelope("checkout.completed", self.checkout_object(checkout_id), event_id=event_id)

    def complete(self, checkout_id: str, *, amount: int | None = None, currency: str | None = None,
                 product_id: str | None = None) -> dict[str, Any]:
        """Mark the checkout paid (as the Pay button does) and return its ``checkout.completed`` event; the keyword
        arguments make Creem report something other than the product's price (a mismatch)."""
        with self._lock:
            checkout = self.checkouts[checkout_id]
            if checkout.status != "completed":
                product = self.products[checkout.product_id]
                price = (product.price if amount is None else amount) * checkout.units
                customer_id = new_id("cust")
                checkout.customer = {"id": customer_id, "object": "customer", "email": checkout.email,
                                     "name": "Test Buyer", "country": self.country, "mode": "test"}
                checkout.order = {
                    "id": new_id("ord"), "object": "order", "customer": customer_id,
                    "product": product_id or checkout.product_id, "amount": price,
                    "currency": currency or product.currency, "sub_total": price, "tax_amount": 0,
                    "discount_amount": 0, "amount_due": price, "amount_paid": price, "status": "paid",
                    "type": "onetime", "transaction": new_id("tran"), "mode": "test"}
                checkout.status = "completed"
        return self.completed_event(checkout_id)

    def pay(self, checkout_id: str, **mismatch: Any) -> Delivery:
        """Pay the checkout and deliver its signed ``checkout.completed`` webhook."""
        return self.send(self.complete(checkout_id, **mismatch))

    def refund_event(self, checkout_id: str, amount: int | None = None, *, refund_id: str | None = None,
                     expand: bool = True) -> dict[str, Any]:
        """A ``refund.created`` event: ``amount`` (default: all that is left), ``checkout`` and ``order`` expanded
        or as ids. The checkout must be paid (Creem refunds orders); see :meth:`complete`."""
        with self._lock:
            checkout = self.checkouts[checkout_id]
            if checkout.order is None:
                raise CreemServerError("only a paid checkout can be refunded")
            left = checkout.order["amount_paid"] - checkout.refunded
            amount = left if amount is None else amount
            checkout.refunded += amount
            order = dict(checkout.order)
        obj = {"id": refund_id or new_id("ref"), "object": "refund", "status": "succeeded", "refund_amount": amount,
               "refund_currency": order["currency"], "reason": "requested_by_customer",
               "transaction": {"id": order["transaction"], "object": "transaction"},
               "checkout": self.checkout_object(checkout_id) if expand else checkout_id,
               "order": order if expand else order["id"], "customer": order["customer"],
               "created_at": int(time.time() * 1000), "mode": "test"}
        return envelope("refund.created", obj)

    def refund(self, checkout_id: str, amount: int | None = None, **options: Any) -> Delivery:
        return self.send(self.refund_event(checkout_id, amount, **options))

    def dispute_event(self, checkout_id: str, *, dispute_id: str | None = None,
                      expand: bool = False) -> dict[str, Any]:
        with self._lock:
            checkout = self.checkouts[checkout_id]
            if checkout.order is None:
                raise CreemServerError("only a paid checkout can be disputed")
            order = dict(checkout.order)
        obj = {"id": dispute_id or new_id("disp"), "object": "dispute", "amount": order["amount_paid"],
               "currency": order["currency"], "transaction": order["transaction"],
               "checkout": self.checkout_object(checkout_id) if expand else checkout_id,
               "order": order if expand else order["id"], "customer": order["customer"],
               "created_at": int(time.time() * 1000), "mode": "test"}
        return envelope("dispute.created", obj)

    def dispute(self, checkout_id: str, **options: Any) -> Delivery:
        return self.send(self.dispute_event(checkout_id, **options))

    # -- endpoints -------------------------------------------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> Reply:
        raw = handler.read_body() if method == "POST" else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw
        parts = urlsplit(handler.path)
        with self._lock:
            self.requests.append(RecordedRequest(method, parts.path, dict(handler.headers.items()), body))
        if parts.path.startswith("/checkout/"):
            return self._page(handler, method, parts.path, raw)
        if not parts.path.startswith("/v1/"):
            return self._json(404, {"error": f"No endpoint {parts.path}"})
        with self._lock:
            canned = self._canned.popleft() if self._canned else None
        if canned is not None:
            status, payload, delay = canned
            if delay:
                time.sleep(delay)
            return status, payload, {}
        if handler.headers.get("x-api-key") != self.api_key:
            return self._json(401, {"error": "Unauthorized", "statusCode": 401,
                                    "message": ["Missing or invalid x-api-key"]})
        if parts.path == "/v1/checkouts" and method == "POST":
            return self._create(handler, body)
        if parts.path == "/v1/checkouts" and method == "GET":
            checkout_id = (parse_qs(parts.query).get("checkout_id") or [""])[0]
            if checkout_id not in self.checkouts:
                return self._json(404, {"error": "Not Found", "statusCode": 404, "message": ["Checkout not found"]})
            return self._json(200, self.checkout_object(checkout_id))
        return self._json(404, {"error": f"No endpoint {method} {parts.path}"})

    def _create(self, handler: _Handler, body: Any) -> Reply:
        def bad(message: str) -> Reply:
            return self._json(400, {"error": "Bad Request", "statusCode": 400, "message": [message]})

        if (handler.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return bad("Content-Type must be application/json")
        if not isinstance(body, dict):
            return bad("the body must be a JSON object")
        unknown = set(body) - CHECKOUT_FIELDS
        if unknown:
            return bad(f"property {sorted(unknown)[0]} should not exist")
        product_id = body.get("product_id")
        if not isinstance(product_id, str) or not product_id:
            return bad("product_id must be a string")
        if product_id not in self.products:
            return bad(f"product {product_id} not found")
        request_id = body.get("request_id")
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            return bad("request_id must be a string")
        units = body.get("units", 1)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            return bad("units must be a positive integer")
        customer = body.get("customer")
        if customer is not None:
            if not isinstance(customer, dict) or set(customer) - {"id", "email"}:
                return bad("customer must be an object with id or email")
            email = customer.get("email")
            if email is not None and (not isinstance(email, str) or "@" not in email):
                return bad("customer.email must be an email")
        success_url = body.get("success_url")
        if success_url is not None and (not isinstance(success_url, str)
                                        or not success_url.startswith(("https://", "http://"))):
            return bad("success_url must be a URL address")
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            return bad("metadata must be an object")
        checkout = _Checkout(new_id("ch"), product_id, request_id, (customer or {}).get("email"), success_url,
                             metadata, units)
        with self._lock:
            self.checkouts[checkout.id] = checkout
        return self._json(200, self.checkout_object(checkout.id))

    def _page(self, handler: _Handler, method: str, path: str, raw: bytes) -> Reply:
        checkout_id = path.removeprefix("/checkout/").removesuffix("/pay")
        if checkout_id not in self.checkouts:
            return 404, b"<!doctype html><title>Not found</title><p>No such checkout.</p>", {
                "Content-Type": "text/html; charset=utf-8"}
        checkout = self.checkouts[checkout_id]
        product = self.products[checkout.product_id]
        if method == "GET":
            price = f"{product.price * checkout.units / 100:.2f} {product.currency}"
            state = "Paid" if checkout.status == "completed" else "Pay"
            page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Creem checkout</title></head>'
                    f"<body><main><h1>{html.escape(product.name)}</h1><p>Total: {html.escape(price)}</p>"
                    f"<p>Email: {html.escape(checkout.email or '')}</p>"
                    f'<form method="post" action="/checkout/{html.escape(checkout.id)}/pay">'
                    f'<button type="submit">{state}</button></form></main></body></html>')
            return 200, page.encode(), {"Content-Type": "text/html; charset=utf-8"}
        if not path.endswith("/pay"):
            return 405, b"", {}
        event = self.complete(checkout_id)
        if self.webhook_url:
            self.send(event)
        return 303, b"", {"Location": self.success_redirect(checkout_id)}

    def success_redirect(self, checkout_id: str) -> str:
        """``success_url`` with the query parameters Creem documents (and its redirect signature)."""
        checkout = self.checkouts[checkout_id]
        order = checkout.order or {}
        params = {"checkout_id": checkout.id, "order_id": order.get("id"),
                  "customer_id": (checkout.customer or {}).get("id"), "subscription_id": None,
                  "product_id": checkout.product_id, "request_id": checkout.request_id}
        present = {name: value for name, value in params.items() if value}
        # One of the two documented algorithms; the app must never trust it either way.
        joined = "|".join(f"{name}={value}" for name, value in present.items()) + f"|salt={self.api_key}"
        present["signature"] = hashlib.sha256(joined.encode()).hexdigest()
        target = checkout.success_url or f"{self._origin}/"
        separator = "&" if urlsplit(target).query else "?"
        return target + separator + urlencode(present)

    def _json(self, status: int, payload: dict[str, Any]) -> Reply:
        return status, json.dumps(payload).encode(), {}


# -- the app's side: settings for a Rupali that sells these products through this server -------------------------------

PACKS = [
    {"key": "starter", "product_id": "prod_starter", "credits": 100, "price_cents": 500, "currency": "EUR",
     "label": "Starter"},
    {"key": "big", "product_id": "prod_big", "credits": 700, "price_cents": 2000, "currency": "EUR", "label": "Big"},
]
PRODUCTS = {"prod_starter": Product(500, "EUR", "Starter"), "prod_big": Product(2000, "EUR", "Big")}


def billing_env(server: CreemServer) -> dict[str, str]:
    """The ``RUPALI_*`` settings for ``RUPALI_BILLING=creem`` against ``server``."""
    return {"RUPALI_BILLING": "creem", "RUPALI_CREEM_API_URL": server.url, "RUPALI_CREEM_API_KEY": server.api_key,
            "RUPALI_CREEM_WEBHOOK_SECRET": server.webhook_secret, "RUPALI_CREDIT_PACKS": json.dumps(PACKS)}
