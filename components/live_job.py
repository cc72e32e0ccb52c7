"""The card of a job that has not finished: its prompt, where it stands, a progress bar and a Cancel button.

Built once and then only updated: the studio refreshes it twice a second, and changing two texts and a bar costs the
browser and the websocket far less than rebuilding the card each time.
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from rupali.generation_queue import JobState
from rupali.models import GenerationStatus


class LiveJob:
    """One unfinished job's card content, inside ``card`` (which it clears once)."""

    def __init__(self, card: ui.element, prompt: str, on_cancel: Callable[[], object]) -> None:
        card.clear()
        with card, ui.row().classes("w-full items-center justify-between no-wrap gap-3"):
            with ui.column().classes("grow gap-1 min-w-0"):
                ui.label(prompt).classes("r-job-prompt")
                self.status = ui.label().classes("r-job-status")
                self.bar = ui.linear_progress(show_value=False).props('rounded aria-label="Progress"')
            ui.button("Cancel", on_click=on_cancel).props("flat no-caps")
        self._shown: tuple[str, float | None] | None = None

    def show(self, live: JobState) -> None:
        """Show ``live``; nothing is sent to the browser when it looks the same as what is shown."""
        text, value = describe(live)
        if (text, value) == self._shown:
            return
        self._shown = (text, value)
        self.status.set_text(text)
        if live.status == GenerationStatus.QUEUED:  # a grey moving bar while it waits
            self.bar.props("indeterminate color=grey-6")
        elif value is None:  # running, with no measure of progress: a moving bar
            self.bar.props(remove="color").props("indeterminate")
        else:
            self.bar.props(remove="indeterminate color")
            self.bar.set_value(value)


def describe(live: JobState) -> tuple[str, float | None]:
    """The status line of ``live`` and its progress (None when there is no measure of it)."""
    if live.status == GenerationStatus.QUEUED:
        ahead = live.position or 0
        return "Waiting to start" + (f" — {ahead} ahead of you" if ahead else " — you are next"), None
    if live.progress is not None:
        return f"Generating — {round(live.progress * 100)}%", live.progress
    return f"Generating — {int(live.elapsed or 0)} s", None
