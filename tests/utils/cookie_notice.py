"""Acknowledging the cookie notice (``components.cookie_notice.CookieNotice``) of a simulated page."""

from __future__ import annotations

from nicegui.testing import User, UserInteraction

from components.cookie_notice import CookieNotice
from tests.utils.tiles import of_kind


def acknowledge(user: User, *, analytics: bool = True) -> None:
    """Press "OK, got it" as cookie_notice.js reports it, with the statistics toggle as the visitor left it."""
    [notice] = of_kind(user, CookieNotice)
    UserInteraction(user, {notice}, None).trigger("acknowledge", {"analytics": analytics})
