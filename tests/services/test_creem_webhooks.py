"""Buying credit packs and Creem's webhooks, on SQLite and PostgreSQL, against the loopback Creem.

Orders are made by the real :func:`orders.buy` through the real HTTP client; events are the ones the loopback
server builds and signs over the exact bytes; deliveries go through :func:`creem_webhooks.handle`, the function
behind ``POST /webhooks/creem``. Every test ends with each person's ledger summing to their balance.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import col, func, select

from rupali.config import Settings, get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import (
    CreditAccount,
    CreditOrder,
    CreditPurchaseEntry,
    CreditRefund,
    CreemEvent,
    DeliveryOutcome,
    EntryKind,
    Generation,
    OrderStatus,
    OutboxMessage,
    Role,
    User,
    WebhookDelivery,
)
from rupali.runtime import Runtime
from rupali.services import creem_webhooks, ledger, orders
from rupali.services.orders import CheckoutError
from tests.utils.creem_server import PRODUCTS, CreemServer, billing_env, envelope
from tests.utils.factories import make_user

BONUS = 10


@pytest.fixture
def creem(monkeypatch: pytest.MonkeyPatch) -> Iterator[CreemServer]:
    """The loopback Creem, and Rupali selling its products (bonus of 10, balance alert below 20)."""
    with CreemServer(products=PRODUCTS) as server:
        for name, value in billing_env(server).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", str(BONUS))
        monkeypatch.setenv("RUPALI_CREDITS_ALERT_THRESHOLD", "20")
        reset_settings()
        yield server


@pytest.fixture
def runtime(creem: CreemServer) -> Runtime:
    """The app's runtime: its Creem client, and the balance-alert listener it registers."""
    built = Runtime.build(get_settings())
    assert built.creem is not None
    return built


@pytest.fixture
def admin() -> User:
    return make_user(role=Role.ADMIN, email="boss@example.com", full_name="Grace Hopper")


def _buy(runtime: Runtime, person: User, pack: str = "starter") -> CreditOrder:
    url = orders.buy(runtime.settings, runtime.creem, person.id, pack)
    with session_scope() as session:
        order = session.exec(select(CreditOrder).where(CreditOrder.checkout_url == url)).one()
    return order


def _deliver(creem: CreemServer, event: dict, settings: Settings | None = None) -> tuple[int, DeliveryOutcome]:
    raw, signature = creem.signed(event)
    return creem_webhooks.handle(settings or get_settings(), raw, signature)


def _order(order_id: uuid.UUID) -> CreditOrder:
    with session_scope() as session:
        return session.get(CreditOrder, order_id)


def _balance(person: User) -> int:
    with session_scope() as session:
        account = session.get(CreditAccount, person.id)
        return account.balance if account is not None else 0


def _exact(*people: User) -> None:
    with session_scope() as session:
        for person in people:
            account = session.get(CreditAccount, person.id)
            assert ledger.ledger_sum(session, person.id) == (account.balance if account else 0)


def _mails(to: str) -> list[OutboxMessage]:
    with session_scope() as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.recipient == to)
                                 .order_by(col(OutboxMessage.created_at))).all())


def _subjects(to: str) -> list[str]:
    return [message.subject for message in _mails(to)]


def _deliveries() -> list[WebhookDelivery]:
    with session_scope() as session:
        return list(session.exec(select(WebhookDelivery)).all())


# --- buying ----------------------------------------------------------------------------------------------------------


