"""The notice a signed-in person sees when the Terms or the Privacy Policy changed since they last accepted them."""

from __future__ import annotations

from fastapi.responses import RedirectResponse
from nicegui import context, ui

from components import auth, blocking
from components.forms import Banner, card
from components.frame import frame
from rupali import dates
from rupali.config import get_settings
from rupali.db import transact
from rupali.gate import safe_next
from rupali.services import policy_updates
from rupali.services.sessions import SignedIn


def create() -> None:
    @ui.page(policy_updates.PATH)
    async def policy_update_page(next: str = "/studio") -> RedirectResponse | None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        target = safe_next(next)
        settings = get_settings()
        pending = await blocking.io_bound(transact, policy_updates.pending, settings, viewer.user.id)
        if not pending:
            return RedirectResponse(target, status_code=303)
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("Updated policies"):
            with card("We updated our policies", "Please read what changed and accept to go on."):
                banner = Banner()
                with ui.element("ul").classes("r-link-list"):
                    for document in pending:
                        with ui.element("li"):
                            ui.link(f"{document.title}, in force since "
                                    f"{dates.medium(document.effective_at.date(), locale)} "
                                    f"(version {document.version})", f"/legal/{document.slug}", new_tab=True)
                ui.label("Your images, settings and choices stay as they are. If you do not agree, you can download "
                         "your data and delete your account in the privacy center.").classes("r-muted text-sm")

                async def accept(signed_in: SignedIn) -> None:
                    banner.clear()
                    await blocking.io_bound(transact, policy_updates.accept, get_settings(), signed_in.user)
                    ui.navigate.to(target)

                ui.button("Accept and continue", on_click=auth.action(accept)).props(
                    "unelevated no-caps").classes("w-full")
                ui.link("Go to the privacy center instead", "/privacy")
        return None
