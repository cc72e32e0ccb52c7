"""The billing page: balance, credit packs, VAT number, orders with receipts, a chart of use and the ledger.

With billing off the page says generation is free and shows nothing about money (the navigation hides it too).
After a Creem checkout the browser lands on ``/billing/success``, which only reads: credits are granted by the
signed webhook alone, never from the redirect's query string (whose signature Creem documents two ways).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

from babel import Locale
from nicegui import context, ui

from components import auth, blocking
from components.choice_group import ChoiceGroup
from components.date_field import DateField
from components.forms import Banner, text_input
from components.frame import frame
from components.tables import table
from components.text import Text, heading, set_attributes
from rupali import dates, receipts, runtime
from rupali.config import Settings, get_settings
from rupali.db import transact
from rupali.models import CreditOrder, OrderStatus
from rupali.services import billing, orders, tax
from rupali.services.sessions import SignedIn

SUCCESS_POLL_SECONDS = 2.0
SUCCESS_POLL_LIMIT = 90  # about three minutes; Creem retries a failed delivery after 30 s, 1 min and 5 min
CHART_DAYS = {30: "30 days", 90: "90 days"}


def create() -> None:
    @ui.page("/billing")
    async def billing_page() -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        settings = get_settings()
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("Billing", active="/billing"):
            heading("Billing")
            if not settings.billing_enabled:
                ui.label("Image generation is free on this installation: there is nothing to pay and no balance "
                         "to watch.").classes("r-lead")
                return
            per_image = await _per_image()
            data = await blocking.io_bound(transact, _load, settings, viewer.user.id)
            with ui.element("div").classes("r-settings r-billing"):
                _balance_section(data.overview, per_image, settings)
                if settings.creem_enabled:
                    _packs_section(viewer, settings, data.overview)
                    VatSection(data.overview.vat_number)
                    _orders_section(data.orders, locale)
                UsageChart(viewer.user.id, data.usage)
                LedgerSection(viewer.user.id, data.entries, locale)

    @ui.page("/billing/success")
    async def success_page(order: str = "") -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        async with frame("Payment", active="/billing"):
            heading("Thank you")
            SuccessPanel(viewer.user.id, _uuid(order))


class _Loaded:
    def __init__(self, overview: billing.Overview, found_orders: list[CreditOrder], rows: list[billing.Row],
                 usage: list[tuple[date, int]]) -> None:
        self.overview, self.orders, self.entries, self.usage = overview, found_orders, rows, usage


def _load(session: object, settings: Settings, user_id: uuid.UUID) -> _Loaded:
    return _Loaded(billing.overview(session, settings, user_id),  # type: ignore[arg-type]
                   billing.orders(session, user_id) if settings.creem_enabled else [],  # type: ignore[arg-type]
                   billing.entries(session, user_id),  # type: ignore[arg-type]
                   billing.usage_per_day(session, user_id, 30))  # type: ignore[arg-type]


async def _per_image() -> int:
    """What one image costs at the studio's default settings (its first model, size and steps)."""
    current = runtime.current()
    catalogue = await current.providers.catalogue()
    if not catalogue:
        return 0
    info = catalogue[0].info
    width, height = info.sizes[0]
    return current.credits.quote(model_key=catalogue[0].key, width=width, height=height, steps=info.default_steps,
                                 count=1)


def _section(title: str, anchor: str, intro: str | None = None) -> ui.element:
    section = set_attributes(ui.element("section").classes("r-panel"), id=anchor, aria_label=title)
    with section:
        heading(title, 2)
        if intro:
            ui.label(intro).classes("r-muted")
    return section


def _credits(amount: int) -> str:
    return "1 credit" if amount == 1 else f"{amount:,} credits"


# --- balance -------------------------------------------------------------------------------------------------------

