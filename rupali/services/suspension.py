"""The mechanics of suspending an account, shared by the administrator's action and the automatic suspension of a
repeat offender (:func:`rupali.services.moderation.record_strike`).

Whoever calls decides *whether* the account may be suspended (an administrator not their own, never the last one;
the system never an administrator); this module only does it, with its audit entry, in the caller's transaction.
"""

from __future__ import annotations

from sqlmodel import Session

from rupali.clock import now
from rupali.models import User
from rupali.services import api_keys, audit, sessions

REASON_MAX = 500  # the width of User.suspension_reason


def suspend_account(session: Session, account: User, *, actor: User | None, reason: str) -> int:
    """Suspend ``account`` at once: it is deactivated, every session and API key ends, and the person is told
    ``reason`` when they try to sign in. Recorded in the audit log as ``user.suspend`` by ``actor`` (None: the
    system). Returns how many sessions and API keys it ended."""
    reason = reason[:REASON_MAX]
    moment = now()
    account.is_active = False
    account.suspended_at, account.suspension_reason, account.updated_at = moment, reason, moment
    session.add(account)
    ended = sessions.revoke_all(session, account)
    keys = api_keys.active(session, account.id)
    for key in keys:
        api_keys.revoke(session, account.id, key.id)
    audit.record(session, actor, "user.suspend", target_kind="user", target_id=account.id,
                 target_user_id=account.id, reason=reason,
                 detail=f"ended {_count(ended, 'session')} and {_count(len(keys), 'API key')}")
    session.flush()
    return ended + len(keys)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"
