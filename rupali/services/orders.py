"""Buying a credit pack through Creem, and the billing notices that go out by mail.

**Buying.** :func:`buy` records a pending :class:`CreditOrder` (a snapshot of the pack: product, credits, price,
currency) and commits it, then asks Creem for a checkout with ``request_id`` = the order's id, then stores the
checkout's id and address. No database transaction is open during the HTTP call: Creem may take seconds, and a
held write lock would stall every other writer meanwhile (SQLite has one). Credits are never granted here or from
the success redirect; only the signed ``checkout.completed`` webhook grants them (:mod:`creem_webhooks`).

**Notices.** Billing mail goes through the outbox in the caller's transaction, so a notice exists exactly when the
change it tells about was committed.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import update
from sqlmodel import Session, col, select

from rupali import billing_mails
from rupali.clock import now
from rupali.config import CreditPack, Settings, get_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, CreditOrder, OrderStatus, Role, User
from rupali.providers.creem import CreemClient, CreemError
from rupali.services import ledger, mail

log = logging.getLogger(__name__)


class CheckoutError(Exception):
    """A purchase that cannot start; ``message`` says why in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def pack(settings: Settings, pack_key: str) -> CreditPack | None:
    return next((candidate for candidate in settings.packs if candidate.key == pack_key), None)


def buy(settings: Settings, creem: CreemClient | None, user_id: uuid.UUID, pack_key: str) -> str:
    """Start buying ``pack_key`` for the person: the Creem checkout address to send their browser to."""
    if settings.billing != "creem" or creem is None:
        raise CheckoutError("Credit packs are not sold on this installation.")
    chosen = pack(settings, pack_key)
    if chosen is None:
        raise CheckoutError("That credit pack is not offered any more. Choose one of the packs shown.")
    with session_scope(settings) as session:
        user = session.get(User, user_id)
        if user is None or not user.is_active or user.deletion_requested_at is not None:
            raise CheckoutError("This account cannot buy credits.")
        account = session.get(CreditAccount, user_id)
        if account is not None and account.purchases_frozen_at is not None:
            raise CheckoutError("Buying credits is paused on your account while a payment dispute is open. "
                                f"Write to {settings.operator_email} to sort it out.")
        order = CreditOrder(user_id=user_id, pack_key=chosen.key, product_id=chosen.product_id, label=chosen.label,
                            credits=chosen.credits, amount=chosen.price_cents, currency=chosen.currency,
                            customer_email=user.email, vat_number=account.vat_number if account else None)
        session.add(order)
    try:
        checkout = creem.create_checkout(
            product_id=order.product_id, request_id=str(order.id), email=user.email,
            success_url=f"{settings.public_url}/billing/success?order={order.id}",
            metadata={"order_id": str(order.id), "user_id": str(user_id)})
    except CreemError as exc:
        log.warning("checkout for order %s failed: %s", order.id, exc.detail)
        with session_scope(settings) as session:
            session.execute(update(CreditOrder).where(col(CreditOrder.id) == order.id,
                                                      col(CreditOrder.status) == OrderStatus.PENDING.value)
                            .values(status=OrderStatus.FAILED.value, flag_reason=exc.detail[:500],
                                    updated_at=now()))
        raise CheckoutError(exc.message) from None
    with session_scope(settings) as session:
        # Only the checkout's fields: a webhook may already have moved the order on (the person was quick).
        session.execute(update(CreditOrder).where(col(CreditOrder.id) == order.id)
                        .values(checkout_id=checkout.id, checkout_url=checkout.checkout_url, updated_at=now()))
    return checkout.checkout_url


# --- notices -------------------------------------------------------------------------------------------------------

def receipt_url(settings: Settings, order_id: uuid.UUID) -> str:
    return f"{settings.public_url}/billing/receipts/{order_id}.pdf"


def billing_url(settings: Settings) -> str:
    return f"{settings.public_url}/billing"


def alert_admins(session: Session, settings: Settings, subject: str, lines: list[str]) -> int:
    """Queue a billing alert to every active administrator; how many were queued."""
    admins = session.exec(select(User).where(col(User.role) == Role.ADMIN.value, col(User.is_active).is_(True))).all()
    for admin in admins:
        mail.enqueue(session, to=admin.email, user_id=admin.id,
                     mail=billing_mails.admin_alert(admin.full_name, subject, lines, f"{settings.public_url}/admin"))
    if not admins:
        log.warning("billing alert with no administrator to tell: %s", subject)
    return len(admins)


def notify_low_balance(session: Session, user_id: uuid.UUID, balance: int) -> None:
    """The ledger's low-balance listener: one alert mail per crossing of the threshold (the ledger decides when)."""
    settings = get_settings()
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return
    mail.enqueue(session, to=user.email, user_id=user.id, mail=billing_mails.balance_alert(
        user.full_name, balance, settings.credits_alert_threshold, billing_url(settings),
        can_buy=settings.creem_enabled))


def install_listeners() -> None:
    """Hook the balance-alert mail into the ledger (idempotent: the ledger keeps a listener once)."""
    ledger.on_low_balance(notify_low_balance)
