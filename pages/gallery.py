"""The gallery: the person's images, searchable and filterable, loading more as they scroll; detail and bulk actions."""

from __future__ import annotations

import uuid
from datetime import date

from nicegui import binding, context, ui

from components import auth, blocking
from components.announcer import Announcer
from components.date_field import DateField
from components.forms import Banner
from components.frame import frame
from components.gallery_tabs import gallery_tabs
from components.text import Text, heading, set_attributes
from components.tile_grid import Tile, TileGrid, tile
from rupali import dates, image_files, provenance, runtime
from rupali.clock import now
from rupali.db import transact
from rupali.models import Generation, Image
from rupali.provenance import Inspection
from rupali.providers import ImageProviders
from rupali.services import gallery
from rupali.services import generation as generations
from rupali.services.sessions import SignedIn


@binding.bindable_dataclass
class Filters:
    """The toolbar's values, bound to its controls (bindable: a change reaches them at once, nothing is polled).

    Every field accepts being cleared: inputs report ``None`` then.
    """

    search: str | None = ""
    favourites: bool = False
    model: str | None = ""
    since: str | None = ""
    until: str | None = ""
    show_nsfw: bool = True
    expiring_soon: bool = False
    order: str | None = "newest"
    selecting: bool = False

    def query(self) -> gallery.GalleryQuery:
        return gallery.GalleryQuery(
            search=(self.search or "").strip(), favourites=bool(self.favourites), model=self.model or None,
            since=_date(self.since), until=_date(self.until), show_nsfw=bool(self.show_nsfw),
            expiring_soon=bool(self.expiring_soon), oldest_first=self.order == "oldest")


def create() -> None:
    @ui.page("/gallery")
    async def gallery_page(image: str = "") -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        models = await blocking.io_bound(transact, gallery.models_used, viewer.user.id)
        async with frame("Gallery", active="/gallery"):
            view = GalleryView(viewer, models)
            await view.build()
            if image:
                await view.open_detail(image)


