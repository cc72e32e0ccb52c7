"""Form building blocks shared by the account pages: a centred card, an error banner, labelled inputs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from components.text import heading, set_attributes


@contextmanager
def card(title: str, subtitle: str | None = None) -> Iterator[ui.element]:
    """A narrow centred card for sign-in style pages."""
    with ui.element("section").classes("r-auth-card") as element:
        heading(title)
        if subtitle:
            ui.label(subtitle).classes("r-muted")
        yield element


class Banner:
    """An inline message area announced to screen readers.

    The live region stays in the page while empty (a region that appears together with its text is not reliably
    announced); only its look comes and goes with the message.
    """

    def __init__(self) -> None:
        self._label = ui.label("").classes("r-banner").props('role="alert" aria-live="assertive"')

    def error(self, message: str) -> None:
        self._show(message, "r-banner--error")

    def success(self, message: str) -> None:
        self._show(message, "r-banner--success")

    def clear(self) -> None:
        self._label.text = ""
        self._label.classes(remove="r-banner--error r-banner--success")

    @property
    def message(self) -> str:
        return self._label.text

    def _show(self, message: str, kind: str) -> None:
        self._label.text = message
        self._label.classes(remove="r-banner--error r-banner--success", add=kind)


def text_input(label: str, *, kind: str = "text", autocomplete: str | None = None, value: str = "",
               max_length: int | None = None) -> ui.input:
    """A labelled input; passwords get a show/hide toggle."""
    field = ui.input(label, value=value, password=kind == "password", password_toggle_button=kind == "password")
    field.props("outlined stack-label").classes("w-full")
    if kind == "email":
        field.props('type=email inputmode=email autocapitalize=off spellcheck=false')
    if autocomplete:
        set_attributes(field, autocomplete=autocomplete)
    if max_length:
        set_attributes(field, maxlength=max_length)
    return field


class ConsentChoices:
    """The age confirmation and the acceptance of the Terms and Privacy Policy, asked at sign-up and welcome."""

    def __init__(self, minimum_age: int) -> None:
        self.adult = ui.checkbox(f"I am at least {minimum_age} years old")
        with ui.row().classes("items-center gap-1 no-wrap"):
            self.accepted = ui.checkbox().props(
                'aria-label="I accept the Terms of Service and the Privacy Policy"')
            with ui.element("span").classes("r-consent-text"):
                ui.label("I accept the")
                ui.link("Terms of Service", "/legal/terms", new_tab=True)
                ui.label("and the")
                ui.link("Privacy Policy", "/legal/privacy", new_tab=True)

    @property
    def value(self) -> tuple[bool, bool]:
        """(age confirmed, policies accepted)."""
        return bool(self.adult.value), bool(self.accepted.value)
