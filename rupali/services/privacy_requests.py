"""The log of data-subject requests: every export, erasure, objection, rectification and consent withdrawal.

Each request is recorded with the day it arrived and the day it must be answered by (``gdpr_response_days`` after
it arrived, GDPR Art. 12(3)), and closed with its outcome. Self-service actions log and close themselves; requests
that arrive by mail are logged by an administrator and answered from the admin queue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from rupali.clock import now
from rupali.config import Settings
from rupali.models import PrivacyRequest, RequestKind, RequestSource, RequestStatus, User
from rupali.text import InvalidText, clean

OUTCOME_MAX = 500
NOTE_MAX = 4000
CONTACT_MAX = 254
# What an administrator can log for a request that arrived by mail (the rest are made in the privacy center).
MAIL_KINDS = (RequestKind.ACCESS, RequestKind.RECTIFICATION, RequestKind.RESTRICTION, RequestKind.OBJECTION,
              RequestKind.ERASURE, RequestKind.CONSENT_WITHDRAWAL, RequestKind.COMPLAINT)
LABELS = {
    RequestKind.ACCESS: "Copy of my data",
    RequestKind.ERASURE: "Delete my account",
    RequestKind.RECTIFICATION: "Correct my data",
    RequestKind.RESTRICTION: "Restrict processing",
    RequestKind.OBJECTION: "Objection",
    RequestKind.CONSENT_WITHDRAWAL: "Consent withdrawn",
    RequestKind.COMPLAINT: "Complaint",
}
REMIND_WITHIN = timedelta(days=7)


class RequestError(ValueError):
    """A request cannot be logged or closed as asked; the message says why, for the person."""


def log(session: Session, settings: Settings, *, kind: RequestKind, user_id: uuid.UUID | None = None,
        source: RequestSource = RequestSource.SELF_SERVICE, contact: str = "", note: str = "") -> PrivacyRequest:
    """Record a request received now; it is due ``gdpr_response_days`` later."""
    if user_id is None and not contact.strip():
        raise RequestError("Say who made the request: an account or a contact address.")
    received = now()
    request = PrivacyRequest(user_id=user_id, kind=kind, source=source, received_at=received,
                             due_at=received + timedelta(days=settings.gdpr_response_days),
                             contact=_clean(contact, "contact", CONTACT_MAX), note=_clean(note, "note", NOTE_MAX,
                                                                                           multiline=True))
    session.add(request)
    session.flush()
    return request


def close(session: Session, request: PrivacyRequest, *, status: RequestStatus = RequestStatus.DONE,
          outcome: str = "") -> PrivacyRequest:
    """Close a request with its outcome (idempotent: a closed request keeps its first outcome)."""
    if status == RequestStatus.OPEN:
        raise RequestError("A request is closed as done, refused or withdrawn.")
    if request.status != RequestStatus.OPEN and request.closed_at is not None:
        return request
    request.status, request.closed_at = status, now()
    request.outcome = _clean(outcome, "outcome", OUTCOME_MAX, multiline=True)
    session.add(request)
    session.flush()
    return request


def log_done(session: Session, settings: Settings, *, kind: RequestKind, user_id: uuid.UUID | None,
             outcome: str, source: RequestSource = RequestSource.SELF_SERVICE) -> PrivacyRequest:
    """Record a request that was answered at once (a consent switched off, a generation deleted, …)."""
    return close(session, log(session, settings, kind=kind, user_id=user_id, source=source), outcome=outcome)


def open_for(session: Session, user_id: uuid.UUID, kind: RequestKind) -> PrivacyRequest | None:
    """The person's oldest open request of this kind, if any."""
    query = (select(PrivacyRequest)
             .where(PrivacyRequest.user_id == user_id, PrivacyRequest.kind == kind,
                    PrivacyRequest.status == RequestStatus.OPEN)
             .order_by(col(PrivacyRequest.received_at)))
    return session.exec(query).first()


def close_open(session: Session, user_id: uuid.UUID, kind: RequestKind, *, outcome: str,
               status: RequestStatus = RequestStatus.DONE) -> int:
    """Close every open request of this kind for the person (e.g. when their export is ready)."""
    found = session.exec(select(PrivacyRequest).where(
        PrivacyRequest.user_id == user_id, PrivacyRequest.kind == kind,
        PrivacyRequest.status == RequestStatus.OPEN)).all()
    for request in found:
        close(session, request, status=status, outcome=outcome)
    return len(found)


def mine(session: Session, user: User, *, limit: int = 100) -> list[PrivacyRequest]:
    """The person's requests, newest first."""
    query = (select(PrivacyRequest).where(PrivacyRequest.user_id == user.id)
             .order_by(col(PrivacyRequest.received_at).desc(), col(PrivacyRequest.id)).limit(limit))
    return list(session.exec(query).all())


@dataclass(frozen=True)
class Queue:
    """The administrators' view: open requests, oldest deadline first, split by urgency."""

    overdue: list[PrivacyRequest]
    due_soon: list[PrivacyRequest]  # within :data:`REMIND_WITHIN`
    later: list[PrivacyRequest]
    recently_closed: list[PrivacyRequest]


def queue(session: Session, *, closed_limit: int = 20) -> Queue:
    """Open requests by deadline and the most recently closed ones."""
    moment = now()
    open_requests = session.exec(select(PrivacyRequest).where(PrivacyRequest.status == RequestStatus.OPEN)
                                 .order_by(col(PrivacyRequest.due_at), col(PrivacyRequest.id))).all()
    closed = session.exec(select(PrivacyRequest).where(PrivacyRequest.status != RequestStatus.OPEN)
                          .order_by(col(PrivacyRequest.closed_at).desc()).limit(closed_limit)).all()
    return Queue(
        overdue=[r for r in open_requests if r.due_at < moment],
        due_soon=[r for r in open_requests if moment <= r.due_at < moment + REMIND_WITHIN],
        later=[r for r in open_requests if r.due_at >= moment + REMIND_WITHIN],
        recently_closed=list(closed),
    )


def by_id(session: Session, request_id: object) -> PrivacyRequest | None:
    try:
        return session.get(PrivacyRequest, uuid.UUID(str(request_id)))
    except ValueError:
        return None


def due_within(session: Session, window: timedelta = REMIND_WITHIN) -> list[PrivacyRequest]:
    """Open requests whose deadline falls before ``now() + window`` (overdue ones included)."""
    query = (select(PrivacyRequest)
             .where(PrivacyRequest.status == RequestStatus.OPEN, col(PrivacyRequest.due_at) < now() + window)
             .order_by(col(PrivacyRequest.due_at)))
    return list(session.exec(query).all())


def _clean(value: str, field: str, limit: int, *, multiline: bool = False) -> str:
    try:
        return clean(value, field=field, label=field.capitalize(), max_length=limit, multiline=multiline)
    except InvalidText as error:
        raise RequestError(str(error)) from None
