"""Receipts for credit orders, as PDF: what was bought, when, for how much, and who sold it.

Creem is the merchant of record: it sells the pack, charges the payment, issues the tax invoice and accounts for the
VAT. This receipt is the operator's record of the credits an order added to the account, and says so
(:data:`MERCHANT_NOTE`). Only orders whose payment went through have one (:data:`RECEIPT_STATUSES`): a refunded or
disputed order keeps its receipt, with the refund or the dispute shown.

**Fonts.** fpdf2's built-in fonts cover Latin-1 only, and a deployment (Railway's image, say) may have no fonts at
all, so DejaVu Sans is bundled in ``assets/fonts`` (unmodified, with its licence, ``LICENSE-DejaVu.txt``): every
European script (Latin, Greek, Cyrillic) and more. Text is put through :func:`printable` first: control and
formatting characters (bidi overrides included) are dropped and any character the font has no glyph for (CJK, say)
becomes ``?``, so no operator name, pack label or e-mail address can make a receipt fail or print invisible text.
Right-to-left scripts are printed left to right (fpdf2 shapes them only with HarfBuzz, which is not installed).

Building one takes about 0.1 s, two thirds of it fpdf2 reading the two font files: run it off the event loop.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from babel import Locale
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from sqlalchemy import select
from sqlmodel import Session

from rupali.clock import as_utc, now
from rupali.config import Settings
from rupali.models import CreditOrder, OrderStatus
from rupali.services import billing

RECEIPT_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED,
                              OrderStatus.DISPUTED})
FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
FONTS = {"": FONT_DIR / "DejaVuSans.ttf", "B": FONT_DIR / "DejaVuSans-Bold.ttf"}
MERCHANT_NOTE = ("Sold by Creem (creem.io) as merchant of record: Creem charged the payment, issues the tax invoice "
                 "for it and accounts for any VAT due. This receipt from {operator} records the credits the order "
                 "added to your account; it is not a VAT invoice.")
_STATUS_TEXT = {
    OrderStatus.PAID: "Paid",
    OrderStatus.PARTIALLY_REFUNDED: "Paid, partly refunded",
    OrderStatus.REFUNDED: "Paid, refunded",
    OrderStatus.DISPUTED: "Paid, payment disputed",
}
_FIELD_MAX = 600  # characters of any one text printed (the longest setting, the address, allows 500)
# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned characters.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def has_receipt(order: CreditOrder) -> bool:
    """Whether the order's payment went through, so it has a receipt."""
    return order.status in RECEIPT_STATUSES


def receipt_filename(order: CreditOrder) -> str:
    """``receipt-<date paid>-<order id>.pdf``: unique per order, sorted by date in a folder."""
    return f"receipt-{_paid_on(order)}-{order.id}.pdf"


def owned_order(session: Session, user_id: uuid.UUID, order_id: object) -> CreditOrder | None:
    """The order ``order_id`` when it is the person's and has a receipt; None for anyone else's, an unknown id, a
    malformed one, or an order not paid (so each of them is the same "not found")."""
    try:
        parsed = order_id if isinstance(order_id, uuid.UUID) else uuid.UUID(str(order_id))
    except ValueError:
        return None
    order = session.get(CreditOrder, parsed)
    if order is None or order.user_id != user_id or not has_receipt(order):
        return None
    return order


def orders_with_receipts(session: Session, user_id: uuid.UUID) -> list[CreditOrder]:
    """The person's orders that have a receipt, oldest first."""
    query = (select(CreditOrder).where(CreditOrder.user_id == user_id,  # type: ignore[arg-type]
                                       CreditOrder.status.in_([s.value for s in RECEIPT_STATUSES]))  # type: ignore[attr-defined]
             .order_by(CreditOrder.created_at, CreditOrder.id))  # type: ignore[arg-type]
    return list(session.execute(query).scalars())


def money(minor: int, currency: str) -> str:
    """An amount in minor units with its currency, exactly as the billing page shows it: ``5.00 EUR``,
    ``500 JPY`` (the payment processors' zero-decimal currencies have no decimals)."""
    return billing.price(minor, printable(currency) or "?")


