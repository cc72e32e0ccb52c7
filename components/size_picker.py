"""Choosing an image size: an aspect ratio first, then that ratio's sizes, or a custom size on a row of its own."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nicegui import ui

from components.choice_group import ChoiceGroup
from rupali.providers.base import ModelInfo

# Named ratios, portrait before landscape. Presets are matched to the nearest one within a few percent, so a
# model's 832x1216 (a FLUX favourite) is listed as the 2:3 portrait it is meant to be.
RATIOS = ((1, 1, "Square"), (4, 5, "Portrait"), (3, 4, "Portrait"), (2, 3, "Portrait"), (9, 16, "Tall"),
          (5, 4, "Landscape"), (4, 3, "Landscape"), (3, 2, "Landscape"), (16, 9, "Wide"))
CUSTOM = "custom"
_TOLERANCE = 0.04  # how far (as a log-ratio) a size may be from a named ratio and still carry its name
_NAMES = {f"{w}:{h}": name for w, h, name in RATIOS}


def aspect_key(width: int, height: int) -> str:
    """The aspect ratio a size belongs to, e.g. ``"2:3"`` for 832x1216."""
    if width <= 0 or height <= 0:
        return CUSTOM
    actual = width / height
    nearest = min(RATIOS, key=lambda ratio: abs(math.log(actual * ratio[1] / ratio[0])))
    if abs(math.log(actual * nearest[1] / nearest[0])) <= _TOLERANCE:
        return f"{nearest[0]}:{nearest[1]}"
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def aspect_label(key: str) -> str:
    """``"Portrait 2:3"``: every entry names its ratio, so no two read the same."""
    return f"{_NAMES[key]} {key}" if key in _NAMES else key


def grouped(sizes: tuple[tuple[int, int], ...]) -> dict[str, list[tuple[int, int]]]:
    """The model's preset sizes by aspect ratio, in the order the model lists them."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for width, height in sizes:
        groups.setdefault(aspect_key(width, height), []).append((width, height))
    return groups


def size_text(width: int, height: int) -> str:
    return f"{width} × {height}"


class SizePicker:
    """The size controls for one model, writing ``width`` and ``height`` into ``state``."""

    def __init__(self, state: Any, info: ModelInfo, on_change: Callable[[], None]) -> None:
        self.state, self.info, self.on_change = state, info, on_change
        self.groups = grouped(info.sizes)
        preset = (state.width, state.height) in info.sizes
        self.aspect = aspect_key(state.width, state.height) if preset else CUSTOM
        with ui.column().classes("w-full gap-2 r-size-picker") as self.column:
            options = {key: aspect_label(key) for key in self.groups}
            options[CUSTOM] = "Custom"
            ChoiceGroup(options, label="Aspect ratio", caption="Aspect ratio", value=self.aspect,
                        on_change=lambda event: self._aspect_picked(event.value))
            self.sizes_row = ui.row().classes("w-full items-center gap-2")
        # The custom fields are built the first time "Custom" is chosen: most people never do.
        self.custom_area: ui.column | None = None
        self.width_input: ui.number | None = None
        self.height_input: ui.number | None = None
        self._show()

    def _custom_fields(self) -> None:
        rule = self.info.size_rule
        with self.column, ui.column().classes("w-full gap-2") as self.custom_area:
            with ui.row().classes("w-full gap-2 no-wrap items-start"):
                self.width_input = self._side("Width", "width", rule.minimum, rule.maximum, rule.multiple)
                self.height_input = self._side("Height", "height", rule.minimum, rule.maximum, rule.multiple)
            ui.label(f"Custom sizes: {rule.describe()}.").classes("r-muted text-sm")

    def show_error(self, message: str) -> bool:
        """Show a size problem under the custom fields; False when they are hidden (the caller shows it)."""
        if self.aspect != CUSTOM or self.width_input is None:
            return False
        self.width_input.error = message
        self.width_input.run_method("focus")
        return True

    def clear_error(self) -> None:
        if self.width_input is not None:
            self.width_input.error = None

    def _side(self, label: str, attribute: str, minimum: int, maximum: int, step: int) -> ui.number:
        def changed(event: Any) -> None:
            setattr(self.state, attribute, int(event.value or 0))
            self.clear_error()
            self.on_change()

        return ui.number(label, value=getattr(self.state, attribute), min=minimum, max=maximum, step=step,
                         precision=0, on_change=changed).props("outlined dense").classes("grow")

    def _aspect_picked(self, key: str | None) -> None:
        self.aspect = key or CUSTOM
        if self.aspect != CUSTOM:
            sizes = self.groups[self.aspect]
            if (self.state.width, self.state.height) not in sizes:
                self.state.width, self.state.height = sizes[0]
        self.clear_error()
        self._show()
        self.on_change()

    def _size_picked(self, value: str | None) -> None:
        if value:
            width, _, height = value.partition("x")
            self.state.width, self.state.height = int(width), int(height)
            self.on_change()

    def _show(self) -> None:
        custom = self.aspect == CUSTOM
        if custom and self.width_input is None:
            self._custom_fields()
        if self.custom_area is not None:
            self.custom_area.set_visibility(custom)
        if custom and self.width_input is not None and self.height_input is not None:
            self.width_input.value, self.height_input.value = self.state.width, self.state.height
        self.sizes_row.clear()
        if custom:
            return
        sizes = self.groups[self.aspect]
        with self.sizes_row:
            if len(sizes) == 1:
                ui.label(f"{size_text(*sizes[0])} pixels").classes("r-muted text-sm r-size-readout")
                return
            ChoiceGroup({f"{w}x{h}": size_text(w, h) for w, h in sizes}, label="Size in pixels",
                        value=f"{self.state.width}x{self.state.height}",
                        on_change=lambda event: self._size_picked(event.value))
