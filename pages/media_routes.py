"""Image files for the browser: originals (as downloads) and thumbnails, only ever to their owner (or an admin)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from nicegui import app
from starlette.concurrency import run_in_threadpool

from rupali import image_files, runtime, zips
from rupali.config import get_settings
from rupali.db import transact
from rupali.services import uploads


def create() -> None:
    @app.get("/media/images/{image_id}", include_in_schema=False)
    async def original(request: Request, image_id: str, parameters: int | None = None) -> Response:
        return await image_files.original(runtime.current().storage, request.state.auth.user, image_id,
                                          request.headers.get("range"),
                                          parameters=None if parameters is None else bool(parameters),
                                          redirect_seconds=image_files.redirect_seconds(get_settings()))

    @app.get("/media/thumbnails/{image_id}", include_in_schema=False)
    async def thumbnail(request: Request, image_id: str) -> Response:
        return await image_files.thumbnail(runtime.current().storage, request.state.auth.user, image_id,
                                           request.headers.get("if-none-match"),
                                           redirect_seconds=image_files.redirect_seconds(get_settings()))

    @app.get("/media/zip/{ticket}", include_in_schema=False)
    async def zip_download(request: Request, ticket: str) -> Response:
        user = request.state.auth.user
        current = runtime.current()
        image_ids = current.downloads.redeem(ticket, user.id)
        if image_ids is None:
            return image_files.NOT_FOUND
        return await zips.download(current.storage, user, image_ids)

    @app.get("/media/uploads/{upload_id}", include_in_schema=False)
    async def upload(request: Request, upload_id: str) -> Response:
        storage = runtime.current().storage
        data = await run_in_threadpool(transact, uploads.owned_bytes, storage, request.state.auth.user, upload_id)
        if data is None:
            return image_files.NOT_FOUND
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

