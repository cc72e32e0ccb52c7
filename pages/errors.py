"""What a visitor sees when something goes wrong: a plain page and a reference, never an exception's text.

The reference is written to the log beside the traceback, so a person can quote it and the operator can find
the cause. The same pages serve every mode, production or not.
"""

from __future__ import annotations

import contextlib

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import PlainTextResponse, Response
from nicegui import Client, app, context, core, ui
from nicegui.page import page
from starlette.exceptions import HTTPException as StarletteHTTPException

from components.text import heading
from rupali.errors import reference_for
from rupali.observe import route_template


def create() -> None:
    app.on_page_exception(_page_failed)
    app.on_exception(_action_failed)
    app.exception_handler(404)(_not_found)
    app.exception_handler(Exception)(_failed)


def not_found_page(request: Request) -> Response:
    """The one "does not exist" page, for unknown addresses and for places a visitor may not know about."""
    with Client(page(""), request=request) as client:
        _content("This page does not exist", "Check the address, or go back to the start.")
    return client.build_response(request, 404)


def _page_failed(exception: Exception) -> None:
    # Runs inside the error page NiceGUI builds for a page that raised.
    reference = reference_for(exception)
    _content("Something went wrong", f"Please try again. If it keeps happening, quote the reference {reference}.",
             reference)


def _action_failed(exception: Exception) -> None:
    # A button or other control whose handler raised: the person learns that it did not work, and how to report it.
    reference = reference_for(exception, _action_place())
    with contextlib.suppress(RuntimeError):  # outside any page (a background job) there is nobody to tell
        ui.notify(f"Something went wrong (reference {reference}). Please try again.", type="negative")


async def _not_found(request: Request, exception: Exception) -> Response:
    endpoint = request.scope.get("endpoint")
    if (endpoint is not None and endpoint is not core.app and not request.scope.get("nicegui_page_path")
            and isinstance(exception, StarletteHTTPException)):
        return await http_exception_handler(request, exception)  # an HTTP route's own 404 stays as it is
    return not_found_page(request)


async def _failed(request: Request, exception: Exception) -> Response:
    reference = reference_for(exception, f"{request.method} {route_template(request.scope)}")
    return PlainTextResponse(f"Something went wrong (reference {reference}).", status_code=500)


def _action_place() -> str:
    """The page template an action ran on (``action on /gallery/{image_id}``), or nothing outside a page."""
    try:
        return f"action on {context.client.page.path}"
    except RuntimeError:  # a background job: no page
        return ""


def _content(title: str, message: str, reference: str | None = None) -> None:
    with ui.element("main").classes("r-main r-error-page"):
        heading(title)
        ui.label(message).classes("r-lead")
        if reference:
            ui.label(f"Reference: {reference}").classes("r-muted").props('data-reference=""')
        ui.link("Go to the start page", "/")
