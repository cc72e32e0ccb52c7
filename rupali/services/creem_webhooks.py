"""Creem's webhooks: verified, recorded, and applied exactly once, whatever order they arrive in.

**Trust.** ``creem-signature`` must be the hex HMAC-SHA256 of the raw body under the webhook secret, compared in
constant time. A missing or wrong signature changes nothing (401); only the delivery is recorded. The success
redirect is never trusted (its signature algorithm is documented two ways): credits come only from here.

**Every delivery is recorded** (:class:`WebhookDelivery`): outcome and one line of detail, never the body (bodies
carry e-mail addresses).

**Exactly once.** Creem retries failed deliveries (30 s, 1 m, 5 m, 1 h), so events repeat and arrive out of order.
Two guards, both in the transaction that applies the effect:

- per event: the first statement inserts the event id into ``creem_event`` (its primary key), ``ON CONFLICT DO
  NOTHING``. A concurrent duplicate waits on that key (PostgreSQL) or on the write lock (SQLite) and then finds it
  taken: DUPLICATE, never a 500. Anything that fails later rolls the claim back with the effect, so a retry
  can still succeed.
- per order: the order's row is locked and its status moves only forward (pending → paid → partially refunded →
  refunded; disputed), credits are posted under ``purchase:<order>``, ``refund:<refund>`` and
  ``chargeback:<dispute>`` keys, and a refund id is unique in ``credit_refund``. So a second event about the same
  payment (Creem sends a new event id for a re-sent webhook now and then) changes nothing either.

**Events.**

- ``checkout.completed``: the order is found by ``request_id`` (our order id; ``metadata.order_id`` too). Credits
  are granted only when product, amount and currency equal the order's snapshot of the pack; otherwise the order is
  FLAGGED with the reason, no credits, and every administrator is told. Refunds that arrived first are applied now.
- ``refund.created``: stored once per refund id. Refunds are cumulative per order: the credits taken back in total
  are ``credits * refunded / paid``, rounded half up and capped at the pack's credits, and each refund posts the
  difference to what was taken back before. So a full refund takes back exactly the pack, and partial refunds in
  any order never take back more. A refund for an order not yet paid is DEFERRED until its checkout arrives. The
  balance may go below zero (credits already spent); the ledger refuses new generations until it is back.
- ``dispute.created`` (a chargeback): the order becomes DISPUTED, buying is frozen for the account, and the credits
  of the pack not yet taken back by refunds are taken back (``CHARGEBACK``): the money went back to the person, so
  the credits do too. The person and every administrator are told. Lifting the freeze is an administrator's call.
- anything else: recorded as IGNORED and answered 200, so Creem stops retrying.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from rupali import billing_mails
from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import (
    CreditAccount,
    CreditOrder,
    CreditPurchaseEntry,
    CreditRefund,
    CreemEvent,
    DeliveryOutcome,
    EntryKind,
    OrderStatus,
    User,
    WebhookDelivery,
)
from rupali.services import ledger, mail, orders

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "creem-signature"
ID_MAX = 100  # Creem's ids; leaves room for the ledger key's prefix in 120 characters
STATUS_CODES = {DeliveryOutcome.REJECTED: 401, DeliveryOutcome.INVALID: 400}  # everything else is 200
_EVENT: Table = CreemEvent.__table__  # type: ignore[attr-defined]
_PAID_STATES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})
_PAYABLE_STATES = frozenset({OrderStatus.PENDING, OrderStatus.FAILED})  # FAILED: a checkout that timed out here
# may still have been created at Creem and paid


class _Invalid(ValueError):
    """A correctly signed body that is not a well-formed event; the message is the delivery's detail."""


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    object: dict[str, Any]


@dataclass(frozen=True)
class _Result:
    outcome: DeliveryOutcome
    detail: str
    order_id: uuid.UUID | None = None


# --- the delivery --------------------------------------------------------------------------------------------------

def sign(secret: str, raw_body: bytes) -> str:
    """The ``creem-signature`` Creem sends with ``raw_body``."""
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def signature_valid(settings: Settings, raw_body: bytes, signature: str | None) -> bool:
    if settings.creem_webhook_secret is None or not signature:
        return False
    expected = sign(settings.creem_webhook_secret.get_secret_value(), raw_body).encode()
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))


