"""A plain data table: a ``<table>`` in a named scroll region that keyboards can reach (wide tables scroll sideways
on a phone). Plain rather than ``ui.table`` so cells can hold real, labelled links and buttons."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from nicegui import ui

from components.text import Text, set_attributes


@contextmanager
def table(name: str, headers: Sequence[str]) -> Iterator[ui.element]:
    """``with table("Orders", ("Date", "Pack")):`` then add one ``<tr>`` per row; ``name`` labels the region."""
    region = set_attributes(ui.element("div").classes("r-table-scroll w-full"), role="region", tabindex="0",
                            aria_label=f"{name}: table")
    with region, ui.element("table").classes("r-table"):
        with ui.element("thead"), ui.element("tr"):
            for title in headers:
                set_attributes(Text("th", title), scope="col")
        with ui.element("tbody") as body:
            yield body
