"""E-mail links: confirm an address after sign-up, or confirm a new address after a change.

Following the link only shows a button; the token is used when the person presses it, so mail scanners that
open links in advance cannot use it up.
"""

from __future__ import annotations

from nicegui import ui

from components import blocking
from components.forms import Banner, card
from components.frame import frame
from rupali.db import transact
from rupali.models import TokenPurpose
from rupali.services import accounts


def create() -> None:
    @ui.page("/confirm-email")
    async def confirm_email_page(token: str = "") -> None:
        purpose = await blocking.io_bound(transact, accounts.link_purpose, token)
        async with frame("Confirm your e-mail address"):
            with card("Confirm your e-mail address"):
                if purpose is None:
                    ui.label("This link has expired or was already used.")
                    with ui.row().classes("r-auth-links"):
                        ui.link("Sign in to get a new one", "/signin")
                    return
                _confirm(token, purpose)


def _confirm(token: str, purpose: TokenPurpose) -> None:
    banner = Banner()
    is_change = purpose == TokenPurpose.CHANGE_EMAIL
    intro = ui.label("Press the button to confirm this is your new e-mail address." if is_change
                     else "One click and your account is ready.")

    async def confirm() -> None:
        banner.clear()
        work = accounts.confirm_email_change if is_change else accounts.verify_email
        try:
            await blocking.io_bound(transact, work, token)
        except accounts.AccountError as exc:
            banner.error(str(exc))
            return
        # The page now reports what happened: the invitation and its button have done their job.
        intro.delete()
        button.delete()
        banner.success("Your new e-mail address is confirmed." if is_change
                       else "Your e-mail address is confirmed. You can sign in now.")
        target = "/account" if is_change else "/signin"
        ui.button("Continue", on_click=lambda: ui.navigate.to(target)).props("unelevated no-caps").classes("w-full")

    button = ui.button("Confirm my new address" if is_change else "Confirm my e-mail address",
                       on_click=confirm).props("unelevated no-caps").classes("w-full")
