"""Support: a contact form for everyone, and for signed-in people their requests with the whole conversation.

Reachable signed out (``/support`` is on the gate's allow-list): a visitor leaves an e-mail address and gets a
plain confirmation; the answer comes by mail, so a visitor never sees a thread here. ``?ticket=<id>`` (the link in
the mails) opens that conversation for its owner; anybody else's id is simply not found.
"""

from __future__ import annotations

import uuid

from babel import Locale
from nicegui import context, ui

from components import auth, blocking
from components.forms import Banner, text_input
from components.frame import frame
from components.text import Text, heading, set_attributes, set_style
from rupali import dates
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import support
from rupali.services.sessions import SignedIn

SUBJECT_LABEL = "Subject"
MESSAGE_LABEL = "Message"
EMAIL_LABEL = "Your e-mail address"
NAME_LABEL = "Your name (optional)"
REPLY_LABEL = "Your reply"


def create() -> None:
    @ui.page("/support")
    async def support_page(ticket: str = "") -> None:
        viewer = auth.viewer()
        locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        async with frame("Support", active="/support"):
            heading("Support")
            if viewer is None:
                VisitorForm()
                return
            page = PersonSupport(viewer, locale, support.parse_id(ticket))
            await page.load(asked=bool(ticket))


def _field_errors(fields: dict[str, ui.element], banner: Banner, error: support.SupportError) -> None:
    """The message in the banner (announced) and under its field, with focus there; the form keeps its text."""
    banner.error(error.message)
    element = fields.get(error.field)
    if element is not None:
        element.error = error.message  # type: ignore[attr-defined]
        element.run_method("focus")


def _clear(fields: dict[str, ui.element], banner: Banner) -> None:
    banner.clear()
    for element in fields.values():
        element.error = None  # type: ignore[attr-defined]


def _message_field(label: str) -> ui.textarea:
    field = ui.textarea(label).props("outlined stack-label autogrow counter").classes("w-full")
    return set_attributes(field, maxlength=support.MESSAGE_MAX)


def _subject_field() -> ui.input:
    return text_input(SUBJECT_LABEL, max_length=support.SUBJECT_MAX)


# --- visitors ------------------------------------------------------------------------------------------------------

class VisitorForm:
    """The form with an e-mail address; afterwards a plain confirmation (replies reach visitors by mail)."""

    def __init__(self) -> None:
        self.ip = auth.client_ip()
        ui.label("Questions, problems, ideas: write to us and we answer by e-mail.").classes("r-lead")
        with ui.row().classes("items-center gap-1"):
            ui.label("Have an account?")
            ui.link("Sign in", "/signin?next=/support")
            ui.label("to follow your requests on this page.")
        with set_attributes(ui.element("section").classes("r-panel"), aria_label="Write to us") as self.panel:
            heading("Write to us", 2)
            self.banner = Banner()
            self.email = text_input(EMAIL_LABEL, kind="email", autocomplete="email", max_length=254)
            self.name = text_input(NAME_LABEL, autocomplete="name", max_length=support.NAME_MAX)
            self.subject = _subject_field()
            self.message = _message_field(MESSAGE_LABEL)
            self.fields: dict[str, ui.element] = {"email": self.email, "name": self.name, "subject": self.subject,
                                                  "message": self.message}
            ui.button("Send message", on_click=self._send).props("unelevated no-caps")
        self.done = ui.column().classes("r-panel w-full gap-2").mark("support-done")
        self.done.set_visibility(False)

    async def _send(self) -> None:
        _clear(self.fields, self.banner)
        form = support.ContactForm(subject=self.subject.value, message=self.message.value, email=self.email.value,
                                   name=self.name.value)
        try:
            ticket = await blocking.io_bound(transact, support.open_ticket, get_settings(), form, user=None, ip=self.ip)
        except support.SupportError as exc:
            _field_errors(self.fields, self.banner, exc)
            return
        auth.deliver_mail_soon()
        self.panel.set_visibility(False)
        with self.done:
            heading("Thank you", 2)
            ui.label(f"We received your message ({support.reference(ticket.id)}) and sent a confirmation to "
                     f"{ticket.email}. Our answer will come to that address by e-mail.")
        self.done.set_visibility(True)


# --- signed-in people ------------------------------------------------------------------------------------------------

