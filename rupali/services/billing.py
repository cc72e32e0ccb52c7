"""What the billing page and the administrator read: balance, orders, the ledger with filters, usage per day.

Writes live elsewhere: the ledger (:mod:`rupali.services.ledger`), orders and checkout (:mod:`rupali.services.orders`),
webhooks (:mod:`rupali.services.creem_webhooks`), VAT numbers (:mod:`rupali.services.tax`).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from rupali.clock import now
from rupali.config import Settings
from rupali.models import (
    CreditAccount,
    CreditEntry,
    CreditOrder,
    CreditPurchaseEntry,
    EntryKind,
    OrderStatus,
    User,
    WebhookDelivery,
)
from rupali.services import audit, ledger, users

# The kinds a person can filter the ledger by, in the order the filter lists them, with their plain names.
KIND_LABELS: dict[str, str] = {
    EntryKind.RESERVE: "Generation (held)", EntryKind.SETTLE: "Generation (settled)",
    EntryKind.RELEASE: "Generation (given back)", EntryKind.BONUS: "Sign-up bonus", EntryKind.DAILY: "Daily credits",
    EntryKind.GRANT: "Grant", EntryKind.PURCHASE: "Purchase", EntryKind.REFUND: "Refund",
    EntryKind.CHARGEBACK: "Chargeback", EntryKind.ADJUSTMENT: "Adjustment",
}
_USAGE_KINDS = (EntryKind.RESERVE.value, EntryKind.SETTLE.value, EntryKind.RELEASE.value)
ORDER_LABELS: dict[str, str] = {
    OrderStatus.PENDING: "Awaiting payment", OrderStatus.PAID: "Paid",
    OrderStatus.PARTIALLY_REFUNDED: "Partly refunded", OrderStatus.REFUNDED: "Refunded",
    OrderStatus.DISPUTED: "Disputed", OrderStatus.FLAGGED: "Under review", OrderStatus.FAILED: "Not started",
}
PAGE = 50
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Overview:
    balance: int
    daily_allowance: int  # today's free top-up level (0 = none)
    purchases_frozen: bool
    vat_number: str | None


@dataclass(frozen=True)
class Row:
    """One ledger entry as the page shows it."""

    id: uuid.UUID
    created_at: datetime
    kind: str
    delta: int
    balance_after: int
    reference: str


def overview(session: Session, settings: Settings, user_id: uuid.UUID) -> Overview:
    """The person's balance (opening the account with its bonus on the first visit) and account state."""
    balance = ledger.balance(session, settings, user_id)
    account = session.get(CreditAccount, user_id)
    allowance = settings.credits_daily_allowance
    if account is not None and account.daily_allowance is not None:
        allowance = account.daily_allowance
    return Overview(balance=balance, daily_allowance=allowance,
                    purchases_frozen=account is not None and account.purchases_frozen_at is not None,
                    vat_number=account.vat_number if account is not None else None)


def entries(session: Session, user_id: uuid.UUID, *, kind: str | None = None, since: date | None = None,
            until: date | None = None, limit: int = PAGE) -> list[Row]:
    """The person's ledger, newest first, from both entry tables; ``since``/``until`` are whole UTC days."""
    rows: list[Row] = []
    for model in (CreditEntry, CreditPurchaseEntry):
        query = select(model.id, model.created_at, model.kind, model.delta, model.balance_after,
                       model.reference).where(model.user_id == user_id)
        if kind:
            query = query.where(model.kind == kind)
        if since is not None:
            query = query.where(model.created_at >= _start(since))
        if until is not None:
            query = query.where(model.created_at < _start(until + timedelta(days=1)))
        query = query.order_by(col(model.created_at).desc(), col(model.id).desc()).limit(limit)
        rows.extend(Row(*row) for row in session.execute(query).all())
    rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    return rows[:limit]


def usage_per_day(session: Session, user_id: uuid.UUID, days: int) -> list[tuple[date, int]]:
    """Credits spent on generations on each of the last ``days`` UTC days (today included), oldest first.

    Spent = held minus what came back, counted on the day of each entry: a generation held on one day and settled
    on the next counts its hold on the first and its give-back on the second.
    """
    today = now().date()
    first = today - timedelta(days=days - 1)
    # Grouped here rather than by SQL DATE(): that would depend on each database session's time zone.
    query = (select(CreditEntry.created_at, CreditEntry.delta)
             .where(CreditEntry.user_id == user_id, col(CreditEntry.kind).in_(_USAGE_KINDS),
                    CreditEntry.created_at >= _start(first)))
    spent: dict[date, int] = {}
    for created_at, delta in session.execute(query).all():
        on = created_at.astimezone(UTC).date()
        spent[on] = spent.get(on, 0) - delta
    return [(first + timedelta(days=offset), max(0, spent.get(first + timedelta(days=offset), 0)))
            for offset in range(days)]


def orders(session: Session, user_id: uuid.UUID, limit: int = PAGE) -> list[CreditOrder]:
    """The person's orders, newest first (orders that never reached Creem are left out)."""
    query = (select(CreditOrder).where(CreditOrder.user_id == user_id, CreditOrder.status != OrderStatus.FAILED)
             .order_by(col(CreditOrder.created_at).desc()).limit(limit))
    return list(session.scalars(query).all())


