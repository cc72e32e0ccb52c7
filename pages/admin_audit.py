"""The audit log: every administrator action, newest first, filtered by action. Read-only: the app offers no way to
change or remove an entry. The gate answers 404 here to anyone who is not an admin."""

from __future__ import annotations

from babel import Locale
from nicegui import context, ui

from components import blocking
from components.admin_nav import admin_nav
from components.frame import frame
from components.tables import table
from components.text import Text, heading, set_attributes
from pages.admin_users import admin_action
from rupali import dates
from rupali.db import transact
from rupali.services import audit
from rupali.services.sessions import SignedIn

ALL = ""
LIMIT = 200


def create() -> None:
    @ui.page("/admin/audit")
    async def audit_page(action: str = ALL) -> None:
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        known = await blocking.io_bound(transact, audit.actions)
        async with frame("Audit log · Administration", active="/admin"):
            heading("Audit log")
            admin_nav("/admin/audit")
            log = AuditLog(locale, known, action if action in known else ALL)
            await log.refresh()


class AuditLog:
    """The filter and the newest entries of the chosen action."""

    def __init__(self, locale: Locale, known: list[str], action: str) -> None:
        self.locale = locale
        options = {ALL: "All actions"} | {name: audit.label(name) for name in known}
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Audit log entries"):
            ui.label("Who did what to whom, why and when. Entries cannot be changed or removed.").classes("r-muted")
            with ui.element("div").classes("r-form-grid"):
                self.action = ui.select(options, label="Action", value=action,
                                        on_change=admin_action(self._filter)).props(
                    "outlined stack-label").classes("w-full")
            self.entries = ui.column().classes("w-full gap-2").mark("audit-entries")

    async def _filter(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        chosen = self.action.value or None
        rows, total = await blocking.io_bound(transact, _load, chosen)
        self.entries.clear()
        with self.entries:
            if not rows:
                ui.label("No entries yet.").classes("r-muted")
                return
            ui.label(f"{total:,} entr{'ies' if total != 1 else 'y'}" if len(rows) == total
                     else f"The newest {len(rows)} of {total:,} entries.").classes("r-muted")
            with table("Audit log", ("When", "Administrator", "Action", "Target", "Reason", "Detail")):
                for row in rows:
                    with ui.element("tr"):
                        Text("td", dates.moment(row.at, self.locale))
                        Text("td", row.actor)
                        Text("td", row.label)
                        with ui.element("td"):
                            if row.target_user_id is not None:
                                ui.link(row.target or "—", f"/admin/users/{row.target_user_id}")
                            else:
                                ui.label(row.target or "—")
                        Text("td", row.reason or "—")
                        Text("td", row.detail or "—")


def _load(session: object, action: str | None) -> tuple[list[audit.AuditRow], int]:
    return (audit.recent(session, action=action, limit=LIMIT),  # type: ignore[arg-type]
            audit.count(session, action=action))  # type: ignore[arg-type]
