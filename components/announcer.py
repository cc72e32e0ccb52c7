"""A live region: messages screen readers announce without moving focus (WCAG 4.1.3 status messages)."""

from __future__ import annotations

from nicegui import ui


class Announcer:
    """A visually hidden ``role="status"`` region; :meth:`say` announces politely, once per distinct message."""

    def __init__(self) -> None:
        self._region = ui.label("").classes("r-sr-only").props('role="status" aria-live="polite" aria-atomic="true"')
        self._last = ""

    @property
    def text(self) -> str:
        return self._last

    def say(self, message: str) -> None:
        if message == self._last:
            return
        self._last = message
        self._region.text = message
