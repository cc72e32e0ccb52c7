"""The browser download of a data export, for its signed-in owner only (the privacy center links to it)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from nicegui import app
from starlette.concurrency import run_in_threadpool

from rupali import image_files
from rupali.db import transact
from rupali.services import exports

DOWNLOAD_PATH = "/privacy/exports/{export_id}/download"


def create() -> None:
    @app.get(DOWNLOAD_PATH, include_in_schema=False)
    async def download(request: Request, export_id: str) -> Response:
        # The gate admits only signed-in people; whose export it is, is checked here: anyone else's id (an
        # administrator's included) is a 404, exactly like an id that does not exist.
        found = await run_in_threadpool(transact, exports.download, request.state.auth.user, export_id)
        if found is exports.Unavailable.NOT_FOUND:
            return image_files.NOT_FOUND
        if found is exports.Unavailable.NOT_READY:
            return Response("This download is not ready yet. Go back to the privacy center to follow its progress.",
                            status_code=409, media_type="text/plain; charset=utf-8")
        if found is exports.Unavailable.GONE:
            return Response("This download has expired and its file has been deleted. You can ask for a new one in "
                            "the privacy center.", status_code=410, media_type="text/plain; charset=utf-8")
        assert isinstance(found, exports.Download)
        return exports.response(found)