def test_buying_records_a_pending_order_and_opens_a_creem_checkout(creem: CreemServer, runtime: Runtime):
    person = make_user(email="ada@example.com")
    with session_scope() as session:
        ledger.open_account(session, runtime.settings, person.id)
        session.get(CreditAccount, person.id).vat_number = "DK13585628"
    url = orders.buy(runtime.settings, runtime.creem, person.id, "big")
    sent = creem.posts[-1]
    assert sent.headers["x-api-key"] == creem.api_key
    with session_scope() as session:
        order = session.exec(select(CreditOrder).where(CreditOrder.user_id == person.id)).one()
    assert sent.body == {"product_id": "prod_big", "request_id": str(order.id), "units": 1,
                         "customer": {"email": "ada@example.com"},
                         "success_url": f"{runtime.settings.public_url}/billing/success?order={order.id}",
                         "metadata": {"order_id": str(order.id), "user_id": str(person.id)}}
    assert order.status == OrderStatus.PENDING
    assert (order.pack_key, order.product_id, order.label, order.credits, order.amount, order.currency) == (
        "big", "prod_big", "Big", 700, 2000, "EUR")
    assert order.customer_email == "ada@example.com" and order.vat_number == "DK13585628"
    assert order.checkout_url == url and url.startswith(creem.url.removesuffix("/v1") + "/checkout/")
    assert order.checkout_id in creem.checkouts and creem.checkouts[order.checkout_id].request_id == str(order.id)


def test_buying_refuses_unknown_packs_other_modes_and_marks_failed_checkouts(creem: CreemServer, runtime: Runtime,
                                                                            monkeypatch: pytest.MonkeyPatch):
    person = make_user()
    with pytest.raises(CheckoutError, match="not offered"):
        orders.buy(runtime.settings, runtime.creem, person.id, "enormous")
    creem.fail_next(503)
    with pytest.raises(CheckoutError, match="having trouble") as failure:
        orders.buy(runtime.settings, runtime.creem, person.id, "starter")
    assert creem.api_key not in failure.value.message
    with session_scope() as session:
        failed = session.exec(select(CreditOrder).where(CreditOrder.user_id == person.id)).one()
    assert failed.status == OrderStatus.FAILED and "503" in failed.flag_reason and failed.checkout_id is None
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    reset_settings()
    with pytest.raises(CheckoutError, match="not sold"):
        orders.buy(get_settings(), None, person.id, "starter")


# --- checkout.completed ----------------------------------------------------------------------------------------------


def test_a_paid_checkout_grants_the_pack_once_and_mails_a_receipt(creem: CreemServer, runtime: Runtime):
    person = make_user(email="ada@example.com", full_name="Ada Lovelace")
    order = _buy(runtime, person)
    event = creem.complete(order.checkout_id)
    assert _deliver(creem, event) == (200, DeliveryOutcome.APPLIED)
    assert _deliver(creem, event) == (200, DeliveryOutcome.DUPLICATE)  # a retry of the same event
    resent = envelope("checkout.completed", event["object"])  # the same payment under a new event id
    assert _deliver(creem, resent) == (200, DeliveryOutcome.DUPLICATE)
    assert _balance(person) == BONUS + 100
    paid = _order(order.id)
    assert paid.status == OrderStatus.PAID and paid.paid_amount == 500 and paid.paid_at is not None
    assert paid.creem_order_id == event["object"]["order"]["id"]
    assert paid.creem_customer_id == event["object"]["customer"]["id"] and paid.country == "DK"
    confirmation = _mails("ada@example.com")
    assert [message.subject for message in confirmation] == ["Your Starter credit pack is ready"]
    assert f"{runtime.settings.public_url}/billing/receipts/{order.id}.pdf" in confirmation[0].text_body
    assert "5.00 EUR" in confirmation[0].text_body and "100 credits" in confirmation[0].text_body
    assert [d.outcome for d in _deliveries()] == [DeliveryOutcome.APPLIED, DeliveryOutcome.DUPLICATE,
                                                  DeliveryOutcome.DUPLICATE]
    _exact(person)