def handle(settings: Settings, raw_body: bytes, signature: str | None) -> tuple[int, DeliveryOutcome]:
    """Verify, record and apply one delivery to ``/webhooks/creem``: (HTTP status, outcome)."""
    if not signature_valid(settings, raw_body, signature):
        detail = "no creem-signature header" if not signature else "creem-signature does not match the body"
        log.warning("Creem webhook refused: %s", detail)
        _record(settings, None, _Result(DeliveryOutcome.REJECTED, detail), signature_valid=False)
        return 401, DeliveryOutcome.REJECTED
    try:
        event = parse(raw_body)
    except _Invalid as exc:
        _record(settings, None, _Result(DeliveryOutcome.INVALID, str(exc)))
        return 400, DeliveryOutcome.INVALID
    apply = _HANDLERS.get(event.type)
    if apply is None:
        log.info("Creem webhook %s of type %s ignored", event.id, event.type)
        result = _Result(DeliveryOutcome.IGNORED, f"Rupali does not act on {event.type}")
        _record(settings, event, result)
        return 200, result.outcome
    try:
        with session_scope(settings) as session:
            if _claim(session, event):
                result = apply(session, settings, event)
            else:
                result = _Result(DeliveryOutcome.DUPLICATE, "this event was already processed")
            session.add(_delivery(event, result))
    except _Invalid as exc:  # raised before anything was written for good: the claim is rolled back with it
        result = _Result(DeliveryOutcome.INVALID, str(exc))
        _record(settings, event, result)
    except IntegrityError:
        # A concurrent delivery of the same event or refund committed first: its unique key refused this one.
        result = _Result(DeliveryOutcome.DUPLICATE, "a concurrent delivery of this event was applied first")
        _record(settings, event, result)
    if result.outcome not in (DeliveryOutcome.APPLIED, DeliveryOutcome.DUPLICATE, DeliveryOutcome.IGNORED):
        log.info("Creem webhook %s (%s): %s, %s", event.id, event.type, result.outcome, result.detail)
    return STATUS_CODES.get(result.outcome, 200), result.outcome


