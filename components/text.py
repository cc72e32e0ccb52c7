"""Putting text and attribute values on a page without any of them being read as code.

NiceGUI parses ``props("…")`` strings with ``ast.literal_eval``: a backslash, a quote or a NUL in a prompt or a
name can break a page for good, or open an attribute to script. So every value that is not a constant of ours
reaches the page through these helpers, as element properties and text content that Vue escapes.
tests/test_architecture.py refuses string-built ``props``, ``classes``, ``style`` and raw HTML in pages and
components.
"""

from __future__ import annotations

from typing import Any, TypeVar

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement

E = TypeVar("E", bound=ui.element)


class Text(TextElement):
    """An element of any tag whose content is plain text (``<h2>``, ``<dt>``, ``<span>`` …)."""

    def __init__(self, tag: str, text: str) -> None:
        super().__init__(tag=tag, text=text)


def heading(text: str, level: int = 1) -> Text:
    """An ``<h1>``…``<h6>`` (NiceGUI labels are divs; headings matter for screen readers)."""
    return Text(f"h{level}", text)


def set_attributes(element: E, **values: Any) -> E:
    """Set HTML attributes (``aria_label=…`` becomes ``aria-label``) as properties: the value is never parsed."""
    for name, value in values.items():
        element.props[name.replace("_", "-")] = value
    return element


def set_style(element: E, **values: str) -> E:
    """Set CSS properties (``aspect_ratio=…`` becomes ``aspect-ratio``) one by one, never as a parsed string."""
    for name, value in values.items():
        element.style[name.replace("_", "-")] = value
    return element
