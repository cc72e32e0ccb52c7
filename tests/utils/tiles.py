"""Reading and driving the tile grids (``components.tile_grid.TileGrid``) of a simulated page.

The grid is one element whose tiles are data; the browser part (tile_grid.js) turns clicks into the events
"open", "select", "favourite", "use" and "more", which these helpers send as a browser would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from nicegui.testing import User, UserInteraction

from components.tile_grid import TileGrid

E = TypeVar("E")


def of_kind(user: User, kind: type[E]) -> list[E]:
    """The page's elements of ``kind`` in the order they were made (none before the page is open)."""
    if user.client is None:
        return []
    return sorted((element for element in list(user.client.elements.values()) if isinstance(element, kind)
                   and not element.is_deleted), key=lambda element: element.id)


def grids(user: User) -> list[TileGrid]:
    return of_kind(user, TileGrid)


def shown(user: User) -> list[uuid.UUID]:
    """The image ids of every tile on the page, grid by grid, in order."""
    return [image_id for grid in grids(user) for image_id in grid.ids()]


async def wait_for_tiles(user: User, count: int | Callable[[int], bool], *, timeout: float = 10.0) -> list[uuid.UUID]:
    """Wait until the page shows ``count`` tiles (or a count the predicate accepts); their ids."""
    accept = count if callable(count) else (lambda n: n == count)
    for _ in range(int(timeout / 0.05)):
        ids = shown(user)
        if accept(len(ids)):
            return ids
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page shows {len(shown(user))} tiles, expected {count}")


def send(user: User, grid: TileGrid, event: str, args: dict[str, Any] | None = None) -> None:
    """What tile_grid.js emits when the person acts on a tile: ``send(user, grid, "open", {"id": ...})``."""
    UserInteraction(user, {grid}, None).trigger(event, args or {})


def grid_of(user: User, image_id: uuid.UUID) -> TileGrid:
    return next(grid for grid in grids(user) if image_id in grid.ids())