class GalleryView:
    """One gallery page view: toolbar, grid, selection, and the detail dialog."""

    def __init__(self, viewer: SignedIn, models: list[tuple[str, str]]) -> None:
        self.viewer = viewer
        self.models = models
        self.filters = Filters()
        self.cursor: str | None = None
        self.loading = False
        self.version = 0  # bumped by every reload, so a slower earlier answer cannot overwrite a newer one
        self.selected: set[uuid.UUID] = set()
        self.generation_of: dict[uuid.UUID, uuid.UUID] = {}  # image -> its generation, for every tile shown
        self.current_dialog: ui.dialog | None = None
        self.locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))

    async def build(self) -> None:
        heading("Gallery")
        gallery_tabs("/gallery")
        self.banner = Banner()
        self.announcer = Announcer()  # how many images a change of filters left, for screen readers
        self._toolbar()
        self._bulk_bar()
        self.grid = TileGrid(label="Your images", grid_class="r-grid r-gallery-grid").classes("w-full")
        self.grid.on_open(self._tile_opened).on_select(self._selected).on_more(self.load_more)
        self.empty = ui.column().classes("r-empty w-full")
        self.empty.set_visibility(False)
        self.dialog_host = ui.element("div")
        await self.reload()

    # --- toolbar -----------------------------------------------------------------------------------------------------

    def _toolbar(self) -> None:
        f = self.filters
        # Each control starts with the filter's value, so binding it changes nothing and triggers no reload.
        with ui.element("div").classes("r-toolbar"):
            ui.input("Search prompts", value=f.search, on_change=self._filters_changed).props(
                'outlined dense clearable debounce=350 type=search').classes("r-search").bind_value(f, "search")
            ui.select({"": "All models", **dict(self.models)}, label="Model", value=f.model,
                      on_change=self._filters_changed).props("outlined dense").classes("r-filter").bind_value(
                f, "model")
            self.since = DateField("From", self.locale, on_change=lambda: self._date_changed("since"))
            self.until = DateField("To", self.locale, on_change=lambda: self._date_changed("until"))
            ui.select({"newest": "Newest first", "oldest": "Oldest first"}, label="Order", value=f.order,
                      on_change=self._filters_changed).props("outlined dense").classes("r-filter").bind_value(
                f, "order")
            with ui.row().classes("items-center gap-1"):
                ui.switch("Favourites only", value=f.favourites, on_change=self._filters_changed).bind_value(
                    f, "favourites")
                ui.switch("Show sensitive images", value=f.show_nsfw, on_change=self._filters_changed).bind_value(
                    f, "show_nsfw").tooltip(
                    "Include images the content filter flagged (they stay blurred until you open them)")
                ui.switch("Expiring soon", value=f.expiring_soon, on_change=self._filters_changed).bind_value(
                    f, "expiring_soon")
                ui.switch("Select", value=f.selecting, on_change=lambda _: self._selecting_changed()).bind_value(
                    f, "selecting")

    async def _date_changed(self, name: str) -> None:
        setattr(self.filters, name, getattr(self, name).value or "")
        await self.reload()

    async def clear_filters(self) -> None:
        """Back to everything, newest first (the controls follow through their bindings)."""
        selecting = self.filters.selecting
        self.filters.search, self.filters.model, self.filters.order = "", "", "newest"
        self.filters.favourites, self.filters.show_nsfw, self.filters.expiring_soon = False, True, False
        self.filters.since = self.filters.until = ""
        self.filters.selecting = selecting
        self.since.set(None, notify=False)
        self.until.set(None, notify=False)
        await self.reload()

    def _bulk_bar(self) -> None:
        with ui.row().classes("r-bulk items-center gap-2") as self.bulk:
            self.bulk_label = ui.label()
            ui.button("Favourite", icon="favorite", on_click=lambda: self._bulk_favourite(True)).props("flat no-caps")
            ui.button("Unfavourite", icon="favorite_border", on_click=lambda: self._bulk_favourite(False)).props(
                "flat no-caps")
            ui.button("Download ZIP", icon="download", on_click=self._bulk_download).props("flat no-caps")
            ui.button("Delete", icon="delete", on_click=self._bulk_delete).props("flat no-caps color=negative")
            ui.button("Clear", on_click=self._clear_selection).props("flat no-caps")
        self.bulk.set_visibility(False)

    async def _filters_changed(self, *_: object) -> None:
        await self.reload()

    # --- grid --------------------------------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Show the first page for the current filters; a newer reload supersedes one still loading."""
        self.version += 1
        version, query = self.version, self.filters.query()
        page = await self._fetch(query, None)
        if page is None or version != self.version:
            return
        self.generation_of.clear()
        self.grid.replace(self._tiles(page), more=page.next_cursor is not None)
        self.cursor = page.next_cursor
        self._empty_state(query if not page.items else None)
        if version > 1:  # a change of filters, not the first view
            self.announcer.say(_count_message(query, page))

    async def load_more(self) -> None:
        """The next page, asked for by the grid as the person scrolls near its end (or by its button)."""
        if self.cursor is None or self.loading:
            return
        version = self.version
        self.loading = True
        try:
            page = await self._fetch(self.filters.query(), self.cursor)
        finally:
            self.loading = False
        if page is not None and version == self.version:
            self.grid.append(self._tiles(page), more=page.next_cursor is not None)
            self.cursor = page.next_cursor

    async def _fetch(self, query: gallery.GalleryQuery, cursor: str | None) -> gallery.GalleryPage | None:
        try:
            return await blocking.io_bound(transact, gallery.page, self.viewer.user.id, query, cursor)
        except gallery.InvalidCursor as exc:
            self.banner.error(str(exc))
            return None

    def _tiles(self, page: gallery.GalleryPage) -> list[Tile]:
        moment = now()
        tiles = []
        for item in page.items:
            image = item.image
            self.generation_of[image.id] = image.generation_id
            expiry = ""
            if image.expires_at is not None:
                days = max(0, (image.expires_at - moment).days)
                expiry = f"expires in {days} day{'s' if days != 1 else ''}"
            # The prompt names the tile's button (the picture itself is decorative): as text, never markup.
            tiles.append(tile(image.id, image.width, image.height, label=item.prompt[:120], favourite=image.favourite,
                              sensitive=image.nsfw, expiry=expiry))
        return tiles

    def _empty_state(self, query: gallery.GalleryQuery | None) -> None:
        """Explain an empty grid: a new gallery, or filters that match nothing (naming the search)."""
        self.empty.clear()
        self.empty.set_visibility(query is not None)
        if query is None:
            return
        with self.empty:
            ui.icon("photo_library").classes("r-empty-icon").props('aria-hidden="true"')
            if query != gallery.GalleryQuery():
                ui.label(f"No images match “{query.search}”." if query.search
                         else "No images match these filters.").classes("r-card-title")
                if query.search and query != gallery.GalleryQuery(search=query.search):
                    ui.label("Other filters are on too.").classes("r-muted")
                ui.button("Clear filters", icon="filter_alt_off", on_click=self.clear_filters).props(
                    "outline no-caps")
            else:
                ui.label("Your gallery is empty").classes("r-card-title")
                ui.label("Everything you create in the studio lands here, private to you.").classes("r-muted")
                ui.button("Open the studio", on_click=lambda: ui.navigate.to("/studio")).props("unelevated no-caps")

    async def _tile_opened(self, image_id: uuid.UUID) -> None:
        await self.open_detail(str(image_id))

    # --- selection ---------------------------------------------------------------------------------------------------

    def _selecting_changed(self) -> None:
        self.grid.set_selecting(self.filters.selecting, self.selected)
        self._selection_changed()

    def _selected(self, selected: set[uuid.UUID]) -> None:
        self.selected = selected
        self._selection_changed()

    def _selection_changed(self) -> None:
        count = len(self.selected)
        self.bulk.set_visibility(self.filters.selecting and count > 0)
        self.bulk_label.text = f"{count} selected"

    def _clear_selection(self) -> None:
        self.selected = set()
        self.grid.clear_selection()
        self._selection_changed()

    async def _bulk_favourite(self, favourite: bool) -> None:
        async def work(signed_in: SignedIn) -> None:
            count = await blocking.io_bound(transact, gallery.set_favourites, signed_in.user.id,
                                            list(self.selected), favourite)
            ui.notify(f"{count} image{'s' if count != 1 else ''} {'added to' if favourite else 'removed from'} "
                      "favourites")
            await self.reload()
        await auth.action(work)()

    async def _bulk_download(self) -> None:
        async def work(signed_in: SignedIn) -> None:
            ticket = runtime.current().downloads.issue(signed_in.user.id, list(self.selected))
            ui.download(f"/media/zip/{ticket}")
        await auth.action(work)()

    async def _bulk_delete(self) -> None:
        count = len(self.selected)
        if not await confirm(self.dialog_host, f"Delete {count} image{'s' if count != 1 else ''}? This cannot be "
                             "undone.", f"Delete {count}"):
            return

        async def work(signed_in: SignedIn) -> None:
            chosen = list(self.selected)
            emptied_maybe = {self.generation_of[i] for i in chosen if i in self.generation_of}
            deleted = await image_files.delete_images(runtime.current().storage, signed_in.user.id, chosen)
            self._clear_selection()
            ui.notify(f"Deleted {deleted} image{'s' if deleted != 1 else ''}")
            await self.reload()
            await self.offer_prompt_deletion(emptied_maybe)
        await auth.action(work)()

    async def offer_prompt_deletion(self, generation_ids: set[uuid.UUID]) -> None:
        """After images were deleted: offer to delete the prompt (and settings) of each generation left empty.

        Deleting images keeps the prompt, which stays in the history; a person who deleted every image of a
        generation may well want the prompt gone too, and should not have to find it there.
        """
        emptied = await blocking.io_bound(transact, gallery.emptied_generations, self.viewer.user.id,
                                          list(generation_ids))
        if not emptied:
            return
        if len(emptied) == 1:
            question, action = ("That was the last image of its generation. Also delete its prompt and settings?",
                                "Also delete the prompt")
        else:
            question, action = (f"{len(emptied)} generations have no images left. Also delete their prompts and "
                                "settings?", f"Also delete {len(emptied)} prompts")
        if not await confirm(self.dialog_host, question, action, cancel="Keep"):
            return

        async def work(signed_in: SignedIn) -> None:
            deleted = 0
            for generation_id in emptied:
                deleted += await blocking.io_bound(transact, generations.delete_generation, runtime.current().storage,
                                                   signed_in.user, generation_id)
            ui.notify("Prompt deleted" if deleted == 1 else f"{deleted} prompts deleted")
        await auth.action(work)()

    # --- detail ------------------------------------------------------------------------------------------------------

    async def open_detail(self, image_id: str) -> None:
        try:
            parsed = uuid.UUID(image_id)
        except ValueError:
            parsed = None
        found = await blocking.io_bound(transact, gallery.detail, self.viewer.user.id, parsed) if parsed else None
        if found is None:
            self.banner.error("That image does not exist or has expired.")
            ui.navigate.history.replace("/gallery")
            return
        image, generation = found
        previous, following = await blocking.io_bound(transact, gallery.neighbours, self.viewer.user.id, image,
                                                      self.filters.query())
        current = runtime.current()
        credentials = await blocking.io_bound(image_files.content_credentials, current.storage, current.credentials,
                                              image)
        ui.navigate.history.replace(f"/gallery?image={image.id}")
        # Dialogs live in a host of the page's own: opened from another dialog's key or button, they would
        # otherwise become its children and vanish with it.
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("r-detail"):
            Detail(self, dialog, image, generation, previous, following, credentials).build()
        self.current_dialog = dialog
        dialog.on("hide", lambda: self._detail_hidden(dialog))
        dialog.open()

    def _detail_hidden(self, dialog: ui.dialog) -> None:
        # Moving to the next image closes this dialog after the next one has set its own URL: only the dialog
        # still current may reset the address, and a closed dialog is removed from the page.
        if self.current_dialog is dialog:
            self.current_dialog = None
            ui.navigate.history.replace("/gallery")
        dialog.delete()

    def mark_favourite(self, image_id: uuid.UUID, favourite: bool) -> None:
        """Show a favourite change made in the detail dialog on the tile behind it."""
        self.grid.patch(image_id, favourite=favourite)


