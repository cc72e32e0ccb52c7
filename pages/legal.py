"""The legal pages, rendered from the configuration the code enforces (see :mod:`rupali.legal`)."""

from __future__ import annotations

from nicegui import run, ui

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
        published = await run.io_bound(transact, legal.current, slug, get_settings())
        document = published.document
        async with frame(document.title):
            with ui.element("article").classes("r-prose"):
                heading(document.title)
                ui.label(
                    f"Version {document.version} · effective {published.effective_at:%B %-d, %Y}"
                ).classes("r-muted r-doc-meta")
                for number, section in enumerate(document.sections, start=1):
                    heading(f"{number}. {section.title}", 2)
                    ui.markdown(section.body)