class PersonSupport:
    """The person's requests with their conversations, and the form for a new one."""

    def __init__(self, viewer: SignedIn, locale: Locale, selected: uuid.UUID | None) -> None:
        self.viewer = viewer
        self.locale = locale
        self.selected = selected
        ui.label(f"Questions, problems, ideas: write to us. We answer here and by e-mail to {viewer.user.email}."
                 ).classes("r-lead")
        self.notice = Banner()  # "that request does not exist", and the confirmation of a new one
        self.tickets = ui.column().classes("w-full gap-4").mark("support-tickets")
        with set_attributes(ui.element("section").classes("r-panel w-full"), aria_label="Write to us"):
            heading("Write to us", 2)
            self.banner = Banner()
            self.subject = _subject_field()
            self.message = _message_field(MESSAGE_LABEL)
            self.fields: dict[str, ui.element] = {"subject": self.subject, "message": self.message}
            ui.button("Send message", on_click=auth.action(self._send)).props("unelevated no-caps")

    async def load(self, *, asked: bool = False) -> None:
        views = await blocking.io_bound(transact, support.tickets_of, get_settings(), self.viewer.user.id)
        if asked and not any(view.id == self.selected for view in views):
            self.notice.error("That support request does not exist.")  # another person's id included
            self.selected = None
        self._render(views)

    def _render(self, views: list[support.TicketView]) -> None:
        self.tickets.clear()
        if not views:
            return
        with self.tickets, set_attributes(ui.element("section").classes("r-panel w-full"), aria_label="Your requests"):
            heading("Your requests", 2)
            for view in views:
                TicketCard(self, view, opened=view.id == self.selected or len(views) == 1)

    async def _send(self, signed_in: SignedIn) -> None:
        _clear(self.fields, self.banner)
        self.notice.clear()
        form = support.ContactForm(subject=self.subject.value, message=self.message.value)
        try:
            ticket = await blocking.io_bound(transact, support.open_ticket, get_settings(), form, user=signed_in.user,
                                             ip=auth.client_ip())
        except support.SupportError as exc:
            _field_errors(self.fields, self.banner, exc)
            return
        auth.deliver_mail_soon()
        self.subject.value = self.message.value = ""
        self.selected = ticket.id
        self.notice.success(f"Thank you. We received your request {support.reference(ticket.id)} and sent a "
                            f"confirmation to {ticket.email}.")
        await self.load()


class TicketCard:
    """One request: subject, status, the conversation and a reply box."""

    def __init__(self, page: PersonSupport, view: support.TicketView, *, opened: bool) -> None:
        self.page = page
        self.view = view
        with set_attributes(ui.element("article").classes("r-session w-full flex flex-col gap-2"),
                            aria_label=f"Request {view.reference}"):
            Text("h3", view.subject).classes("r-card-title")
            ui.label(f"{view.status_label} · {view.reference} · last message "
                     f"{dates.moment(view.updated_at, page.locale)}").classes("r-muted text-sm")
            count = len(view.messages)
            with ui.expansion(f"Conversation ({count} message{'s' if count != 1 else ''})",
                              value=opened).classes("w-full r-expansion"):
                for message in view.messages:
                    with ui.column().classes("r-session gap-1 w-full"):
                        ui.label(f"{message.author} · {dates.moment(message.at, page.locale)}").classes(
                            "r-session-device")
                        set_style(Text("p", message.body), white_space="pre-wrap", margin="0")
                self.banner = Banner()
                self.reply = _message_field(REPLY_LABEL)
                if view.status == support.TicketStatus.CLOSED:
                    ui.label("This request is closed. Writing again opens it.").classes("r-muted text-sm")
                set_attributes(ui.button("Send reply", on_click=auth.action(self._send)).props("outline no-caps"),
                               aria_label=f"Send reply to request {view.reference}")

    async def _send(self, signed_in: SignedIn) -> None:
        _clear({"message": self.reply}, self.banner)
        try:
            await blocking.io_bound(transact, support.reply_as_person, get_settings(), signed_in.user, self.view.id,
                                    self.reply.value)
        except support.SupportError as exc:
            _field_errors({"message": self.reply}, self.banner, exc)
            return
        except support.TicketNotFound:  # erased by retention or with the account while the page was open
            self.banner.error("This request no longer exists.")
            return
        self.page.selected = self.view.id
        self.page.notice.success(f"Your reply to {self.view.reference} was sent.")
        await self.page.load()
