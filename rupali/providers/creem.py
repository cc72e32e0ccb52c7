"""Creem's checkout API over httpx: the one call Rupali makes to sell a credit pack.

The contract (see the Creem section of the third-party API notes): ``POST <api_url>/checkouts`` with the key in the
``x-api-key`` header and a JSON body (``product_id``, ``request_id``, ``customer{email}``, ``success_url``,
``metadata``); the answer carries ``id``, ``checkout_url`` and ``status``. Documented failures are 400, 401, 403,
404, 429 and 500. Nothing is retried: the person is waiting on the buy button, and a retried checkout would only
open a second payment page for the same order.

Every failure becomes a :class:`CreemError` whose ``message`` is a plain sentence fit for the person buying, and
whose ``detail`` (for the log) is scrubbed of the API key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from rupali.config import Settings

_DETAIL_LIMIT = 300

_MESSAGES = {
    400: "The payment provider refused the checkout request. Please tell the operator of this service.",
    401: "Payments are not set up correctly here (the payment provider refused our key). Please tell the operator "
         "of this service.",
    403: "Payments are not set up correctly here (the payment provider refused our key). Please tell the operator "
         "of this service.",
    404: "This credit pack is not available at the payment provider. Please tell the operator of this service.",
    429: "The payment provider is busy right now. Please try again in a minute.",
}
_SERVER_TROUBLE = "The payment provider is having trouble. Please try again in a few minutes."
_TIMEOUT = "The payment provider did not answer in time. Please try again in a few minutes."
_UNREACHABLE = "The payment provider could not be reached. Please try again in a few minutes."
_UNREADABLE = "The payment provider's answer could not be read. Please try again in a few minutes."


class CreemError(Exception):
    """A checkout that could not be created: ``message`` for the person, ``detail`` for the log."""

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail or message


@dataclass(frozen=True)
class Checkout:
    id: str
    checkout_url: str
    status: str


class CreemClient:
    """Creates checkouts at Creem (live or test mode, by ``api_url``)."""

    def __init__(self, api_url: str, api_key: str, timeout: float = 20.0,
                 *, transport: httpx.BaseTransport | None = None) -> None:
        if not api_key:
            raise ValueError("the Creem API key is empty")
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> CreemClient:
        if settings.creem_api_key is None:
            raise ValueError("RUPALI_CREEM_API_KEY is not set")
        return cls(settings.creem_api_url, settings.creem_api_key.get_secret_value())

    def __repr__(self) -> str:  # never the key
        return f"CreemClient({self.api_url!r})"

    def create_checkout(self, *, product_id: str, request_id: str, email: str, success_url: str,
                        metadata: dict[str, str]) -> Checkout:
        """Open a payment page for one unit of ``product_id``; ``request_id`` comes back in the webhook."""
        body = {"product_id": product_id, "request_id": request_id, "units": 1, "customer": {"email": email},
                "success_url": success_url, "metadata": metadata}
        payload = self._request("POST", "/checkouts", json_body=body)
        return self._checkout(payload)

    def get_checkout(self, checkout_id: str) -> dict[str, Any]:
        """The checkout as Creem has it now (``GET /checkouts?checkout_id=``)."""
        return self._request("GET", "/checkouts", params={"checkout_id": checkout_id})

    def _checkout(self, payload: dict[str, Any]) -> Checkout:
        checkout_id, url, status = payload.get("id"), payload.get("checkout_url"), payload.get("status", "")
        if not isinstance(checkout_id, str) or not checkout_id or len(checkout_id) > 120:
            raise CreemError(_UNREADABLE, status=200, detail="the checkout answer has no usable id")
        # Only a web address is handed to the browser: nothing like javascript: from a confused answer.
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise CreemError(_UNREADABLE, status=200, detail="the checkout answer has no usable checkout_url")
        return Checkout(checkout_id, url, status if isinstance(status, str) else "")

    def _request(self, method: str, path: str, *, json_body: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"x-api-key": self._api_key, "accept": "application/json"}
        try:
            with httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                              transport=self._transport) as client:
                response = client.request(method, self.api_url + path, headers=headers, json=json_body,
                                          params=params)
        except httpx.TimeoutException as exc:
            raise CreemError(_TIMEOUT, detail=self._scrub(f"{type(exc).__name__}: {exc}")) from None
        except httpx.HTTPError as exc:
            raise CreemError(_UNREACHABLE, detail=self._scrub(f"{type(exc).__name__}: {exc}")) from None
        status = response.status_code
        if status != 200 and status != 201:
            message = _MESSAGES.get(status, _SERVER_TROUBLE)
            raise CreemError(message, status=status,
                             detail=self._scrub(f"Creem answered HTTP {status}: {response.text[:_DETAIL_LIMIT]}"))
        try:
            payload = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CreemError(_UNREADABLE, status=status, detail="Creem answered with malformed JSON") from None
        if not isinstance(payload, dict):
            raise CreemError(_UNREADABLE, status=status, detail=f"Creem answered {type(payload).__name__}")
        return payload

    def _scrub(self, text: str) -> str:
        """Remove the API key from text bound for an exception or a log line."""
        return text.replace(self._api_key, "[key]")[:_DETAIL_LIMIT + 60]