def parse(raw_body: bytes) -> Event:
    """The envelope ``{id, eventType, created_at, object}``; :class:`_Invalid` naming what is wrong."""
    try:
        body = json.loads(raw_body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _Invalid("the body is not a JSON object")
    event_id, event_type, obj = body.get("id"), body.get("eventType"), body.get("object")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= ID_MAX:
        raise _Invalid("the event has no usable id")
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= 64:
        raise _Invalid(f"event {event_id} has no usable eventType")
    if not isinstance(obj, dict):
        raise _Invalid(f"event {event_id} has no object")
    return Event(event_id, event_type, obj)


def _claim(session: Session, event: Event) -> bool:
    """Insert the event id (the transaction's first write); False when it is already there."""
    maker = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = maker(_EVENT).values(event_id=event.id, event_type=event.type, processed_at=now())
    return session.execute(statement.on_conflict_do_nothing(index_elements=["event_id"])  # type: ignore[attr-defined]
                           .returning(_EVENT.c.event_id)).first() is not None


def _delivery(event: Event | None, result: _Result, *, signature_valid: bool = True) -> WebhookDelivery:
    return WebhookDelivery(event_id=event.id if event else None, event_type=event.type if event else "",
                           signature_valid=signature_valid, outcome=result.outcome, detail=result.detail[:500],
                           order_id=result.order_id)


def _record(settings: Settings, event: Event | None, result: _Result, *, signature_valid: bool = True) -> None:
    with session_scope(settings) as session:
        session.add(_delivery(event, result, signature_valid=signature_valid))


# --- reading Creem's objects (an id or the object itself, in several places) ----------------------------------------

def _text(value: Any, *, limit: int = ID_MAX) -> str | None:
    return value if isinstance(value, str) and 1 <= len(value) <= limit else None


def _id_of(value: Any) -> str | None:
    """An expanded object's ``id``, or the id itself."""
    return _text(value.get("id")) if isinstance(value, dict) else _text(value)


def _amount(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _References:
    """Everything in an object that can name the order: ours (request id) and Creem's (checkout, order)."""

    request_id: str | None
    checkout_id: str | None
    creem_order_id: str | None

    def __bool__(self) -> bool:
        return bool(self.request_id or self.checkout_id or self.creem_order_id)


def _references(obj: dict[str, Any]) -> _References:
    checkout, order, metadata = obj.get("checkout"), obj.get("order"), obj.get("metadata")
    request_id = _text(obj.get("request_id"))
    if request_id is None and isinstance(checkout, dict):
        request_id = _text(checkout.get("request_id"))
        if request_id is None and isinstance(checkout.get("metadata"), dict):
            request_id = _text(checkout["metadata"].get("order_id"))
    if request_id is None and isinstance(metadata, dict):
        request_id = _text(metadata.get("order_id"))
    return _References(request_id, _id_of(checkout), _id_of(order))


def _locked_order(session: Session, refs: _References) -> CreditOrder | None:
    """The order the references name, its row locked for this transaction (PostgreSQL; SQLite has one writer)."""
    conditions = []
    if (order_id := _as_uuid(refs.request_id)) is not None:
        conditions.append(col(CreditOrder.id) == order_id)
    if refs.checkout_id:
        conditions.append(col(CreditOrder.checkout_id) == refs.checkout_id)
    if refs.creem_order_id:
        conditions.append(col(CreditOrder.creem_order_id) == refs.creem_order_id)
    if not conditions:
        return None
    # Our own id first: it is the one that cannot name someone else's order.
    for condition in conditions:
        found = session.exec(select(CreditOrder).where(condition).with_for_update()
                             .execution_options(populate_existing=True)).first()
        if found is not None:
            return found
    return None


def _credited(session: Session, order: CreditOrder) -> bool:
    """Whether the pack's credits were granted (a flagged order's never were)."""
    return session.exec(select(CreditPurchaseEntry.id).where(
        CreditPurchaseEntry.idempotency_key == f"purchase:{order.id}")).first() is not None


# --- checkout.completed --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Payment:
    checkout_id: str | None
    creem_order_id: str | None
    product_id: str | None
    amount: int
    paid: int
    currency: str
    customer_id: str | None
    country: str | None


def _payment(obj: dict[str, Any], event: Event) -> _Payment:
    order = obj.get("order")
    if not isinstance(order, dict):
        raise _Invalid(f"checkout.completed {event.id} carries no order object with the amount paid")
    amount, currency = _amount(order.get("amount")), _text(order.get("currency"), limit=3)
    if amount is None or currency is None:
        raise _Invalid(f"checkout.completed {event.id}: the order has no amount or currency")
    paid = _amount(order.get("amount_paid"))
    customer = obj.get("customer")
    country = customer.get("country") if isinstance(customer, dict) else None
    return _Payment(
        checkout_id=_text(obj.get("id")), creem_order_id=_text(order.get("id")),
        product_id=_id_of(order.get("product")) or _id_of(obj.get("product")), amount=amount,
        paid=amount if paid is None else paid, currency=currency.upper(),
        customer_id=_id_of(customer) or _id_of(order.get("customer")),
        country=country.upper() if isinstance(country, str) and len(country) == 2 and country.isalpha() else None)


def _mismatch(order: CreditOrder, payment: _Payment) -> str:
    problems = []
    if payment.product_id != order.product_id:
        problems.append(f"product {payment.product_id or 'missing'} instead of {order.product_id}")
    if payment.amount != order.amount:
        problems.append(f"amount {payment.amount} instead of {order.amount}")
    if payment.currency != order.currency.upper():
        problems.append(f"currency {payment.currency} instead of {order.currency}")
    return "; ".join(problems)


def _checkout_completed(session: Session, settings: Settings, event: Event) -> _Result:
    obj = event.object
    refs = _references(obj)
    if refs.request_id is None:
        return _Result(DeliveryOutcome.IGNORED, "a checkout without request_id: not one of Rupali's orders")
    if _as_uuid(refs.request_id) is None:
        return _Result(DeliveryOutcome.IGNORED, f"request_id {refs.request_id} is not one of Rupali's orders")
    payment = _payment(obj, event)
    order = _locked_order(session, _References(refs.request_id, None, None))
    if order is None:
        detail = f"checkout {payment.checkout_id} was paid for order {refs.request_id}, which does not exist"
        orders.alert_admins(session, settings, "a payment for an unknown order",
                            [f"Creem reported a paid checkout ({payment.checkout_id}, Creem order "
                             f"{payment.creem_order_id}) for order {refs.request_id}, which Rupali does not know.",
                             "No credits were granted. Check the payment in Creem's dashboard."])
        return _Result(DeliveryOutcome.FLAGGED, detail)
    if order.status not in _PAYABLE_STATES and order.paid_at is not None:
        return _Result(DeliveryOutcome.DUPLICATE, f"order already {order.status}", order.id)
    moment = now()
    order.checkout_id = order.checkout_id or payment.checkout_id
    order.creem_order_id, order.creem_customer_id = payment.creem_order_id, payment.customer_id
    order.country = payment.country or order.country
    order.paid_amount, order.paid_at, order.updated_at = payment.paid, moment, moment
    if order.status == OrderStatus.DISPUTED:  # the dispute arrived first: its money is going back, so no credits
        session.add(order)
        _apply_deferred_refunds(session, settings, order, payment)
        return _Result(DeliveryOutcome.APPLIED, "paid after its dispute was opened: no credits granted", order.id)
    problem = _mismatch(order, payment) or ("the account no longer exists" if order.user_id is None else "")
    if problem:
        order.status, order.flag_reason = OrderStatus.FLAGGED, problem[:500]
        session.add(order)
        orders.alert_admins(session, settings, f"order {order.id} flagged",
                            [f"A paid checkout for the {order.label} pack did not match the order: {problem}.",
                             f"Order {order.id}, Creem order {payment.creem_order_id}, paid {payment.paid} "
                             f"{payment.currency}. No credits were granted."])
        return _Result(DeliveryOutcome.FLAGGED, problem, order.id)
    assert order.user_id is not None
    ledger.post_payment(session, settings, order.user_id, EntryKind.PURCHASE, order.credits,
                        reference=f"{order.label} pack, order {order.id}", key=f"purchase:{order.id}")
    order.status = OrderStatus.PAID
    session.add(order)
    user = session.get(User, order.user_id)
    if user is not None:
        mail.enqueue(session, to=user.email, user_id=user.id, mail=billing_mails.order_confirmation(
            user.full_name, order.label, order.credits, billing_mails.money(payment.paid, payment.currency),
            str(order.id), orders.receipt_url(settings, order.id), orders.billing_url(settings)))
    applied = _apply_deferred_refunds(session, settings, order, payment)
    detail = f"granted {order.credits} credits" + (f", then applied {applied} earlier refund(s)" if applied else "")
    return _Result(DeliveryOutcome.APPLIED, detail, order.id)


def _apply_deferred_refunds(session: Session, settings: Settings, order: CreditOrder, payment: _Payment) -> int:
    """Apply the refunds that arrived before this order's checkout; how many."""
    names = [col(CreditRefund.order_id) == order.id, col(CreditRefund.request_id) == str(order.id)]
    if order.checkout_id:
        names.append(col(CreditRefund.creem_checkout_id) == order.checkout_id)
    if payment.creem_order_id:
        names.append(col(CreditRefund.creem_order_id) == payment.creem_order_id)
    waiting = session.exec(select(CreditRefund).where(col(CreditRefund.applied_at).is_(None), or_(*names))
                           .order_by(col(CreditRefund.created_at), col(CreditRefund.refund_id))).all()
    for refund in waiting:
        refund.order_id = order.id
        _apply_refund(session, settings, order, refund)
    return len(waiting)


# --- refund.created ------------------------------------------------------------------------------------------------

def _refund_created(session: Session, settings: Settings, event: Event) -> _Result:
    obj = event.object
    refund_id, amount = _text(obj.get("id")), _amount(obj.get("refund_amount"))
    currency = _text(obj.get("refund_currency"), limit=3)
    if refund_id is None or amount is None or currency is None:
        raise _Invalid(f"refund.created {event.id} lacks id, refund_amount or refund_currency")
    refs = _references(obj)
    if not refs:
        raise _Invalid(f"refund {refund_id} names no order or checkout")
    order = _locked_order(session, refs)
    if session.exec(select(CreditRefund.id).where(CreditRefund.refund_id == refund_id)).first() is not None:
        return _Result(DeliveryOutcome.DUPLICATE, f"refund {refund_id} was already recorded",
                       order.id if order else None)
    reason = obj.get("reason")
    refund = CreditRefund(refund_id=refund_id, order_id=order.id if order else None,
                          creem_order_id=refs.creem_order_id, creem_checkout_id=refs.checkout_id,
                          request_id=refs.request_id, amount=amount, currency=currency.upper(),
                          reason=reason[:500] if isinstance(reason, str) else "")
    session.add(refund)
    session.flush()  # the refund id is unique: a concurrent twin of this refund stops here
    if order is None or order.paid_at is None:
        return _Result(DeliveryOutcome.DEFERRED, f"refund {refund_id} kept until its checkout arrives",
                       order.id if order else None)
    return _apply_refund(session, settings, order, refund)


def reversed_credits(credits: int, refunded: int, paid: int) -> int:
    """Credits taken back in total once ``refunded`` of ``paid`` went back: proportional, rounded half up, capped.

    Cumulative on purpose: each refund posts the difference to the total before it, so partial refunds in any order
    add up to exactly what one refund of their sum would take, and a full refund takes exactly ``credits``.
    """
    if paid <= 0 or refunded >= paid:
        return credits
    return min(credits, (2 * credits * refunded + paid) // (2 * paid))


def _apply_refund(session: Session, settings: Settings, order: CreditOrder, refund: CreditRefund) -> _Result:
    moment = now()
    refund.applied_at = moment
    if refund.currency != order.currency.upper():
        session.add(refund)
        problem = f"refund {refund.refund_id} is in {refund.currency}, the order in {order.currency}"
        orders.alert_admins(session, settings, f"refund for order {order.id} not applied",
                            [f"{problem}. No credits were taken back; check the refund in Creem's dashboard."])
        return _Result(DeliveryOutcome.FLAGGED, problem, order.id)
    order.refunded_amount += refund.amount
    basis = order.paid_amount if order.paid_amount else order.amount
    taken = 0
    if order.user_id is not None and _credited(session, order):
        target = reversed_credits(order.credits, order.refunded_amount, basis)
        taken = max(0, target - order.credits_reversed)
        if taken:
            ledger.post_payment(session, settings, order.user_id, EntryKind.REFUND, -taken,
                                reference=f"Refund of the {order.label} pack, order {order.id}",
                                key=f"refund:{refund.refund_id}")
            order.credits_reversed += taken
    refund.credits_reversed = taken
    full = order.refunded_amount >= basis
    if order.status in _PAID_STATES:
        order.status = OrderStatus.REFUNDED if full else OrderStatus.PARTIALLY_REFUNDED
    order.updated_at = moment
    session.add(order)
    session.add(refund)
    user = session.get(User, order.user_id) if order.user_id is not None else None
    if user is not None:
        balance = ledger.balance(session, settings, user.id)
        mail.enqueue(session, to=user.email, user_id=user.id, mail=billing_mails.refund_notice(
            user.full_name, order.label, billing_mails.money(refund.amount, refund.currency), taken, balance,
            orders.billing_url(settings), full=full))
    return _Result(DeliveryOutcome.APPLIED, f"refund {refund.refund_id} of {refund.amount} {refund.currency}: "
                   f"{taken} credits taken back", order.id)


# --- dispute.created -----------------------------------------------------------------------------------------------

def _dispute_created(session: Session, settings: Settings, event: Event) -> _Result:
    obj = event.object
    dispute_id = _text(obj.get("id"))
    if dispute_id is None:
        raise _Invalid(f"dispute.created {event.id} has no dispute id")
    refs = _references(obj)
    if not refs:
        raise _Invalid(f"dispute {dispute_id} names no order or checkout")
    order = _locked_order(session, refs)
    if order is None:
        orders.alert_admins(session, settings, "a dispute for an unknown order",
                            [f"Creem reported dispute {dispute_id} (checkout {refs.checkout_id}, Creem order "
                             f"{refs.creem_order_id}), which matches no Rupali order. Check it in Creem's dashboard."])
        return _Result(DeliveryOutcome.FLAGGED, f"dispute {dispute_id} matches no order")
    if order.status == OrderStatus.DISPUTED:
        return _Result(DeliveryOutcome.DUPLICATE, "the order is already disputed", order.id)
    moment = now()
    taken = 0
    user = session.get(User, order.user_id) if order.user_id is not None else None
    if order.user_id is not None:
        ledger.open_account(session, settings, order.user_id)
        session.execute(update(CreditAccount).where(col(CreditAccount.user_id) == order.user_id,
                                                    col(CreditAccount.purchases_frozen_at).is_(None))
                        .values(purchases_frozen_at=moment))
        remaining = order.credits - order.credits_reversed
        if remaining > 0 and _credited(session, order):
            ledger.post_payment(session, settings, order.user_id, EntryKind.CHARGEBACK, -remaining,
                                reference=f"Chargeback of the {order.label} pack, order {order.id}",
                                key=f"chargeback:{dispute_id}")
            order.credits_reversed += remaining
            taken = remaining
    previous = order.status
    order.status, order.updated_at = OrderStatus.DISPUTED, moment
    session.add(order)
    if user is not None:
        mail.enqueue(session, to=user.email, user_id=user.id, mail=billing_mails.dispute_notice(
            user.full_name, order.label, taken, settings.operator_email))
    who = user.email if user is not None else "an erased account"
    orders.alert_admins(session, settings, f"payment disputed for order {order.id}",
                        [f"Dispute {dispute_id} was opened for the {order.label} pack bought by {who} (order "
                         f"{order.id}, was {previous}).",
                         f"{taken} credits were taken back and buying credits is frozen for the account."])
    return _Result(DeliveryOutcome.APPLIED, f"dispute {dispute_id}: {taken} credits taken back, purchases frozen",
                   order.id)


_HANDLERS = {
    "checkout.completed": _checkout_completed,
    "refund.created": _refund_created,
    "dispute.created": _dispute_created,
}
