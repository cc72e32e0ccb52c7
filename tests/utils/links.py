"""The header's navigation and the footer's links (``components.link_list.LinkList``) of a simulated page."""

from __future__ import annotations

from nicegui.testing import User, UserInteraction

from components.link_list import LinkList
from tests.utils.tiles import of_kind


def link_lists(user: User) -> list[LinkList]:
    return of_kind(user, LinkList)


def links(user: User) -> dict[str, str]:
    """Every entry's label and where it leads (an action button leads to ``""``)."""
    return {entry["label"]: entry.get("href", "") for lst in link_lists(user) for entry in lst.links}


def current(user: User) -> list[str]:
    """The entries marked as the page the visitor is on."""
    return [entry["label"] for lst in link_lists(user) for entry in lst.links if entry.get("current")]


def press(user: User, label: str) -> None:
    """Press the button entry ``label`` as link_list.js reports it."""
    for lst in link_lists(user):
        for entry in lst.links:
            if entry["label"] == label and entry.get("action"):
                UserInteraction(user, {lst}, None).trigger("action", {"action": entry["action"]})
                return
    raise AssertionError(f"no button {label!r} among the links: {links(user)}")
