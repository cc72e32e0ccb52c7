"""The administrator's overview. The gate answers 404 here to anyone who is not an admin."""

from __future__ import annotations

from nicegui import run, ui

from components.frame import frame
from components.text import heading
from rupali.db import transact
from rupali.services import admin


def create() -> None:
    @ui.page("/admin")
    async def admin_page() -> None:
        data = await run.io_bound(transact, admin.overview)
        async with frame("Administration", active="/admin"):
            heading("Administration")
            with ui.element("section").classes("r-panel"):
                heading(f"Accounts ({data.user_count})", 2)
                # Scrolls sideways on a phone: a named region that keyboards can reach.
                with ui.element("div").classes("r-table-scroll").props('role="region" tabindex="0" '
                                                                        'aria-label="Accounts: table"'):
                    _accounts_table(data)
            with ui.element("section").classes("r-panel"):
                heading("Mail outbox", 2)
                ui.label(", ".join(f"{count} {status}" for status, count in data.outbox.items()))
            with ui.element("section").classes("r-panel"):
                heading("Scheduled jobs", 2)
                for name, record in data.last_runs.items():
                    ui.label(f"{name}: {record.status} at {record.started_at:%Y-%m-%d %H:%M:%S} UTC — {record.detail}")


def _accounts_table(data: admin.Overview) -> None:
    ui.table(
        columns=[{"name": key, "label": label, "field": key, "align": "left"} for key, label in (
            ("email", "E-mail"), ("name", "Name"), ("role", "Role"), ("created", "Created"),
            ("verified", "Verified"), ("active", "Active"))],
        rows=[{"email": user.email, "name": user.full_name, "role": user.role,
               "created": f"{user.created_at:%Y-%m-%d}",
               "verified": "yes" if user.email_verified_at else "no",
               "active": "yes" if user.is_active else "no"} for user in data.users],
        row_key="email",
    ).props("flat dense").classes("w-full")
