"""The essential-cookies notice shown until the visitor acknowledges the current cookie policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.events import GenericEventArguments

from components import blocking
from components.text import heading
from rupali import legal
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import consent

TITLE = "Essential cookies only"
OK = "OK, got it"
ANALYTICS = "Cookie-less usage statistics (Umami)"


class CookieNotice(ui.element, component="cookie_notice.js"):
    """The notice as one element (see cookie_notice.js); ``on_acknowledge(analytics)`` runs when it is accepted."""

    def __init__(self, text: str, *, offer_analytics: bool, on_acknowledge: Callable[[bool], Any]) -> None:
        super().__init__()
        self._props.update(title=TITLE, text=text, policyHref="/legal/cookies", offerAnalytics=offer_analytics,
                           analyticsLabel=ANALYTICS, okLabel=OK)

        def acknowledged(event: GenericEventArguments) -> Any:
            analytics = event.args.get("analytics") if isinstance(event.args, dict) else None
            if not isinstance(analytics, bool):
                return None  # not what the notice sends: nothing is recorded
            return on_acknowledge(analytics if offer_analytics else True)
        self.on("acknowledge", acknowledged)

    def _displayed_contents(self, *, only_visible: bool) -> list[Any]:
        """What the notice shows as text, for NiceGUI's element filter (``user.should_see``)."""
        props = self._props
        return [props["title"], props["text"], "Cookie Policy", props["analyticsLabel"] if props["offerAnalytics"]
                else None, props["okLabel"]]


def create(visitor_id: str, policy_version: str, *, offer_analytics: bool) -> None:
    """Show the notice as a non-blocking banner; acknowledging it records the choice and hides it."""
    text = (f"Rupali uses {legal.cookie_count(get_settings())}: they keep you signed in and remember this choice. "
            "No advertising or tracking cookies.")

    def acknowledge(analytics: bool) -> Any:
        return _acknowledge(notice, visitor_id, policy_version, analytics)
    notice = CookieNotice(text, offer_analytics=offer_analytics, on_acknowledge=acknowledge)


async def _acknowledge(notice: ui.element | None, visitor_id: str, policy_version: str, analytics: bool) -> None:
    try:
        await blocking.io_bound(transact, consent.record, get_settings(), visitor_id, policy_version,
                                analytics=analytics)
    except consent.InvalidVisitor:
        ui.notify("Your browser did not keep our cookie, so the choice could not be saved.", type="warning")
        return
    # The tracker reads this flag, so switching analytics off also silences a script already on the page.
    ui.run_javascript("localStorage.removeItem('umami.disabled')" if analytics
                      else "localStorage.setItem('umami.disabled', '1')")
    if notice is not None:
        notice.delete()


def settings_dialog(visitor_id: str, policy_version: str, *, analytics_enabled: bool, analytics: bool) -> None:
    """The footer's "Cookie settings" for visitors: the same choice as the notice, at any time."""
    with ui.dialog() as dialog, ui.card().classes("r-dialog"):
        heading("Cookie settings", 2)
        ui.label(f"Rupali uses {legal.cookie_count(get_settings())}, which are essential: they keep you signed in "
                 "and remember this choice. There is nothing to switch off there.")
        switch = None
        if analytics_enabled:
            switch = ui.switch("Cookie-less usage statistics (Umami)", value=analytics)
            ui.label("Counts page views without cookies or identifiers. Off means our pages carry no statistics "
                     "script for you.").classes("r-muted text-sm")
        else:
            ui.label("This installation runs no usage statistics.").classes("r-muted text-sm")
        ui.link("Cookie Policy", "/legal/cookies")
        with ui.row().classes("justify-end w-full gap-2"):
            ui.button("Close", on_click=dialog.close).props("flat no-caps")

            async def save() -> None:
                await _acknowledge(None, visitor_id, policy_version, switch.value if switch else True)
                dialog.close()
                ui.notify("Your cookie settings were saved.")

            ui.button("Save", on_click=save).props("unelevated no-caps")
    dialog.open()
