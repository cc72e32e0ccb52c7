"""The administrator's billing panel: grant or revoke credits, per-account daily allowances, orders and webhooks.

Part of ``/admin`` (shown when billing is on). Every action re-checks the session and the service re-checks the role.
"""

from __future__ import annotations

from babel import Locale
from nicegui import ui

from components import auth, blocking
from components.forms import Banner, text_input
from components.tables import table
from components.text import Text, heading, set_attributes
from rupali import dates
from rupali.config import get_settings
from rupali.db import transact
from rupali.models.types import new_id
from rupali.services import billing
from rupali.services.sessions import SignedIn


class BillingSection:
    """Credits per account, and what Creem told us: orders (disputed and flagged first) and webhook deliveries."""

    def __init__(self, locale: Locale, *, creem: bool) -> None:
        self.locale, self.creem = locale, creem
        with set_attributes(ui.element("section").classes("r-panel"), id="credits", aria_label="Credits"):
            heading("Credits", 2)
            ui.label("Grants and revocations are recorded with their reason in the person's credit history.").classes(
                "r-muted")
            self._grant_form()
            self._allowance_form()
            if creem:
                self._resume_form()
        if creem:
            with set_attributes(ui.element("section").classes("r-panel"), id="orders", aria_label="Orders"):
                heading("Orders", 2)
                self.orders = ui.column().classes("w-full gap-2")
            with set_attributes(ui.element("section").classes("r-panel"), id="webhooks",
                                aria_label="Webhook deliveries"):
                heading("Webhook deliveries", 2)
                ui.label("Every delivery to /webhooks/creem with what it did; rejected ones had no valid signature."
                         ).classes("r-muted")
                self.deliveries = ui.column().classes("w-full gap-2")

    async def refresh(self) -> None:
        if not self.creem:
            return
        attention, recent, deliveries = await blocking.io_bound(transact, _load)
        self.orders.clear()
        with self.orders:
            heading(f"Needs attention ({len(attention)})", 3).classes("text-base font-bold m-0")
            if not attention:
                ui.label("No disputed or flagged order.").classes("r-muted")
            else:
                self._orders_table(attention, "Orders that need attention")
            heading("Recent orders", 3).classes("text-base font-bold m-0")
            if not recent:
                ui.label("No orders yet.").classes("r-muted")
            else:
                self._orders_table(recent, "Recent orders")
        self.deliveries.clear()
        with self.deliveries:
            if not deliveries:
                ui.label("No deliveries yet.").classes("r-muted")
                return
            with table("Webhook deliveries", ("Received", "Event", "Type", "Outcome", "Detail")):
                for delivery in deliveries:
                    with ui.element("tr"):
                        Text("td", dates.moment(delivery.received_at, self.locale))
                        Text("td", delivery.event_id or "—")
                        Text("td", delivery.event_type or "—")
                        Text("td", str(delivery.outcome))
                        Text("td", delivery.detail or "—")

    def _orders_table(self, rows: list[billing.AdminOrder], name: str) -> None:
        with table(name, ("Created", "Account", "Pack", "Amount", "Status", "Country", "Creem order", "Note")):
            for row in rows:
                order = row.order
                with ui.element("tr"):
                    Text("td", dates.moment(order.created_at, self.locale))
                    Text("td", row.email or "(erased)")
                    Text("td", f"{order.label} ({order.credits:,})")
                    Text("td", billing.price(order.amount, order.currency))
                    Text("td", billing.ORDER_LABELS.get(order.status, str(order.status)))
                    Text("td", order.country or "—")
                    Text("td", order.creem_order_id or "—")
                    Text("td", order.flag_reason or "—")

    def _grant_form(self) -> None:
        heading("Grant or revoke", 3).classes("text-base font-bold m-0")
        banner = Banner()
        with ui.element("div").classes("r-form-grid"):
            email = text_input("Account to grant to (e-mail)", kind="email", autocomplete="off")
            amount = ui.number("Credits (negative to revoke)", precision=0, format="%d").props(
                "outlined stack-label").classes("w-full")
            reason = text_input("Reason (recorded)", max_length=200)
        key = {"value": str(new_id())}  # one grant per form filling: a double click posts it once

        async def grant(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                entry = await blocking.io_bound(transact, billing.admin_grant, get_settings(), signed_in.user,
                                                email.value or "", amount.value, reason=reason.value or "",
                                                key=key["value"])
            except billing.BillingAdminError as exc:
                banner.error(str(exc))
                return
            done = "Granted" if entry.delta > 0 else "Revoked"
            banner.success(f"{done} {abs(entry.delta):,} credits. Balance now {entry.balance_after:,}.")
            key["value"] = str(new_id())
            amount.value, reason.value = None, ""

        ui.button("Record grant", on_click=auth.action(grant)).props("unelevated no-caps")

    def _allowance_form(self) -> None:
        heading("Daily allowance for one account", 3).classes("text-base font-bold m-0")
        default = get_settings().credits_daily_allowance
        ui.label(f"Free credits the balance is topped up to each UTC day; empty returns the account to the "
                 f"default ({default:,}).").classes("r-muted text-sm")
        banner = Banner()
        with ui.element("div").classes("r-form-grid"):
            email = text_input("Account for the allowance (e-mail)", kind="email", autocomplete="off")
            allowance = ui.number("Daily allowance (credits)", precision=0, format="%d").props(
                "outlined stack-label").classes("w-full")

        async def save(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                user = await blocking.io_bound(transact, billing.admin_set_allowance, get_settings(), signed_in.user,
                                               email.value or "", allowance.value)
            except billing.BillingAdminError as exc:
                banner.error(str(exc))
                return
            value = "the default" if allowance.value is None else f"{int(allowance.value):,} credits"
            banner.success(f"Daily allowance of {user.email} set to {value}, from the next UTC day.")

        ui.button("Set allowance", on_click=auth.action(save)).props("unelevated no-caps")


    def _resume_form(self) -> None:
        heading("Resume purchases", 3).classes("text-base font-bold m-0")
        ui.label("A payment dispute pauses buying for the account; once it is settled with Creem, resume it here."
                 ).classes("r-muted text-sm")
        banner = Banner()
        with ui.element("div").classes("r-form-grid"):
            email = text_input("Account to resume purchases for (e-mail)", kind="email", autocomplete="off")

        async def resume(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                user = await blocking.io_bound(transact, billing.admin_resume_purchases, signed_in.user,
                                               email.value or "")
            except billing.BillingAdminError as exc:
                banner.error(str(exc))
                return
            banner.success(f"{user.email} can buy credits again.")

        ui.button("Resume purchases", on_click=auth.action(resume)).props("unelevated no-caps")


def _load(session: object) -> tuple[list[billing.AdminOrder], list[billing.AdminOrder], list[object]]:
    return (billing.recent_orders(session, attention_only=True),  # type: ignore[arg-type]
            billing.recent_orders(session),  # type: ignore[arg-type]
            billing.recent_deliveries(session))  # type: ignore[arg-type]
