"""A labelled single choice shown as a row of buttons, with radio-group keyboard behaviour (see choice_group.js)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nicegui.elements.mixins.disableable_element import DisableableElement
from nicegui.elements.mixins.value_element import ValueElement


class ChoiceGroup(ValueElement, DisableableElement, component="choice_group.js"):
    """``options`` maps values to labels (a list uses each value as its own label); ``label`` names the group."""

    def __init__(self, options: Mapping[Any, str] | Sequence[Any], *, label: str, value: Any = None,
                 on_change: Callable[..., Any] | None = None, caption: str = "", inline: bool = False) -> None:
        """``caption``: a visible heading over the buttons (beside them if ``inline``), part of this one element;
        screen readers hear ``label``, the group's name, instead."""
        super().__init__(value=value, on_value_change=on_change)
        self._props["label"] = label
        if caption:
            self._props["caption"] = caption
            self._props["inline"] = inline
        self.set_options(options)

    def set_options(self, options: Mapping[Any, str] | Sequence[Any]) -> None:
        pairs = options.items() if isinstance(options, Mapping) else ((option, str(option)) for option in options)
        self.options = {value: text for value, text in pairs}
        self._props["options"] = [{"value": value, "label": text} for value, text in self.options.items()]
        self.update()

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        return [*super()._displayed_contents(only_visible=only_visible), self._props.get("caption")]
