"""Watches every HTTP request once: the technical-log row, the Prometheus series and the access-log line.

An ASGI middleware (no ``BaseHTTPMiddleware``: streamed responses pass straight through). It sits inside
:class:`~rupali.client_address.ClientAddress`, so the address it sees is the resolved one, and outside the gate, so
refused requests are recorded too. The route template is read after the app has routed the request (Starlette
leaves the matched route in the scope); a request no route matched is recorded as ``(unmatched)``, never by its
path. Every response carries ``X-Request-ID``, the id its row is found by.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rupali import metrics, techlog
from rupali.clock import now
from rupali.config import Settings
from rupali.errors import reference_for
from rupali.techlog import UNMATCHED, RequestErrors

access_log = logging.getLogger("rupali.access")

# NiceGUI's scripts and styles, our own assets and the websocket transport tell nothing about anyone; the health
# check and the metrics scrape are the operator's own monitoring. Uploads under /_nicegui/ are people's actions.
NOT_LOGGED_PREFIXES = ("/_nicegui_ws/", "/assets/", "/_nicegui/")
NOT_LOGGED_PATHS = frozenset({"/healthz", "/metrics", "/favicon.ico"})


def route_template(scope: Scope, root_path: str = "") -> str:
    """The matched route's template, with the prefixes of mounted apps (``/api``) put back in front."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        # NiceGUI's websocket transport is an ASGI app of its own, not a route: name it by its prefix.
        requested = str(scope.get("path", ""))
        return next((prefix + "*" for prefix in NOT_LOGGED_PREFIXES if requested.startswith(prefix)), UNMATCHED)
    mounted = str(scope.get("root_path") or "")[len(root_path):]
    return (mounted + path)[:200]


class Observe:
    """ASGI middleware feeding the technical log, the metrics and the access log."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.log_requests = settings.technical_log
        self.count_requests = settings.metrics_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.log_requests or self.count_requests):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        logged = self.log_requests and not (path in NOT_LOGGED_PATHS or (
            path.startswith(NOT_LOGGED_PREFIXES) and "/upload/" not in path))
        started = time.perf_counter()
        request_id = secrets.token_hex(8)
        root_path = str(scope.get("root_path") or "")
        errors = RequestErrors()
        token = techlog.current_request.set(errors)
        scope.setdefault("state", {})  # the gate leaves the signed-in person here for us to read afterwards
        status, size, html = 500, 0, False

        async def watched(message: Message) -> None:
            nonlocal status, size, html
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                html = any(name.lower() == b"content-type" and value.startswith(b"text/html")
                           for name, value in headers)
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            elif message["type"] == "http.response.body":
                size += len(message.get("body") or b"")
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            # Logged here under its reference (once: the error page that follows finds the same reference).
            reference_for(exc, f"{scope.get('method')} {route_template(scope, root_path)}")
            raise
        finally:
            techlog.current_request.reset(token)
            seconds = time.perf_counter() - started
            route = route_template(scope, root_path)
            method = str(scope.get("method", ""))[:10]
            if self.count_requests:
                metrics.requests.labels(method, route, metrics.status_class(status)).inc()
                metrics.request_seconds.labels(route).observe(seconds)
            if logged:
                self._record(scope, method, route, status, seconds, size, html, request_id, errors)

    @staticmethod
    def _record(scope: Scope, method: str, route: str, status: int, seconds: float, size: int, html: bool,
                request_id: str, errors: RequestErrors) -> None:
        auth: Any = scope["state"].get("auth")
        user = getattr(auth, "user", None)
        client = scope.get("client")
        user_agent = next((value.decode("latin-1") for name, value in scope.get("headers") or []
                           if name == b"user-agent"), "")
        described = techlog.describe_client(user_agent[:512])
        kind = "api" if route.startswith("/api/") else "page" if html and method == "GET" else "http"
        duration_ms = round(seconds * 1000, 2)
        recorder = techlog.current()
        if recorder is not None:
            recorder.add({
                "at": now(), "kind": kind, "method": method, "route": route, "status": status,
                "duration_ms": duration_ms, "bytes": size, "ip": (client[0] if client else "")[:64],
                "browser": described.browser, "os": described.os, "device": described.device,
                "user_id": getattr(user, "id", None), "request_id": request_id,
                "error_type": errors.error_type, "trace_id": errors.trace_id,
            })
        # stdout carries no address, browser or person: those stay in the database, where retention reaches them.
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s %s %s %.1fms", method, route, status, duration_ms, extra={
                "request_id": request_id, "route": route, "status": status, "duration_ms": duration_ms,
                "bytes": size, "trace_id": errors.trace_id})
