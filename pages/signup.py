"""Create an account: name, e-mail, password, the age confirmation and acceptance of the policies."""

from __future__ import annotations

from fastapi.responses import RedirectResponse
from nicegui import ui

from components import auth, blocking
from components.forms import Banner, ConsentChoices, card, text_input
from components.frame import frame
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import accounts, ratelimit, users


def create() -> None:
    @ui.page("/signup")
    async def signup_page() -> RedirectResponse | None:
        if auth.viewer() is not None:
            return RedirectResponse("/studio", status_code=303)
        settings = get_settings()
        async with frame("Create an account"):
            with card("Create your account", "Private by default. Your prompts never train anyone's model."):
                if not settings.password_signin:
                    ui.label(f"Accounts are created by signing in with {settings.oidc_name}.")
                    ui.link("Go to sign-in", "/signin")
                    return None
                _form(settings.minimum_age, settings.mail_to_log)
        return None


def _form(minimum_age: int, mail_to_log: bool) -> None:
    banner = Banner()
    form = ui.column().classes("w-full gap-3")
    with form:
        name = text_input("Full name", autocomplete="name", max_length=200)
        email = text_input("E-mail address", kind="email", autocomplete="email", max_length=254)
        password = text_input("Password (at least 10 characters)", kind="password", autocomplete="new-password",
                              max_length=1024)
        choices = ConsentChoices(minimum_age)
    done = ui.column().classes("w-full gap-2")
    done.set_visibility(False)

    async def submit() -> None:
        banner.clear()
        age_confirmed, accepted = choices.value
        consent = accounts.Consent(age_confirmed=age_confirmed, accepted_policies=accepted)
        try:
            await blocking.io_bound(transact, accounts.sign_up, get_settings(), email=email.value or "",
                                    full_name=name.value or "", password=password.value or "", consent=consent,
                                    ip=auth.client_ip())
        except (accounts.AccountError, users.InvalidAccount, ratelimit.RateLimited) as exc:
            banner.error(str(exc))
            return
        auth.deliver_mail_soon()
        form.set_visibility(False)
        submit_button.set_visibility(False)
        with done:
            ui.label("Check your inbox").classes("r-card-title")
            ui.label(f"We sent a link to {(email.value or '').strip()}. Follow it to confirm your address, then "
                     "sign in.")
            if mail_to_log:
                ui.label("This installation has no mail server configured: the message is in the server's log."
                         ).classes("r-muted")
        done.set_visibility(True)

    submit_button = ui.button("Create account", on_click=submit).props("unelevated no-caps").classes("w-full")
    with ui.row().classes("r-auth-links"):
        ui.label("Already have an account?")
        ui.link("Sign in", "/signin")