def _balance_section(overview: billing.Overview, per_image: int, settings: Settings) -> None:
    with _section("Balance", "balance"):
        with ui.row().classes("items-baseline gap-3"):
            ui.label(f"{overview.balance:,}").classes("r-balance").props('aria-hidden="true"')
            ui.label("credits" if overview.balance != 1 else "credit").classes("r-muted").props('aria-hidden="true"')
            ui.label(f"Balance: {_credits(overview.balance)}").classes("r-sr-only")
        if overview.balance < 0:
            ui.label("Your balance is below zero after a refund, so new images wait until it is back above zero."
                     ).classes("r-banner r-banner--error")
        elif per_image > 0:
            images = overview.balance // per_image
            ui.label(f"Enough for about {images:,} image{'s' if images != 1 else ''} at the studio's default "
                     f"settings ({_credits(per_image)} each).").classes("r-muted")
        else:
            ui.label("Images at the studio's default settings are free.").classes("r-muted")
        ways = []
        if overview.daily_allowance:
            ways.append(f"every day your balance is topped up to {_credits(overview.daily_allowance)} "
                        "(unused free credits do not roll over)")
        if settings.creem_enabled:
            ways.append("you can buy credit packs below")
        ways.append("an administrator can grant credits")
        ui.label("How credits arrive: " + "; ".join(ways) + ".").classes("r-muted text-sm")


# --- packs ---------------------------------------------------------------------------------------------------------

def _packs_section(viewer: SignedIn, settings: Settings, overview: billing.Overview) -> None:
    with _section("Buy credits", "packs",
                  "Payment is handled by Creem, our merchant of record: you pay on Creem's page, Creem charges any "
                  "VAT, and the credits arrive here as soon as Creem confirms the payment."):
        banner = Banner()
        if overview.purchases_frozen:
            banner.error("Purchases are paused for your account while a payment dispute is open. Contact "
                         f"{settings.operator_email} if this is unexpected.")
        with ui.element("div").classes("r-packs"):
            for pack in settings.packs:
                with ui.element("div").classes("r-pack"):
                    Text("div", pack.label).classes("r-pack-label")
                    ui.label(_credits(pack.credits)).classes("r-pack-credits")
                    ui.label(billing.price(pack.price_cents, pack.currency)).classes("r-muted")
                    button = ui.button("Buy", on_click=auth.action(_buy(pack.key, banner))).props("unelevated no-caps")
                    set_attributes(button, aria_label=f"Buy {pack.label}: {_credits(pack.credits)} for "
                                                      f"{billing.price(pack.price_cents, pack.currency)}")
                    if overview.purchases_frozen:
                        button.disable()


def _buy(pack_key: str, banner: Banner) -> Callable[[SignedIn], object]:
    async def buy(signed_in: SignedIn) -> None:
        banner.clear()
        current = runtime.current()
        try:
            url = await blocking.io_bound(orders.buy, get_settings(), current.creem, signed_in.user.id, pack_key)
        except orders.CheckoutError as exc:
            banner.error(str(exc))
            return
        ui.navigate.to(url)
    return buy


# --- VAT number ----------------------------------------------------------------------------------------------------

class VatSection:
    """The optional EU VAT number printed on receipts, checked for format on save."""

    def __init__(self, vat_number: str | None) -> None:
        intro = "Optional, for business customers in the EU: it is printed on your receipts. " + tax.OFFLINE_NOTE
        with _section("VAT number", "vat", intro):
            self.banner = Banner()
            self.field = text_input("EU VAT number", value=vat_number or "", max_length=40)
            self.field.props["hint"] = "For example DE136695976. Leave empty to remove it."
            with ui.row().classes("r-actions gap-2"):
                ui.button("Save VAT number", on_click=auth.action(self._save)).props("unelevated no-caps")

    async def _save(self, signed_in: SignedIn) -> None:
        self.banner.clear()
        try:
            saved = await blocking.io_bound(transact, tax.set_vat_number, get_settings(), signed_in.user.id,
                                            self.field.value or "")
        except tax.VatNumberError as exc:
            self.banner.error(str(exc))
            return
        self.field.value = saved or ""
        self.banner.success(f"Saved: {saved}." if saved else "VAT number removed.")


