"""HTTP endpoints of signing in and out: the session handoff, sign-out, OpenID Connect, profile pictures.

These are plain HTTP routes because only an HTTP response can set or clear the session cookie.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from nicegui import app

from components import blocking
from rupali import cookies
from rupali.config import Settings, get_settings
from rupali.cookies import AUTH_COOKIE
from rupali.db import transact
from rupali.gate import safe_next
from rupali.oidc_client import OidcClient
from rupali.services import oidc, sessions, users
from rupali.storage import InvalidKey
from rupali.storage import from_settings as storage_from_settings

FLASH_KEY = "flash"  # a refusal message for the sign-in page, kept in the signed session cookie


def create() -> None:
    settings = get_settings()
    client = OidcClient(settings) if settings.oidc_enabled else None

    @app.get("/auth/complete", include_in_schema=False)
    async def complete_signin(request: Request, code: str = "", next: str = "") -> Response:
        try:
            token = await blocking.io_bound(transact, sessions.complete_handoff, code, _visitor(request))
        except sessions.InvalidHandoff:
            return RedirectResponse("/signin?error=handoff", status_code=303)
        return _signed_in(request, RedirectResponse(safe_next(next), status_code=303), token, get_settings())

    @app.post("/auth/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        # POST only: a GET could be fired by any image tag on another site. A cross-site POST arrives without the
        # SameSite=Lax cookie anyway; a foreign Origin is refused outright.
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return Response("Signing out is only possible from this site.", status_code=403)
        auth = getattr(request.state, "auth", None)
        if auth is not None:
            await blocking.io_bound(transact, sessions.revoke, auth.user, auth.session.id)
        response = RedirectResponse("/", status_code=303)
        cookie = cookies.by_name(get_settings(), AUTH_COOKIE)
        response.delete_cookie(cookie.name, path="/", httponly=cookie.http_only, samesite=cookie.same_site,  # type: ignore[arg-type]
                               secure=cookie.secure)
        return response

    @app.get("/auth/oidc/login", include_in_schema=False)
    async def oidc_login(request: Request, next: str = "") -> Response:
        if client is None:
            return RedirectResponse("/signin", status_code=303)
        request.session["oidc_next"] = safe_next(next)
        try:
            return await client.authorize_redirect(request)
        except oidc.OidcRefused as exc:
            return _refused(request, str(exc))

    @app.get("/auth/oidc/callback", include_in_schema=False)
    async def oidc_callback(request: Request) -> Response:
        if client is None:
            return RedirectResponse("/signin", status_code=303)
        try:
            identity = await client.identity(request)
            current = get_settings()
            user = await blocking.io_bound(transact, oidc.account_for, current, identity)
        except oidc.OidcRefused as exc:
            return _refused(request, str(exc))
        ip = request.client.host if request.client else ""
        code = await blocking.io_bound(transact, sessions.start, current, user, method="oidc", ip=ip,
                                       user_agent=request.headers.get("user-agent", ""), visitor_id=_visitor(request))
        token = await blocking.io_bound(transact, sessions.complete_handoff, code, _visitor(request))
        target = safe_next(request.session.pop("oidc_next", None))
        return _signed_in(request, RedirectResponse(target, status_code=303), token, current)

    @app.get("/media/avatar/{user_id}", include_in_schema=False)
    async def avatar(request: Request, user_id: str) -> Response:
        auth = request.state.auth  # the gate admits only signed-in people here
        not_found = Response(status_code=404)
        try:
            owner_id = uuid.UUID(user_id)
        except ValueError:
            return not_found
        if owner_id != auth.user.id and not auth.user.is_admin:
            return not_found
        key = await blocking.io_bound(transact, users.avatar_key, owner_id)
        if not key:
            return not_found
        storage = storage_from_settings(get_settings())
        try:
            data = await blocking.io_bound(storage.read, key)  # avatars are small: one read, on either backend
        except (OSError, InvalidKey):
            return not_found
        return Response(data, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})


def _visitor(request: Request) -> str:
    return str(request.session.get("id", ""))


def _signed_in(request: Request, response: Response, token: str, settings: Settings) -> Response:
    # A refusal the person never read on /signin is obsolete now, and would be confusing on the next visit there.
    request.session.pop(FLASH_KEY, None)
    cookie = cookies.by_name(settings, AUTH_COOKIE)
    response.set_cookie(cookie.name, token, max_age=cookie.max_age, path="/", httponly=cookie.http_only,
                        samesite=cookie.same_site, secure=cookie.secure)  # type: ignore[arg-type]
    return response


def _refused(request: Request, message: str) -> Response:
    request.session[FLASH_KEY] = message
    return RedirectResponse("/signin", status_code=303)
