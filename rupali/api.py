"""The REST API under ``/api/v1``, authenticated by personal API keys (or the browser's session).

OpenAPI lives at ``/api/docs``. A person only ever reaches their own generations and images: anything else is
a 404, exactly like an id that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from rupali import image_files, runtime, zips
from rupali.db import transact
from rupali.models import Generation, Image, User
from rupali.providers.base import ProviderError
from rupali.services import gallery
from rupali.services import generation as generations


class GenerationIn(BaseModel):
    prompt: str = Field(description="What to draw, 1–2000 characters")
    model: str = Field(description="A model key from GET /api/v1/models, e.g. `offline:sketch-v1`")
    width: int = 1024
    height: int = 1024
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    count: int = Field(1, description="Number of images (1–4)")
    seed: int | None = Field(None, description="Leave out for a random seed; the seed used is always returned")
    scheduler: str | None = None


class ImageOut(BaseModel):
    id: uuid.UUID
    seed: int
    width: int
    height: int
    nsfw: bool
    nsfw_score: float
    favourite: bool
    url: str
    thumbnail_url: str


class GenerationOut(BaseModel):
    id: uuid.UUID
    status: str
    error: str
    prompt: str
    negative_prompt: str
    provider: str
    model: str
    model_version: str
    width: int
    height: int
    steps: int
    guidance: float
    count: int
    seed: int
    created_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    images: list[ImageOut]


class GalleryImageOut(ImageOut):
    generation_id: uuid.UUID
    prompt: str
    model_label: str
    created_at: datetime
    expires_at: datetime | None


class GalleryPageOut(BaseModel):
    items: list[GalleryImageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class FavouriteIn(BaseModel):
    favourite: bool


class ImageIdsIn(BaseModel):
    ids: list[uuid.UUID] = Field(max_length=zips.MAX_IMAGES)


class ModelOut(BaseModel):
    key: str
    label: str
    provider: str
    is_ai: bool
    sizes: list[tuple[int, int]]
    max_images: int
    img2img: bool


def build() -> FastAPI:
    """The API application, mounted at ``/api`` by the web wiring."""
    api = FastAPI(title="Rupali API", version="1", docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
                  description="Generate images and read your own results. Authenticate with "
                              "`Authorization: Bearer rk_…` (create keys on your account page).")
    _register(api)
    return api


def _register(router: FastAPI) -> None:
    # Routes are declared on the app itself (not an included router) so the route-walk test can see each one.

    @router.get("/v1/models", response_model=list[ModelOut], summary="Models you can generate with")
    async def models() -> list[ModelOut]:
        return [ModelOut(key=choice.key, label=choice.info.label, provider=choice.provider, is_ai=choice.info.is_ai,
                         sizes=list(choice.info.sizes), max_images=choice.info.max_images, img2img=choice.info.img2img)
                for choice in await runtime.current().providers.catalogue()]

    @router.post("/v1/generations", status_code=202, response_model=GenerationOut, summary="Start a generation",
                 responses={422: {"description": "The request cannot be accepted; `detail` says why"}})
    async def create_generation(request: Request, body: GenerationIn) -> GenerationOut | JSONResponse:
        user = _user(request)
        current = runtime.current()
        try:
            choice = await current.providers.find(body.model)
            form = generations.GenerationForm(**body.model_dump())
            generation = await run_in_threadpool(transact, generations.submit, current.settings, user, choice, form,
                                                 current.credits)
        except generations.InvalidGeneration as exc:
            return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)
        except ProviderError as exc:
            return JSONResponse({"detail": exc.user_message, "field": "model"}, status_code=422)
        if generation.status == "queued":
            current.queue.submit(generation.id, user.id)
        return _out(generation, [])

    @router.get("/v1/generations", response_model=list[GenerationOut], summary="Your recent generations")
    async def list_generations(request: Request,
                               limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[GenerationOut]:
        user = _user(request)
        recent = await run_in_threadpool(transact, generations.recent, user.id, limit)
        images = await run_in_threadpool(transact, generations.images_of, [g.id for g in recent])
        return [_out(generation, images[generation.id]) for generation in recent]

    @router.get("/v1/generations/{generation_id}", response_model=GenerationOut, summary="A generation and its images",
                responses={404: {"description": "Not found"}})
    async def read_generation(request: Request, generation_id: str) -> GenerationOut | Response:
        found = await _generation(_user(request), generation_id)
        if found is None:
            return image_files.NOT_FOUND
        return found

    @router.post("/v1/generations/{generation_id}/cancel", response_model=GenerationOut, summary="Cancel a generation",
                 responses={404: {"description": "Not found"}})
    async def cancel_generation(request: Request, generation_id: str) -> GenerationOut | Response:
        user = _user(request)
        parsed = _uuid(generation_id)
        if parsed is None:
            return image_files.NOT_FOUND
        try:
            await runtime.current().queue.cancel(user.id, parsed)
        except generations.GenerationNotFound:
            return image_files.NOT_FOUND
        return await _generation(user, generation_id) or image_files.NOT_FOUND

    @router.get("/v1/images", response_model=GalleryPageOut, summary="Your images, newest first",
                responses={422: {"description": "A cursor or filter that cannot be used"}})
    async def list_images(request: Request, search: str = "", favourites: bool = False, model: str | None = None,
                          since: date | None = None, until: date | None = None, show_nsfw: bool = True,
                          expiring_soon: bool = False, oldest_first: bool = False, cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=200)] = 60) -> GalleryPageOut | JSONResponse:
        query = gallery.GalleryQuery(search=search[:500], favourites=favourites, model=model, since=since,
                                     until=until, show_nsfw=show_nsfw, expiring_soon=expiring_soon,
                                     oldest_first=oldest_first)
        try:
            found = await run_in_threadpool(transact, gallery.page, _user(request).id, query, cursor, limit)
        except gallery.InvalidCursor as exc:
            return JSONResponse({"detail": str(exc), "field": "cursor"}, status_code=422)
        return GalleryPageOut(items=[GalleryImageOut(**_image(item.image).model_dump(),
                                                     generation_id=item.image.generation_id, prompt=item.prompt,
                                                     model_label=item.model_label, created_at=item.image.created_at,
                                                     expires_at=item.image.expires_at) for item in found.items],
                              next_cursor=found.next_cursor)

    @router.post("/v1/images/{image_id}/favourite", response_model=ImageOut, summary="Mark or unmark a favourite",
                 responses={404: {"description": "Not found"}})
    async def favourite_image(request: Request, image_id: str, body: FavouriteIn) -> ImageOut | Response:
        parsed = _uuid(image_id)
        user = _user(request)
        if parsed is None or not await run_in_threadpool(transact, gallery.set_favourites, user.id, [parsed],
                                                         body.favourite):
            return image_files.NOT_FOUND
        found = await run_in_threadpool(transact, gallery.detail, user.id, parsed)
        return _image(found[0]) if found else image_files.NOT_FOUND

    @router.delete("/v1/images/{image_id}", status_code=204, summary="Delete an image and its files",
                   responses={404: {"description": "Not found"}})
    async def delete_image(request: Request, image_id: str) -> Response:
        parsed = _uuid(image_id)
        deleted = await image_files.delete_images(runtime.current().storage, _user(request).id, [parsed]) \
            if parsed else 0
        return Response(status_code=204) if deleted else image_files.NOT_FOUND

    @router.post("/v1/images/zip", summary="Download several images as one ZIP (streamed)", response_class=Response,
                 responses={404: {"description": "None of the ids is yours"}})
    async def zip_images(request: Request, body: ImageIdsIn) -> Response:
        return await zips.download(runtime.current().storage, _user(request), body.ids)

    @router.get("/v1/images/{image_id}", summary="Download an image (PNG files carry their parameters)",
                response_class=Response, responses={404: {"description": "Not found"}})
    async def image(request: Request, image_id: str, parameters: bool | None = None) -> Response:
        return await image_files.original(runtime.current().storage, _user(request), image_id,
                                          request.headers.get("range"), parameters=parameters)

    @router.get("/v1/images/{image_id}/thumbnail", summary="An image's WebP thumbnail", response_class=Response,
                responses={404: {"description": "Not found"}})
    async def image_thumbnail(request: Request, image_id: str) -> Response:
        return await image_files.thumbnail(runtime.current().storage, _user(request), image_id,
                                           request.headers.get("if-none-match"))


def _user(request: Request) -> User:
    return request.state.auth.user  # the gate admits only authenticated requests to /api/v1


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _generation(user: User, generation_id: str) -> GenerationOut | None:
    parsed = _uuid(generation_id)
    if parsed is None:
        return None
    try:
        generation = await run_in_threadpool(transact, generations.for_user, user.id, parsed)
    except generations.GenerationNotFound:
        return None
    images = await run_in_threadpool(transact, generations.images_of, [generation.id])
    return _out(generation, images[generation.id])


def _image(image: Image) -> ImageOut:
    return ImageOut(id=image.id, seed=image.seed, width=image.width, height=image.height, nsfw=image.nsfw,
                    nsfw_score=round(image.nsfw_score, 4), favourite=image.favourite,
                    url=f"/api/v1/images/{image.id}", thumbnail_url=f"/api/v1/images/{image.id}/thumbnail")


def _out(generation: Generation, images: list[Image]) -> GenerationOut:
    return GenerationOut(
        id=generation.id, status=generation.status, error=generation.error, prompt=generation.prompt,
        negative_prompt=generation.negative_prompt, provider=generation.provider, model=generation.model,
        model_version=generation.model_version, width=generation.width, height=generation.height,
        steps=generation.steps, guidance=generation.guidance, count=generation.count, seed=generation.seed,
        created_at=generation.created_at, finished_at=generation.finished_at, duration_ms=generation.duration_ms,
        images=[_image(image) for image in images])
