"""The legal pages, rendered from the configuration the code enforces (see :mod:`rupali.legal`)."""

from __future__ import annotations

from nicegui import ui

from components import blocking
from components.frame import frame
from components.text import heading
from rupali import legal as legal_documents
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import legal


def create() -> None:
    for slug in legal_documents.SLUGS:
        _register(slug)


def _register(slug: str) -> None:
    @ui.page(f"/legal/{slug}")
    async def legal_page() -> None:
        published = await blocking.io_bound(transact, legal.current, slug, get_settings())
        document = published.document
        async with frame(document.title):
            with ui.element("article").classes("r-prose"):
                heading(document.title)
                ui.label(
                    f"Version {document.version} · effective {published.effective_at:%B %-d, %Y}"
                ).classes("r-muted r-doc-meta")
                for number, section in enumerate(document.sections, start=1):
                    heading(f"{number}. {section.title}", 2)
                    for is_table, text in _blocks(section.body):
                        if is_table:
                            _table(text, section.title)
                        else:
                            ui.markdown(text)


def _blocks(markdown: str) -> list[tuple[bool, str]]:
    """The Markdown cut into runs of table lines and of everything else, in order: ``(is_table, text)``."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in markdown.split("\n"):
        is_table = line.lstrip().startswith("|")
        if not blocks or blocks[-1][0] != is_table:
            blocks.append((is_table, []))
        blocks[-1][1].append(line)
    return [(is_table, "\n".join(lines)) for is_table, lines in blocks if "\n".join(lines).strip()]


def _table(markdown: str, title: str) -> None:
    # A wide table scrolls sideways on a phone; the scrolling region must be reachable by keyboard and named.
    with ui.element("div").classes("r-table-scroll").props('role="region" tabindex="0"') as region:
        region.props["aria-label"] = f"{title}: table"
        ui.markdown(markdown)
