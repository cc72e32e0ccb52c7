"""How long one Creem webhook delivery takes to handle: verify, record, apply.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench/test_webhook_bench.py -m bench -s

On the embedded default (a SQLite file in WAL mode, as ``rupali serve`` runs it), each round buys a pack through the
loopback Creem (not timed) and then times :func:`creem_webhooks.handle` (the whole of what ``POST /webhooks/creem``
does after reading the body) for the round's ``checkout.completed`` (grant the pack, queue the receipt mail, record
the delivery, commit), the same delivery again (a retry), a partial ``refund.created``, a forged delivery and an
event type Rupali ignores. The database already holds a busy history (5,000 paid orders with their events and
deliveries), so no index lookup is flattered by a tiny table. Every measurement runs before the target is checked.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import insert

from rupali.clock import now
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import CreditOrder, CreemEvent, DeliveryOutcome, OrderStatus, WebhookDelivery
from rupali.runtime import Runtime
from rupali.services import creem_webhooks, ledger, orders
from tests.bench.test_gallery_bench import Row, ms_row
from tests.utils.creem_server import PRODUCTS, CreemServer, billing_env, envelope
from tests.utils.factories import make_user

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

HISTORY = 5_000
WARM_UP = 20
ROUNDS = 300
TARGET_MS = 10.0


@pytest.fixture
def creem(monkeypatch: pytest.MonkeyPatch) -> Iterator[CreemServer]:
    with CreemServer(products=PRODUCTS) as server:
        for name, value in billing_env(server).items():
            monkeypatch.setenv(name, value)
        reset_settings()
        yield server


def _history(user_id: uuid.UUID) -> None:
    moment = now()
    order_rows, event_rows, delivery_rows = [], [], []
    for number in range(HISTORY):
        order_id = uuid.uuid4()
        order_rows.append({
            "id": order_id, "user_id": user_id, "pack_key": "starter", "product_id": "prod_starter",
            "label": "Starter", "credits": 100, "amount": 500, "currency": "EUR", "status": OrderStatus.PAID.value,
            "checkout_id": f"ch_hist{number}", "checkout_url": f"http://127.0.0.1/checkout/ch_hist{number}",
            "creem_order_id": f"ord_hist{number}", "creem_customer_id": "cust_hist", "customer_email": "a@b.example",
            "country": "DK", "vat_number": None, "paid_amount": 500, "refunded_amount": 0, "credits_reversed": 0,
            "flag_reason": "", "created_at": moment, "paid_at": moment, "updated_at": moment})
        event_rows.append({"event_id": f"evt_hist{number}", "event_type": "checkout.completed",
                           "processed_at": moment})
        for _ in range(2):
            delivery_rows.append({"id": uuid.uuid4(), "received_at": moment, "event_id": f"evt_hist{number}",
                                  "event_type": "checkout.completed", "signature_valid": True,
                                  "outcome": DeliveryOutcome.APPLIED.value, "detail": "history",
                                  "order_id": order_id})
    with session_scope() as session:
        session.execute(insert(CreditOrder), order_rows)
        session.execute(insert(CreemEvent), event_rows)
        session.execute(insert(WebhookDelivery), delivery_rows)


def test_webhook_handling_time(creem: CreemServer) -> None:
    settings = get_settings()
    runtime = Runtime.build(settings)
    person = make_user()
    started = time.perf_counter()
    _history(person.id)
    print(f"\nbuilt a history of {HISTORY:,} paid orders and {2 * HISTORY:,} deliveries in "
          f"{time.perf_counter() - started:.1f} s")

    def timed(raw: bytes, signature: str | None, outcome: DeliveryOutcome) -> float:
        begun = time.perf_counter()
        answer = creem_webhooks.handle(settings, raw, signature)
        elapsed = (time.perf_counter() - begun) * 1000
        assert answer[1] == outcome, answer
        return elapsed

    samples: dict[str, list[float]] = {name: [] for name in ("completed", "duplicate", "refund", "forged",
                                                             "ignored")}
    for number in range(WARM_UP + ROUNDS):
        url = orders.buy(settings, runtime.creem, person.id, "starter")
        checkout_id = url.rsplit("/", 1)[1]
        completed = creem.signed(creem.complete(checkout_id))
        refund = creem.signed(creem.refund_event(checkout_id, 100))
        forged = creem.forged(creem.completed_event(checkout_id))
        ignored = creem.signed(envelope("subscription.active", {"id": f"sub_{number}"}))
        round_samples = {
            "completed": timed(*completed, DeliveryOutcome.APPLIED),
            "duplicate": timed(*completed, DeliveryOutcome.DUPLICATE),
            "refund": timed(*refund, DeliveryOutcome.APPLIED),
            "forged": timed(*forged, DeliveryOutcome.REJECTED),
            "ignored": timed(*ignored, DeliveryOutcome.IGNORED),
        }
        if number >= WARM_UP:
            for name, value in round_samples.items():
                samples[name].append(value)
    with session_scope() as session:
        exact = ledger.ledger_sum(session, person.id) == ledger.balance(session, settings, person.id)
    every = [value for values in samples.values() for value in values]
    rows = [
        ms_row("checkout.completed: grant, receipt mail, record", samples["completed"], TARGET_MS),
        ms_row("the same delivery again (duplicate)", samples["duplicate"], TARGET_MS),
        ms_row("refund.created, partial: take back, mail", samples["refund"], TARGET_MS),
        ms_row("forged signature (rejected, recorded)", samples["forged"]),
        ms_row("unknown event type (ignored, recorded)", samples["ignored"]),
        ms_row("any delivery of the mix above", every, TARGET_MS),
        Row("ledger sum equals the balance", "yes" if exact else "NO", f"{2 * (WARM_UP + ROUNDS):,} payment entries",
            "yes", exact),
    ]
    print("\n" + _table(rows))
    assert all(row.passed is not False for row in rows), "a webhook benchmark target was missed"


def _table(rows: list[Row]) -> str:
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("name", "value", "extra", "target")]
    lines = [f"{'benchmark':<{widths[0]}}  {'median':>{widths[1]}}  {'p90 / extra':<{widths[2]}}  "
             f"{'target':<{widths[3]}}  verdict"]
    lines.append("-" * len(lines[0]))
    lines += [f"{row.name:<{widths[0]}}  {row.value:>{widths[1]}}  {row.extra:<{widths[2]}}  "
              f"{row.target:<{widths[3]}}  {row.verdict}" for row in rows]
    lines.append(f"({os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}; {HISTORY:,} paid orders before the "
                 f"{ROUNDS} measured rounds; handle() only, the HTTP layer excluded)")
    return "\n".join(lines)
