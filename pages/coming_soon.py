"""Friendly placeholders for the parts of Rupali that are not built yet."""

from __future__ import annotations

from nicegui import ui

from components.frame import frame
from components.text import heading

PLACEHOLDERS = {
    "/billing": ("Billing", "credit_card", "Credits, receipts and invoices will be managed here."),
}


def create() -> None:
    for path, (title, icon, text) in PLACEHOLDERS.items():
        _register(path, title, icon, text)


def _register(path: str, title: str, icon: str, text: str) -> None:
    @ui.page(path)
    async def placeholder_page() -> None:
        async with frame(title, active=path):
            with ui.element("section").classes("r-empty"):
                ui.icon(icon).classes("r-empty-icon").props('aria-hidden="true"')
                heading(title)
                ui.label(text).classes("r-muted")
                ui.label("Coming soon").classes("r-badge")
