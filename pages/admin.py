"""The administrator's overview. The gate answers 404 here to anyone who is not an admin.

Accounts (with "Erase now" for a minor's account), the data-protection request queue with its deadlines, the mail
outbox and the scheduled jobs. Every action re-checks the session (``auth.action``) and the service re-checks the
role, so a page left open after a demotion can no longer act.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from babel import Locale
from nicegui import context, ui

from components import auth, blocking
from components.admin_nav import admin_nav
from components.choice_group import ChoiceGroup
from components.forms import Banner, text_input
from components.frame import frame
from components.text import Text, heading, set_attributes
from pages.admin_billing import BillingSection
from pages.admin_ops import dashboard_section
from rupali import dates
from rupali.clock import now
from rupali.config import get_settings
from rupali.db import transact
from rupali.models import User
from rupali.services import admin
from rupali.services.privacy_requests import LABELS, MAIL_KINDS
from rupali.services.sessions import SignedIn
from rupali.storage import from_settings as storage_from_settings

KIND_CHOICES = {kind.value: LABELS[kind] for kind in MAIL_KINDS}
CLOSE_CHOICES = {status.value: admin.STATUS_LABELS[status] for status in admin.CLOSING_STATUSES}


def create() -> None:
    @ui.page("/admin")
    async def admin_page() -> None:
        viewer = auth.viewer()
        assert viewer is not None  # gated
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        data = await blocking.io_bound(transact, admin.overview)
        async with frame("Administration", active="/admin"):
            heading("Administration")
            admin_nav("/admin")
            await dashboard_section()
            accounts = AccountsSection(viewer, locale)
            await accounts.refresh(data)
            requests = RequestsSection(locale)
            await requests.refresh()
            accounts.on_erased = requests.refresh  # an erasure is logged (and closed) as a request
            settings = get_settings()
            if settings.billing_enabled:
                credits = BillingSection(locale, creem=settings.creem_enabled)
                await credits.refresh()
            with ui.element("section").classes("r-panel"):
                heading("Mail outbox", 2)
                ui.label(", ".join(f"{count} {status}" for status, count in data.outbox.items()))
            with ui.element("section").classes("r-panel"):
                heading("Scheduled jobs", 2)
                for name, record in data.last_runs.items():
                    ui.label(f"{name}: {record.status} at {record.started_at:%Y-%m-%d %H:%M:%S} UTC — {record.detail}")


def _section(title: str, anchor: str) -> ui.element:
    return set_attributes(ui.element("section").classes("r-panel"), id=anchor, aria_label=title)


def _subheading(text: str) -> Text:
    # Quasar's <h3> is display-sized; inside a panel it is a small bold title.
    return heading(text, 3).classes("text-base font-bold m-0")


# --- accounts ----------------------------------------------------------------------------------------------------


class AccountsSection:
    """The accounts table with "Erase now" per account, and the accounts waiting out their grace period."""

    def __init__(self, viewer: SignedIn, locale: Locale) -> None:
        self.viewer, self.locale = viewer, locale
        self.section = _section("Accounts", "accounts")
        with self.section:
            self.content = ui.column().classes("w-full gap-3")
            self.dialog_host = ui.element("div")
        self.open_erase = auth.action(self._erase_dialog)
        self.on_erased: Callable[[], Awaitable[None]] | None = None

    async def refresh(self, data: admin.Overview | None = None) -> None:
        data = data or await blocking.io_bound(transact, admin.overview)
        self.content.clear()
        with self.content:
            heading(f"Accounts ({data.user_count})", 2)
            # Scrolls sideways on a phone: a named region that keyboards can reach.
            region = ui.element("div").classes("r-table-scroll w-full")
            set_attributes(region, role="region", tabindex="0", aria_label="Accounts: table")
            with region:
                self._table(data.users)
            _subheading(f"Pending deletion ({len(data.pending_deletion)})")
            if not data.pending_deletion:
                ui.label("No account is waiting out its grace period.").classes("r-muted")
            for account in data.pending_deletion:
                assert account.deletion_due_at is not None
                ui.label(f"{account.email} — erased on {dates.moment(account.deletion_due_at, self.locale)}")

    def _table(self, accounts: list[User]) -> None:
        # A plain <table> (not ui.table): its cells hold real, labelled buttons, which a ui.table's slots cannot.
        with ui.element("table").classes("r-table"):
            with ui.element("thead"), ui.element("tr"):
                for title in ("E-mail", "Name", "Role", "Created", "Verified", "Active", "Pending deletion",
                              "Actions"):
                    set_attributes(Text("th", title), scope="col")
            with ui.element("tbody"):
                for account in accounts:
                    with ui.element("tr"):
                        with ui.element("td"):  # the person's page: sessions, usage, suspension, role
                            ui.link(account.email, f"/admin/users/{account.id}")
                        for value in (account.full_name, account.role,
                                      f"{account.created_at:%Y-%m-%d}",
                                      "yes" if account.email_verified_at else "no",
                                      "yes" if account.is_active else "no",
                                      f"{account.deletion_due_at:%Y-%m-%d}" if account.deletion_due_at else "—"):
                            Text("td", str(value))
                        with ui.element("td"):
                            if account.id == self.viewer.user.id:
                                ui.label("you").classes("r-muted")
                            else:
                                set_attributes(ui.button("Erase now", on_click=lambda a=account: self.open_erase(a))
                                               .props("flat dense no-caps color=negative"),
                                               aria_label=f"Erase now: {account.email}")

    async def _erase_dialog(self, signed_in: SignedIn, account: User) -> None:
        self.dialog_host.clear()
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("r-confirm"):
            heading("Erase this account now?", 2).classes("r-card-title")
            ui.label(account.email).classes("r-mono")
            ui.label("Everything the account holds is deleted at once, without the grace period: images, prompts, "
                     "uploads, sessions and keys. Transaction records lose the link to the person. This cannot be "
                     "undone.")
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Reason").classes("r-field-label").props('aria-hidden="true"')
                reason = ChoiceGroup(admin.ERASE_REASONS, label="Reason")  # chosen each time: the record keeps it
            typed = text_input("Type the account's e-mail address to confirm", kind="email", autocomplete="off")
            banner = Banner()

            async def erase(signed_in: SignedIn) -> None:
                banner.clear()
                storage = storage_from_settings(get_settings())
                try:
                    await blocking.io_bound(transact, admin.erase_account_now, get_settings(), storage, signed_in.user,
                                            account.id, typed_email=typed.value or "", reason=reason.value)
                except admin.AdminError as exc:
                    banner.error(str(exc))
                    return
                dialog.close()
                ui.notify(f"{account.email} was erased.")
                # The request queue first: once the accounts table shows the erasure, everything shows it.
                if self.on_erased is not None:
                    await self.on_erased()
                await self.refresh()

            with ui.row().classes("gap-2 justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat no-caps")
                ui.button("Erase now", on_click=auth.action(erase)).props("unelevated no-caps color=negative")
        dialog.open()


# --- data-protection requests ------------------------------------------------------------------------------------


class RequestsSection:
    """The request queue (overdue, due within 7 days, later), recently closed ones, and logging a mailed request."""

    def __init__(self, locale: Locale) -> None:
        self.locale = locale
        with _section("Data-protection requests", "privacy-requests"):
            heading("Data-protection requests", 2)
            ui.label("Every request must be answered within the legal deadline. Requests made in the privacy "
                     "center appear here by themselves; log the ones that arrive by e-mail or letter below."
                     ).classes("r-muted")
            self.queue = ui.column().classes("w-full gap-3")
            self.dialog_host = ui.element("div")
            self._log_form()
        self.open_close = auth.action(self._close_dialog)

    async def refresh(self) -> None:
        queue = await blocking.io_bound(transact, admin.request_queue)
        self.queue.clear()
        with self.queue:
            for title, marker, rows in (("Overdue", "requests-overdue", queue.overdue),
                                        ("Due within 7 days", "requests-due-soon", queue.due_soon),
                                        ("Later", "requests-later", queue.later)):
                with ui.column().classes("w-full gap-0").mark(marker):
                    _subheading(f"{title} ({len(rows)})")
                    if not rows:
                        ui.label("None.").classes("r-muted")
                    for row in rows:
                        self._open_row(row)
            with ui.column().classes("w-full gap-0").mark("requests-closed"):
                _subheading("Recently closed")
                if not queue.recently_closed:
                    ui.label("None yet.").classes("r-muted")
                for row in queue.recently_closed:
                    self._closed_row(row)

    def _open_row(self, row: admin.RequestRow) -> None:
        with ui.row().classes("r-session items-center justify-between w-full"):
            with ui.column().classes("gap-0"):
                ui.label(f"{row.label} · {row.who}").classes("r-session-device")
                ui.label(f"Received {self._day(row.received_at.date())} · due {self._day(row.due_at.date())} · "
                         f"{row.deadline} · {row.source}").classes("r-muted text-sm")
                if row.note:
                    ui.label(f"Note: {row.note}").classes("text-sm")
            set_attributes(ui.button("Close", on_click=lambda r=row: self.open_close(r)).props("outline no-caps"),
                           aria_label=f"Close request: {row.label} from {row.who}")

    def _closed_row(self, row: admin.RequestRow) -> None:
        with ui.column().classes("r-session gap-0 w-full"):
            ui.label(f"{row.label} · {row.who}").classes("r-session-device")
            closed = self._day(row.closed_at.date()) if row.closed_at else "—"
            ui.label(f"{admin.STATUS_LABELS[row.status]} on {closed} · received {self._day(row.received_at.date())} "
                     f"· {row.source}").classes("r-muted text-sm")
            if row.outcome:
                ui.label(f"Outcome: {row.outcome}").classes("text-sm")

    def _day(self, value: date) -> str:
        return dates.medium(value, self.locale)

    async def _close_dialog(self, signed_in: SignedIn, row: admin.RequestRow) -> None:
        self.dialog_host.clear()
        with self.dialog_host, ui.dialog() as dialog, ui.card().classes("r-confirm"):
            heading("Close this request", 2).classes("r-card-title")
            ui.label(f"{row.label} · {row.who}")
            ui.label(f"Received {self._day(row.received_at.date())}, due {self._day(row.due_at.date())}."
                     ).classes("r-muted text-sm")
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Result").classes("r-field-label").props('aria-hidden="true"')
                status = ChoiceGroup(CLOSE_CHOICES, label="Result", value="done")
            outcome = ui.textarea("Outcome (what was done, or why not)").props("outlined stack-label autogrow"
                                                                               ).classes("w-full")
            banner = Banner()

            async def close(signed_in: SignedIn) -> None:
                banner.clear()
                try:
                    await blocking.io_bound(transact, admin.close_request, signed_in.user, row.id, status=status.value,
                                            outcome=outcome.value or "")
                except admin.AdminError as exc:
                    banner.error(str(exc))
                    return
                dialog.close()
                ui.notify("The request was closed.")
                await self.refresh()

            with ui.row().classes("gap-2 justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat no-caps")
                ui.button("Close request", on_click=auth.action(close)).props("unelevated no-caps")
        dialog.open()

    def _log_form(self) -> None:
        _subheading("Log a request that arrived by mail")
        banner = Banner()
        kind = ui.select(KIND_CHOICES, label="Kind of request").props("outlined stack-label").classes("w-full")
        contact = text_input("Who asked: e-mail or postal address (an account's e-mail links the account)")
        today = now().date().isoformat()
        received = ui.input("Received on", value=today).props("type=date outlined stack-label").classes("w-full")
        set_attributes(received, max=today)
        note = ui.textarea("Note (what was asked, how it arrived)").props("outlined stack-label autogrow"
                                                                          ).classes("w-full")

        async def log(signed_in: SignedIn) -> None:
            banner.clear()
            try:
                request = await blocking.io_bound(transact, admin.log_mailed_request, get_settings(), signed_in.user,
                                                  kind=kind.value, contact=contact.value or "",
                                                  received_on=received.value or "", note=note.value or "")
            except admin.AdminError as exc:
                banner.error(str(exc))  # the form keeps what was typed
                return
            contact.value = note.value = ""
            kind.value = None
            received.value = now().date().isoformat()
            banner.success(f"The request was logged. It is due on {self._day(request.due_at.date())}.")
            await self.refresh()

        ui.button("Log request", on_click=auth.action(log)).props("unelevated no-caps")
