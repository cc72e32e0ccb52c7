"""The gallery's two views, images and history, as tabs: links that say which page is current."""

from __future__ import annotations

from nicegui import ui

TABS = (("Images", "/gallery"), ("History", "/history"))


def gallery_tabs(active: str) -> ui.element:
    """A small navigation under the page heading; ``active`` is the current path."""
    with ui.element("nav").classes("r-tabs").props('aria-label="Gallery views"') as nav:
        for label, path in TABS:
            link = ui.link(label, path).classes("r-tab")
            if path == active:
                link.classes("r-tab--active").props('aria-current="page"')
    return nav
