"""The administrator's users: search the accounts, and one person's page with their sessions, usage, suspension,
role and what administrators did to the account. The gate answers 404 here to anyone who is not an admin.

Every control re-checks the session and the role (``admin_action``): a page left open after a demotion shows nothing
new and changes nothing. The services check the role once more and write the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from babel import Locale
from fastapi.responses import Response
from nicegui import context, ui

from components import auth, blocking
from components.admin_nav import admin_nav
from components.choice_group import ChoiceGroup
from components.forms import Banner, text_input
from components.frame import frame
from components.tables import table
from components.text import Text, heading, set_attributes
from pages.admin_holds import hold_section
from pages.errors import not_found_page
from rupali import dates
from rupali.config import get_settings
from rupali.db import transact
from rupali.models import AuthSession, Role
from rupali.services import admin
from rupali.services.sessions import SignedIn

ROLE_CHOICES = {role.value: label for role, label in admin.ROLE_LABELS.items()}
SEARCH_LABEL = "Search by e-mail, name or account id"
SUSPEND_LABEL = "Reason for the suspension (shown to the person when they sign in)"
UNSUSPEND_LABEL = "Reason for lifting the suspension (recorded)"
ROLE_REASON_LABEL = "Reason for the role change (recorded)"


def create() -> None:
    @ui.page("/admin/users")
    async def users_page(q: str = "", show: str = "all") -> None:
        locale = _locale()
        async with frame("Users · Administration", active="/admin"):
            heading("Users")
            admin_nav("/admin/users")
            listing = UserList(locale, q[:admin.SEARCH_MAX], show if show in admin.USER_FILTERS else "all")
            await listing.refresh()

    @ui.page("/admin/users/{user_id}")
    async def user_page(user_id: str) -> Response | None:
        viewer = auth.viewer()
        assert viewer is not None  # gated: only administrators get here
        detail = await blocking.io_bound(transact, admin.user_detail, get_settings(), user_id)
        if detail is None:
            return not_found_page(context.client.request)  # unknown and malformed ids alike
        async with frame("Account · Administration", active="/admin"):
            page = UserPage(viewer, _locale(), detail)
            page.render(detail)
        return None


def admin_action(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``auth.action`` for administrators: someone demoted while the page was open sees nothing more and is sent to
    the start page (the console's addresses answer 404 to them now)."""
    async def checked(signed_in: SignedIn, *args: Any) -> None:
        if not signed_in.user.is_admin:
            ui.navigate.to("/")
            return
        await handler(signed_in, *args)

    return auth.action(checked)


def _locale() -> Locale:
    return dates.visitor_locale(context.client.request.headers.get("accept-language"))


# --- the list ----------------------------------------------------------------------------------------------------