class Detail:
    """The image detail dialog: the whole image, one toolbar of actions, the parameters; arrows move, Esc closes."""

    def __init__(self, view: GalleryView, dialog: ui.dialog, image: Image, generation: Generation,
                 previous: uuid.UUID | None, following: uuid.UUID | None, credentials: Inspection | None = None
                 ) -> None:
        self.view, self.dialog, self.image, self.generation = view, dialog, image, generation
        self.previous, self.following = previous, following
        self.credentials = credentials

    def build(self) -> None:
        image, generation = self.image, self.generation
        with ui.element("div").classes("r-detail-layout"):
            # Header and toolbar come first, so on a phone the actions sit above the image, never below a scroll.
            with ui.row().classes("r-detail-head w-full justify-between items-center no-wrap"):
                ui.label("Image details").classes("r-card-title")
                with ui.row().classes("gap-0 no-wrap"):
                    ui.button(icon="chevron_left", on_click=lambda: self._go(self.previous)).props(
                        'flat round aria-label="Previous image"').set_enabled(self.previous is not None)
                    ui.button(icon="chevron_right", on_click=lambda: self._go(self.following)).props(
                        'flat round aria-label="Next image"').set_enabled(self.following is not None)
                    ui.button(icon="close", on_click=self.dialog.close).props('flat round aria-label="Close"')
            self._toolbar()
            with ui.element("div").classes("r-detail-image"):
                # A plain <img> with object-fit: contain shows the whole picture at any window size.
                picture = ui.element("img").classes("r-detail-picture")
                set_attributes(picture, src=f"/media/images/{image.id}", alt=generation.prompt[:200])
            with ui.column().classes("r-detail-info gap-2"):
                ui.label(provenance.origin_label(ImageProviders.provenance(generation.provider)[0])).classes(
                    "r-origin")
                ui.label(generation.prompt).classes("r-detail-prompt")
                if generation.negative_prompt:
                    ui.label(f"Negative prompt: {generation.negative_prompt}").classes("r-muted")
                with ui.element("dl").classes("r-params"):
                    for label, value in self._rows():
                        Text("dt", label)
                        Text("dd", value)
        self.keys = ui.keyboard(on_key=self._key, ignore=["input", "textarea", "select"])

    def _toolbar(self) -> None:
        image, generation = self.image, self.generation
        with ui.element("div").classes("r-detail-toolbar").props('role="toolbar" aria-label="Image actions"'):
            self.favourite = ui.button("Unfavourite" if image.favourite else "Favourite",
                                       icon="favorite" if image.favourite else "favorite_border",
                                       on_click=self._toggle_favourite).props("flat no-caps")
            # The button follows the person's choice on the account page; the menu overrides it for one file.
            with ui.dropdown_button("Download", icon="download", split=True, auto_close=True,
                                    on_click=lambda: ui.download(f"/media/images/{image.id}")).props(
                    'flat no-caps dropdown-icon=arrow_drop_down toggle-aria-label="More download options"'):
                ui.menu_item("With prompt and settings",
                             on_click=lambda: ui.download(f"/media/images/{image.id}?parameters=1"))
                ui.menu_item("Without prompt", on_click=lambda: ui.download(f"/media/images/{image.id}?parameters=0"))
            ui.button("Copy prompt", icon="content_copy", on_click=self._copy).props("flat no-caps")
            ui.button("Use all parameters", icon="tune", on_click=lambda: ui.navigate.to(
                f"/studio?use={generation.id}")).props("flat no-caps")
            ui.button("Remix", icon="shuffle", on_click=lambda: ui.navigate.to(
                f"/studio?use={generation.id}&remix=1")).props("flat no-caps")
            ui.button("Delete", icon="delete", on_click=self._delete).props("flat no-caps color=negative")

    def _rows(self) -> list[tuple[str, str]]:
        """Label and value of every parameter this image has; empty ones are left out."""
        image, generation = self.image, self.generation
        rows: list[tuple[str, str | None]] = [
            ("Model", generation.model_label or generation.model),
            ("Service", runtime.current().providers.service_label(generation.provider)),
            ("Model version", generation.model_version or None),
            ("Seed", str(image.seed)),
            ("Size", f"{image.width}×{image.height}"),
            ("Steps", str(generation.steps)),
            ("Guidance", f"{generation.guidance:g}"),
            ("Strength", f"{generation.strength:g}" if generation.strength is not None else None),
            ("Sampler", generation.scheduler or None),
            ("Generation time", f"{generation.duration_ms / 1000:.1f} s" if generation.duration_ms else None),
            ("NSFW score", f"{image.nsfw_score:.3f}"),
            ("Created", dates.moment(image.created_at, self.view.locale)),
            ("Expires", dates.medium(image.expires_at.date(), self.view.locale) if image.expires_at else "Never"),
            ("Content Credentials", self._credentials_line()),
        ]
        return [(label, value) for label, value in rows if value]

    def _credentials_line(self) -> str:
        found = self.credentials
        if found is None:
            return "the file is missing"
        if not found.has_credentials:
            return "none (made before this installation signed its images)" if not self.image.signed else \
                "missing from the stored file"
        if not found.intact:
            return "present but do not match the file: " + "; ".join(found.problems[:2])
        when = f" on {dates.moment(found.signed_at, self.view.locale)}" if found.signed_at else ""
        line = f"signed by {found.signer or 'an unnamed signer'}{when}, intact"
        if not found.own:
            line += " (not this installation's current certificate)"
        if found.credential_problems:
            line += "; the certificate no longer vouches for it: " + "; ".join(found.credential_problems[:2])
        return line

    async def _key(self, event: object) -> None:
        key = getattr(event, "key", None)
        if not getattr(getattr(event, "action", None), "keydown", False) or key is None:
            return
        if key.arrow_left:
            await self._go(self.previous)
        elif key.arrow_right:
            await self._go(self.following)

    async def _go(self, image_id: uuid.UUID | None) -> None:
        if image_id is None:
            return
        self.keys.delete()
        self.dialog.close()
        await self.view.open_detail(str(image_id))

    async def _toggle_favourite(self) -> None:
        async def work(signed_in: SignedIn) -> None:
            self.image.favourite = not self.image.favourite
            await blocking.io_bound(transact, gallery.set_favourites, signed_in.user.id, [self.image.id],
                                    self.image.favourite)
            self.favourite.props["icon"] = "favorite" if self.image.favourite else "favorite_border"
            self.favourite.text = "Unfavourite" if self.image.favourite else "Favourite"
            self.view.mark_favourite(self.image.id, self.image.favourite)
        await auth.action(work)()

    def _copy(self) -> None:
        ui.clipboard.write(self.generation.prompt)
        ui.notify("Prompt copied")

    async def _delete(self) -> None:
        if not await confirm(self.view.dialog_host, "Delete this image? This cannot be undone.", "Delete"):
            return

        async def work(signed_in: SignedIn) -> None:
            await image_files.delete_images(runtime.current().storage, signed_in.user.id, [self.image.id])
            self.keys.delete()
            self.dialog.close()
            ui.notify("Image deleted")
            await self.view.reload()
            await self.view.offer_prompt_deletion({self.generation.id})
        await auth.action(work)()


async def confirm(host: ui.element, question: str, action: str, *, cancel: str = "Cancel") -> bool:
    """Ask before something that cannot be undone; True when the person confirmed."""
    with host, ui.dialog() as dialog, ui.card().classes("r-confirm"):
        ui.label(question).classes("r-card-title")
        with ui.row().classes("gap-2 justify-end w-full"):
            ui.button(cancel, on_click=lambda: dialog.submit(False)).props("flat no-caps")
            ui.button(action, on_click=lambda: dialog.submit(True)).props("unelevated no-caps color=negative")
    try:
        return bool(await dialog)
    finally:
        dialog.delete()


def _count_message(query: gallery.GalleryQuery, page: gallery.GalleryPage) -> str:
    if not page.items:
        return f"No images match “{query.search}”." if query.search else "No images match these filters."
    count = len(page.items)
    more = " More load as you scroll." if page.next_cursor else ""
    return f"{count} image{'s' if count != 1 else ''} shown.{more}"


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None

