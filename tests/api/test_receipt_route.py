"""The receipt download, ``/billing/receipts/<order>.pdf``: the signed-in owner of a paid order gets the PDF;
anyone else, an unknown or malformed id and an unpaid order get the same 404; nobody signed in is sent to sign in."""

from __future__ import annotations

import uuid

from nicegui.testing import User

from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import CreditOrder, OrderStatus
from rupali.services import sessions
from tests.services.test_receipts import pdf_text
from tests.utils.factories import make_user

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _cookie(user: User, person) -> None:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), person, method="password", ip="", user_agent="",
                              visitor_id="r")
        user.http_client.cookies.set(AUTH_COOKIE, sessions.complete_handoff(session, code, "r"))


def _order(person, status: OrderStatus = OrderStatus.PAID) -> CreditOrder:
    paid = status != OrderStatus.PENDING
    with session_scope() as session:
        order = CreditOrder(user_id=person.id, pack_key="starter", product_id="prod_starter", label="Starter pack",
                            credits=100, amount=500, currency="EUR", status=status, country="FR",
                            vat_number="FR61954506077", paid_amount=500 if paid else None,
                            paid_at=now() if paid else None)
        session.add(order)
    return order


async def test_the_owner_downloads_the_receipt_of_a_paid_order(user: User):
    owner = make_user()
    order = _order(owner)
    _cookie(user, owner)
    response = await user.http_client.get(f"/billing/receipts/{order.id}.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == \
        f'attachment; filename="receipt-{now():%Y-%m-%d}-{order.id}.pdf"'
    assert response.headers["cache-control"] == "private, no-store"
    lines = pdf_text(response.content).splitlines()
    assert str(order.id) in lines and "5.00 EUR" in lines and "FR61954506077" in lines and "France (FR)" in lines


async def test_anyone_else_gets_nothing_and_nobody_can_tell_why(user: User):
    owner, stranger = make_user(), make_user(email="stranger@example.com")
    order = _order(owner)
    refunded = _order(owner, OrderStatus.REFUNDED)
    pending = _order(owner, OrderStatus.PENDING)
    path = f"/billing/receipts/{order.id}.pdf"
    anonymous = await user.http_client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin?next=")
    assert "%2Fbilling%2Freceipts%2F" in anonymous.headers["location"]
    _cookie(user, stranger)
    refused = await user.http_client.get(path)
    assert refused.status_code == 404 and b"%PDF" not in refused.content
    _cookie(user, owner)
    for wrong in (UNKNOWN, str(uuid.uuid4()), pending.id, "not-an-id", "%00", "1" * 3000, f"{order.id}x",
                  "%F0%9F%92%A5", "%27%3B%20DROP%20TABLE%20credit_order%3B--"):
        response = await user.http_client.get(f"/billing/receipts/{wrong}.pdf")
        assert response.status_code == 404, wrong
        assert response.text == refused.text, wrong  # the same answer as for someone else's order
    # Not an id at all (the route does not even match): the app's own "not found".
    for elsewhere in (f"/billing/receipts/..%2F..%2F{order.id}.pdf", f"/billing/receipts/{order.id}",
                      f"/billing/receipts/{order.id}.pdf/x"):
        assert (await user.http_client.get(elsewhere)).status_code == 404, elsewhere
    assert (await user.http_client.get(f"/billing/receipts/{refunded.id}.pdf")).status_code == 200
    assert (await user.http_client.get(f"/billing/receipts/{order.id.hex}.pdf")).status_code == 200