@pytest.mark.parametrize("mismatch", [{"amount": 400}, {"currency": "USD"}, {"product_id": "prod_big"}])
def test_a_payment_that_does_not_match_its_order_is_flagged_and_grants_nothing(
        creem: CreemServer, runtime: Runtime, admin: User, mismatch: dict):
    person = make_user()
    order = _buy(runtime, person)
    assert _deliver(creem, creem.complete(order.checkout_id, **mismatch)) == (200, DeliveryOutcome.FLAGGED)
    flagged = _order(order.id)
    assert flagged.status == OrderStatus.FLAGGED and flagged.flag_reason
    assert str(next(iter(mismatch.values()))) in flagged.flag_reason
    assert _balance(person) == 0  # not even the account was opened: nothing was granted
    assert [m.subject for m in _mails(admin.email)] == [f"Billing: order {order.id} flagged"]
    assert _mails(person.email) == []
    delivery = _deliveries()[0]
    assert delivery.order_id == order.id and delivery.detail == flagged.flag_reason


def test_a_checkout_for_another_shop_is_ignored_and_an_unknown_order_flagged(creem: CreemServer, runtime: Runtime,
                                                                            admin: User):
    person = make_user()
    order = _buy(runtime, person)
    event = creem.complete(order.checkout_id)
    foreign = json.loads(json.dumps(event))
    foreign["id"], foreign["object"]["request_id"], foreign["object"]["metadata"] = "evt_other", "cart-17", {}
    assert _deliver(creem, foreign) == (200, DeliveryOutcome.IGNORED)
    unknown = json.loads(json.dumps(event))
    unknown["id"], unknown["object"]["request_id"] = "evt_unknown", str(uuid.uuid4())
    assert _deliver(creem, unknown) == (200, DeliveryOutcome.FLAGGED)
    assert _subjects(admin.email) == ["Billing: a payment for an unknown order"]
    assert _order(order.id).status == OrderStatus.PENDING


def test_signatures_are_checked_over_the_raw_bytes(creem: CreemServer, runtime: Runtime):
    person = make_user()
    order = _buy(runtime, person)
    event = creem.complete(order.checkout_id)
    settings = get_settings()
    raw, signature = creem.signed(event)
    reserialised = json.dumps(json.loads(raw), indent=1).encode()  # the same JSON, other bytes
    altered = raw.replace(b'"amount":500', b'"amount":5')  # changed after signing
    assert altered != raw
    for body, sent in ((raw, None), (raw, ""), (raw, creem.forged(event)[1]), (reserialised, signature),
                       (altered, signature), (raw, signature[:-1]), (raw, "é" * 64)):
        assert creem_webhooks.handle(settings, body, sent) == (401, DeliveryOutcome.REJECTED)
    assert _order(order.id).status == OrderStatus.PENDING and _balance(person) == 0
    assert creem_webhooks.handle(settings, raw, signature.upper()) == (200, DeliveryOutcome.APPLIED)
    stored = _deliveries()
    assert len(stored) == 8 and sum(not d.signature_valid for d in stored) == 7
    assert all(d.event_id is None and "@" not in d.detail for d in stored if not d.signature_valid)


def test_malformed_bodies_with_a_valid_signature_are_invalid_and_stored(creem: CreemServer, runtime: Runtime):
    settings = get_settings()
    secret = creem.webhook_secret
    bodies = [b"{not json", b"[1, 2]", b'{"eventType": "checkout.completed", "object": {}}',
              b'{"id": "evt_1", "object": {}}', b'{"id": "evt_2", "eventType": "checkout.completed"}',
              json.dumps({"id": "evt_3", "eventType": "checkout.completed",
                          "object": {"id": "ch_1", "request_id": str(uuid.uuid4())}}).encode(),
              json.dumps({"id": "evt_4", "eventType": "refund.created", "object": {"id": "ref_1"}}).encode()]
    for body in bodies:
        assert creem_webhooks.handle(settings, body, creem_webhooks.sign(secret, body)) == (
            400, DeliveryOutcome.INVALID), body
    assert [d.outcome for d in _deliveries()] == [DeliveryOutcome.INVALID] * len(bodies)
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(CreemEvent)).one() == 0  # nothing claimed


