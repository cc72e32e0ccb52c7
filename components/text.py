"""Semantic text elements (NiceGUI labels are divs; headings matter for screen readers)."""

from __future__ import annotations

import html

from nicegui import ui


def heading(text: str, level: int = 1) -> ui.html:
    """An ``<h1>``…``<h6>`` whose text is always escaped."""
    return ui.html(html.escape(text), tag=f"h{level}", sanitize=False)
