"""Request bodies have a size limit, enforced while they are read, before anything parses them (413 beyond it).

A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is counted as it
arrives and cut off at the limit. Uploads get the upload limit plus room for the multipart envelope; everything
else (JSON for the API, NiceGUI's own small posts) gets a small one.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rupali.config import Settings
from rupali.services import profile

UPLOAD_PATH_PREFIX = "/_nicegui/client/"  # NiceGUI's upload route: /_nicegui/client/<client>/upload/<element>
MULTIPART_ROOM = 64 * 1024  # boundary lines and part headers around the file
VERIFY_PATH = "/api/v1/verify"  # checking an image's Content Credentials: the raw file is the body
SMALL_BODY = 1024 * 1024  # API JSON and everything else


class BodyTooLarge(Exception):
    """The body grew past the limit while it was being read."""


def limit_for(settings: Settings, path: str) -> int:
    """The largest body, in bytes, a request to ``path`` may carry."""
    if path.startswith(UPLOAD_PATH_PREFIX) and "/upload/" in path:
        return upload_limit(settings)
    if path == VERIFY_PATH:  # the image itself is the body
        return settings.upload_max_mb * 1024 * 1024
    return SMALL_BODY


def upload_limit(settings: Settings) -> int:
    """The largest upload body: the larger file limit (image-to-image and /verify, or profile pictures) plus the
    multipart envelope."""
    return max(settings.upload_max_mb * 1024 * 1024, profile.MAX_BYTES) + MULTIPART_ROOM


class BodyLimit:
    """ASGI middleware answering 413 to bodies over :func:`limit_for`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(self.settings, scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared[:20]) > limit
            except ValueError:
                too_large = False  # the server refuses a malformed length itself
            if too_large:
                await _refuse(limit)(scope, receive, send)
                return
        received = 0
        exceeded = refused = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body was cut off, whatever the app makes of that (a 400 for an unreadable body, say) is
            # replaced by the 413 that explains it.
            nonlocal refused
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start" and not refused:
                refused = True
                await _refuse(limit)(scope, receive, send)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not refused:
                await _refuse(limit)(scope, receive, send)

def _refuse(limit: int) -> PlainTextResponse:
    return PlainTextResponse(f"The request is too large: at most {limit // (1024 * 1024)} MB are accepted.",
                             status_code=413, headers={"connection": "close"})