def test_unknown_events_are_answered_200_and_ignored(creem: CreemServer, runtime: Runtime):
    event = envelope("subscription.active", {"id": "sub_1", "object": "subscription"})
    assert _deliver(creem, event) == (200, DeliveryOutcome.IGNORED)
    assert _deliver(creem, event) == (200, DeliveryOutcome.IGNORED)
    first, _second = _deliveries()
    assert first.event_type == "subscription.active" and first.event_id == event["id"]
    assert "subscription.active" in first.detail


# --- refunds ---------------------------------------------------------------------------------------------------------


def test_partial_then_full_refunds_take_back_exactly_the_pack(creem: CreemServer, runtime: Runtime):
    person = make_user(email="ada@example.com")
    order = _buy(runtime, person, "big")  # 700 credits for 20.00 EUR
    _deliver(creem, creem.complete(order.checkout_id))
    assert _balance(person) == BONUS + 700
    first = creem.refund_event(order.checkout_id, 333)  # 700 * 333 / 2000 = 116.55 -> 117
    assert _deliver(creem, first) == (200, DeliveryOutcome.APPLIED)
    assert _deliver(creem, first) == (200, DeliveryOutcome.DUPLICATE)
    partly = _order(order.id)
    assert (partly.status, partly.refunded_amount, partly.credits_reversed) == (
        OrderStatus.PARTIALLY_REFUNDED, 333, 117)
    second = creem.refund_event(order.checkout_id, 1, expand=False)  # 334 -> 116.9 -> 117: nothing more yet
    assert _deliver(creem, second) == (200, DeliveryOutcome.APPLIED)
    assert _order(order.id).credits_reversed == 117
    rest = creem.refund_event(order.checkout_id)  # the remaining 16.66 EUR
    again = envelope("refund.created", rest["object"])  # the same refund under another event id
    assert _deliver(creem, rest) == (200, DeliveryOutcome.APPLIED)
    assert _deliver(creem, again) == (200, DeliveryOutcome.DUPLICATE)
    refunded = _order(order.id)
    assert (refunded.status, refunded.refunded_amount, refunded.credits_reversed) == (OrderStatus.REFUNDED, 2000, 700)
    assert _balance(person) == BONUS
    with session_scope() as session:
        entries = session.exec(select(CreditPurchaseEntry.kind, CreditPurchaseEntry.delta)
                               .where(CreditPurchaseEntry.user_id == person.id)
                               .order_by(col(CreditPurchaseEntry.created_at))).all()
        assert session.exec(select(func.count()).select_from(CreditRefund)).one() == 3
    assert [(kind, delta) for kind, delta in entries] == [(EntryKind.PURCHASE, 700), (EntryKind.REFUND, -117),
                                                          (EntryKind.REFUND, -583)]
    assert _subjects("ada@example.com") == ["Your Big credit pack is ready", *["Your credit pack was refunded"] * 2,
                                            "Your credit balance is low", "Your credit pack was refunded"]  # 10 < 20
    _exact(person)


def test_a_refund_after_spending_leaves_a_negative_balance(creem: CreemServer, runtime: Runtime):
    person = make_user()
    order = _buy(runtime, person)
    _deliver(creem, creem.complete(order.checkout_id))
    with session_scope() as session:
        generation = Generation(user_id=person.id, provider="offline", model="sketch-v1", prompt="spent", width=512,
                                height=512, steps=20, guidance=7.0, count=1, seed=1)
        session.add(generation)
        session.flush()
        ledger.reserve(session, runtime.settings, person.id, generation, 105)
    assert _balance(person) == 5
    assert _deliver(creem, creem.refund_event(order.checkout_id)) == (200, DeliveryOutcome.APPLIED)
    assert _balance(person) == -95
    assert "below zero" in _mails(person.email)[-1].text_body
    _exact(person)


