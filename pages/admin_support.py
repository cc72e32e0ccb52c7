"""The administrators' support inbox: tickets by status, newest activity first; one ticket's conversation with a
reply box (the reply is mailed to the ticket's address) and close / reopen. The gate answers 404 here to anyone who
is not an admin; every control re-checks the role (``admin_action``) and the service audits each action.

A ticket opens with ``?ticket=<id>`` rather than a path of its own: the inbox and the ticket are one page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babel import Locale
from nicegui import context, ui

from components import auth, blocking
from components.admin_nav import admin_nav
from components.forms import Banner
from components.frame import frame
from components.tables import table
from components.text import Text, heading, set_attributes, set_style
from pages.admin_users import admin_action
from rupali import dates
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import support
from rupali.services.sessions import SignedIn
from rupali.services.support import TicketStatus

PATH = "/admin/support"
ALL = "all"
REPLY_LABEL = "Reply (mailed to the person)"


def create() -> None:
    @ui.page(PATH)
    async def support_inbox(status: str = TicketStatus.OPEN.value, ticket: str = "") -> None:
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("Support · Administration", active="/admin"):
            heading("Support")
            admin_nav(PATH)
            if ticket:
                detail = TicketDetail(locale, ticket)
                await detail.refresh()
                return
            inbox = SupportInbox(locale, status if status == ALL or support.parse_status(status) else
                                 TicketStatus.OPEN.value)
            await inbox.refresh()


class SupportInbox:
    """The status filter and the tickets it shows."""

    def __init__(self, locale: Locale, status: str) -> None:
        self.locale = locale
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Support tickets"):
            ui.label("Open tickets wait for an answer; answered ones wait for the person.").classes("r-muted")
            with ui.element("div").classes("r-form-grid"):
                options = {ALL: "All tickets"} | {choice.value: support.STATUS_LABELS[choice]
                                                  for choice in TicketStatus}
                self.status = ui.select(options, label="Status", value=status,
                                        on_change=admin_action(self._filter)).props(
                    "outlined stack-label").classes("w-full")
            self.rows = ui.column().classes("w-full gap-2").mark("support-inbox")

    async def _filter(self, _signed_in: SignedIn) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        status = support.parse_status(self.status.value)
        found = await blocking.io_bound(transact, support.inbox, status=status)
        self.rows.clear()
        with self.rows:
            ui.label(" · ".join(f"{support.STATUS_LABELS[choice]}: {found.counts[choice]}"
                                for choice in TicketStatus)).classes("r-muted")
            if not found.rows:
                ui.label("No tickets here.").classes("r-muted")
                return
            with table("Support tickets", ("Subject", "From", "Status", "Messages", "Last message")):
                for row in found.rows:
                    with ui.element("tr"):
                        with ui.element("td"):
                            ui.link(row.subject, f"{PATH}?ticket={row.id}")
                            Text("span", f" {row.reference}").classes("r-muted")
                        Text("td", _who(row.name, row.email, row.user_id is None))
                        Text("td", row.status_label)
                        Text("td", str(row.messages))
                        Text("td", dates.moment(row.updated_at, self.locale))


class TicketDetail:
    """One ticket: who wrote, the conversation, a reply box, close or reopen."""

    def __init__(self, locale: Locale, ticket_id: str) -> None:
        self.locale = locale
        self.ticket_id = ticket_id
        ui.link("All tickets", PATH)
        self.banner = Banner()
        self.body = ui.column().classes("w-full gap-4").mark("support-ticket")

    async def refresh(self) -> None:
        view = await blocking.io_bound(transact, support.ticket_for_admin, self.ticket_id)
        self.body.clear()
        with self.body:
            if view is None:
                ui.label("This ticket does not exist.").classes("r-lead")  # deleted by retention, or a bad link
                return
            with set_attributes(ui.element("section").classes("r-panel w-full"), aria_label=f"Ticket {view.reference}"):
                Text("h2", view.subject)
                with ui.element("dl").classes("r-params"):
                    Text("dt", "From")
                    with ui.element("dd"):
                        if view.user_id is not None:
                            ui.link(_who(view.name, view.email, False), f"/admin/users/{view.user_id}")
                        else:
                            ui.label(_who(view.name, view.email, True))
                    for term, value in (("Status", view.status_label), ("Reference", view.reference),
                                        ("Opened", dates.moment(view.created_at, self.locale)),
                                        ("Last message", dates.moment(view.updated_at, self.locale))):
                        Text("dt", term)
                        Text("dd", value)
                for message in view.messages:
                    with ui.column().classes("r-session gap-1 w-full"):
                        who = f"Reply by {message.author}" if message.from_staff else message.author
                        ui.label(f"{who} · {dates.moment(message.at, self.locale)}").classes("r-session-device")
                        set_style(Text("p", message.body), white_space="pre-wrap", margin="0")
            with set_attributes(ui.element("section").classes("r-panel w-full"), aria_label="Answer"):
                heading("Answer", 2)
                ui.label(f"The reply is mailed to {view.email}"
                         + (" and shown on the person's support page." if view.user_id else ".")).classes(
                    "r-muted")
                self.reply = ui.textarea(REPLY_LABEL).props("outlined stack-label autogrow counter").classes(
                    "w-full")
                set_attributes(self.reply, maxlength=support.MESSAGE_MAX)
                with ui.row().classes("gap-2"):
                    ui.button("Send reply", on_click=admin_action(self._reply)).props("unelevated no-caps")
                    if view.status == TicketStatus.CLOSED:
                        ui.button("Reopen ticket", on_click=admin_action(self._reopen)).props("outline no-caps")
                    else:
                        ui.button("Close ticket", on_click=admin_action(self._close)).props("outline no-caps")

    async def _reply(self, signed_in: SignedIn) -> None:
        self.banner.clear()
        self.reply.error = None
        try:
            ticket = await blocking.io_bound(transact, support.reply, get_settings(), signed_in.user, self.ticket_id,
                                             self.reply.value)
        except support.SupportError as exc:
            self.banner.error(exc.message)  # the reply box keeps what was typed
            if exc.field == "reply":
                self.reply.error = exc.message
            return
        auth.deliver_mail_soon()
        self.banner.success(f"Reply sent to {ticket.email}. The ticket is answered.")
        await self.refresh()

    async def _close(self, signed_in: SignedIn) -> None:
        await self._status(signed_in, support.close, "The ticket is closed.")

    async def _reopen(self, signed_in: SignedIn) -> None:
        await self._status(signed_in, support.reopen, "The ticket is open again.")

    async def _status(self, signed_in: SignedIn, change: Callable[..., Any], done: str) -> None:
        self.banner.clear()
        try:
            await blocking.io_bound(transact, change, signed_in.user, self.ticket_id)
        except support.SupportError as exc:
            self.banner.error(exc.message)
            return
        self.banner.success(done)
        await self.refresh()


def _who(name: str, email: str, visitor: bool) -> str:
    person = f"{name} <{email}>" if name else email
    return f"{person} (visitor, no account)" if visitor else person
