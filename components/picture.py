"""A plain ``<img>``: decorative pictures are hidden from assistive technology, meaningful ones carry a name.

Quasar's QImg renders ``alt=""`` as ``role="img" aria-label=""`` (an image without a name, which screen readers
announce and axe refuses), and it is a whole component per thumbnail. The alt text is set as a property, never
parsed from a props string, so a prompt with quotes or backslashes cannot break the page.
"""

from __future__ import annotations

from nicegui import ui


class Picture(ui.element):
    """``alt=""`` (the default) for decoration; otherwise the alt text names the picture."""

    def __init__(self, source: str, *, alt: str = "", lazy: bool = True) -> None:
        super().__init__("img")
        self._props["src"] = source
        self._props["alt"] = alt
        if lazy:
            self._props["loading"] = "lazy"
            self._props["decoding"] = "async"

    @property
    def source(self) -> str:
        return str(self._props["src"])
