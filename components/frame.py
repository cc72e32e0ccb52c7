"""The page frame: header with logo and navigation, the page's content, footer, cookie notice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nicegui import app, context, ui
from nicegui.client import ClientConnectionTimeout

from components import auth, blocking, cookie_notice
from components.account_face import AccountFace
from components.brand import Brand
from components.link_list import LinkList, action, link
from rupali import cookies
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import visitors
from rupali.services.sessions import SignedIn

NAVIGATION = (("Studio", "/studio"), ("Gallery", "/gallery"), ("Billing", "/billing"), ("Privacy", "/privacy"))
log = logging.getLogger(__name__)
PREFETCH_PATIENCE = 6  # a prefetched page is kept this many times as long as one nobody connects to

FOOTER_LINKS = (
    ("Privacy Policy", "/legal/privacy"),
    ("Cookie Policy", "/legal/cookies"),
    ("Terms", "/legal/terms"),
    ("Sub-processors", "/legal/subprocessors"),
)


@dataclass(frozen=True)
class Frame:
    """What a page learns from the frame about its visitor."""

    visitor_id: str
    state: visitors.VisitorState


@asynccontextmanager
async def frame(title: str, *, active: str | None = None) -> AsyncIterator[Frame]:
    """Lay out one page: ``async with frame("Gallery", active="/gallery"):`` then add the content."""
    settings = get_settings()
    # Read the cookie before the browser storage (which gives a newcomer an id): without one, nothing is on record.
    newcomer = cookies.by_name(settings, cookies.SESSION_COOKIE).name not in context.client.request.cookies
    visitor_id = str(app.storage.browser["id"])
    state = visitors.newcomer(settings) if newcomer else \
        await blocking.io_bound(transact, visitors.state, settings, visitor_id)
    ui.page_title(f"{title} · Rupali")
    viewer = auth.viewer()
    # Off for a visitor who said no in the cookie settings, and for an account that switched statistics off on
    # /privacy: then the page carries no tracker at all.
    if settings.analytics_enabled and state.analytics_allowed and (viewer is None or viewer.user.analytics):
        _analytics_tag(settings.umami_script_url or "", settings.umami_website_id or "")

    _header(active, viewer, settings.billing_enabled)
    if state.needs_cookie_notice:
        # In the flow under the header, not floating over the page: it never hides content or a focused control,
        # and it comes where it is seen in the keyboard order.
        cookie_notice.create(visitor_id, state.cookie_policy_version, offer_analytics=settings.analytics_enabled)
    with ui.element("main").classes("r-main") as main:
        main.props('id="main" tabindex="-1"')
        yield Frame(visitor_id, state)
    _footer(settings.operator_name, settings.operator_email, viewer is not None, visitor_id, state,
            settings.analytics_enabled)
    # The HTML goes out now; the page stays in memory only if the browser opens its live connection. A GET that
    # never connects (a crawler, a link preview) is let go after a few seconds instead of NiceGUI's minute.
    client = context.client
    try:
        # NiceGUI waits without a limit for a page the browser only prefetched (it may be shown later); the outer
        # limit still ends that wait, so no builder waits for ever.
        await asyncio.wait_for(client.connected(timeout=settings.page_connect_seconds),
                               timeout=settings.page_connect_seconds * PREFETCH_PATIENCE)
    except (ClientConnectionTimeout, TimeoutError):
        log.debug("page %s was not connected in time: released", client.page.path)
        client.delete()
        raise asyncio.CancelledError from None  # nothing more to build for nobody; not an error


def _header(active: str | None, viewer: SignedIn | None, billing: bool) -> None:
    with ui.element("header").classes("r-header"):
        Brand()
        # with billing off nothing about money is shown
        LinkList([link(label, path, classes="r-nav-link r-nav-link--active" if path == active else "r-nav-link",
                       current=path == active)
                  for label, path in NAVIGATION if billing or path != "/billing"], label="Main").classes("r-nav")
        with ui.element("div").classes("r-account"):
            if viewer is None:
                ui.link("Sign in", "/signin").classes("r-nav-link")
                ui.button("Sign up", on_click=lambda: ui.navigate.to("/signup")).props(
                    "unelevated no-caps dense").classes("r-header-cta")
            else:
                _account_menu(viewer)


def _account_menu(viewer: SignedIn) -> None:
    user = viewer.user
    # Named by its content, so the name contains what is seen (the initials); the name is element data that the
    # browser shows as text (account_face.js), never part of a props string.
    with ui.button().props("flat round no-caps").classes("r-avatar-button") as button:
        AccountFace(initials=initials(user.full_name), name=f"Account menu for {user.full_name}",
                    src=f"/media/avatar/{user.id}?v={user.avatar_key.rsplit('/', 1)[-1]}" if user.avatar_key else None)

    def open_menu() -> None:
        # The menu is built on the first click, not on every page view; from then on Quasar opens and closes it.
        if button.default_slot.children and isinstance(button.default_slot.children[-1], ui.menu):
            return
        with button, ui.menu().props("anchor='bottom right' self='top right'") as menu:
            with ui.column().classes("r-menu-head gap-0"):
                ui.label(user.full_name).classes("r-menu-name")
                ui.label(user.email).classes("r-muted text-sm")
            ui.separator()
            ui.menu_item("Account", on_click=lambda: ui.navigate.to("/account"))
            if user.is_admin:
                ui.menu_item("Administration", on_click=lambda: ui.navigate.to("/admin"))
            ui.menu_item("Sign out", on_click=sign_out)
        menu.open()

    button.on_click(open_menu)


def sign_out() -> None:
    """Sign out with a POST (see ``rupaliSignOut`` in assets/rupali.js): only an HTTP answer can clear the cookie."""
    ui.run_javascript("rupaliSignOut()")


def initials(name: str) -> str:
    """Up to two initials of a name, "?" when there are none."""
    return "".join(part[0] for part in name.split()[:2]).upper() or "?"


def _footer(operator: str, email: str, signed_in: bool, visitor_id: str, state: visitors.VisitorState,
            analytics_enabled: bool) -> None:
    with ui.element("footer").classes("r-footer"):
        # A signed-in person's cookie choices live on /privacy; a visitor gets the settings dialog.
        choices = link("Cookie settings", "/privacy#choices") if signed_in else \
            action("Cookie settings", "cookie-settings", classes="r-footer-button")
        LinkList([*(link(label, path) for label, path in FOOTER_LINKS), choices, link("Support", "/support"),
                  link("Check an image", "/verify"),
                  link(email, f"mailto:{email}")], label="Legal",
                 on_action=lambda _: cookie_notice.settings_dialog(
                     visitor_id, state.cookie_policy_version, analytics_enabled=analytics_enabled,
                     analytics=state.analytics_allowed)).classes("r-footer-links")
        ui.label(f"© {operator}").classes("r-footer-note")


def _analytics_tag(script_url: str, website_id: str) -> None:
    # data-do-not-track: the tracker stays silent for browsers that ask not to be tracked.
    ui.add_head_html(
        f'<script defer src="{_attr(script_url)}" data-website-id="{_attr(website_id)}" '
        'data-do-not-track="true"></script>'
    )


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
