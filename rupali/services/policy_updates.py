"""Policy changes: when the Terms or the Privacy Policy get a new version, signed-in people accept it before going on.

A version is the document's text version plus a fingerprint of what it says (:mod:`rupali.legal`), so a change of
wording, a retention period or the sub-processor list makes a new version. The gate sends a signed-in person whose
latest acceptance is older to ``/policy-update``, which shows what changed and when; accepting is recorded as a
policy acceptance and in the consent log.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from rupali import legal as rupali_legal
from rupali.clock import now
from rupali.config import Settings
from rupali.models import ConsentEvent, ConsentKind, PolicyAcceptance, User
from rupali.services import legal
from rupali.services.accounts import ACCEPTED_DOCUMENTS

PATH = "/policy-update"
_KINDS = {"terms": ConsentKind.TERMS, "privacy": ConsentKind.PRIVACY}


@dataclass(frozen=True)
class Pending:
    """A document whose current version the person has not accepted yet."""

    slug: str
    title: str
    version: str
    effective_at: datetime
    previously_accepted: str | None  # the version they accepted before, if any


def pending(session: Session, settings: Settings, user_id: uuid.UUID) -> list[Pending]:
    """The accepted documents (Terms, Privacy Policy) whose current version ``user_id`` has not accepted."""
    found = []
    for slug in ACCEPTED_DOCUMENTS:
        published = legal.current(session, slug, settings)
        versions = session.exec(select(PolicyAcceptance.version, PolicyAcceptance.accepted_at).where(
            PolicyAcceptance.user_id == user_id, PolicyAcceptance.document == slug)).all()
        if any(version == published.document.version for version, _ in versions):
            continue
        previous = max(versions, key=lambda row: row[1])[0] if versions else None
        found.append(Pending(slug, published.document.title, published.document.version, published.effective_at,
                             previous))
    return found


def accept(session: Session, settings: Settings, user: User, *, source: str = "policy-update") -> list[Pending]:
    """Record acceptance of every pending document's current version; returns what was accepted."""
    accepted = pending(session, settings, user.id)
    moment = now()
    for document in accepted:
        session.add(PolicyAcceptance(user_id=user.id, document=document.slug, version=document.version,
                                     accepted_at=moment))
        session.add(ConsentEvent(user_id=user.id, kind=_KINDS[document.slug], granted=True,
                                 policy_version=document.version, source=source, at=moment))
    session.flush()
    _cache.forget(user.id)
    return accepted


def current_versions(settings: Settings) -> tuple[str, ...]:
    """The versions people must have accepted (rendering the documents takes a few ms: cached per settings)."""
    key = id(settings)
    found = _versions.get(key)
    if found is None or found[0] is not settings:
        if len(_versions) > 8:
            _versions.clear()
        found = _versions[key] = (settings, tuple(rupali_legal.document(slug, settings).version
                                                  for slug in ACCEPTED_DOCUMENTS))
    return found[1]


def known_accepted(settings: Settings, user_id: uuid.UUID) -> bool:
    """True when this person is known to have accepted the current versions (no database needed)."""
    return _cache.accepted(user_id, current_versions(settings))


def needs_acceptance(session: Session, settings: Settings, user_id: uuid.UUID) -> bool:
    """Whether the gate must send this person to the notice (cached per user and current versions)."""
    versions = current_versions(settings)
    if _cache.accepted(user_id, versions):
        return False
    missing = bool(pending(session, settings, user_id))
    if not missing:
        _cache.remember(user_id, versions)
    return missing


class _AcceptedCache:
    """Who has accepted which versions: the gate asks on every page, the answer only changes by accepting."""

    def __init__(self, size: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._seen: dict[uuid.UUID, tuple[str, ...]] = {}
        self._size = size

    def accepted(self, user_id: uuid.UUID, versions: tuple[str, ...]) -> bool:
        return self._seen.get(user_id) == versions

    def remember(self, user_id: uuid.UUID, versions: tuple[str, ...]) -> None:
        with self._lock:
            if len(self._seen) >= self._size:
                self._seen.clear()
            self._seen[user_id] = versions

    def forget(self, user_id: uuid.UUID) -> None:
        with self._lock:
            self._seen.pop(user_id, None)


_cache = _AcceptedCache()
_versions: dict[int, tuple[Settings, tuple[str, ...]]] = {}
