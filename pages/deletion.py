"""Account deletion: the page a person pending deletion sees, the cancel link from the mail, and the page-side
helpers the privacy center and the admin pages call to delete an account.

While an account is pending deletion the gate sends every page to ``/deletion``, which offers only "Cancel
deletion" and "Sign out". The mail's link (``/deletion/cancel?token=…``) only shows a button: a GET never changes
anything, so mail scanners that open links cannot use it up.
"""

from __future__ import annotations

import uuid

from fastapi.responses import RedirectResponse
from nicegui import context, ui

from components import auth, blocking
from components.forms import Banner, card
from components.frame import frame, sign_out
from rupali import dates, runtime
from rupali.config import get_settings
from rupali.db import transact
from rupali.gate import DELETION_PATH
from rupali.models import ErasureRecord, User
from rupali.services import deletion
from rupali.services import generation as generations
from rupali.services.deletion import CANCEL_PATH, DeletionError
from rupali.services.sessions import SignedIn


def create() -> None:
    @ui.page(DELETION_PATH)
    async def deletion_page() -> RedirectResponse | None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        if not deletion.is_pending(viewer.user) or viewer.user.deletion_due_at is None:
            return RedirectResponse("/privacy", status_code=303)
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("Account deletion"):
            with card("Your account is scheduled for deletion"):
                _pending(dates.moment(viewer.user.deletion_due_at, locale))
        return None

    @ui.page(CANCEL_PATH)
    async def cancel_link_page(token: str = "") -> None:
        usable = await blocking.io_bound(transact, deletion.cancel_link_usable, token)
        async with frame("Cancel account deletion"):
            with card("Keep your account"):
                if not usable:
                    ui.label("This link has expired or was already used, so it cannot cancel a deletion any more.")
                    with ui.row().classes("r-auth-links"):
                        ui.link("Sign in to see the state of your account", "/signin")
                    return
                _cancel_by_link(token)


def _pending(when: str) -> None:
    ui.label(f"Your account is scheduled for deletion on {when}.")
    ui.label("Until then you can cancel the deletion and use Rupali as before. After that, your account, images, "
             "prompts and uploads are deleted for good.").classes("r-muted")
    banner = Banner()

    async def cancel(signed_in: SignedIn) -> None:
        banner.clear()
        try:
            await blocking.io_bound(transact, deletion.cancel_deletion, get_settings(), signed_in.user)
        except DeletionError as exc:
            banner.error(str(exc))
            return
        auth.deliver_mail_soon()
        keep.delete()
        leave.delete()
        banner.success("The deletion is cancelled. Your account stays as it was.")
        ui.button("Continue", on_click=lambda: ui.navigate.to("/studio")).props("unelevated no-caps").classes("w-full")

    keep = ui.button("Cancel deletion", on_click=auth.action(cancel)).props("unelevated no-caps").classes("w-full")
    leave = ui.button("Sign out", on_click=sign_out).props("outline no-caps").classes("w-full")


def _cancel_by_link(token: str) -> None:
    intro = ui.label("Press the button to cancel the deletion of your account. Nothing will be deleted.")
    banner = Banner()

    async def confirm() -> None:
        banner.clear()
        try:
            await blocking.io_bound(transact, deletion.cancel_by_token, get_settings(), token)
        except DeletionError as exc:
            banner.error(str(exc))
            return
        auth.deliver_mail_soon()
        intro.delete()
        button.delete()
        banner.success("The deletion is cancelled. Your account stays as it was.")
        ui.button("Sign in", on_click=lambda: ui.navigate.to("/signin")).props("unelevated no-caps").classes("w-full")

    button = ui.button("Cancel the deletion", on_click=confirm).props("unelevated no-caps").classes("w-full")


# --- for the privacy center and the admin pages ----------------------------------------------------------------------

async def request(signed_in: SignedIn, *, password: str | None = None, typed_email: str | None = None) -> User:
    """The person asks to delete their account (raises :class:`DeletionError` with a sentence to show).

    Besides the service's work (sessions and keys revoked, generations cancelled, mail queued) the running queue
    stops the account's jobs. The page's own session is revoked too: send the person somewhere public afterwards.
    """
    current = runtime.current()
    unfinished = await blocking.io_bound(transact, deletion.unfinished_generations, signed_in.user.id)
    user = await blocking.io_bound(transact, deletion.request_deletion, get_settings(), signed_in.user,
                                   password=password, typed_email=typed_email, credits=current.credits)
    await _stop_jobs(signed_in.user.id, unfinished)
    auth.deliver_mail_soon()
    return user


async def erase(user: User, *, reason: str = deletion.ADMINISTRATOR) -> ErasureRecord:
    """An administrator erases ``user`` at once (raises :class:`DeletionError` when it no longer exists)."""
    current = runtime.current()
    unfinished = await blocking.io_bound(transact, deletion.unfinished_generations, user.id)
    await _stop_jobs(user.id, unfinished)
    return await blocking.io_bound(transact, deletion.erase_now, get_settings(), current.storage, user, reason=reason)


async def _stop_jobs(user_id: uuid.UUID, generation_ids: list[uuid.UUID]) -> None:
    queue = runtime.current().queue
    for generation_id in generation_ids:
        try:
            await queue.cancel(user_id, generation_id)
        except generations.GenerationNotFound:
            continue  # erased meanwhile: nothing left to stop