def test_a_refund_that_arrives_before_its_checkout_is_applied_when_it_lands(creem: CreemServer, runtime: Runtime):
    person = make_user()
    order = _buy(runtime, person)
    completed = creem.complete(order.checkout_id)
    refund = creem.refund_event(order.checkout_id, 250, expand=False)  # only Creem's ids: checkout and order
    assert _deliver(creem, refund) == (200, DeliveryOutcome.DEFERRED)
    assert _deliver(creem, refund) == (200, DeliveryOutcome.DUPLICATE)
    assert _order(order.id).status == OrderStatus.PENDING and _balance(person) == 0
    assert _deliver(creem, completed) == (200, DeliveryOutcome.APPLIED)
    applied = _order(order.id)
    assert (applied.status, applied.refunded_amount, applied.credits_reversed) == (
        OrderStatus.PARTIALLY_REFUNDED, 250, 50)
    assert _balance(person) == BONUS + 50
    with session_scope() as session:
        stored = session.exec(select(CreditRefund)).one()
    assert stored.order_id == order.id and stored.applied_at is not None and stored.credits_reversed == 50
    details = [d.detail for d in _deliveries() if d.outcome == DeliveryOutcome.APPLIED]
    assert details == ["granted 100 credits, then applied 1 earlier refund(s)"]
    _exact(person)


# --- disputes --------------------------------------------------------------------------------------------------------


def test_a_dispute_reverses_the_rest_freezes_buying_and_tells_everyone(creem: CreemServer, runtime: Runtime,
                                                                      admin: User):
    person = make_user(email="ada@example.com")
    order = _buy(runtime, person)
    _deliver(creem, creem.complete(order.checkout_id))
    _deliver(creem, creem.refund_event(order.checkout_id, 100))  # 20 credits back first
    dispute = creem.dispute_event(order.checkout_id)
    assert _deliver(creem, dispute) == (200, DeliveryOutcome.APPLIED)
    assert _deliver(creem, dispute) == (200, DeliveryOutcome.DUPLICATE)
    assert _deliver(creem, creem.dispute_event(order.checkout_id, expand=True)) == (200, DeliveryOutcome.DUPLICATE)
    disputed = _order(order.id)
    assert disputed.status == OrderStatus.DISPUTED and disputed.credits_reversed == 100
    assert _balance(person) == BONUS
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).purchases_frozen_at is not None
        chargeback = session.exec(select(CreditPurchaseEntry).where(
            CreditPurchaseEntry.kind == EntryKind.CHARGEBACK)).one()
    assert chargeback.delta == -80 and chargeback.idempotency_key == f"chargeback:{dispute['object']['id']}"
    assert _subjects("ada@example.com")[-1] == "A payment for your credits is disputed"
    assert _subjects(admin.email) == [f"Billing: payment disputed for order {order.id}"]
    with pytest.raises(CheckoutError, match="paused"):
        orders.buy(runtime.settings, runtime.creem, person.id, "starter")
    with session_scope() as session:  # the frozen account's refused purchase left no order behind
        assert session.exec(select(func.count()).select_from(CreditOrder)).one() == 1
    # A refund after the chargeback takes nothing more: the pack is already all taken back.
    assert _deliver(creem, creem.refund_event(order.checkout_id, 100)) == (200, DeliveryOutcome.APPLIED)
    assert _balance(person) == BONUS and _order(order.id).status == OrderStatus.DISPUTED
    _exact(person)


# --- mail --------------------------------------------------------------------------------------------------------


