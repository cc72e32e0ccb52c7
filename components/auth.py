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

from nicegui import app, background_tasks, context, ui

from components import blocking
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
    """Wrap an event handler of a signed-in page: it receives a freshly checked :class:`SignedIn` first.

    NiceGUI passes the event only to handlers whose signature asks for one, so the wrapper's signature mirrors
    the handler's: ``handler(signed_in, event)`` gets the event, ``handler(signed_in)`` is called without.
    """
    built_for = viewer()
    path = context.client.request.url.path

    async def call(args: tuple[Any, ...]) -> None:
        fresh = None
        if built_for is not None:
            fresh = await blocking.io_bound(transact, sessions.by_id, get_settings(), built_for.session.id)
        if fresh is None:
            ui.navigate.to(f"/signin?next={quote(path, safe='')}")
            return
        result = handler(fresh, *args)
        if inspect.isawaitable(result):
            await result

    if _required_positional(handler) > 1:
        async def checked_with_arguments(argument: Any, *more: Any) -> None:
            await call((argument, *more))
        return checked_with_arguments

    async def checked() -> None:
        await call(())
    return checked


def _required_positional(handler: Callable[..., Any]) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for parameter in inspect.signature(handler).parameters.values()
               if parameter.kind in kinds and parameter.default is inspect.Parameter.empty)


def deliver_mail_soon() -> None:
    """Deliver queued mail now rather than at the next scheduled run (the job stays the safety net)."""
    background_tasks.create(blocking.io_bound(jobs.run, "deliver_mail", trigger="event"), name="deliver-mail")
