"""Receipts as PDF: what they say (order, date, pack, amount, country, VAT number, refunds, the merchant of record),
which orders have one, amounts in currencies with 0, 2 and 3 decimals, and text no font can print.

:func:`pdf_text` reads the PDF back with pypdf, as a PDF reader would, one line per text run.
"""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from rupali import receipts
from rupali.config import Settings, get_settings
from rupali.db import session_scope
from rupali.models import CreditOrder, OrderStatus
from rupali.services import billing
from tests.utils.factories import make_user

PAID_AT = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)


def pdf_text(data: bytes) -> str:
    """The text of every page, read by pypdf, one line per text run (each run as the PDF draws it)."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    runs: list[str] = []
    for page in PdfReader(io.BytesIO(data)).pages:
        page.extract_text(visitor_text=lambda text, *_: runs.append(text))
    return "\n".join(run.strip() for run in runs if run.strip())


# --- receipts ----------------------------------------------------------------------------------------------------

def _order(**values: object) -> CreditOrder:
    fields = {"id": uuid.uuid4(), "user_id": uuid.uuid4(), "pack_key": "starter", "product_id": "prod_starter",
              "label": "Starter pack", "credits": 1000, "amount": 500, "currency": "EUR", "status": OrderStatus.PAID,
              "paid_amount": 500, "paid_at": PAID_AT, "country": "DE", "vat_number": "DE136695976",
              "customer_email": "ada@example.com", "creem_order_id": "ord_5Xq1"}
    return CreditOrder(**{**fields, **values})


@pytest.mark.sqlite_only
def test_a_receipt_says_what_was_bought_when_for_how_much_and_who_sold_it():
    order = _order()
    data = receipts.receipt_pdf(get_settings(), order)
    text = pdf_text(data)
    lines = text.splitlines()
    settings = get_settings()
    assert lines[0] == settings.operator_name and settings.operator_email in lines
    assert "Receipt" in lines and str(order.id) in lines and "ord_5Xq1" in lines
    assert "2026-03-01 (UTC)" in lines and "Paid" in lines
    assert "Starter pack" in lines and "1,000" in lines and lines.count("5.00 EUR") == 2  # the item and the total
    assert "Germany (DE)" in lines and "DE136695976" in lines and "ada@example.com" in lines
    assert "Refunded" not in lines
    note = " ".join(text.split())
    assert "Sold by Creem (creem.io) as merchant of record" in note and "issues the tax invoice" in note
    assert "it is not a VAT invoice" in note and f"This receipt from {settings.operator_name}" in note
    assert receipts.receipt_filename(order) == f"receipt-2026-03-01-{order.id}.pdf"


@pytest.mark.sqlite_only
def test_refunds_and_disputes_are_shown_and_optional_details_left_out_when_absent():
    partly = _order(status=OrderStatus.PARTIALLY_REFUNDED, refunded_amount=200, credits_reversed=400, country=None,
                    vat_number=None, customer_email=None, creem_order_id=None, label="")
    lines = pdf_text(receipts.receipt_pdf(get_settings(), partly)).splitlines()
    assert "Paid, partly refunded" in lines and "Refunded" in lines and "2.00 EUR" in lines
    assert "400 credits" in lines
    assert not {"Country", "VAT number", "Customer", "Creem order"} & set(lines)
    assert "starter" in lines  # no label: the pack's key names it
    disputed = pdf_text(receipts.receipt_pdf(get_settings(), _order(status=OrderStatus.DISPUTED))).splitlines()
    assert "Paid, payment disputed" in disputed


@pytest.mark.sqlite_only
def test_only_orders_whose_payment_went_through_have_a_receipt():
    for status in OrderStatus:
        order = _order(status=status.value)  # as read back from the database: a plain string
        assert receipts.has_receipt(order) is (status in {OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED,
                                                          OrderStatus.REFUNDED, OrderStatus.DISPUTED})
        if not receipts.has_receipt(order):
            with pytest.raises(ValueError, match="no receipt"):
                receipts.receipt_pdf(get_settings(), order)


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("minor", "currency", "shown"), [
    (500, "EUR", "5.00 EUR"), (5, "EUR", "0.05 EUR"), (0, "EUR", "0.00 EUR"), (123456789, "EUR", "1,234,567.89 EUR"),
    (500, "JPY", "500 JPY"), (1500, "jpy", "1,500 JPY"), (120000, "KRW", "120,000 KRW"), (999, "XYZ", "9.99 XYZ"),
])
def test_amounts_in_minor_units_follow_the_currency_as_on_the_billing_page(minor, currency, shown):
    assert receipts.money(minor, currency) == shown == billing.price(minor, currency)


@pytest.mark.sqlite_only
def test_a_zero_decimal_currency_on_the_receipt():
    order = _order(amount=800, paid_amount=800, currency="JPY")
    assert "800 JPY" in pdf_text(receipts.receipt_pdf(get_settings(), order)).splitlines()


@pytest.mark.sqlite_only
def test_the_amount_paid_is_what_creem_reported_else_the_price():
    assert "4.00 EUR" in pdf_text(receipts.receipt_pdf(get_settings(), _order(paid_amount=400))).splitlines()
    assert "5.00 EUR" in pdf_text(receipts.receipt_pdf(get_settings(), _order(paid_amount=None))).splitlines()


@pytest.mark.sqlite_only
def test_non_latin_and_hostile_text_never_breaks_a_receipt():
    settings = Settings(operator_name="Ωμέγα Λτδ — ООО «Привет» 株式会社\u202e\x00",
                        operator_address="Hauptstraße 1\r\n10115 Berlin\n\n" + "x" * 460,
                        operator_email="støtte@example.com")
    order = _order(label="Pack\ud800\x07 of 100 株", customer_email="\u202eevil@example.com\x00",
                   vat_number="DE136695976")
    text = pdf_text(receipts.receipt_pdf(settings, order))
    lines = text.splitlines()
    assert lines[0] == "Ωμέγα Λτδ — ООО «Привет» ????"  # CJK has no glyph in the font: a visible "?", not a gap
    assert lines[1:3] == ["Hauptstraße 1", "10115 Berlin"] and "støtte@example.com" in lines
    assert "evil@example.com" in lines and "\u202e" not in text and "\x00" not in text and "\ufffd" not in text
    assert "Pack of 100 ?" in lines  # a lone surrogate and a bell are dropped
    assert "x" * 460 in "".join(lines)  # a word wider than the page is wrapped, not cut


@pytest.mark.sqlite_only
def test_printable_keeps_what_the_font_can_print():
    assert receipts.printable("  a\tb\u200bc  ") == "a bc"
    assert receipts.printable("line one\r\nline two\n\n", lines=True) == "line one\nline two"
    assert receipts.printable("e\u0301") == "é"  # composed: one glyph
    assert receipts.printable("x" * 10_000) == "x" * 600
    assert receipts.printable(None) == ""


@pytest.mark.sqlite_only
def test_a_receipt_is_quick_enough_for_a_request():
    receipts.receipt_pdf(get_settings(), _order())  # the glyph table is read once per process
    started = time.perf_counter()
    receipts.receipt_pdf(get_settings(), _order())
    assert time.perf_counter() - started < 1.0  # about 0.1 s, most of it reading the fonts


def test_owned_order_is_the_owners_paid_order_only(backend):
    owner, other = make_user(), make_user()
    with session_scope() as session:
        paid = _order(id=uuid.uuid4(), user_id=owner.id)
        pending = _order(id=uuid.uuid4(), user_id=owner.id, status=OrderStatus.PENDING, paid_at=None,
                         paid_amount=None)
        session.add_all([paid, pending])
    with session_scope() as session:
        assert receipts.owned_order(session, owner.id, str(paid.id)).id == paid.id
        assert receipts.owned_order(session, owner.id, paid.id).id == paid.id
        for user_id, order_id in ((other.id, paid.id), (owner.id, pending.id), (owner.id, uuid.uuid4()),
                                  (owner.id, "not-an-id"), (owner.id, "\x00"), (owner.id, "1" * 5000)):
            assert receipts.owned_order(session, user_id, order_id) is None
        assert [order.id for order in receipts.orders_with_receipts(session, owner.id)] == [paid.id]
        assert receipts.orders_with_receipts(session, other.id) == []
