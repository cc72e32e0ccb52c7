"""Generation history: every request, including failed, blocked and cancelled ones, with its reason."""

from __future__ import annotations

from babel import Locale
from nicegui import context, ui

from components import auth, blocking
from components.choice_group import ChoiceGroup
from components.frame import frame
from components.gallery_tabs import gallery_tabs
from components.picture import Picture
from components.text import heading, set_attributes
from pages.gallery import confirm
from rupali import dates, runtime
from rupali.db import transact
from rupali.models import Generation, GenerationStatus
from rupali.services import gallery
from rupali.services import generation as generations
from rupali.services.sessions import SignedIn

STATUS_CLASSES = {status: f"r-status--{status.value}" for status in GenerationStatus}
STATUS_LABELS = {"": "All", **{status.value: status.value.capitalize() for status in GenerationStatus}}


def create() -> None:
    @ui.page("/history")
    async def history_page(status: str = "") -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        chosen = GenerationStatus(status) if status in GenerationStatus._value2member_map_ else None
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("History", active="/gallery"):
            heading("Gallery")
            gallery_tabs("/history")
            ChoiceGroup(STATUS_LABELS, label="Show generations", value=chosen.value if chosen else "",
                        on_change=lambda e: ui.navigate.to(f"/history?status={e.value}" if e.value else "/history"))
            listing = ui.column().classes("w-full gap-3")
            dialog_host = ui.element("div")  # confirmations live outside the rows they may delete
            more = ui.button("Load more").props("flat no-caps").classes("self-center")
            cursor: list[str | None] = [None]

            async def load() -> None:
                items, cursor[0] = await blocking.io_bound(transact, gallery.history, viewer.user.id, status=chosen,
                                                           cursor=cursor[0])
                images = await blocking.io_bound(transact, generations.images_of, [g.id for g, _ in items])
                with listing:
                    if not items and not listing.default_slot.children:
                        ui.label("No generations yet." if chosen is None else "No generations with this status."
                                 ).classes("r-muted")
                    for generation, count in items:
                        _row(generation, count, [image.id for image in images[generation.id]][:4], locale,
                             dialog_host)
                more.set_visibility(cursor[0] is not None)

            more.on_click(load)
            await load()


def _row(generation: Generation, count: int, thumbnails: list, locale: Locale, dialog_host: ui.element) -> None:
    status = GenerationStatus(generation.status)
    with ui.element("article").classes("r-job r-history-row") as row:
        with ui.row().classes("w-full items-start justify-between no-wrap gap-3"):
            with ui.column().classes("gap-0 grow"):
                ui.label(generation.prompt).classes("r-job-prompt")
                details = [dates.moment(generation.created_at, locale), generation.model_label or generation.model]
                if service := runtime.current().providers.service_label(generation.provider):
                    details.append(service)
                if generation.model_version:
                    details.append(f"version {generation.model_version}")
                if generation.duration_ms is not None:
                    details.append(f"{generation.duration_ms / 1000:.1f} s")
                details.append(f"{count} image{'s' if count != 1 else ''}")
                ui.label(" · ".join(details)).classes("r-muted text-sm")
            ui.label(status.value.capitalize()).classes("r-badge").classes(STATUS_CLASSES[status])
        if generation.error:
            ui.label(generation.error).classes("r-muted")
        if thumbnails:
            with ui.row().classes("gap-2"):
                for image_id in thumbnails:
                    with ui.link(target=f"/gallery?image={image_id}").props('aria-label="Open image"'):
                        Picture(f"/media/thumbnails/{image_id}").classes("r-history-thumb")
        with ui.row().classes("w-full justify-end"):
            delete = ui.button("Delete", icon="delete",
                               on_click=lambda: _delete(row, generation, count, dialog_host)).props(
                "flat no-caps color=negative")
            # Every row has a Delete button: the accessible name says which generation it deletes.
            set_attributes(delete, aria_label=f"Delete the generation “{generation.prompt[:80]}”")


async def _delete(row: ui.element, generation: Generation, count: int, dialog_host: ui.element) -> None:
    """Ask, then delete the generation with its prompt, settings, images and (if no other uses it) its upload."""
    images = f", its {count} image{'s' if count != 1 else ''}" if count else ""
    upload = " and the image you started from (unless another generation uses it)" \
        if generation.upload_id is not None else ""
    question = (f"Delete this generation? Its prompt, settings{images}{upload} are deleted for good. This cannot be "
                "undone.")
    if not await confirm(dialog_host, question, "Delete"):
        return

    async def work(signed_in: SignedIn) -> None:
        current = runtime.current()
        try:
            if current.queue.state(generation.id) is not None:  # running, or cancelled and not stopped yet
                raise generations.GenerationBusy(generations.BUSY_MESSAGE)
            deleted = await blocking.io_bound(transact, generations.delete_generation, current.storage, signed_in.user,
                                              generation.id)
        except generations.GenerationBusy as exc:
            ui.notify(str(exc), type="warning")
            return
        row.delete()
        ui.notify("Generation deleted" if deleted else "This generation had already been deleted.")
    await auth.action(work)()
