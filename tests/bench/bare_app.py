"""A minimal NiceGUI app, the yardstick of ``test_pages_bench.py``: run as a process of its own.

    python tests/bench/bare_app.py PORT

``/`` is a hello-world page; ``/grid`` is a 60-card grid built the idiomatic NiceGUI way (each card an image, a
caption and a checkbox). ``ui.run`` gets the options Rupali's ``rupali.web.run_options`` gives NiceGUI (storage
secret, session cookie, language, dark mode, no reload, no browser, no welcome message), so the difference measured
against Rupali is Rupali's own.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from nicegui import ui

CARDS = 60
# A 1x1 transparent PNG: the images cost no extra request, as the page itself is what is measured.
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5"
         "ErkJggg==")


@ui.page("/")
def hello() -> None:
    ui.label("Hello, world!")


@ui.page("/grid")
def grid() -> None:
    with ui.grid(columns=6).classes("w-full gap-2"):
        for number in range(1, CARDS + 1):
            with ui.card().tight():
                ui.image(PIXEL).classes("w-full aspect-square")
                ui.checkbox(f"Image {number}")


if __name__ in {"__main__", "__mp_main__"}:
    ui.run(port=int(sys.argv[1]), host="127.0.0.1", title="Bare", dark=None, language="en-US", reload=False,
           show=False, show_welcome_message=False, uvicorn_logging_level="warning",
           storage_secret="bench-bare-app-storage-secret-0123456789abcdef",
           session_middleware_kwargs={"session_cookie": "bare_session", "same_site": "lax", "https_only": False,
                                      "max_age": int(timedelta(days=365).total_seconds())})
