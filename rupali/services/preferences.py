"""Consents and e-mail preferences: analytics, product updates, marketing; every change logged with its policy version.

Analytics is a legitimate interest that a person can object to at any time (off means the page carries no tracker);
product updates and marketing mails are opt-in and off by default. Switching anything off is also a data-subject
request answered on the spot (an objection or a consent withdrawal), so it appears in "My requests".

Non-transactional mails carry an RFC 8058 one-click unsubscribe link: the link is signed with the installation's
secret, names the person and the topic, and works without signing in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session, col, select

from rupali import mail_templates
from rupali.config import Settings, storage_secret
from rupali.models import ConsentEvent, ConsentKind, MailKind, RequestKind, User
from rupali.services import legal, mail, privacy_requests

UNSUBSCRIBE_PATH = "/unsubscribe"
_SALT = "rupali-unsubscribe-v1"


@dataclass(frozen=True)
class Preference:
    """One switch on the privacy page."""

    kind: ConsentKind
    column: str  # the User column holding the current choice
    label: str
    description: str
    withdrawal: RequestKind  # how switching it off is logged


PREFERENCES: dict[ConsentKind, Preference] = {p.kind: p for p in (
    Preference(ConsentKind.ANALYTICS, "analytics", "Cookie-less usage statistics",
               "Counts page views without cookies or identifiers (Umami), so we learn which pages are used. "
               "Off means our pages carry no statistics script for you at all.", RequestKind.OBJECTION),
    Preference(ConsentKind.PRODUCT_UPDATES, "product_updates", "Product updates by e-mail",
               "Occasional mails about new features. Off unless you switch it on.", RequestKind.CONSENT_WITHDRAWAL),
    Preference(ConsentKind.MARKETING, "marketing_emails", "Offers and news by e-mail",
               "Marketing mails about offers. Off unless you switch it on.", RequestKind.CONSENT_WITHDRAWAL),
)}
# Which preference a non-transactional mail kind needs.
MAIL_TOPICS = {MailKind.PRODUCT: ConsentKind.PRODUCT_UPDATES, MailKind.MARKETING: ConsentKind.MARKETING}


class InvalidLink(ValueError):
    """An unsubscribe link that was not issued by this installation, or was altered."""


def current(user: User) -> dict[ConsentKind, bool]:
    """The person's choices now."""
    return {kind: bool(getattr(user, p.column)) for kind, p in PREFERENCES.items()}


def set_preference(session: Session, settings: Settings, user: User, kind: ConsentKind, granted: bool, *,
                   source: str) -> bool:
    """Change one choice and log it; returns False when nothing changed (nothing is logged then)."""
    preference = PREFERENCES.get(kind)
    if preference is None:
        raise ValueError(f"{kind} is not a preference")
    user = session.get(User, user.id) or user
    if bool(getattr(user, preference.column)) == granted:
        return False
    setattr(user, preference.column, granted)
    session.add(user)
    session.add(ConsentEvent(user_id=user.id, kind=kind, granted=granted, source=source,
                             policy_version=legal.current(session, "privacy", settings).document.version))
    if not granted:
        privacy_requests.log_done(session, settings, kind=preference.withdrawal, user_id=user.id,
                                  outcome=f"{preference.label}: switched off ({source})")
    session.flush()
    return True


def history(session: Session, user: User, *, limit: int = 50) -> list[ConsentEvent]:
    """The person's consent log, newest first."""
    return list(session.exec(select(ConsentEvent).where(ConsentEvent.user_id == user.id)
                             .order_by(col(ConsentEvent.at).desc(), col(ConsentEvent.id).desc()).limit(limit)).all())


# --- one-click unsubscribe (RFC 8058) ------------------------------------------------------------------------------

def unsubscribe_token(settings: Settings, user_id: uuid.UUID, kind: ConsentKind) -> str:
    """A signed token naming the person and the topic; it cannot be altered without the secret."""
    return _serializer(settings).dumps([str(user_id), kind.value])


def unsubscribe_url(settings: Settings, user_id: uuid.UUID, kind: ConsentKind) -> str:
    return f"{settings.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={unsubscribe_token(settings, user_id, kind)}"


@dataclass(frozen=True)
class Unsubscription:
    user: User
    preference: Preference
    changed: bool


def read_token(session: Session, settings: Settings, token: str) -> Unsubscription:
    """Who and what a link is about, without changing anything (the page shows it before the click)."""
    try:
        user_id, kind = _serializer(settings).loads(token or "")
        preference = PREFERENCES[ConsentKind(kind)]
        user = session.get(User, uuid.UUID(user_id))
    except (BadSignature, ValueError, TypeError, KeyError):
        raise InvalidLink("This unsubscribe link is not valid. Use the link from the mail itself, or change your "
                          "e-mail preferences in the privacy center.") from None
    if user is None or preference.kind not in MAIL_TOPICS.values():
        raise InvalidLink("This unsubscribe link no longer belongs to an account.")
    return Unsubscription(user, preference, changed=False)


def unsubscribe(session: Session, settings: Settings, token: str, *, source: str = "unsubscribe-link"
                ) -> Unsubscription:
    """Switch the link's topic off (idempotent: a second click changes nothing and still succeeds)."""
    found = read_token(session, settings, token)
    changed = set_preference(session, settings, found.user, found.preference.kind, False, source=source)
    return Unsubscription(found.user, found.preference, changed)


def enqueue_newsletter(session: Session, settings: Settings, kind: MailKind, *, subject: str, text: str) -> int:
    """Queue a non-transactional mail to everyone who opted in to its topic; returns how many were queued."""
    topic = MAIL_TOPICS[kind]
    column = getattr(User, PREFERENCES[topic].column)
    recipients = session.exec(select(User).where(column == True, col(User.email_verified_at).is_not(None),  # noqa: E712
                                                 col(User.deletion_requested_at).is_(None))).all()
    for user in recipients:
        link = unsubscribe_url(settings, user.id, topic)
        mail.enqueue(session, to=user.email, user_id=user.id, kind=kind, unsubscribe_url=link,
                     mail=mail_templates.newsletter(user.full_name, subject, text, link,
                                                    PREFERENCES[topic].label.lower()))
    return len(recipients)


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(storage_secret(settings), salt=_SALT)
