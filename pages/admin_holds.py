"""Evidence holds on the administrator's page of one person: place a hold with its reason, release it with another,
see past holds, and download the evidence bundle (``/admin/users/{user_id}/evidence.zip``).

The gate answers 404 under /admin to anyone who is not an administrator; each control and the download check the
role again, and the service (:mod:`rupali.services.holds`) once more, writing the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from nicegui import app, context, ui
from starlette.concurrency import run_in_threadpool

from components import auth, blocking
from components.forms import Banner
from components.tables import table
from components.text import Text, heading, set_attributes
from pages.errors import not_found_page
from rupali import dates, runtime
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import holds
from rupali.services.sessions import SignedIn

EVIDENCE_PATH = "/admin/users/{user_id}/evidence.zip"
PLACE_LABEL = "Reason for the hold (recorded; not shown to the person)"
RELEASE_LABEL = "Reason for releasing the hold (recorded)"
DOWNLOAD_LABEL = "Download evidence bundle (ZIP)"
PLACED = "The account is on hold: erasure and retention leave its data alone until the hold is released."
RELEASED = "The hold is released: retention, and a pending deletion, resume at their next run."


def create() -> None:
    @app.get(EVIDENCE_PATH, include_in_schema=False)
    async def evidence(request: Request, user_id: str) -> Response:
        signed_in = getattr(request.state, "auth", None)
        if signed_in is None or not signed_in.user.is_admin:  # the gate refused already; a second lock all the same
            return not_found_page(request)
        settings, storage = get_settings(), runtime.current().storage
        try:
            plan = await run_in_threadpool(transact, holds.prepare_evidence, settings, storage, signed_in.user,
                                           user_id)
        except holds.NotHeld as exc:
            return Response(str(exc), status_code=409, media_type="text/plain; charset=utf-8")
        except holds.HoldError:  # demoted since the gate looked
            return not_found_page(request)
        if plan is None:
            return not_found_page(request)  # unknown and malformed ids alike
        return StreamingResponse(holds.evidence_stream(settings, storage, plan), media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{plan.filename}"',
                                          "Cache-Control": "private, no-store"})


def evidence_path(user_id: uuid.UUID) -> str:
    return EVIDENCE_PATH.replace("{user_id}", str(user_id))


def hold_section(viewer: SignedIn, user_id: uuid.UUID) -> HoldSection:
    """The "Evidence hold" panel of the person's page; it loads itself (database work off the event loop)."""
    return HoldSection(viewer, user_id)


def _admin_action(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``auth.action`` for administrators: someone demoted while the page was open is sent to the start page."""
    async def checked(signed_in: SignedIn, *args: Any) -> None:
        if not signed_in.user.is_admin:
            ui.navigate.to("/")
            return
        await handler(signed_in, *args)

    return auth.action(checked)


class HoldSection:
    """The active hold (release it, download its evidence) or a form to place one, and the released holds."""

    def __init__(self, viewer: SignedIn, user_id: uuid.UUID) -> None:
        self.viewer, self.user_id = viewer, user_id
        self.locale = dates.visitor_locale(context.client.request.headers.get("accept-language"))
        section = set_attributes(ui.element("section").classes("r-panel w-full"), aria_label="Evidence hold")
        with section.mark("user-hold"):
            heading("Evidence hold", 2)
            ui.label("A hold keeps everything of this account, for an authority: while it lasts, neither erasure "
                     "(the person's own request included) nor retention deletes any of its data. The person is not "
                     "told, and the hold is not in their data download.").classes("r-muted")
            self.banner = Banner()  # outside the rebuilt part: the confirmation stays
            self.body = ui.column().classes("w-full gap-3")
            ui.timer(0.01, self.refresh, once=True)

    async def refresh(self) -> None:
        try:
            found = await blocking.io_bound(transact, holds.holds_of, self.viewer.user, self.user_id)
        except holds.HoldError as exc:
            self.body.clear()
            self.banner.error(str(exc))
            return
        self.body.clear()
        with self.body:
            if found is None:
                ui.label("This account no longer exists.")
                return
            if found.active is not None:
                self._active(found.active)
            else:
                self._place_form()
            self._past(found.past)

    def _active(self, hold: holds.HoldRow) -> None:
        with ui.element("dl").classes("r-params").mark("hold-active"):
            for label, value in (("On hold since", self._moment(hold.placed_at)), ("Placed by", hold.placed_by),
                                 ("Reason", hold.reason)):
                Text("dt", label)
                Text("dd", value)
        link = ui.link(DOWNLOAD_LABEL, evidence_path(self.user_id)).classes("r-button-link")
        set_attributes(link, download="")
        ui.label("The bundle holds every record of the account and its files, with a manifest of SHA-256 checksums. "
                 "Each download is recorded in the audit log.").classes("r-muted text-sm")
        reason = _reason_field(RELEASE_LABEL)

        async def release(signed_in: SignedIn) -> None:
            await self._act(RELEASED, holds.release_hold, signed_in, hold.id, reason.value)

        ui.button("Release hold", on_click=_admin_action(release)).props("outline no-caps")

    def _place_form(self) -> None:
        ui.label("Not on hold.").classes("r-muted")
        reason = _reason_field(PLACE_LABEL)

        async def place(signed_in: SignedIn) -> None:
            await self._act(PLACED, holds.place_hold, signed_in, self.user_id, reason.value)

        ui.button("Place hold", on_click=_admin_action(place)).props("unelevated no-caps")

    def _past(self, past: list[holds.HoldRow]) -> None:
        if not past:
            return
        heading("Released holds", 3)
        with table("Released holds", ("Placed", "Placed by", "Reason", "Released", "Released by",
                                      "Reason for release")):
            for hold in past:
                with ui.element("tr"):
                    Text("td", self._moment(hold.placed_at))
                    Text("td", hold.placed_by)
                    Text("td", hold.reason)
                    Text("td", self._moment(hold.released_at) if hold.released_at else "—")
                    Text("td", hold.released_by or "—")
                    Text("td", hold.release_reason or "—")

    async def _act(self, done: str, action: Callable[..., object], signed_in: SignedIn, target: object,
                   reason: str | None) -> None:
        self.banner.clear()
        try:
            await blocking.io_bound(transact, action, signed_in.user, target, reason)
        except holds.HoldError as exc:
            self.banner.error(str(exc))  # the form keeps what was typed
            return
        self.banner.success(done)
        await self.refresh()

    def _moment(self, value: Any) -> str:
        return dates.moment(value, self.locale)


def _reason_field(label: str) -> ui.textarea:
    field = ui.textarea(label).props("outlined stack-label autogrow").classes("w-full")
    set_attributes(field, maxlength=holds.REASON_MAX)
    return field
