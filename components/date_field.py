"""A date filter that shows the date the way the visitor writes it, picked from a calendar, and can be cleared.

The browser's own date input follows the browser's settings, not the person's locale, and shows 11/28/2026 to a
British visitor; this field formats with :mod:`rupali.dates` and keeps the ISO date for the query.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from typing import Any

from babel import Locale
from nicegui import background_tasks, ui

from components.text import set_attributes
from rupali import dates


class DateField:
    """``value`` is an ISO date (``"2026-11-28"``) or None; ``on_change`` runs after every change."""

    def __init__(self, label: str, locale: Locale, on_change: Callable[[], Any]) -> None:
        self.locale, self.on_change = locale, on_change
        self.value: str | None = None
        self.input = ui.input(label).props("outlined dense readonly clearable stack-label").classes("r-filter-date")
        self.input.props["placeholder"] = "Any date"
        self.menu: ui.menu | None = None  # the calendar, built when first opened
        self.calendar: ui.date | None = None
        with self.input.add_slot("append"):
            # Not a tab stop of its own: the field opens the calendar with Enter, the button serves the mouse.
            set_attributes(ui.button(icon="event", on_click=self.open).props('flat round dense tabindex="-1"'),
                           aria_label=f"Choose the {label.lower()} date")
        self.input.on("click", self.open)
        self.input.on("keydown.enter", self.open)
        self.input.on("clear", lambda: self.set(None))

    def open(self) -> None:
        """Show the calendar (built on first use)."""
        if self.menu is None:
            with self.input, ui.menu().props("no-parent-event") as self.menu:
                self.calendar = ui.date(value=self.value, on_change=lambda event: self._picked(event.value)).props(
                    "minimal")
                # Babel counts weekdays from Monday (0), Quasar from Sunday (0).
                self.calendar.props["first-day-of-week"] = (self.locale.first_week_day + 1) % 7
        self.menu.open()

    def set(self, value: str | None, *, notify: bool = True) -> None:
        """Show ``value`` (ISO) and, unless told otherwise, report the change."""
        parsed = _parse(value)
        self.value = parsed.isoformat() if parsed else None
        self.input.value = dates.medium(parsed, self.locale) if parsed else ""
        if self.calendar is not None:
            self.calendar.set_value(self.value)
        if notify and inspect.isawaitable(result := self.on_change()):
            background_tasks.create(result, name="date filter changed")

    def _picked(self, value: str | None) -> None:
        if (value or None) == self.value:
            return
        if self.menu is not None:
            self.menu.close()
        self.set(value)


def _parse(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None
