"""The audit log: every administrator action, appended in the same transaction as the action itself.

Services call :func:`record` next to the change they make, so an action and its trace commit (or roll back)
together. Nothing here edits or deletes an entry; the model refuses it too (``AuditEntryImmutable``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from rupali.models import AuditEntry, User

REASON_MAX = 2000
# Plain names of the actions the app records, for the audit log's filter; an action not listed shows as itself.
ACTION_LABELS: dict[str, str] = {
    "user.suspend": "Account suspended",
    "user.unsuspend": "Suspension lifted",
    "user.role": "Role changed",
    "account.erase": "Account erased now",
    "request.log": "Mailed request logged",
    "request.close": "Request closed",
    "credits.grant": "Credits granted",
    "credits.revoke": "Credits revoked",
    "credits.allowance": "Daily allowance set",
    "purchases.resume": "Purchases resumed",
    "moderation.dismiss": "Flag dismissed",
    "moderation.remove": "Image removed",
    "support.reply": "Support reply sent",
    "support.close": "Support ticket closed",
    "support.reopen": "Support ticket reopened",
    "hold.place": "Evidence hold placed",
    "hold.release": "Evidence hold released",
    "hold.evidence": "Evidence bundle downloaded",
    "mail.retry": "Mail sent again",
    "mail.cancel": "Mail cancelled",
}


def record(session: Session, actor: User | None, action: str, *, target_kind: str = "", target_id: object = "",
           target_user_id: uuid.UUID | None = None, reason: str = "", detail: str = "") -> AuditEntry:
    """Append one entry: ``actor`` (None for the system) did ``action`` to the target, for ``reason``."""
    entry = AuditEntry(actor_id=actor.id if actor is not None else None, action=action[:64],
                       target_kind=target_kind[:32], target_id=str(target_id or "")[:64],
                       target_user_id=target_user_id, reason=reason[:REASON_MAX], detail=detail[:2000])
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class AuditRow:
    """An entry as the admin console shows it, with the e-mail addresses the ids stand for today."""

    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    detail: str
    target_user_id: uuid.UUID | None = None  # to link to the person's page while the account exists
    label: str = ""  # the action's plain name (ACTION_LABELS), or the action itself


def recent(session: Session, *, action: str | None = None, target_user_id: uuid.UUID | None = None,
           limit: int = 200) -> list[AuditRow]:
    """The newest entries first, optionally of one action or about one person."""
    query = select(AuditEntry).order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if target_user_id is not None:
        query = query.where(AuditEntry.target_user_id == target_user_id)
    entries = session.exec(query).all()
    ids = {entry.actor_id for entry in entries} | {entry.target_user_id for entry in entries}
    ids.discard(None)
    emails = dict(session.exec(select(User.id, User.email).where(col(User.id).in_(ids))).all()) if ids else {}
    return [AuditRow(entry.at, _who(entry.actor_id, emails, "system"), entry.action,
                     _target(entry, emails), entry.reason, entry.detail,
                     entry.target_user_id if entry.target_user_id in emails else None, label(entry.action))
            for entry in entries]


def label(action: str) -> str:
    """An action's plain name: ``user.suspend`` -> "Account suspended"."""
    return ACTION_LABELS.get(action, action)


def actions(session: Session) -> list[str]:
    """Every action the log holds at least once (for its filter), the known ones in their listed order first."""
    found = set(session.exec(select(AuditEntry.action).distinct()).all())
    known = [action for action in ACTION_LABELS if action in found]
    return known + sorted(found - set(known))


def count(session: Session, *, action: str | None = None) -> int:
    """How many entries the log holds, of one action or of all."""
    query = select(func.count()).select_from(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    return int(session.exec(query).one())


def recorded(session: Session, action: str, *, target_kind: str, target_id: object) -> bool:
    """Whether ``action`` on this target is already in the log (an idempotent retry must not log it twice)."""
    query = select(AuditEntry.id).where(AuditEntry.action == action, AuditEntry.target_kind == target_kind[:32],
                                        AuditEntry.target_id == str(target_id)[:64]).limit(1)
    return session.exec(query).first() is not None


def _who(user_id: uuid.UUID | None, emails: dict[uuid.UUID, str], default: str) -> str:
    if user_id is None:
        return default
    return emails.get(user_id, f"erased account {str(user_id)[:8]}")


def _target(entry: AuditEntry, emails: dict[uuid.UUID, str]) -> str:
    if entry.target_user_id is not None:
        person = _who(entry.target_user_id, emails, "")
        if entry.target_kind in ("", "user"):
            return person
        return f"{entry.target_kind} {entry.target_id} of {person}"
    return f"{entry.target_kind} {entry.target_id}".strip()
