"""Who is looking at the page, and actions that re-check the session before they run.

The gate (:mod:`rupali.gate`) resolves the session cookie for every HTTP request. A page that is already open
talks over the websocket instead, so each of its actions re-checks the session first: a session revoked
elsewhere ends at the next click, which lands on the sign-in page.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from nicegui import app, background_tasks, context, run, ui

from rupali import jobs
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import sessions
from rupali.services.sessions import SignedIn


def viewer() -> SignedIn | None:
    """The signed-in user of the page being built, as the gate resolved it."""
    return getattr(context.client.request.state, "auth", None)


def client_ip() -> str:
    request = context.client.request
    return request.client.host if request.client else ""


def user_agent() -> str:
    return context.client.request.headers.get("user-agent", "")[:512]


def visitor_id() -> str:
    return str(app.storage.browser["id"])


def action(handler: Callable[..., Awaitable[Any] | Any]) -> Callable[..., Awaitable[None]]:
    """Wrap an event handler of a signed-in page: it receives a freshly checked :class:`SignedIn` first."""
    built_for = viewer()
    path = context.client.request.url.path

    async def checked(*args: Any) -> None:
        fresh = None
        if built_for is not None:
            fresh = await run.io_bound(transact, sessions.by_id, get_settings(), built_for.session.id)
        if fresh is None:
            ui.navigate.to(f"/signin?next={quote(path, safe='')}")
            return
        result = handler(fresh, *args)
        if inspect.isawaitable(result):
            await result

    return checked


def deliver_mail_soon() -> None:
    """Deliver queued mail now rather than at the next scheduled run (the job stays the safety net)."""
    background_tasks.create(run.io_bound(jobs.run, "deliver_mail", trigger="event"), name="deliver-mail")
