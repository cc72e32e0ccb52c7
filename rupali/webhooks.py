"""Inbound webhooks: ``POST /webhooks/creem``, Creem's payment events.

No session, cookie or CSRF token can come with a webhook: the gate lets this one path through (``rupali/gate.py``)
and the HMAC signature over the raw body is the authorisation, checked by :mod:`rupali.services.creem_webhooks`.
The body is read raw (re-serialised JSON would not match the signature), within the app's body-size limit.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rupali.config import get_settings
from rupali.services import creem_webhooks

CREEM_PATH = "/webhooks/creem"


def install(app: FastAPI) -> None:
    """Add the webhook routes to ``app`` as routes of its own, not an included router: FastAPI keeps an included
    router as one lazy entry, which the gate's route walk (tests/api/test_gate.py) would not see."""
    app.add_api_route(CREEM_PATH, creem, methods=["POST"], include_in_schema=False)


async def creem(request: Request) -> JSONResponse:
    settings = get_settings()
    if not settings.creem_enabled:  # as if the route did not exist: nothing tells a prober billing is off
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    body = await request.body()  # counted against the body limit as it arrives (rupali/body_limit.py)
    status, outcome = await run_in_threadpool(creem_webhooks.handle, settings, body,
                                              request.headers.get(creem_webhooks.SIGNATURE_HEADER))
    return JSONResponse({"outcome": outcome.value}, status_code=status)
