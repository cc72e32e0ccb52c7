"""Credits: each account's balance, and the append-only ledger of every change to it.

The ledger is two tables because erasure and retention treat its entries two ways. Usage entries (bonus, daily
allowance, grants, reserve/settle/release, adjustments) are the account's own history and go with it. Purchases,
refunds and chargebacks are transaction records that tax law keeps for years: on erasure they stay, cut from the
person. A table carries one inventory declaration, so each rule gets its table; the columns are the same, and the
balance is the sum of both. Idempotency keys carry a prefix per purpose (``reserve:``, ``end:``, ``bonus:``,
``purchase:``, …) and no prefix is used in both tables, so a key unique in its table is unique in the ledger.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar

from sqlalchemy import Column, Date, ForeignKey, Index, String, Uuid
from sqlmodel import Field, SQLModel

from rupali.clock import now
from rupali.models.types import UTCDateTime, fk_column, new_id
from rupali.policy import RetentionKey
from rupali.privacy.inventory import Erasure, PersonalData


class EntryKind(StrEnum):
    BONUS = "bonus"  # the sign-up bonus, once per account
    DAILY = "daily"  # the daily allowance's top-up
    GRANT = "grant"  # an administrator's grant (positive) or revocation (negative)
    PURCHASE = "purchase"  # a paid credit pack
    RESERVE = "reserve"  # the estimate held when a generation is queued
    SETTLE = "settle"  # a generation ended with images: what was not delivered comes back
    RELEASE = "release"  # a generation ended without images (failed, blocked, cancelled): all of it comes back
    REFUND = "refund"  # a paid pack refunded, in full or in part
    CHARGEBACK = "chargeback"  # a payment disputed and reversed
    ADJUSTMENT = "adjustment"  # a correction by the operator


PAYMENT_KINDS = frozenset({EntryKind.PURCHASE, EntryKind.REFUND, EntryKind.CHARGEBACK})


class CreditAccount(SQLModel, table=True):
    """One account's balance and the state of its free credits. Created on the ledger's first touch."""

    __tablename__ = "credit_account"
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Your credit balance, daily allowance, balance-alert state and the VAT number you gave",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.ACCOUNT)

    user_id: uuid.UUID = Field(sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), primary_key=True))
    balance: int = 0  # always the sum of the account's ledger entries
    daily_allowance: int | None = None  # an administrator's choice for this account; None = the setting
    daily_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))  # last UTC day topped up
    bonus_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    low_balance_alerted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    purchases_frozen_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    vat_number: str | None = Field(default=None, max_length=32)  # optional EU VAT number, normalised; for receipts
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class _EntryColumns(SQLModel):
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: EntryKind = Field(sa_type=String(16))
    delta: int  # credits added (positive) or taken (negative)
    balance_after: int
    reference: str = Field(default="", max_length=300)  # what it was for: generation, order id, an admin's reason
    idempotency_key: str = Field(max_length=120, unique=True)  # "<purpose>:<what>": posting it again changes nothing
    # sa_type, not sa_column: a Column object would be shared by both tables.
    created_at: datetime = Field(default_factory=now, sa_type=UTCDateTime, nullable=False)


class CreditEntry(_EntryColumns, table=True):
    """A usage entry: free credits, grants, and what generations held and spent. Follows the account."""

    __tablename__ = "credit_entry"
    __table_args__ = (Index("ix_credit_entry_user_created", "user_id", "created_at"),)
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Your credit history: sign-up bonus, daily allowance, grants with their reason, and the credits each "
              "generation held and spent",
        export=True, erasure=Erasure.DELETE, retention=RetentionKey.ACCOUNT)

    user_id: uuid.UUID = Field(sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="CASCADE"), nullable=False))
    # No foreign key: the entry outlives the generation (deleting a generation must not rewrite the ledger).
    generation_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True, index=True))
    # The administrator behind a grant; unlinked when their own account goes.
    actor_id: uuid.UUID | None = Field(default=None,
                                       sa_column=fk_column("user.id", nullable=True, on_delete="SET NULL"))


class CreditPurchaseEntry(_EntryColumns, table=True):
    """A purchase, refund or chargeback: a transaction record, kept for the legal period without the person."""

    __tablename__ = "credit_purchase_entry"
    __table_args__ = (Index("ix_credit_purchase_entry_user_created", "user_id", "created_at"),)
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id", holds="Credits you bought, and refunds or chargebacks of those purchases",
        export=True, erasure=Erasure.ANONYMIZE, retention=RetentionKey.TRANSACTIONS, retained_from="created_at",
        anonymize={"user_id": None})

    user_id: uuid.UUID | None = Field(default=None,
                                      sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="SET NULL"),
                                                       nullable=True))


class OrderStatus(StrEnum):
    PENDING = "pending"  # checkout created at Creem; nothing paid yet
    PAID = "paid"  # checkout.completed matched the order: the pack's credits were granted
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"  # a chargeback was opened; purchases for the account are frozen
    FLAGGED = "flagged"  # paid, but product, amount or currency did not match: no credits, an administrator looks
    FAILED = "failed"  # the checkout could not be created


class CreditOrder(SQLModel, table=True):
    """A credit pack bought (or being bought) through Creem. Its id is the checkout's ``request_id``.

    A transaction record: kept for the legal period; on erasure the person's link and e-mail are cut, while country
    and VAT number stay because the tax record needs them.
    """

    __tablename__ = "credit_order"
    __table_args__ = (Index("ix_credit_order_user_created", "user_id", "created_at"),)
    __personal_data__: ClassVar[PersonalData] = PersonalData(
        subject_column="user_id",
        holds="Your credit orders: pack, price, currency, dates, status, country and VAT number, Creem's order and "
              "customer ids, and the e-mail address the receipt went to",
        export=True, erasure=Erasure.ANONYMIZE, retention=RetentionKey.TRANSACTIONS, retained_from="created_at",
        anonymize={"user_id": None, "customer_email": None})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID | None = Field(default=None,
                                      sa_column=Column(Uuid(), ForeignKey("user.id", ondelete="SET NULL"),
                                                       nullable=True))
    pack_key: str = Field(max_length=64)
    product_id: str = Field(max_length=120)
    label: str = Field(default="", max_length=120)
    credits: int
    amount: int  # the pack's price in minor units (cents), as configured when the order was made
    currency: str = Field(max_length=3)
    status: OrderStatus = Field(default=OrderStatus.PENDING, sa_type=String(24))
    checkout_id: str | None = Field(default=None, max_length=120, index=True)
    checkout_url: str | None = Field(default=None, max_length=2000)
    creem_order_id: str | None = Field(default=None, max_length=120, index=True)
    creem_customer_id: str | None = Field(default=None, max_length=120)
    customer_email: str | None = Field(default=None, max_length=320)
    country: str | None = Field(default=None, max_length=2)
    vat_number: str | None = Field(default=None, max_length=32)
    paid_amount: int | None = None  # what Creem reported as paid, minor units
    refunded_amount: int = 0  # minor units refunded so far
    credits_reversed: int = 0  # credits taken back by refunds and chargebacks so far
    flag_reason: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    paid_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    updated_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class CreditRefund(SQLModel, table=True):
    """A refund reported by Creem, kept until its order is known (a refund may arrive before its checkout).

    Holds no personal data of its own: amounts and Creem's ids, linked to a person only through the order.
    """

    __tablename__ = "credit_refund"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    refund_id: str = Field(max_length=120, unique=True)  # Creem's refund id: one refund is applied once
    order_id: uuid.UUID | None = Field(default=None, sa_column=Column(
        Uuid(), ForeignKey("credit_order.id", ondelete="CASCADE"), nullable=True, index=True))  # goes with its order
    creem_order_id: str | None = Field(default=None, max_length=120, index=True)
    creem_checkout_id: str | None = Field(default=None, max_length=120, index=True)
    request_id: str | None = Field(default=None, max_length=120)
    amount: int  # minor units
    currency: str = Field(max_length=3)
    reason: str = Field(default="", max_length=500)
    credits_reversed: int = 0
    applied_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class CreemEvent(SQLModel, table=True):
    """A Creem event id whose effect has been applied: inserted in the same transaction as the effect, so a retried
    or duplicated delivery finds it and changes nothing. No personal data."""

    __tablename__ = "creem_event"

    event_id: str = Field(primary_key=True, max_length=120)
    event_type: str = Field(max_length=64)
    processed_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))


class DeliveryOutcome(StrEnum):
    APPLIED = "applied"  # the event changed something (credits granted, refund applied, account frozen)
    DUPLICATE = "duplicate"  # the event, or its order's effect, was already applied
    DEFERRED = "deferred"  # kept for later: a refund whose checkout has not arrived yet
    FLAGGED = "flagged"  # genuine but wrong (product, amount or currency mismatch): an administrator looks
    IGNORED = "ignored"  # genuine, but an event type Rupali does not act on
    REJECTED = "rejected"  # signature missing or wrong: answered 401
    INVALID = "invalid"  # signed correctly but not a well-formed event


class WebhookDelivery(SQLModel, table=True):
    """Every delivery to ``/webhooks/creem`` with its outcome, so an administrator can see what happened.

    Stores no body (bodies carry e-mail addresses): the event id and type, Rupali's order, and one line of detail.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_received", "received_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    received_at: datetime = Field(default_factory=now, sa_column=Column(UTCDateTime(), nullable=False))
    event_id: str | None = Field(default=None, max_length=120, index=True)
    event_type: str = Field(default="", max_length=64)
    signature_valid: bool = False
    outcome: DeliveryOutcome = Field(sa_type=String(16))
    detail: str = Field(default="", max_length=500)
    order_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid(), nullable=True, index=True))
