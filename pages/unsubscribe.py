"""Unsubscribing from a mail topic with the signed link in the mail, without signing in (RFC 8058).

Mail clients that show an "Unsubscribe" button POST ``List-Unsubscribe=One-Click`` to the link: that request alone
switches the topic off. A person who follows the link in a browser gets a page with one button, because a GET must
never change anything (link scanners and prefetchers follow links in mail).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import PlainTextResponse
from nicegui import app, ui

from components import blocking
from components.forms import Banner, card
from components.frame import frame
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import preferences
from rupali.services.preferences import UNSUBSCRIBE_PATH


def create() -> None:
    @ui.page(UNSUBSCRIBE_PATH)
    async def unsubscribe_page(t: str = "") -> None:
        settings = get_settings()
        async with frame("Unsubscribe"):
            try:
                found = await blocking.io_bound(transact, preferences.read_token, settings, t)
            except preferences.InvalidLink as error:
                with card("This link does not work"):
                    ui.label(str(error))
                    ui.link("Open the privacy center", "/privacy")
                return
            topic = found.preference.label.lower()
            with card("Unsubscribe", f"Stop {topic} to {found.user.email}?"):
                banner = Banner()

                async def confirm() -> None:
                    try:
                        done = await blocking.io_bound(transact, preferences.unsubscribe, settings, t,
                                                       source="unsubscribe-page")
                    except preferences.InvalidLink as error:
                        banner.error(str(error))
                        return
                    banner.success(f"Done: no more {topic}." if done.changed else f"You receive no {topic}.")
                    button.disable()

                button = ui.button("Unsubscribe", on_click=confirm).props("unelevated no-caps").classes("w-full")
                ui.label("Mails about your account and its security are still sent. You can switch topics on again "
                         "in the privacy center.").classes("r-muted text-sm")

    @app.post(UNSUBSCRIBE_PATH, include_in_schema=False)
    async def one_click(request: Request, t: str = "") -> PlainTextResponse:
        # RFC 8058: the body is "List-Unsubscribe=One-Click"; the signed token in the URL names who and what.
        body = (await request.body())[:200]
        if b"List-Unsubscribe=One-Click" not in body:
            return PlainTextResponse("Expected List-Unsubscribe=One-Click.", status_code=400)
        try:
            await blocking.io_bound(transact, preferences.unsubscribe, get_settings(), t, source="one-click")
        except preferences.InvalidLink as error:
            return PlainTextResponse(str(error), status_code=400)
        return PlainTextResponse("Unsubscribed.")
