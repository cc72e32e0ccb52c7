"""The navigation between the administrator's views: links that say which view is current.

A new view is one more line in ``VIEWS``.
"""

from __future__ import annotations

from nicegui import ui

VIEWS = (
    ("Overview", "/admin"),
    ("Users", "/admin/users"),
    ("Generations", "/admin/generations"),
    ("Moderation", "/admin/moderation"),
    ("Support", "/admin/support"),
    ("Jobs", "/admin/jobs"),
    ("Outbox", "/admin/outbox"),
    ("Technical log", "/admin/log"),
    ("Audit log", "/admin/audit"),
)


def admin_nav(active: str) -> ui.element:
    """The views as tabs under the page heading; ``active`` is the path of the current view."""
    with ui.element("nav").classes("r-tabs").props('aria-label="Administration views"') as nav:
        for label, path in VIEWS:
            link = ui.link(label, path).classes("r-tab")
            if path == active:
                link.classes("r-tab--active").props('aria-current="page"')
    return nav