# --- orders --------------------------------------------------------------------------------------------------------

def _orders_section(found: list[CreditOrder], locale: Locale) -> None:
    with _section("Orders", "orders", "Your credit purchases with their receipts."):
        if not found:
            ui.label("No orders yet.").classes("r-muted")
            return
        with table("Orders", ("Date", "Pack", "Amount", "Status", "Receipt")):
            for order in found:
                with ui.element("tr"):
                    Text("td", dates.medium(order.created_at.date(), locale))
                    Text("td", f"{order.label} ({_credits(order.credits)})")
                    Text("td", billing.price(order.amount, order.currency))
                    Text("td", billing.ORDER_LABELS.get(order.status, str(order.status)))
                    with ui.element("td"):
                        if receipts.has_receipt(order):
                            when = dates.medium(order.created_at.date(), locale)
                            set_attributes(ui.link("Receipt (PDF)", f"/billing/receipts/{order.id}.pdf"),
                                           aria_label=f"Receipt for the order of {when} (PDF)")
                        else:
                            ui.label("—")


# --- usage chart ---------------------------------------------------------------------------------------------------

class UsageChart:
    """Credits spent on images per day, over the last 30 or 90 days, with a sentence saying the same in words."""

    def __init__(self, user_id: uuid.UUID, usage: list[tuple[date, int]]) -> None:
        self.user_id = user_id
        with _section("Credits used per day", "usage"):
            ChoiceGroup(CHART_DAYS, label="Period", value=30, on_change=self._period)
            self.summary = ui.label("").classes("r-muted").props('aria-live="polite"')
            self.chart = ui.echart(self._options(usage)).classes("r-usage-chart").props('aria-hidden="true"')
        self._summarise(usage)

    async def _period(self, event: object) -> None:
        days = int(getattr(event, "value", 30) or 30)
        usage = await blocking.io_bound(transact, billing.usage_per_day, self.user_id, days)
        self.chart.options.clear()
        self.chart.options.update(self._options(usage))
        self.chart.update()
        self._summarise(usage)

    def _summarise(self, usage: list[tuple[date, int]]) -> None:
        total = sum(spent for _, spent in usage)
        if total == 0:
            self.summary.text = f"No credits used in the last {len(usage)} days."
            return
        top_day, top = max(usage, key=lambda item: item[1])
        self.summary.text = (f"{_credits(total)} used in the last {len(usage)} days; the most on "
                             f"{top_day.isoformat()} ({_credits(top)}).")

    @staticmethod
    def _options(usage: list[tuple[date, int]]) -> dict[str, object]:
        return {
            "grid": {"left": 40, "right": 12, "top": 16, "bottom": 28},
            "tooltip": {"trigger": "axis"},
            "xAxis": {"type": "category", "data": [day.isoformat()[5:] for day, _ in usage],
                      "axisLabel": {"color": "#8a8a94"}},
            "yAxis": {"type": "value", "minInterval": 1, "axisLabel": {"color": "#8a8a94"},
                      "splitLine": {"lineStyle": {"color": "rgba(138,138,148,0.25)"}}},
            "series": [{"type": "bar", "name": "Credits used", "data": [spent for _, spent in usage],
                        "itemStyle": {"color": "#8b5cf6", "borderRadius": [3, 3, 0, 0]}}],
        }


# --- ledger --------------------------------------------------------------------------------------------------------

