"""Wires the web application: the one module in the core that imports NiceGUI.

``rupali serve`` calls :func:`serve`. NiceGUI's test fixture runs this file as ``__main__`` for every test,
which is why everything is registered by :func:`build` rather than at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from nicegui import app, run, ui
from nicegui.storage import Storage
from starlette.formparsers import MultiPartParser

import components
import pages
from components import page_json, signatures, theme
from rupali import api, body_limit, cookies, jobs, metrics, migrate, runtime, techlog, webhooks
from rupali.body_limit import BodyLimit
from rupali.client_address import ClientAddress
from rupali.config import Settings, ensure_data_dir, get_settings, storage_secret
from rupali.db import get_engine, session_scope
from rupali.gate import AuthGate
from rupali.observe import Observe
from rupali.runtime import Runtime
from rupali.scheduler import JobScheduler
from rupali.security_headers import SecurityHeaders
from rupali.services import health
from rupali.services import legal as legal_service

ASSETS_DIR = Path(components.__file__).resolve().parent.parent / "assets"


def prepare(settings: Settings) -> None:
    """Bring the database to the current schema and tidy up what a previous run left behind."""
    ensure_data_dir(settings)
    migrate.upgrade(get_engine(settings))
    migrate.analyze_new_tables(get_engine(settings))
    with session_scope(settings) as session:
        jobs.resolve_interrupted(session)
        legal_service.publish_all(session, settings)


def build(settings: Settings) -> JobScheduler:
    """Register assets, pages, health route and the scheduler on NiceGUI's app."""
    theme.apply()
    signatures.install()
    page_json.install()
    # Quasar's loading bar flashes during NiceGUI's own background requests, tells the person nothing, and is an
    # unnamed progressbar to screen readers: leave Ajax requests alone.
    app.config.quasar_config["loadingBar"]["skipHijack"] = True
    _share_nicegui_storage(settings)
    # Starlette runs the middleware added last first: the client address is settled before anything else looks at
    # it, every request (refused ones too) is observed for the technical log and the metrics, every response gets
    # the security headers, oversized bodies are refused before the gate reads a cookie.
    app.add_middleware(AuthGate)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders, settings=settings)
    app.add_middleware(Observe, settings=settings)
    app.add_middleware(ClientAddress, settings=settings)
    app.add_static_files("/assets", ASSETS_DIR, max_cache_age=3600)
    # Uploads within the body limit stay in memory: Starlette would spool anything over 1 MB to a temporary file,
    # and a file checked on /verify is never to touch the disk (the body limit bounds what memory this takes).
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, body_limit.upload_limit(settings))
    pages.register_all()

    scheduler = JobScheduler(settings)
    app.on_startup(scheduler.start)
    app.on_shutdown(scheduler.shutdown)

    services = Runtime.build(settings)
    runtime.install(services)
    techlog.install(services.technical_log)
    _install_metrics(settings, services)
    app.on_startup(services.start)
    app.on_shutdown(services.stop)
    app.mount("/api", api.build())
    webhooks.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        healthy, body = await run.io_bound(health.report, settings, scheduler_running=scheduler.running,
                                           scheduler_leading=scheduler.leading)
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_route(request: Request) -> Response:
        if not settings.metrics_enabled:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if not metrics.authorized(settings, request.headers.get("authorization")):
            return JSONResponse({"detail": "A valid bearer token is required."}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return Response(await run.io_bound(metrics.exposition), media_type=metrics.CONTENT_TYPE)

    return scheduler


# NiceGUI's own defaults, read as it reads them (this module may be run again, after an app changed them).
_NICEGUI_STORAGE = (os.environ.get("NICEGUI_REDIS_URL"), os.environ.get("NICEGUI_REDIS_KEY_PREFIX", "nicegui:"))


def _share_nicegui_storage(settings: Settings) -> None:
    """With Redis configured, NiceGUI keeps ``app.storage.user`` (and its other server-side storage created from now
    on) there, so it follows a person to whichever instance serves them. Rupali itself keeps no state in it (see
    tests/test_architecture.py); this is for anything that ever does."""
    if settings.redis_url is not None:
        Storage.redis_url = settings.redis_url.get_secret_value()
        Storage.redis_key_prefix = f"{settings.redis_key_prefix}nicegui:"
    else:  # as NiceGUI found it (its own NICEGUI_REDIS_URL, or files): an app built earlier may have changed it
        Storage.redis_url, Storage.redis_key_prefix = _NICEGUI_STORAGE


def _install_metrics(settings: Settings, services: Runtime) -> None:
    """Point the scrape-time gauges at this app's queue, technical log and database."""
    if not settings.metrics_enabled:
        return
    queue, recorder = services.queue, services.technical_log
    metrics.state.queue = lambda: (queue.waiting_count, queue.running_count)
    metrics.state.technical_log = (lambda: (recorder.pending, recorder.dropped)) if recorder is not None else None
    metrics.state.settings = settings


def run_options(settings: Settings) -> dict[str, Any]:
    """Options for ``ui.run`` shared by the server and the test fixture."""
    session_cookie = cookies.by_name(settings, cookies.SESSION_COOKIE)
    return {
        "title": "Rupali",
        "favicon": ASSETS_DIR / "favicon.svg",
        "dark": None,  # follow the system's light/dark setting
        "language": "en-US",
        "reload": False,
        "show": False,
        "show_welcome_message": False,
        "storage_secret": storage_secret(settings),
        # The cookie carries the anonymous visitor id the cookie notice is remembered by, so it lives as long
        # as that choice; Starlette re-issues it on every response, making the lifetime a sliding window.
        # Starlette's session cookie is always HttpOnly, as declared.
        "session_middleware_kwargs": {
            "session_cookie": session_cookie.name,
            "max_age": session_cookie.max_age,
            "same_site": session_cookie.same_site,
            "https_only": session_cookie.secure,
        },
    }


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Prepare the database, build the app and serve it until interrupted."""
    prepare(settings)
    build(settings)
    # X-Forwarded-For is resolved by ClientAddress (rupali/client_address.py), not by uvicorn, and uvicorn does not
    # announce itself in a Server header.
    ui.run(host=host, port=port, uvicorn_logging_level="warning", proxy_headers=False, server_header=False,
           **run_options(settings))


if __name__ == "__main__":
    _settings = get_settings()
    prepare(_settings)
    build(_settings)
    ui.run(**run_options(_settings))
