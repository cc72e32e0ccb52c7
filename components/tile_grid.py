"""A grid of thumbnails as a single element (see tile_grid.js): the gallery's grid and the studio's results.

A tile per element cost the server about five elements, a few listeners and a binding per thumbnail, on every page
view; this element holds the tiles as one list of plain data. Selecting, revealing a sensitive image, opening and
loading more happen in the browser and arrive as events; appending a page sends only the new tiles.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from nicegui import ui
from nicegui.events import GenericEventArguments

Tile = dict[str, Any]  # id, width, height, alt, label, favourite, sensitive, expiry: what tile_grid.js shows


class TileGrid(ui.element, component="tile_grid.js"):
    """``tiles`` from :func:`tile`; ``label`` makes the grid a named list (the gallery's)."""

    def __init__(self, tiles: Iterable[Tile] = (), *, variant: Literal["gallery", "results"] = "gallery",
                 label: str = "", grid_class: str = "r-grid", more: bool = False, usable: bool = False) -> None:
        super().__init__()
        self._props["tiles"] = list(tiles)
        self._props["variant"] = variant
        self._props["label"] = label
        self._props["gridClass"] = grid_class
        self._props["more"] = more
        self._props["usable"] = usable
        self._props["selecting"] = False
        self._props["selected"] = []

    @property
    def tiles(self) -> list[Tile]:
        return self._props["tiles"]

    def ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(tile["id"]) for tile in self.tiles]

    def replace(self, tiles: Iterable[Tile], *, more: bool = False) -> None:
        """Show a new list (a reload)."""
        self._props["tiles"] = list(tiles)
        self._props["more"] = more
        self.update()

    def append(self, tiles: list[Tile], *, more: bool) -> None:
        """Add the next page: only the new tiles travel; the server's copy stays whole for a re-render."""
        self._props["tiles"] = [*self.tiles, *tiles]
        self._props["more"] = more
        self.run_method("append", tiles, more)

    def patch(self, image_id: uuid.UUID, **changes: Any) -> None:
        """Change one tile in place (e.g. ``favourite=True``)."""
        key = str(image_id)
        for tile in self.tiles:
            if tile["id"] == key:
                tile.update(changes)
                self.run_method("patch", key, changes)
                return

    def set_selecting(self, selecting: bool, selected: Iterable[uuid.UUID] = ()) -> None:
        self._props["selecting"] = selecting
        self._props["selected"] = [str(image_id) for image_id in selected]
        self.run_method("setSelecting", selecting, self._props["selected"])  # not update(): the tiles stay put

    def clear_selection(self) -> None:
        self._props["selected"] = []
        self.run_method("clearSelection")

    def on_open(self, handler: Callable[[uuid.UUID], Any]) -> TileGrid:
        """``handler(image_id)`` when a tile is opened (only ids of tiles shown reach it)."""
        self.on("open", lambda event: self._one(event, handler))
        return self

    def on_use(self, handler: Callable[[uuid.UUID], Any]) -> TileGrid:
        self.on("use", lambda event: self._one(event, handler))
        return self

    def on_favourite(self, handler: Callable[[uuid.UUID, bool], Any]) -> TileGrid:
        """``handler(image_id, wanted)``; the tile already shows ``wanted``, the handler confirms with patch()."""
        def favourite(event: GenericEventArguments) -> Any:
            image_id = self._shown(event)
            if image_id is not None:
                return handler(image_id, bool(_args(event).get("value")))
            return None
        self.on("favourite", favourite)
        return self

    def on_select(self, handler: Callable[[set[uuid.UUID]], Any]) -> TileGrid:
        """``handler(selected)`` with the ids now selected: of tiles shown, or ticked before a reload."""
        def select(event: GenericEventArguments) -> Any:
            # Ticks may outlive a reload that took their tiles away; anything else a browser sends is ignored.
            shown = {tile["id"] for tile in self.tiles} | set(self._props["selected"])
            ids = _args(event).get("ids")
            chosen = {uuid.UUID(value) for value in ids if isinstance(value, str) and value in shown} \
                if isinstance(ids, list) else set()
            self._props["selected"] = sorted(str(value) for value in chosen)  # a re-render keeps the ticks
            return handler(chosen)
        self.on("select", select)
        return self

    def on_more(self, handler: Callable[[], Any]) -> TileGrid:
        self.on("more", lambda _: handler())
        return self

    def _shown(self, event: GenericEventArguments) -> uuid.UUID | None:
        """The tile an event names, if this grid shows it: anything else sent by a browser is ignored."""
        value = _args(event).get("id")
        if isinstance(value, str) and any(tile["id"] == value for tile in self.tiles):
            return uuid.UUID(value)
        return None

    def _one(self, event: GenericEventArguments, handler: Callable[[uuid.UUID], Any]) -> Any:
        image_id = self._shown(event)
        return handler(image_id) if image_id is not None else None


def tile(image_id: uuid.UUID, width: int, height: int, *, alt: str = "", label: str = "", favourite: bool = False,
         sensitive: bool = False, expiry: str = "") -> Tile:
    """One tile's data; ``label`` names the gallery's open button, ``alt`` describes the picture (results)."""
    return {"id": str(image_id), "width": width, "height": height, "alt": alt, "label": label,
            "favourite": favourite, "sensitive": sensitive, "expiry": expiry}


def _args(event: GenericEventArguments) -> dict[str, Any]:
    return event.args if isinstance(event.args, dict) else {}