def printable(text: str | None, *, lines: bool = False) -> str:
    """``text`` as the receipt's font can print it: NFC; no control or formatting characters or lone surrogates
    (line breaks kept as such when ``lines``, else spaces); ``?`` for what the font has no glyph for; at most
    :data:`_FIELD_MAX` characters."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", str(text)[:_FIELD_MAX])
    glyphs = _glyphs()
    kept = []
    for char in text:
        if char in "\r\n\t\f\v\u2028\u2029":
            kept.append("\n" if lines and char != "\t" else " ")
        elif unicodedata.category(char) in _DROPPED:
            continue
        else:
            kept.append(char if ord(char) in glyphs else "?")
    result = "".join(kept)
    if lines:
        return "\n".join(" ".join(line.split()) for line in result.splitlines() if line.strip())
    return " ".join(result.split())


@lru_cache(maxsize=1)
def _glyphs() -> frozenset[int]:
    """The code points both bundled fonts can print."""
    maps = []
    for path in FONTS.values():
        with TTFont(path, lazy=True) as font:
            maps.append(set(font.getBestCmap()))
    return frozenset(set.intersection(*maps))


def receipt_pdf(settings: Settings, order: CreditOrder) -> bytes:
    """The order's receipt as a PDF; raises ValueError for an order without one (see :func:`has_receipt`)."""
    if not has_receipt(order):
        raise ValueError(f"order {order.id} has no receipt: its status is {order.status}")
    operator = printable(settings.operator_name)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    for style, path in FONTS.items():
        pdf.add_font("DejaVu", style, str(path))
    pdf.set_creation_date(now())
    pdf.set_title(f"Receipt {order.id}")
    pdf.set_author(operator)
    pdf.set_creator("Rupali")
    pdf.set_lang("en")
    pdf.add_page()
    width = pdf.epw

    # Who issues it.
    pdf.set_font("DejaVu", "B", 13)
    pdf.multi_cell(width, 6.5, operator, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 10)
    for line in (printable(settings.operator_address, lines=True), printable(settings.operator_email)):
        if line:
            pdf.multi_cell(width, 5, line, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(10)

    pdf.set_font("DejaVu", "B", 20)
    pdf.cell(width, 10, "Receipt", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    _rows(pdf, _details(order))
    pdf.ln(6)

    # What was bought.
    paid = order.paid_amount if order.paid_amount is not None else order.amount
    label = printable(order.label) or printable(order.pack_key) or "Credit pack"
    item, credits, amount = width * 0.55, width * 0.2, width * 0.25
    pdf.set_font("DejaVu", "B", 10)
    pdf.cell(item, 7, "Item", border="B")
    pdf.cell(credits, 7, "Credits", border="B", align="R")
    pdf.cell(amount, 7, "Amount", border="B", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 10)
    top = pdf.get_y()
    pdf.multi_cell(item, 7, label, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    bottom = pdf.get_y()  # a long label wraps: the row is as tall as it
    pdf.set_xy(pdf.l_margin + item, top)
    pdf.cell(credits, 7, f"{order.credits:,}", align="R")
    pdf.cell(amount, 7, money(paid, order.currency), align="R")
    pdf.set_xy(pdf.l_margin, bottom)
    pdf.cell(width, 0, "", border="T", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(item + credits, 8, "Total paid", align="R")
    pdf.cell(amount, 8, money(paid, order.currency), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if order.refunded_amount:
        pdf.set_font("DejaVu", "", 10)
        pdf.cell(item + credits, 7, "Refunded", align="R")
        pdf.cell(amount, 7, money(order.refunded_amount, order.currency), align="R",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if order.credits_reversed:
        pdf.set_font("DejaVu", "", 10)
        pdf.cell(item + credits, 7, "Credits taken back", align="R")
        pdf.cell(amount, 7, f"{order.credits_reversed:,} credits", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(10)

    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(width, 4.5, MERCHANT_NOTE.format(operator=operator), align="L",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _details(order: CreditOrder) -> list[tuple[str, str]]:
    rows = [("Order", str(order.id))]
    if order.creem_order_id:
        rows.append(("Creem order", printable(order.creem_order_id)))
    rows.append(("Date paid", f"{_paid_on(order)} (UTC)"))
    rows.append(("Status", _STATUS_TEXT.get(OrderStatus(order.status), str(order.status))))
    if order.customer_email:
        rows.append(("Customer", printable(order.customer_email)))
    if order.country:
        rows.append(("Country", _country(order.country)))
    if order.vat_number:
        rows.append(("VAT number", printable(order.vat_number)))
    return rows


def _rows(pdf: FPDF, rows: Iterable[tuple[str, str]]) -> None:
    name = 38
    for label, value in rows:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(name, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(pdf.epw - name, 6, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _paid_on(order: CreditOrder) -> str:
    moment = order.paid_at or order.created_at
    return as_utc(moment).date().isoformat()


def _country(code: str) -> str:
    code = printable(code).upper()
    name = Locale("en").territories.get(code) if code.isalpha() and len(code) == 2 else None
    return f"{name} ({code})" if name else code
