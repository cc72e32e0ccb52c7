"""Sign in with e-mail and password, or with the configured OpenID Connect provider."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import RedirectResponse
from nicegui import app, ui

from components import auth, blocking
from components.forms import Banner, card, text_input
from components.frame import frame
from pages.auth_routes import FLASH_KEY
from rupali.config import get_settings
from rupali.db import transact
from rupali.gate import safe_next
from rupali.services import accounts, ratelimit, sessions, users

HANDOFF_ERRORS = {"handoff": "That sign-in took too long or was opened in another browser. Please sign in again."}


def create() -> None:
    @ui.page("/signin")
    async def signin_page(next: str = "", error: str = "") -> RedirectResponse | None:
        target = safe_next(next)
        if auth.viewer() is not None:
            return RedirectResponse(target, status_code=303)
        settings = get_settings()
        flash = app.storage.browser.pop(FLASH_KEY, None)
        async with frame("Sign in"):
            with card("Sign in", "Welcome back."):
                banner = Banner()
                if message := flash or HANDOFF_ERRORS.get(error):
                    banner.error(message)
                if settings.oidc_enabled:
                    ui.button(f"Continue with {settings.oidc_name}", on_click=lambda: ui.navigate.to(
                        f"/auth/oidc/login?next={quote(target, safe='')}")).props("outline no-caps").classes("w-full")
                if settings.oidc_enabled and settings.password_signin:
                    ui.label("or").classes("r-divider")
                if settings.password_signin:
                    _password_form(banner, target)
        return None


def _password_form(banner: Banner, target: str) -> None:
    email = text_input("E-mail address", kind="email", autocomplete="username", max_length=254)
    password = text_input("Password", kind="password", autocomplete="current-password", max_length=1024)

    async def submit() -> None:
        banner.clear()
        settings = get_settings()
        try:
            user = await blocking.io_bound(transact, accounts.authenticate, settings, email=email.value or "",
                                           password=password.value or "", ip=auth.client_ip())
        except accounts.EmailNotVerified as exc:
            auth.deliver_mail_soon()
            banner.error(str(exc))
            return
        except (accounts.AccountError, users.InvalidAccount, ratelimit.RateLimited) as exc:
            banner.error(str(exc))
            return
        code = await blocking.io_bound(transact, sessions.start, settings, user, method="password", ip=auth.client_ip(),
                                       user_agent=auth.user_agent(), visitor_id=auth.visitor_id())
        auth.deliver_mail_soon()
        ui.navigate.to(f"/auth/complete?code={code}&next={quote(target, safe='')}")

    password.on("keydown.enter", submit)
    ui.button("Sign in", on_click=submit).props("unelevated no-caps").classes("w-full")
    with ui.row().classes("r-auth-links"):
        ui.link("Forgot your password?", "/forgot")
        ui.link("Create an account", "/signup")
