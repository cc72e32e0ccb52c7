"""The moderation queue: images the NSFW scorer or the AI provider flagged, and generations that were blocked (by the
blocklist, the provider or the NSFW filter). Dismiss, remove an image (its owner is mailed why), suspend the owner.
The gate answers 404 here, and at the thumbnails route below, to anyone who is not an admin.

Every control re-checks the session and the role (``admin_action``); the service checks the role once more and
writes the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from babel import Locale
from fastapi import Request
from fastapi.responses import Response
from nicegui import app, context, ui

from components import auth, blocking
from components.admin_nav import admin_nav
from components.forms import Banner, text_input
from components.frame import frame
from components.picture import Picture
from components.tables import table
from components.text import Text, heading, set_attributes
from pages.admin_users import SUSPEND_LABEL, admin_action
from rupali import dates, image_files, runtime
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import moderation
from rupali.services.sessions import SignedIn

THUMBNAILS = "/admin/moderation/thumbnails"
REMOVE_LABEL = "Reason for the removal (sent to the owner)"


def create() -> None:
    @ui.page("/admin/moderation")
    async def moderation_page() -> None:
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("Moderation · Administration", active="/admin"):
            heading("Moderation")
            admin_nav("/admin/moderation")
            view = ModerationView(locale)
            await view.refresh()

    @app.get(THUMBNAILS + "/{image_id}", include_in_schema=False)
    async def thumbnail(request: Request, image_id: str) -> Response:
        """Anyone's thumbnail, for administrators only (the gate already answers 404 to others under /admin)."""
        signed_in = getattr(request.state, "auth", None)
        if signed_in is None or not signed_in.user.is_admin:
            return image_files.NOT_FOUND
        return await image_files.thumbnail(runtime.current().storage, signed_in.user, image_id,
                                           request.headers.get("if-none-match"),
                                           redirect_seconds=image_files.redirect_seconds(get_settings()))


