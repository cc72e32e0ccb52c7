"""The texts of the billing e-mails (credit orders, refunds, disputes, balance alerts), plain text and HTML.

Composed exactly like every other mail (:mod:`rupali.mail_templates`): every inserted value is escaped in the HTML.
"""

from __future__ import annotations

from decimal import Decimal

from rupali.mail_templates import Mail, compose  # compose: the one layout every Rupali mail shares


def money(amount: int, currency: str) -> str:
    """Minor units as the receipt shows them: ``5.00 EUR``."""
    return f"{Decimal(amount) / 100:,.2f} {currency}"


def _credits(count: int) -> str:
    return f"{count:,} credit" if abs(count) == 1 else f"{count:,} credits"


def order_confirmation(name: str, label: str, credits: int, paid: str, order_id: str, receipt_link: str,
                       billing_link: str) -> Mail:
    return compose(f"Your {label} credit pack is ready", f"Hi {name},",
                   [f"Thank you for your purchase. {_credits(credits)} from the {label} pack were added to your "
                    f"Rupali balance.",
                    f"Paid: {paid}. Order: {order_id}.",
                    f"Your balance and orders are on the billing page: {billing_link}"],
                   link=("Download the receipt", receipt_link),
                   footer="Payments are processed by Creem, our merchant of record, who also sends you an invoice.")


def refund_notice(name: str, label: str, refunded: str, credits_reversed: int, balance: int, billing_link: str,
                  *, full: bool) -> Mail:
    what = "refunded in full" if full else "partly refunded"
    paragraphs = [f"Your {label} credit pack was {what}: {refunded} goes back to you through the payment "
                  "provider."]
    if credits_reversed > 0:
        paragraphs.append(f"{_credits(credits_reversed)} of that pack were taken back; your balance is now "
                          f"{_credits(balance)}.")
    if balance < 0:
        paragraphs.append("Credits from that pack had already been used, so your balance is below zero. New images "
                          "can be made once it is back above zero.")
    return compose("Your credit pack was refunded", f"Hi {name},", paragraphs,
                   link=("Open the billing page", billing_link))


def dispute_notice(name: str, label: str, credits_reversed: int, operator_email: str) -> Mail:
    paragraphs = [f"Your bank or card issuer told us that the payment for your {label} credit pack is disputed "
                  "(a chargeback).",
                  "While the dispute is open, buying credits is paused on your account."]
    if credits_reversed > 0:
        paragraphs.append(f"The {_credits(credits_reversed)} of that pack that were left have been taken back.")
    paragraphs.append(f"If this is a mistake, write to {operator_email} and we will sort it out together.")
    return compose("A payment for your credits is disputed", f"Hi {name},", paragraphs)


def balance_alert(name: str, balance: int, threshold: int, billing_link: str, *, can_buy: bool) -> Mail:
    paragraphs = [f"Your Rupali credit balance is down to {_credits(balance)}, below {_credits(threshold)}."]
    if can_buy:
        paragraphs.append("You can buy more credits on the billing page.")
    paragraphs.append("We tell you once each time the balance falls below this mark.")
    return compose("Your credit balance is low", f"Hi {name},", paragraphs,
                   link=("Open the billing page", billing_link))


def admin_alert(name: str, subject: str, lines: list[str], admin_link: str) -> Mail:
    """A billing event an administrator has to look at: a mismatched payment, a dispute, an unknown order."""
    return compose(f"Billing: {subject}", f"Hi {name},", [*lines, "Nothing more happens automatically."],
                   link=("Open the administration", admin_link))
