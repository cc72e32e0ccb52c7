"""Pages: one module per page, each with a ``create()`` that registers its routes at start-up."""

from pages import coming_soon, home, legal


def register_all() -> None:
    """Register every page (called by :mod:`rupali.web` on each start, including each test run)."""
    home.create()
    legal.create()
    coming_soon.create()
