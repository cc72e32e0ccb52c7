"""The auth gate: every HTTP route needs a signed-in, onboarded, active user unless it is on the allow-list.

Default-deny: a route added later is gated without anyone remembering to gate it, and the route-walk test
(tests/api/test_gate.py) fails for any route that is neither allow-listed nor gated. Admin areas answer 404 to
everyone else, so they do not even reveal that they exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rupali.config import get_settings
from rupali.cookies import AUTH_COOKIE
from rupali.db import transact
from rupali.models import ApiKeyScope, User
from rupali.services import api_keys, policy_updates, sessions

PUBLIC_PATHS = frozenset({
    "/", "/healthz", "/signin", "/signup", "/forgot", "/reset", "/confirm-email",
    "/verify", "/api/v1/verify",  # checking an image's Content Credentials is for anyone; nothing is stored
    "/auth/complete", "/auth/signout", "/auth/oidc/login", "/auth/oidc/callback",
    "/deletion/cancel",  # the link in the deletion mail: the single-use token is the authorisation
    "/unsubscribe",  # RFC 8058 one-click unsubscribe: the signed link is the authorisation, no session needed
    "/support",  # the contact form is for visitors too; threads are shown only to their signed-in owner
    "/webhooks/creem",  # Creem's payment events: the HMAC signature over the body is the authorisation
    "/metrics",  # Prometheus' scrape: the bearer token (RUPALI_METRICS_TOKEN) is the authorisation; 404 when off
    "/api/docs", "/api/openapi.json",
    # Swagger UI's own files for /api/docs (rupali.api.DOCS_ASSETS), served by the app: no CDN.
    "/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-ui.css", "/api/docs/favicon.png",
})
PUBLIC_PREFIXES = ("/legal/",)
# NiceGUI's own machinery: scripts, styles, and the websocket of a page that was itself served through the gate.
STATIC_PREFIXES = ("/_nicegui/", "/_nicegui_ws/", "/assets/")
# Where a signed-in person goes until age, policies and e-mail address are confirmed.
ONBOARDING_PATH = "/welcome"
ADMIN_PREFIXES = ("/admin", "/api/v1/admin")
# An account pending deletion reaches only the page that offers to cancel it (and signing out, the legal pages).
DELETION_PATH = "/deletion"
OPEN_WHILE_DELETION_PENDING = frozenset({DELETION_PATH, "/deletion/cancel"})
# Reachable before accepting changed policies: someone who disagrees can still download their data and leave.
POLICY_EXEMPT_PREFIXES = ("/privacy", "/deletion", "/media/", "/auth/")
API_PREFIX = "/api/"
# Pages a visitor may not know about are answered with the app's own 404 page: the gate hands the request on under
# this path, which no route serves.
NOT_FOUND_PATH = "/__not_found__"
NOT_FOUND = Response(status_code=404)  # a marker, never sent


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES + STATIC_PREFIXES)


def safe_next(target: str | None, default: str = "/studio") -> str:
    """A same-site path to continue to after signing in; anything else (``//evil``, ``https://…``) is dropped."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 500:
        return default
    return target


@dataclass(frozen=True)
class ApiKeyAuth:
    """A request authenticated by a personal API key (``Authorization: Bearer rk_…``), limited to the key's scope.

    The gate only authenticates; each API route declares the scope it needs and refuses a key without it.
    """

    user: User
    scope: ApiKeyScope


class AuthGate:
    """ASGI middleware resolving the session cookie into ``request.state.auth`` and enforcing the rules."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(STATIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        token = connection.cookies.get(AUTH_COOKIE)
        bearer = connection.headers.get("authorization", "")
        if scope["path"].startswith(API_PREFIX) and bearer.lower().startswith("bearer "):
            found = await run_in_threadpool(transact, api_keys.resolve, bearer[7:].strip())
            auth = ApiKeyAuth(*found) if found is not None else None  # expired, revoked, unknown: all just 401
        elif token:
            settings = get_settings()
            auth = sessions.cached(settings, token) or await run_in_threadpool(
                transact, sessions.resolve, settings, token)
        else:
            auth = None
        scope.setdefault("state", {})["auth"] = auth
        response = _refusal(scope["path"], scope.get("query_string", b""), auth)
        if response is None and auth is not None and _asks_for_policy_acceptance(scope):
            response = await _policy_notice(scope, auth.user.id)
        if response is None:
            await self.app(scope, receive, send)
        elif response is NOT_FOUND:
            # The app's own "does not exist" page, exactly as for an unknown address: nothing tells them apart.
            await self.app({**scope, "path": NOT_FOUND_PATH, "raw_path": NOT_FOUND_PATH.encode()}, receive, send)
        else:
            await response(scope, receive, send)


def _open_while_deletion_pending(path: str) -> bool:
    """The deletion page, its own picture in the header, and the public pages other than the home page."""
    return path in OPEN_WHILE_DELETION_PENDING or path.startswith("/media/avatar/") or (is_public(path) and path != "/")


def _asks_for_policy_acceptance(scope: Scope) -> bool:
    """Pages (not the API, media or the pages needed to read, accept or leave) wait for changed policies."""
    path = scope["path"]
    return (scope.get("method") == "GET" and not is_public(path)
            and not path.startswith((API_PREFIX, *POLICY_EXEMPT_PREFIXES))
            and path not in (ONBOARDING_PATH, policy_updates.PATH))


async def _policy_notice(scope: Scope, user_id: Any) -> Response | None:
    settings = get_settings()
    if policy_updates.known_accepted(settings, user_id):
        return None
    if not await run_in_threadpool(transact, policy_updates.needs_acceptance, settings, user_id):
        return None
    query = scope.get("query_string", b"")
    target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
    return RedirectResponse(f"{policy_updates.PATH}?next={quote(target, safe='')}", status_code=303)


def _refusal(path: str, query: bytes, auth: Any) -> Response | None:
    if auth is not None and auth.user.deletion_requested_at is not None and not _open_while_deletion_pending(path):
        if path.startswith(API_PREFIX):
            return JSONResponse({"detail": "This account is scheduled for deletion. Sign in on the website to "
                                           "cancel the deletion."}, status_code=403)
        return RedirectResponse(DELETION_PATH, status_code=303)
    if is_public(path):
        return None
    if auth is None:
        if path.startswith(API_PREFIX):
            return JSONResponse({"detail": "Not signed in."}, status_code=401)
        target = path + ("?" + query.decode("latin-1") if query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
    if path.startswith(ADMIN_PREFIXES) and not auth.user.is_admin:
        return JSONResponse({"detail": "Not Found"}, status_code=404) if path.startswith(API_PREFIX) else NOT_FOUND
    if not auth.user.onboarded and path != ONBOARDING_PATH:
        if path.startswith(API_PREFIX):
            return JSONResponse({"detail": "Finish setting up your account first."}, status_code=403)
        return RedirectResponse(ONBOARDING_PATH, status_code=303)
    return None
