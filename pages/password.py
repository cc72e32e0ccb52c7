"""Forgotten passwords: ask for a reset link, then choose a new password from it."""

from __future__ import annotations

from nicegui import ui

from components import auth, blocking
from components.forms import Banner, card, text_input
from components.frame import frame
from rupali.config import get_settings
from rupali.db import transact
from rupali.models import TokenPurpose
from rupali.services import accounts, ratelimit, users


def create() -> None:
    @ui.page("/forgot")
    async def forgot_page() -> None:
        async with frame("Forgot your password"):
            with card("Forgot your password?", "We will mail you a link to choose a new one."):
                _request_form()

    @ui.page("/reset")
    async def reset_page(token: str = "") -> None:
        usable = await blocking.io_bound(transact, accounts.token_is_usable, token, TokenPurpose.RESET_PASSWORD)
        async with frame("Choose a new password"):
            with card("Choose a new password"):
                if usable:
                    _reset_form(token)
                else:
                    _expired()


def _request_form() -> None:
    banner = Banner()
    email = text_input("E-mail address", kind="email", autocomplete="email", max_length=254)

    async def submit() -> None:
        banner.clear()
        try:
            await blocking.io_bound(transact, accounts.request_password_reset, get_settings(), email=email.value or "",
                                    ip=auth.client_ip())
        except (users.InvalidAccount, ratelimit.RateLimited) as exc:
            banner.error(str(exc))
            return
        auth.deliver_mail_soon()
        banner.success("If an account exists for that address, a reset link is on its way. It works for an hour.")

    email.on("keydown.enter", submit)
    ui.button("Send reset link", on_click=submit).props("unelevated no-caps").classes("w-full")
    with ui.row().classes("r-auth-links"):
        ui.link("Back to sign-in", "/signin")


def _reset_form(token: str) -> None:
    banner = Banner()
    password = text_input("New password (at least 10 characters)", kind="password", autocomplete="new-password",
                          max_length=1024)
    repeat = text_input("Repeat the new password", kind="password", autocomplete="new-password", max_length=1024)

    async def submit() -> None:
        banner.clear()
        if (password.value or "") != (repeat.value or ""):
            banner.error("The two passwords do not match.")
            return
        try:
            await blocking.io_bound(transact, accounts.reset_password, get_settings(), token=token,
                                    new_password=password.value or "")
        except (accounts.AccountError, users.InvalidAccount) as exc:
            banner.error(str(exc))
            return
        auth.deliver_mail_soon()
        ui.navigate.to("/signin")
        ui.notify("Your password was changed. Please sign in.", type="positive")

    repeat.on("keydown.enter", submit)
    ui.button("Save new password", on_click=submit).props("unelevated no-caps").classes("w-full")


def _expired() -> None:
    ui.label("This link has expired or was already used.")
    ui.link("Ask for a new link", "/forgot")
