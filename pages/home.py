"""The landing page."""

from __future__ import annotations

from nicegui import ui

from components.frame import frame
from components.text import heading


def create() -> None:
    @ui.page("/")
    async def home_page() -> None:
        async with frame("Home"):
            with ui.element("section").classes("r-hero"):
                ui.label("Rupali").classes("r-eyebrow")
                heading("Make images. Keep them yours.").classes("r-hero-title")
                ui.label(
                    "Type a prompt, get images, and keep them in a private gallery that only you can open. "
                    "Your prompts never train anyone's model."
                ).classes("r-lead")
                with ui.row().classes("gap-3"):
                    ui.button("Open the studio", on_click=lambda: ui.navigate.to("/studio")).props(
                        "unelevated no-caps size=lg")
                    ui.button("How we handle your data", on_click=lambda: ui.navigate.to("/legal/privacy")).props(
                        "outline no-caps size=lg")
            with ui.element("section").classes("r-points"):
                for title, text in _POINTS:
                    with ui.element("div").classes("r-point"):
                        ui.label(title).classes("r-point-title")
                        ui.label(text).classes("r-muted")


_POINTS = (
    ("Private by default", "Every image is checked against your account on the server. Nobody else sees it."),
    ("Your data, your call", "Download everything or delete your account yourself, any time."),
    ("Self-hostable", "One process, SQLite or PostgreSQL, runs on a laptop or on Railway."),
)
