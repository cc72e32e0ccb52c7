"""The last step before a signed-in person may use Rupali: age, policies, and a confirmed e-mail address."""

from __future__ import annotations

from fastapi.responses import RedirectResponse
from nicegui import ui

from components import auth, blocking
from components.forms import Banner, ConsentChoices, card
from components.frame import frame
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import accounts, ratelimit


def create() -> None:
    @ui.page("/welcome")
    async def welcome_page() -> RedirectResponse | None:
        viewer = auth.viewer()
        assert viewer is not None  # the gate lets only signed-in people reach this page
        if viewer.user.onboarded:
            return RedirectResponse("/studio", status_code=303)
        settings = get_settings()
        async with frame("Welcome"):
            with card(f"Welcome, {viewer.user.full_name}", "One more step before you start."):
                banner = Banner()
                if viewer.user.age_confirmed_at is None:
                    _consent_form(banner, settings.minimum_age)
                else:
                    _check_inbox(banner, viewer.user.email)
        return None


def _consent_form(banner: Banner, minimum_age: int) -> None:
    choices = ConsentChoices(minimum_age)

    async def submit(signed_in: auth.SignedIn) -> None:
        banner.clear()
        age_confirmed, accepted = choices.value
        consent = accounts.Consent(age_confirmed=age_confirmed, accepted_policies=accepted)
        try:
            await blocking.io_bound(transact, accounts.record_consent, get_settings(), signed_in.user, consent)
        except accounts.AccountError as exc:
            banner.error(str(exc))
            return
        ui.navigate.to("/welcome")

    ui.button("Continue", on_click=auth.action(submit)).props("unelevated no-caps").classes("w-full")


def _check_inbox(banner: Banner, email: str) -> None:
    ui.label(f"We sent a confirmation link to {email}. Follow it, then come back here.")

    async def resend(_: auth.SignedIn) -> None:
        try:
            await blocking.io_bound(transact, accounts.resend_verification, get_settings(), email=email,
                                    ip=auth.client_ip())
        except ratelimit.RateLimited as exc:
            banner.error(str(exc))
            return
        auth.deliver_mail_soon()
        banner.success("A new link is on its way.")

    ui.button("Send the link again", on_click=auth.action(resend)).props("outline no-caps").classes("w-full")
    ui.button("I have confirmed it", on_click=lambda: ui.navigate.to("/welcome")).props(
        "unelevated no-caps").classes("w-full")