class UserList:
    """A search form and the accounts it finds, newest first."""

    def __init__(self, locale: Locale, query: str, show: str) -> None:
        self.locale = locale
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Find accounts"):
            with ui.element("div").classes("r-form-grid"):
                self.query = text_input(SEARCH_LABEL, value=query, max_length=admin.SEARCH_MAX)
                self.show = ui.select(admin.USER_FILTERS, label="Show", value=show).props(
                    "outlined stack-label").classes("w-full")
            self.banner = Banner()
            search = admin_action(self._search)
            self.query.on("keydown.enter", search)
            ui.button("Search", on_click=search).props("unelevated no-caps")
            self.results = ui.column().classes("w-full gap-2").mark("user-results")

    async def _search(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        self.banner.clear()
        try:
            found = await blocking.io_bound(transact, admin.search_users, self.query.value or "", show=self.show.value)
        except admin.AdminError as exc:
            self.banner.error(str(exc))  # the search keeps what was typed
            return
        self.results.clear()
        with self.results:
            if not found.rows:
                ui.label("No account matches.").classes("r-muted")
                return
            shown = len(found.rows)
            ui.label(f"{found.total} account{'s' if found.total != 1 else ''}" if shown == found.total
                     else f"The newest {shown} of {found.total} accounts: narrow the search to see the others."
                     ).classes("r-muted")
            with table("Accounts", ("E-mail", "Name", "Role", "Status", "Created")):
                for row in found.rows:
                    with ui.element("tr"):
                        with ui.element("td"):
                            ui.link(row.email, f"/admin/users/{row.id}")
                        Text("td", row.full_name)
                        Text("td", row.role)
                        Text("td", row.status)
                        Text("td", dates.medium(row.created_at.date(), self.locale))


# --- one person --------------------------------------------------------------------------------------------------


class UserPage:
    """The person's page; rebuilt from the database after each change, so it shows what was stored."""

    def __init__(self, viewer: SignedIn, locale: Locale, detail: admin.UserDetail) -> None:
        self.viewer, self.locale, self.user_id = viewer, locale, detail.user.id
        self.title = heading(detail.user.full_name)
        admin_nav("/admin/users")
        self.done = Banner()  # outside the rebuilt part: the confirmation stays
        self.content = ui.column().classes("w-full gap-4")

    async def reload(self) -> None:
        detail = await blocking.io_bound(transact, admin.user_detail, get_settings(), self.user_id)
        if detail is None:  # erased meanwhile
            self.content.clear()
            with self.content:
                ui.label("This account no longer exists.")
            return
        self.render(detail)

    def render(self, detail: admin.UserDetail) -> None:
        self.title.text = detail.user.full_name
        self.content.clear()
        with self.content:
            self._profile(detail)
            self._usage(detail)
            self._sessions(detail.sessions)
            if detail.user.id == self.viewer.user.id:
                with _panel("Actions"):
                    ui.label("This is your account: another administrator can suspend it or change its role."
                             ).classes("r-muted")
            else:
                self._suspension(detail)
                self._role(detail)
                hold_section(self.viewer, detail.user.id)
            self._history(detail)

    def _profile(self, detail: admin.UserDetail) -> None:
        user = detail.user
        rows = [("E-mail", user.email), ("Account id", str(user.id)), ("Role", admin.role_label(user.role)),
                ("Status", detail.status), ("Created", self._moment(user.created_at)),
                ("E-mail verified", self._moment(user.email_verified_at) if user.email_verified_at else "no"),
                ("Age confirmed", self._moment(user.age_confirmed_at) if user.age_confirmed_at else "no")]
        if user.suspended_at is not None:
            rows += [("Suspended", self._moment(user.suspended_at)),
                     ("Reason for the suspension", user.suspension_reason or "—")]
        if user.deletion_due_at is not None:
            rows.append(("Erased on", self._moment(user.deletion_due_at)))
        with _panel("Profile").mark("user-profile"), ui.element("dl").classes("r-params"):
            for label, value in rows:
                Text("dt", label)
                Text("dd", value)

    def _usage(self, detail: admin.UserDetail) -> None:
        rows = [("Generations", f"{detail.generations:,}"), ("Images", f"{detail.images:,}"),
                ("Active API keys", f"{detail.api_keys:,}")]
        if detail.credits_used is not None:
            rows += [("Credit balance", "no credit account yet" if detail.credits is None else f"{detail.credits:,}"),
                     (f"Credits used in the last {admin.USAGE_DAYS} days", f"{detail.credits_used:,}")]
        with _panel("Usage").mark("user-usage"), ui.element("dl").classes("r-params"):
            for label, value in rows:
                Text("dt", label)
                Text("dd", value)

    def _sessions(self, records: list[AuthSession]) -> None:
        with _panel(f"Signed in ({len(records)})", "Sessions").mark("user-sessions"):
            if not records:
                ui.label("Not signed in anywhere.").classes("r-muted")
            for record in records:
                with ui.column().classes("r-session gap-0 w-full"):
                    ui.label(record.device or "Unknown device").classes("r-session-device")
                    ui.label(f"Signed in {self._moment(record.created_at)} · last active "
                             f"{self._moment(record.last_seen_at)} · IP {record.ip_address or 'unknown'} · "
                             f"{record.method}").classes("r-muted text-sm")

    def _suspension(self, detail: admin.UserDetail) -> None:
        user = detail.user
        with _panel("Suspension").mark("user-suspension"):
            banner = Banner()
            if user.suspended_at is None:
                ui.label("A suspended account stops working at once: every session and API key ends, and the "
                         "person sees your reason when they try to sign in. It can be lifted later.").classes(
                    "r-muted")
                reason = text_input(SUSPEND_LABEL, max_length=admin.REASON_MAX)

                async def suspend(signed_in: SignedIn) -> None:
                    await self._act(banner, "The account is suspended; its sessions and API keys have ended.",
                                    admin.suspend_user, signed_in, reason=reason.value)

                ui.button("Suspend account", on_click=admin_action(suspend)).props(
                    "unelevated no-caps color=negative")
            else:
                ui.label("Lifting the suspension lets the person sign in again. Their ended sessions and revoked "
                         "API keys stay ended.").classes("r-muted")
                reason = text_input(UNSUSPEND_LABEL, max_length=admin.REASON_MAX)

                async def unsuspend(signed_in: SignedIn) -> None:
                    await self._act(banner, "The suspension is lifted.", admin.unsuspend_user, signed_in,
                                    reason=reason.value)

                ui.button("Lift suspension", on_click=admin_action(unsuspend)).props("unelevated no-caps")

    def _role(self, detail: admin.UserDetail) -> None:
        with _panel("Role").mark("user-role"):
            banner = Banner()
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Role").classes("r-field-label").props('aria-hidden="true"')
                role = ChoiceGroup(ROLE_CHOICES, label="Role", value=Role(detail.user.role).value)
            reason = text_input(ROLE_REASON_LABEL, max_length=admin.REASON_MAX)

            async def change(signed_in: SignedIn) -> None:
                await self._act(banner, f"The role is now: {ROLE_CHOICES.get(role.value or '', '').lower()}.",
                                admin.change_role, signed_in, role=role.value, reason=reason.value)

            ui.button("Change role", on_click=admin_action(change)).props("outline no-caps")

    def _history(self, detail: admin.UserDetail) -> None:
        with _panel("What administrators did", "Administrator actions").mark("user-history"):
            if not detail.history:
                ui.label("Nothing yet.").classes("r-muted")
                return
            with table("Administrator actions", ("When", "Administrator", "Action", "Reason", "Detail")):
                for row in detail.history:
                    with ui.element("tr"):
                        Text("td", self._moment(row.at))
                        Text("td", row.actor)
                        Text("td", row.label)
                        Text("td", row.reason or "—")
                        Text("td", row.detail or "—")

    async def _act(self, banner: Banner, done: str, action: Callable[..., object], signed_in: SignedIn,
                   **values: Any) -> None:
        banner.clear()
        self.done.clear()
        try:
            await blocking.io_bound(transact, action, signed_in.user, self.user_id, **values)
        except admin.AdminError as exc:
            banner.error(str(exc))  # the form keeps what was typed
            return
        await self.reload()
        self.done.success(done)  # after the page shows the stored change

    def _moment(self, value: Any) -> str:
        return dates.moment(value, self.locale)


def _panel(title: str, name: str | None = None) -> ui.element:
    section = set_attributes(ui.element("section").classes("r-panel w-full"), aria_label=name or title)
    with section:
        heading(title, 2)
    return section
