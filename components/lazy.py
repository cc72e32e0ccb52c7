"""Content built when it is first shown: an expansion's body is built the first time it opens.

A page pays for what a person sees; a closed section (the negative prompt, the source image) would otherwise cost
its elements and listeners on every page view, for the few who open it.
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import events, ui


def expansion(text: str, build: Callable[[], None]) -> ui.expansion:
    """A ``ui.expansion`` whose content ``build()`` adds on first opening (also when opened from code)."""
    built = False

    def opened(event: events.ValueChangeEventArguments) -> None:
        nonlocal built
        if event.value and not built:
            built = True
            with section:
                build()

    section = ui.expansion(text, on_value_change=opened)
    return section