class ModerationView:
    """Both queues, newest first, a page at a time; rebuilt from the database after each action."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        self.done = Banner()  # outside the rebuilt parts: the confirmation stays
        self.images: list[moderation.FlaggedImage] = []
        self.generations: list[moderation.BlockedGeneration] = []
        self.image_page: moderation.QueuePage[moderation.FlaggedImage] | None = None
        self.generation_page: moderation.QueuePage[moderation.BlockedGeneration] | None = None
        with _panel("Flagged images", "flagged-images"):
            self.images_title = heading("Flagged images", 2)
            ui.label("Images whose NSFW score reached the threshold or that the AI provider flagged. Dismiss leaves "
                     "the image as it is; Remove deletes it and mails its owner your reason.").classes("r-muted")
            self.images_content = ui.column().classes("w-full gap-2").mark("flagged-images")
        with _panel("Blocked generations", "blocked-generations"):
            self.generations_title = heading("Blocked generations", 2)
            ui.label("Generations stopped by the prompt blocklist, refused by the AI provider, or whose every image "
                     "the NSFW filter withheld. Strikes count the owner's blocklist hits in the last 24 hours."
                     ).classes("r-muted")
            self.generations_content = ui.column().classes("w-full gap-2").mark("blocked-generations")
        self.dialog_host = ui.element("div")
        self.dismiss_image = _row_action(self._dismiss_image)
        self.dismiss_generation = _row_action(self._dismiss_generation)
        self.open_remove = _row_action(self._remove_dialog)
        self.open_suspend = _row_action(self._suspend_dialog)
        self.more_images = admin_action(self._more_images)
        self.more_generations = admin_action(self._more_generations)

    async def refresh(self) -> None:
        """Both queues from the top."""
        found = await blocking.io_bound(transact, moderation.queue, get_settings())
        self.image_page, self.images = found.images, list(found.images.items)
        self.generation_page, self.generations = found.generations, list(found.generations.items)
        self._render_images()
        self._render_generations()

    # --- flagged images --------------------------------------------------------------------------------------------

    def _render_images(self) -> None:
        assert self.image_page is not None
        total = self.image_page.total
        self.images_title.text = f"Flagged images ({total})"
        self.images_content.clear()
        with self.images_content:
            if not self.images:
                ui.label("Nothing waits for review.").classes("r-muted")
                return
            with table("Flagged images", ("Image", "Score", "Provider flag", "Owner", "Prompt", "Created",
                                          "Actions")):
                for row in self.images:
                    self._image_row(row)
            if self.image_page.next_cursor:
                ui.button(f"Show older images ({len(self.images)} of {total} shown)",
                          on_click=self.more_images).props("outline no-caps")

    def _image_row(self, row: moderation.FlaggedImage) -> None:
        name = f"image {row.id.hex[:8]} by {row.owner}"
        with ui.element("tr"):
            with ui.element("td"):
                Picture(f"{THUMBNAILS}/{row.id}", alt=f"Flagged {name}").classes(
                    "w-24 h-24 max-w-none object-cover rounded")
            Text("td", f"{row.score:.2f}")
            Text("td", "not reported" if row.provider_nsfw is None else "yes" if row.provider_nsfw else "no")
            self._owner_cell(row.user_id, row.owner, row.owner_suspended)
            Text("td", row.prompt)
            Text("td", dates.moment(row.created_at, self.locale))
            with ui.element("td"), ui.row().classes("gap-1 no-wrap"):
                _button("Dismiss", f"Dismiss {name}", lambda r=row: self.dismiss_image(r))
                _button("Remove", f"Remove {name}", lambda r=row: self.open_remove(r), danger=True)
                if not row.owner_suspended:
                    _button("Suspend owner", f"Suspend owner of {name}",
                            lambda r=row: self.open_suspend(_Owner("image", r.id, r.owner)), danger=True)

    async def _more_images(self, _signed_in: SignedIn) -> None:
        assert self.image_page is not None
        try:
            page = await blocking.io_bound(transact, moderation.flagged_images, get_settings(),
                                           cursor=self.image_page.next_cursor)
        except moderation.ModerationError as exc:
            self.done.error(str(exc))
            return
        self.image_page = page
        self.images += page.items
        self._render_images()

    async def _dismiss_image(self, signed_in: SignedIn, row: moderation.FlaggedImage) -> None:
        await self._act(None, "The image was dismissed and stays as it is.",
                        moderation.dismiss_image, signed_in.user, row.id)

    async def _remove_dialog(self, _signed_in: SignedIn, row: moderation.FlaggedImage) -> None:
        self.dialog_host.clear()
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("r-confirm"):
            heading("Remove this image?", 2).classes("r-card-title")
            Picture(f"{THUMBNAILS}/{row.id}", alt=f"The image by {row.owner}", lazy=False).classes(
                "w-32 h-32 object-cover rounded")
            ui.label(f"By {row.owner}, made {dates.moment(row.created_at, self.locale)}")
            Text("blockquote", row.prompt).classes("r-muted")
            ui.label("The image and its thumbnail are deleted for good. Its owner receives an e-mail naming the "
                     "image and giving your reason.")
            reason = text_input(REMOVE_LABEL, max_length=moderation.REASON_MAX)
            banner = Banner()

            async def remove(signed_in: SignedIn) -> None:
                storage = runtime.current().storage
                if await self._act(banner, "The image was removed and its owner was told why.",
                                   moderation.remove_image, get_settings(), storage, signed_in.user, row.id,
                                   reason=reason.value or ""):
                    dialog.close()
                    auth.deliver_mail_soon()

            with ui.row().classes("gap-2 justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat no-caps")
                ui.button("Remove image", on_click=admin_action(remove)).props("unelevated no-caps color=negative")
        dialog.open()

    # --- blocked generations ---------------------------------------------------------------------------------------

    def _render_generations(self) -> None:
        assert self.generation_page is not None
        total = self.generation_page.total
        self.generations_title.text = f"Blocked generations ({total})"
        self.generations_content.clear()
        with self.generations_content:
            if not self.generations:
                ui.label("Nothing waits for review.").classes("r-muted")
                return
            with table("Blocked generations", ("When", "Owner", "Stopped by", "Prompt", "Reason given",
                                               "Strikes (24 h)", "Actions")):
                for row in self.generations:
                    self._generation_row(row)
            if self.generation_page.next_cursor:
                ui.button(f"Show older generations ({len(self.generations)} of {total} shown)",
                          on_click=self.more_generations).props("outline no-caps")

    def _generation_row(self, row: moderation.BlockedGeneration) -> None:
        name = f"blocked generation {row.id.hex[:8]} by {row.owner}"
        with ui.element("tr"):
            Text("td", dates.moment(row.created_at, self.locale))
            self._owner_cell(row.user_id, row.owner, row.owner_suspended)
            Text("td", row.blocked_by_label)
            Text("td", row.prompt)
            Text("td", row.reason or "—")
            Text("td", str(row.strikes))
            with ui.element("td"), ui.row().classes("gap-1 no-wrap"):
                _button("Dismiss", f"Dismiss {name}", lambda r=row: self.dismiss_generation(r))
                if not row.owner_suspended:
                    _button("Suspend owner", f"Suspend owner of {name}",
                            lambda r=row: self.open_suspend(_Owner("generation", r.id, r.owner)), danger=True)

    async def _more_generations(self, _signed_in: SignedIn) -> None:
        assert self.generation_page is not None
        try:
            page = await blocking.io_bound(transact, moderation.blocked_generations,
                                           cursor=self.generation_page.next_cursor)
        except moderation.ModerationError as exc:
            self.done.error(str(exc))
            return
        self.generation_page = page
        self.generations += page.items
        self._render_generations()

    async def _dismiss_generation(self, signed_in: SignedIn, row: moderation.BlockedGeneration) -> None:
        await self._act(None, "The blocked generation was dismissed.", moderation.dismiss_generation,
                        signed_in.user, row.id)

    # --- both ------------------------------------------------------------------------------------------------------

    def _owner_cell(self, user_id: object, email: str, suspended: bool) -> None:
        with ui.element("td"):
            ui.link(email, f"/admin/users/{user_id}")
            if suspended:
                ui.label("suspended").classes("r-muted text-sm")

    async def _suspend_dialog(self, _signed_in: SignedIn, chosen: _Owner) -> None:
        owner = chosen.email
        self.dialog_host.clear()
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("r-confirm"):
            heading("Suspend this account?", 2).classes("r-card-title")
            ui.label(owner).classes("r-mono")
            ui.label("The account stops working at once: every session and API key ends, and the person sees your "
                     "reason when they try to sign in. It can be lifted on the person's page.")
            reason = text_input(SUSPEND_LABEL, max_length=moderation.REASON_MAX)
            banner = Banner()

            async def suspend(signed_in: SignedIn) -> None:
                if await self._act(banner, f"{owner} is suspended; their sessions and API keys have ended.",
                                   moderation.suspend_owner, signed_in.user, chosen.item_id, kind=chosen.kind,
                                   reason=reason.value or ""):
                    dialog.close()

            with ui.row().classes("gap-2 justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat no-caps")
                ui.button("Suspend account", on_click=admin_action(suspend)).props(
                    "unelevated no-caps color=negative")
        dialog.open()

    async def _act(self, banner: Banner | None, done: str, action: Callable[..., object], *args: Any,
                   **values: Any) -> bool:
        """Run a service action; on success confirm it and reload both queues, otherwise say why (in ``banner``, or
        at the top). A dialog keeps what was typed."""
        shown = banner or self.done
        shown.clear()
        self.done.clear()
        try:
            await blocking.io_bound(transact, action, *args, **values)
        except moderation.ModerationError as exc:
            shown.error(str(exc))
            return False
        await self.refresh()
        self.done.success(done)  # once the queues show the change, so what it confirms is on the page
        return True


@dataclass(frozen=True)
class _Owner:
    """Whose account "Suspend owner" suspends: the owner of this queued image or generation."""

    kind: str  # "image" or "generation"
    item_id: uuid.UUID
    email: str


def _row_action(handler: Callable[[SignedIn, Any], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``admin_action`` for a row's button: the handler also gets the row it was clicked on."""
    async def checked(signed_in: SignedIn, row: Any) -> None:
        if not signed_in.user.is_admin:
            ui.navigate.to("/")
            return
        await handler(signed_in, row)

    return auth.action(checked)


def _button(text: str, label: str, on_click: Callable[[], object], *, danger: bool = False) -> ui.button:
    button = ui.button(text, on_click=on_click).props(
        "flat dense no-caps color=negative" if danger else "flat dense no-caps")
    return set_attributes(button, aria_label=label)


def _panel(title: str, anchor: str) -> ui.element:
    return set_attributes(ui.element("section").classes("r-panel w-full"), id=anchor, aria_label=title)