def order(session: Session, user_id: uuid.UUID, order_id: uuid.UUID) -> CreditOrder | None:
    """One of the person's orders; None for anyone else's or an unknown id."""
    found = session.get(CreditOrder, order_id)
    return found if found is not None and found.user_id == user_id else None


def price(amount: int, currency: str) -> str:
    """Minor units as a price: ``500, "EUR"`` -> ``"5.00 EUR"`` (currencies without minor units: no decimals)."""
    if currency.upper() in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount // 100:,}.{amount % 100:02d} {currency.upper()}"


ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
                          "XAF", "XOF", "XPF"})


# --- administration ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdminOrder:
    order: CreditOrder
    email: str | None  # the account's address; None once the account is erased


def recent_orders(session: Session, limit: int = PAGE, *, attention_only: bool = False) -> list[AdminOrder]:
    """Orders newest first, with the account's e-mail; ``attention_only``: disputed and flagged ones."""
    query = select(CreditOrder, User.email).join(User, User.id == CreditOrder.user_id, isouter=True)
    if attention_only:
        query = query.where(col(CreditOrder.status).in_([OrderStatus.DISPUTED.value, OrderStatus.FLAGGED.value]))
    query = query.order_by(col(CreditOrder.created_at).desc()).limit(limit)
    return [AdminOrder(found, email) for found, email in session.execute(query).all()]


def recent_deliveries(session: Session, limit: int = PAGE) -> list[WebhookDelivery]:
    """Webhook deliveries newest first, with their outcome."""
    query = select(WebhookDelivery).order_by(col(WebhookDelivery.received_at).desc()).limit(limit)
    return list(session.scalars(query).all())


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class BillingAdminError(ValueError):
    """An administrator's billing action that cannot be carried out; the message says why."""


def admin_grant(session: Session, settings: Settings, actor: User, email: str, amount: int | float | None, *,
                reason: str, key: str | None = None) -> CreditEntry:
    """An administrator grants (positive) or revokes (negative) credits for the account with ``email``."""
    if not (actor.is_admin and actor.is_active):
        raise BillingAdminError("Only an administrator can grant or revoke credits.")
    user = _account(session, email)
    if not _whole(amount):
        raise BillingAdminError("Enter a whole number of credits: negative to revoke.")
    try:
        entry = ledger.grant(session, settings, user, int(amount or 0), reason=reason, actor=actor, key=key)
    except ledger.LedgerError as exc:
        raise BillingAdminError(str(exc)) from None
    action = "credits.grant" if entry.delta > 0 else "credits.revoke"
    # A form sent twice gets the entry posted the first time back: it is in the log already.
    if not audit.recorded(session, action, target_kind="credit-entry", target_id=entry.id):
        audit.record(session, actor, action, target_kind="credit-entry", target_id=entry.id, target_user_id=user.id,
                     reason=entry.reference, detail=f"{entry.delta:+,} credits; balance {entry.balance_after:,}")
    return entry


def admin_set_allowance(session: Session, settings: Settings, actor: User, email: str,
                        allowance: int | float | None) -> User:
    """Give the account with ``email`` its own daily allowance; None returns it to the setting."""
    if not (actor.is_admin and actor.is_active):
        raise BillingAdminError("Only an administrator can set a daily allowance.")
    user = _account(session, email)
    if allowance is not None and not _whole(allowance):
        raise BillingAdminError("Enter a whole number of credits, or leave it empty for the default.")
    try:
        ledger.set_daily_allowance(session, settings, user.id, None if allowance is None else int(allowance))
    except ledger.LedgerError as exc:
        raise BillingAdminError(str(exc)) from None
    shown = f"{int(allowance):,} credits a day" if allowance is not None else "the default"
    audit.record(session, actor, "credits.allowance", target_kind="user", target_id=user.id, target_user_id=user.id,
                 detail=f"daily allowance: {shown}")
    return user


def _whole(value: int | float | None) -> bool:
    return value is not None and math.isfinite(value) and value == int(value)


def _account(session: Session, email: str) -> User:
    user = users.by_email(session, (email or "").strip()[:320])
    if user is None:
        raise BillingAdminError("No account has that e-mail address.")
    return user


def admin_resume_purchases(session: Session, actor: User, email: str) -> User:
    """Lift the purchase freeze a payment dispute put on the account with ``email`` (the dispute is settled)."""
    if not (actor.is_admin and actor.is_active):
        raise BillingAdminError("Only an administrator can resume purchases.")
    user = _account(session, email)
    account = session.get(CreditAccount, user.id)
    if account is None or account.purchases_frozen_at is None:
        raise BillingAdminError("Purchases are not paused for that account.")
    account.purchases_frozen_at = None
    account.updated_at = now()
    session.add(account)
    audit.record(session, actor, "purchases.resume", target_kind="user", target_id=user.id, target_user_id=user.id)
    log.info("purchases resumed for account %s by administrator %s", user.id, actor.id)
    return user
