"""A grid of generated images: lazy thumbnails, NSFW blur with click-to-reveal, favourite, download, reuse."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import run, ui

from components import auth
from components.picture import Picture
from components.text import set_attributes, set_style
from rupali.db import transact
from rupali.models import Image
from rupali.services import generation as generations
from rupali.services.sessions import SignedIn


def image_grid(images: list[Image], *, on_use: Callable[[Image], None] | None = None) -> ui.element:
    """The images as tiles; ``on_use`` adds a "use these parameters" button to each."""
    with ui.element("div").classes("r-grid") as grid:
        for image in images:
            _tile(image, on_use)
    return grid


def _tile(image: Image, on_use: Callable[[Image], None] | None) -> None:
    with ui.element("figure").classes("r-tile") as tile:
        set_style(tile, aspect_ratio=f"{image.width} / {image.height}")
        Picture(f"/media/thumbnails/{image.id}", alt=f"Generated image, seed {image.seed}").classes("r-tile-img")
        if image.nsfw:
            tile.classes("r-tile--hidden")
            with ui.button(on_click=lambda: (tile.classes(remove="r-tile--hidden"), cover.delete())).props(
                    'flat no-caps aria-label="Show sensitive image"').classes("r-tile-cover") as cover:
                ui.icon("visibility_off")
                ui.label("Sensitive — click to show")
        with ui.element("figcaption").classes("r-tile-actions"):
            favourite = ui.button(icon="favorite" if image.favourite else "favorite_border").props(
                'flat round dense aria-label="Favourite"')
            set_attributes(favourite, aria_pressed="true" if image.favourite else "false")

            async def toggle(signed_in: SignedIn) -> None:
                updated = await run.io_bound(transact, generations.set_favourite, signed_in.user, image.id,
                                             not image.favourite)
                image.favourite = updated.favourite
                set_attributes(favourite, icon="favorite" if image.favourite else "favorite_border",
                               aria_pressed="true" if image.favourite else "false")

            favourite.on_click(auth.action(toggle))
            ui.button(icon="download", on_click=lambda: ui.download(f"/media/images/{image.id}")).props(
                'flat round dense aria-label="Download original"')
            if on_use is not None:
                ui.button(icon="tune", on_click=lambda: on_use(image)).props(
                    'flat round dense aria-label="Use these parameters with this seed"')
