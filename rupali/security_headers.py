"""Security headers on every HTTP response, built once from the settings.

The Content-Security-Policy is as strict as NiceGUI allows. What it needs, and why:

- ``script-src 'unsafe-inline'``: NiceGUI's page template starts the app from inline ``<script>`` blocks that carry
  each page's element tree, and Quasar/Vue add inline handlers. No nonce can be threaded through NiceGUI's template.
- ``script-src 'unsafe-eval'``: NiceGUI compiles each component's template string (``template: `<div>…``) with
  Vue's runtime compiler in the browser, which uses ``new Function``.
- ``style-src 'unsafe-inline'``: Quasar positions menus, dialogs and tooltips with inline styles, and the design
  tokens arrive as an inline ``<style>``.
- ``img-src data: blob:``: Quasar's icons and spinners use data URIs; previews of a chosen file use blob URLs.
- ``connect-src 'self'``: NiceGUI's socket.io connection back to this origin (ws/wss included under 'self').
- The Umami origin is added to ``script-src`` and ``connect-src`` only when analytics are configured.

Everything else is closed: no plugins, no framing by other sites, forms post only here, no other origins.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rupali.config import Settings

HSTS_SECONDS = 365 * 24 * 3600


def content_security_policy(settings: Settings) -> str:
    extra = ""
    if settings.analytics_enabled and settings.umami_script_url:
        parts = urlsplit(settings.umami_script_url)
        extra = f" {parts.scheme}://{parts.netloc}"
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' 'unsafe-inline' 'unsafe-eval'{extra}",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": f"'self'{extra}",
        "media-src": "'self'",
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-src": "'none'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def headers_for(settings: Settings) -> list[tuple[str, str]]:
    """The headers every response carries under these settings."""
    headers = [
        ("content-security-policy", content_security_policy(settings)),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),  # for browsers that predate frame-ancestors
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
                               "browsing-topics=()"),
        ("cross-origin-opener-policy", "same-origin"),
    ]
    if settings.is_production:
        # Production is https-only (the settings refuse anything else); tell browsers to remember that.
        headers.append(("strict-transport-security", f"max-age={HSTS_SECONDS}"))
    return headers


class SecurityHeaders:
    """ASGI middleware adding :func:`headers_for` to every HTTP response (ones a route set itself are kept)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = headers_for(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
