"""The face of the header's account button as one element (see account_face.js): picture or initials, and a name.

The person's name and initials are element data, shown by Vue as text: never markup, never part of a props string.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui


class AccountFace(ui.element, component="account_face.js"):
    """``src``: the person's picture (else their ``initials`` show); ``name``: what screen readers call the button."""

    def __init__(self, *, initials: str, name: str, src: str | None = None) -> None:
        super().__init__()
        self._props["initials"] = initials
        self._props["name"] = name
        if src:
            self._props["src"] = src

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        """What it shows as text, for NiceGUI's element filter (``user.should_see``)."""
        return [self._props["initials"] if "src" not in self._props else None, self._props["name"]]