def test_the_balance_alert_goes_out_once_per_crossing(creem: CreemServer, runtime: Runtime):
    Runtime.build(get_settings())  # built twice: still one listener
    person = make_user(email="ada@example.com")
    first, second = _buy(runtime, person), _buy(runtime, person)
    _deliver(creem, creem.complete(first.checkout_id))
    _deliver(creem, creem.complete(second.checkout_id))  # 210: well above the threshold of 20
    _deliver(creem, creem.refund_event(first.checkout_id))  # 110
    _deliver(creem, creem.refund_event(second.checkout_id, 475))  # 15: below
    _deliver(creem, creem.refund_event(second.checkout_id))  # 10: still below, no second alert
    alerts = [m for m in _mails("ada@example.com") if m.subject == "Your credit balance is low"]
    assert len(alerts) == 1 and "15 credits" in alerts[0].text_body
    third = _buy(runtime, person)
    _deliver(creem, creem.complete(third.checkout_id))  # 110: back above, re-armed
    _deliver(creem, creem.refund_event(third.checkout_id))  # 10: a new crossing
    assert _subjects("ada@example.com").count("Your credit balance is low") == 2
    _exact(person)


# --- everything at once ----------------------------------------------------------------------------------------------


def test_a_thousand_deliveries_end_with_exactly_the_credits_the_genuine_events_grant(
        creem: CreemServer, runtime: Runtime, admin: User):
    """Duplicates, reorderings, forgeries, bodies altered after signing, unknown events and malformed JSON, delivered
    from four threads at once: the result is what the genuine events grant, each applied once."""
    rng = random.Random(12)
    settings = get_settings()
    people = [make_user(email=f"buyer{n}@example.com") for n in range(4)]
    expected = {person.id: BONUS for person in people}
    genuine: list[dict] = []
    disputed: set[uuid.UUID] = set()
    for index in range(12):
        person = people[index % 4]
        order = _buy(runtime, person, "big" if index % 3 == 0 else "starter")
        completed = creem.complete(order.checkout_id)
        genuine.append(completed)
        scenario = index % 4
        refunded = 0
        if scenario == 1:  # two partial refunds, one with ids only
            genuine.append(creem.refund_event(order.checkout_id, 150))
            genuine.append(creem.refund_event(order.checkout_id, 101, expand=False))
            refunded = 251
        elif scenario == 2:  # refunded in full
            genuine.append(creem.refund_event(order.checkout_id, expand=index % 8 == 2))
            refunded = order.amount
        elif scenario == 3:  # a partial refund, then a chargeback
            genuine.append(creem.refund_event(order.checkout_id, 99))
            genuine.append(creem.dispute_event(order.checkout_id))
            disputed.add(order.id)
        if scenario != 3:
            expected[person.id] += order.credits - creem_webhooks.reversed_credits(order.credits, refunded,
                                                                                   order.amount)
    never_paid = _buy(runtime, people[0])  # forgeries claim this one was paid
    forged_completion = creem.complete(never_paid.checkout_id)
    unique_events = len(genuine)

    deliveries: list[tuple[bytes, str | None, str]] = []  # raw, signature, kind
    for event in genuine:
        for _ in range(rng.randint(1, 4)):
            raw, signature = creem.signed(event)
            deliveries.append((raw, signature, "genuine"))
    while len(deliveries) < 1000:
        roll = rng.random()
        event = rng.choice([*genuine, forged_completion])
        if roll < 0.25:
            raw, signature = creem.forged(event)
            deliveries.append((raw, signature, "rejected"))
        elif roll < 0.45:  # signed, then altered: more money, another order, another person's request id
            raw, signature = creem.signed(event)
            tampered = raw.replace(b'"amount_paid":', b'"amount_paid":9', 1) if rng.random() < 0.5 else \
                raw.replace(b'"refund_amount":', b'"refund_amount":1', 1)
            tampered = tampered if tampered != raw else raw + b" "
            deliveries.append((tampered, signature, "rejected"))
        elif roll < 0.55:
            raw, _ = creem.signed(forged_completion if rng.random() < 0.5 else event)
            deliveries.append((raw, None, "rejected"))
        elif roll < 0.75:
            kind = rng.choice(["subscription.active", "subscription.paid", "checkout.expired", "customer.updated"])
            raw, signature = creem.signed(envelope(kind, {"id": f"obj_{rng.randint(1, 10**6)}"}))
            deliveries.append((raw, signature, "ignored"))
        else:
            raw = rng.choice([b"{oops", b"", b"null", b'{"id": 7}', json.dumps({"id": "evt_x", "eventType":
                              "refund.created", "object": {"id": "ref_x", "refund_amount": "lots"}}).encode()])
            deliveries.append((raw, creem_webhooks.sign(creem.webhook_secret, raw), "invalid"))
    rng.shuffle(deliveries)
    assert len(deliveries) == 1000

    def deliver(item: tuple[bytes, str | None, str]) -> tuple[str, int, DeliveryOutcome]:
        raw, signature, kind = item
        return (kind, *creem_webhooks.handle(settings, raw, signature))

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(deliver, deliveries))

    by_kind = Counter((kind, status, outcome) for kind, status, outcome in answers)
    expected_codes = {"rejected": (401, DeliveryOutcome.REJECTED), "ignored": (200, DeliveryOutcome.IGNORED),
                      "invalid": (400, DeliveryOutcome.INVALID)}
    for (kind, status, outcome), _count in by_kind.items():
        if kind == "genuine":
            assert status == 200 and outcome in (DeliveryOutcome.APPLIED, DeliveryOutcome.DEFERRED,
                                                 DeliveryOutcome.DUPLICATE), (kind, status, outcome)
        else:
            assert (status, outcome) == expected_codes[kind], (kind, status, outcome)
    effective = sum(count for (kind, _s, outcome), count in by_kind.items()
                    if kind == "genuine" and outcome != DeliveryOutcome.DUPLICATE)
    assert effective == unique_events  # each genuine event took effect exactly once
    assert by_kind[("genuine", 200, DeliveryOutcome.DEFERRED)] > 0  # some refunds did arrive before their checkout

    for person in people:
        assert _balance(person) == expected[person.id], person.email
    _exact(*people)
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(WebhookDelivery)).one() == 1000
        assert session.exec(select(func.count()).select_from(CreemEvent)).one() == unique_events
        states = dict(session.exec(select(CreditOrder.id, CreditOrder.status)).all())
        frozen = session.exec(select(CreditAccount.user_id).where(
            col(CreditAccount.purchases_frozen_at).is_not(None))).all()
        unapplied = session.exec(select(func.count()).select_from(CreditRefund).where(
            col(CreditRefund.applied_at).is_(None))).one()
    assert states[never_paid.id] == OrderStatus.PENDING
    assert all(states[order_id] == OrderStatus.DISPUTED for order_id in disputed)
    assert frozen == [people[3].id]  # orders 3, 7 and 11, the disputed ones, are all buyer3's
    assert unapplied == 0
    assert _subjects(admin.email) == [f"Billing: payment disputed for order {order_id}" for order_id in disputed] \
        or sorted(_subjects(admin.email)) == sorted(f"Billing: payment disputed for order {order_id}"
                                                    for order_id in disputed)
    for person in people[:3]:  # one confirmation per paid order, never two
        subjects = _subjects(person.email)
        assert subjects.count("Your Starter credit pack is ready") + subjects.count("Your Big credit pack is ready") \
            == 3


def test_concurrent_copies_of_one_delivery_apply_it_once(creem: CreemServer, runtime: Runtime):
    person = make_user()
    order = _buy(runtime, person)
    raw, signature = creem.signed(creem.complete(order.checkout_id))
    settings = get_settings()
    start = threading.Barrier(8)

    def deliver(_: int) -> tuple[int, DeliveryOutcome]:
        start.wait()
        return creem_webhooks.handle(settings, raw, signature)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = Counter(pool.map(deliver, range(8)))
    assert answers == {(200, DeliveryOutcome.APPLIED): 1, (200, DeliveryOutcome.DUPLICATE): 7}
    assert _balance(person) == BONUS + 100
    _exact(person)
