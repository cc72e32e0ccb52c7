"""Publishing legal documents: each rendered version gets an effective date the first time it is served."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from rupali import legal
from rupali.config import Settings
from rupali.models import LegalDocumentVersion


@dataclass(frozen=True)
class PublishedDocument:
    document: legal.Document
    effective_at: datetime


def current(session: Session, slug: str, settings: Settings) -> PublishedDocument:
    """The document as it stands now, recording its version as published if it is new."""
    document = legal.document(slug, settings)
    row = _find(session, slug, document.version)
    if row is None:
        try:
            with session.begin_nested():
                row = LegalDocumentVersion(slug=slug, version=document.version)
                session.add(row)
        except IntegrityError:  # another request published the same version a moment ago
            row = _find(session, slug, document.version)
            assert row is not None
    return PublishedDocument(document, row.effective_at)


def publish_all(session: Session, settings: Settings) -> list[PublishedDocument]:
    """Record every document's current version (run at start-up)."""
    return [current(session, slug, settings) for slug in legal.SLUGS]


def _find(session: Session, slug: str, version: str) -> LegalDocumentVersion | None:
    query = select(LegalDocumentVersion).where(
        LegalDocumentVersion.slug == slug, LegalDocumentVersion.version == version)
    return session.exec(query).first()
