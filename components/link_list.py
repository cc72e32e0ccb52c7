"""A ``<nav>`` of plain links as one element (see link_list.js): the header's navigation and the footer's links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.events import GenericEventArguments


class LinkList(ui.element, component="link_list.js"):
    """``links`` from :func:`link` and :func:`action`; ``label`` names the navigation for assistive technology."""

    def __init__(self, links: list[dict[str, Any]], *, label: str,
                 on_action: Callable[[str], Any] | None = None) -> None:
        super().__init__()
        self._props["links"] = links
        self._props["label"] = label
        if on_action is not None:
            actions = {entry["action"] for entry in links if entry.get("action")}

            def acted(event: GenericEventArguments) -> Any:
                name = event.args.get("action") if isinstance(event.args, dict) else None
                return on_action(name) if name in actions else None  # only the actions offered
            self.on("action", acted)

    @property
    def links(self) -> list[dict[str, Any]]:
        return self._props["links"]


def link(label: str, href: str, *, classes: str = "", current: bool = False) -> dict[str, Any]:
    return {"label": label, "href": href, "classes": classes, "current": current}


def action(label: str, name: str, *, classes: str = "") -> dict[str, Any]:
    """A button among the links; the list's ``on_action(name)`` runs when it is pressed."""
    return {"label": label, "action": name, "classes": classes}