class LedgerSection:
    """Every change to the balance, newest first, filtered by kind and date."""

    def __init__(self, user_id: uuid.UUID, rows: list[billing.Row], locale: Locale) -> None:
        self.user_id, self.locale, self.limit = user_id, locale, billing.PAGE
        with _section("Credit history", "history", "Every change to your balance, newest first."):
            with ui.row().classes("r-filters gap-2 items-end"):
                options = {"": "All kinds", **billing.KIND_LABELS}
                self.kind = ui.select(options, value="", label="Kind", on_change=self._refilter).props(
                    "outlined dense stack-label").classes("r-filter-kind")
                self.since = DateField("From", locale, self._refilter)
                self.until = DateField("Until", locale, self._refilter)
            self.count = ui.label("").classes("r-muted text-sm").props('aria-live="polite"')
            self.table = ui.column().classes("w-full gap-2")
            self.more = ui.button("Show more", on_click=self._show_more).props("flat no-caps")
        self._show(rows)

    async def _refilter(self, *_: object) -> None:
        self.limit = billing.PAGE
        await self._reload()

    async def _show_more(self) -> None:
        self.limit += billing.PAGE
        await self._reload()

    async def _reload(self) -> None:
        since, until = _day(self.since.value), _day(self.until.value)
        if since and until and since > until:
            since, until = until, since  # a reversed range means the same days
        rows = await blocking.io_bound(transact, billing.entries, self.user_id, kind=self.kind.value or None,
                                       since=since, until=until, limit=self.limit)
        self._show(rows)

    def _show(self, rows: list[billing.Row]) -> None:
        self.table.clear()
        self.more.set_visibility(len(rows) >= self.limit)
        self.count.text = "No entries match." if not rows else (
            f"Showing {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}.")
        if not rows:
            return
        with self.table, table("Credit history", ("When", "What", "Change", "Balance", "Details")):
            for row in rows:
                with ui.element("tr"):
                    Text("td", dates.medium(row.created_at.date(), self.locale) + f" {row.created_at:%H:%M}")
                    Text("td", billing.KIND_LABELS.get(row.kind, row.kind))
                    Text("td", f"{row.delta:+,}").classes("r-num")
                    Text("td", f"{row.balance_after:,}").classes("r-num")
                    Text("td", row.reference or "—")


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# --- after checkout ------------------------------------------------------------------------------------------------

class SuccessPanel:
    """Says what became of the order, re-reading it until Creem's webhook has granted the credits."""

    def __init__(self, user_id: uuid.UUID, order_id: uuid.UUID | None) -> None:
        self.user_id, self.order_id, self.polls = user_id, order_id, 0
        with ui.element("section").classes("r-panel r-settings"):
            self.status = ui.label("").classes("r-lead").props('role="status" aria-live="polite"')
            with ui.row().classes("gap-3"):
                ui.link("Back to billing", "/billing")
                ui.link("Go to the studio", "/studio")
        self.timer = ui.timer(SUCCESS_POLL_SECONDS, self._poll, active=False)
        ui.timer(0.01, self._poll, once=True)

    async def _poll(self) -> None:
        order = None
        if self.order_id is not None:
            order = await blocking.io_bound(transact, billing.order, self.user_id, self.order_id)
        self.polls += 1
        if order is None:
            self.status.text = "We could not find that order. Your orders are listed on the billing page."
            self.timer.deactivate()
        elif order.status == OrderStatus.PENDING:
            self.status.text = ("Thank you! Creem is confirming your payment; your credits arrive in a moment and "
                                "this page updates by itself.")
            if self.polls >= SUCCESS_POLL_LIMIT:
                self.status.text = ("Your payment has not been confirmed yet. Credits are added as soon as Creem "
                                    "confirms it, even if you leave this page; the billing page shows the order.")
                self.timer.deactivate()
            else:
                self.timer.activate()
        elif order.status == OrderStatus.FAILED:
            self.status.text = "This checkout could not be started, so nothing was charged."
            self.timer.deactivate()
        elif order.status == OrderStatus.FLAGGED:
            self.status.text = ("Your payment arrived but did not match the order, so an administrator is checking it "
                                "before the credits are added.")
            self.timer.deactivate()
        else:
            self.status.text = f"{_credits(order.credits)} added to your balance. The receipt is on the billing page."
            self.timer.deactivate()


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
