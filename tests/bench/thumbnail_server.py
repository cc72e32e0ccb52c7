"""A small server for the gallery benchmark: the authorized thumbnail route next to plain ``StaticFiles``.

Run as its own process (``python -m tests.bench.thumbnail_server PORT``) so the load generator in the test process
does not share a GIL with the server. Settings come from the environment, as in the app.

* ``/media/thumbnails/{image_id}`` — behind the real :class:`~rupali.gate.AuthGate` (the ``rupali_auth`` cookie is
  resolved through ``sessions.resolve``), answered by :func:`rupali.image_files.thumbnail` exactly as
  ``pages/media_routes.py`` does, with ``rupali.storage.from_settings`` standing in for ``runtime.current().storage``
  (the local folder, or a bucket with ``RUPALI_MEDIA_BACKEND=s3``) and ``RUPALI_MEDIA_DELIVERY`` honoured.
* ``/assets/bench-thumbnails/<key below thumbnails/>`` — Starlette's ``StaticFiles`` over the same folder (local media
  only). ``/assets/`` is one of the gate's static prefixes, so the gate passes it straight through, as it does the
  app's own assets.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rupali import image_files
from rupali.config import get_settings
from rupali.gate import AuthGate
from rupali.storage import LocalStorage, from_settings

STATIC_PREFIX = "/assets/bench-thumbnails"
THUMBNAIL_PREFIX = "/media/thumbnails"


def create_app() -> Starlette:
    settings = get_settings()
    storage = from_settings(settings)
    redirect_seconds = image_files.redirect_seconds(settings)

    async def thumbnail(request: Request) -> Response:
        return await image_files.thumbnail(storage, request.state.auth.user, request.path_params["image_id"],
                                           request.headers.get("if-none-match"), redirect_seconds=redirect_seconds)

    routes: list[Route | Mount] = [Route(THUMBNAIL_PREFIX + "/{image_id}", thumbnail)]
    if isinstance(storage, LocalStorage):
        routes.append(Mount(STATIC_PREFIX, StaticFiles(directory=storage.root / "thumbnails")))
    return Starlette(routes=routes, middleware=[Middleware(AuthGate)])


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
