"""The header's skip link and logo link as one element (see brand.js): on every page view, so one, not four."""

from __future__ import annotations

from nicegui import ui


class Brand(ui.element, component="brand.js"):
    """Skip to the page's ``#main``, and the logo with the name, leading home."""
