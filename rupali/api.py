"""The REST API under ``/api/v1``, authenticated by personal API keys (or the browser's session).

OpenAPI lives at ``/api/docs``, with Swagger UI served from the app itself (no CDN: self-hosters may be offline).
A person only ever reaches their own generations and images: anything else is a 404, exactly like an id that does
not exist. Every route declares the key scope it needs (:func:`requires`); a read key that tries to write gets a
403. No request is answered with a 5xx for the client's mistake: malformed input is a 422 with a sentence naming
the field, and anything unexpected is a JSON 500 with a reference to find the traceback in the log.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.params import Security as SecurityParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from rupali import image_files, provenance, runtime, text, zips
from rupali.body_limit import BodyTooLarge
from rupali.clock import now
from rupali.db import transact
from rupali.errors import reference_for
from rupali.gate import ApiKeyAuth
from rupali.imaging import InvalidImage
from rupali.models import ApiKeyScope, DataExport, ExportStatus, Generation, Image, User
from rupali.pricing import Pricing
from rupali.providers import ModelChoice
from rupali.providers.base import ProviderError
from rupali.services import abuse, api_keys, exports, gallery
from rupali.services import generation as generations
from rupali.services.credits import InsufficientCredits

logger = logging.getLogger(__name__)

# Swagger UI's own files, served by the API itself: (path under /api, file in the bundle, media type).
DOCS_ASSETS = (
    ("/docs/swagger-ui-bundle.js", "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("/docs/swagger-ui.css", "swagger-ui.css", "text/css; charset=utf-8"),
    ("/docs/favicon.png", "favicon-32x32.png", "image/png"),
)
_DOCS_VERSION = swagger_ui_path.name.removeprefix("swagger-ui-")  # in asset URLs, so an upgrade is fetched anew
SEARCH_MAX = 500
MODEL_MAX = 200  # "provider:model" keys are far shorter
_MAX_ERRORS = 20  # listed in a 422; a body with thousands of mistakes does not need them all echoed
_TEXT_LIMIT = 200  # characters of any message or location part echoed back in a 422

bearer = HTTPBearer(
    scheme_name="ApiKey", bearerFormat="rk_…", auto_error=False,
    description="A personal API key from your account page, sent as `Authorization: Bearer rk_…`. Each operation "
                "lists the scope it needs: a `read` key may use the `read` operations, a `generate` key all of "
                "them. The browser session of a signed-in person works too, with full access.")


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


class PriceTierOut(BaseModel):
    up_to_pixels: int | None = Field(description="Images of up to this many pixels (width × height) fall in this "
                                                 "tier; null: any larger size")
    credits_per_image: int = Field(description="Credits per image in this tier, before the steps and "
                                               "image-to-image factors")


class ModelOut(BaseModel):
    key: str
    label: str
    provider: str
    is_ai: bool
    sizes: list[tuple[int, int]] = Field(description="Preset sizes; the first is the model's default")
    max_images: int
    img2img: bool
    credits_per_image: int | None = Field(
        description="Credits one text-to-image image costs at the default size and steps (0: free); null when this "
                    "installation does not charge for generations")
    price_tiers: list[PriceTierOut] | None = Field(
        description="The model's price per image by size, smallest first; null when generations are not charged")


class ExportOut(BaseModel):
    id: uuid.UUID
    status: str = Field(description="queued, running, ready, failed or expired")
    progress: float = Field(description="0 to 1 while it is being built")
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="The file is deleted then")
    bytes: int | None
    files: int | None
    error: str = Field(description="Why it failed (empty unless it did)")
    download_url: str | None = Field(description="Where to fetch the ZIP once it is ready")


class VerificationOut(BaseModel):
    """What an image says about its origin, and whether that is intact."""

    format: str | None = Field(description="PNG, JPEG or WEBP")
    width: int
    height: int
    content_credentials: bool = Field(description="Whether the file carries a C2PA manifest")
    validation_state: str | None = Field(description="The C2PA validation state: Trusted, Valid or Invalid")
    intact: bool = Field(description="The signature and the content hash match the file")
    signed_by_this_installation: bool = Field(description="Signed with this installation's own certificate")
    signer: str | None
    issuer: str | None
    signed_at: datetime | None
    claim_generator: str | None = Field(description="The tool that wrote the manifest, e.g. `Rupali 0.1.0`")
    digital_source_type: str | None = Field(description="The IPTC digital source type the manifest states")
    xmp_digital_source_type: str | None = Field(description="The IPTC digital source type the file's XMP states")
    software_agent: str | None = Field(description="The provider and model that made the image")
    ai_generated: bool
    problems: list[str]
    verdict: str = Field(description="One sentence for people")


def build() -> FastAPI:
    """The API application, mounted at ``/api`` by the web wiring."""
    api = FastAPI(title="Rupali API", version="1", docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  description="Generate images and read your own results. Authenticate with "
                              "`Authorization: Bearer rk_…` (create keys on your account page). A key may only "
                              "read, or also generate, and may expire. Refusals are JSON with a sentence in "
                              "`detail`; a 422 also names the input at fault in `field`.\n\n"
                              "**Credits.** When the installation charges for generations, `GET /v1/models` gives "
                              "each model's `credits_per_image` (default size and steps) and its `price_tiers` by "
                              "size; steps above the included ones and image-to-image may add to that, and a "
                              "generation costs the per-image price times `count`. The credits are held when the "
                              "generation is accepted; only delivered images are charged and the rest comes back "
                              "(all of it when the generation fails, is blocked or is cancelled). A balance that "
                              "does not cover a request is answered with **402** and a sentence in `detail` saying "
                              "what it would cost and what is left; nothing is queued. When generations are free, "
                              "both price fields are null and no request is ever answered with 402.\n\n"
                              "**Rate limits.** Each person, and each IP address, may make a limited number of "
                              "requests per minute, and may start a limited number of generations per minute; the "
                              "installation may also cap the generations one person starts per UTC day. Over a "
                              "limit the answer is **429** with a sentence in `detail` and a `Retry-After` header "
                              "giving the seconds to wait (for the daily cap: until the next midnight UTC).",
                  responses={429: {"description": "Too many requests from you or your address within the last "
                                                  "minute; `Retry-After` says how many seconds to wait"}})
    api.add_middleware(_RateLimits)
    api.add_middleware(_UnexpectedErrors)
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    _register(api)
    _register_docs(api)
    return api


async def _access(request: Request, security_scopes: SecurityScopes,
                  _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    # The gate has already authenticated the request; this only narrows what a key may do. A browser session is
    # the person themself and may do everything.
    auth = request.state.auth
    if isinstance(auth, ApiKeyAuth) and not all(api_keys.allows(auth.scope, ApiKeyScope(needed))
                                                for needed in security_scopes.scopes):
        raise HTTPException(403, "This API key may only read. Starting generations and changing images needs a "
                                 "key that may also generate: create one on your account page.",
                            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="generate"'})


def requires(scope: ApiKeyScope) -> Any:
    """The route dependency declaring (in OpenAPI too) and enforcing the key scope a route needs."""
    return Security(_access, scopes=[scope.value])


READ = [requires(ApiKeyScope.READ)]
GENERATE = [requires(ApiKeyScope.GENERATE)]


def scope_of(route: APIRoute) -> ApiKeyScope | None:
    """The scope a route declares through :func:`requires`, or None (the route-walk test refuses that)."""
    for dependency in route.dependencies:
        if isinstance(dependency, SecurityParam) and dependency.dependency is _access and dependency.scopes:
            return ApiKeyScope(dependency.scopes[0])
    return None


def _register(router: FastAPI) -> None:
    # Routes are declared on the app itself (not an included router) so the route-walk test can see each one.
    # ZIP downloads are POST only because a list of ids does not fit a URL: they only read, so read keys may.

    @router.get("/v1/models", response_model=list[ModelOut], summary="Models you can generate with",
                dependencies=READ)
    async def models() -> list[ModelOut]:
        current = runtime.current()
        pricing = Pricing.from_settings(current.settings) if current.settings.billing_enabled else None
        return [ModelOut(key=choice.key, label=choice.info.label, provider=choice.provider, is_ai=choice.info.is_ai,
                         sizes=list(choice.info.sizes), max_images=choice.info.max_images, img2img=choice.info.img2img,
                         credits_per_image=_per_image(pricing, choice) if pricing else None,
                         price_tiers=_tiers(pricing, choice.key) if pricing else None)
                for choice in await current.providers.catalogue()]

    @router.post("/v1/generations", status_code=202, response_model=GenerationOut, summary="Start a generation",
                 dependencies=GENERATE,
                 responses={402: {"description": "Your credit balance does not cover the request; `detail` says what "
                                                 "it costs and what you have left. Nothing was queued"},
                            422: {"description": "The request cannot be accepted; `detail` says why"},
                            429: {"description": "Too many requests, too many generations started within the last "
                                                 "minute, or the daily cap reached; `Retry-After` says how many "
                                                 "seconds to wait. Nothing was queued"}})
    async def create_generation(request: Request, body: GenerationIn) -> GenerationOut | JSONResponse:
        user = _user(request)
        current = runtime.current()
        try:
            choice = await current.providers.find(body.model)
            form = generations.GenerationForm(**body.model_dump())
            # A request refused for its input is not a generation: only valid ones count against the limits.
            generations.validate(current.settings, choice, form)
            await abuse.checked(abuse.check_generation, current.settings, user.id, _client_ip(request.scope))
            generation = await run_in_threadpool(transact, abuse.submit, current.settings, user, choice, form,
                                                 current.credits)
        except generations.InvalidGeneration as exc:
            return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)
        except ProviderError as exc:
            return JSONResponse({"detail": exc.user_message, "field": "model"}, status_code=422)
        except InsufficientCredits as exc:  # rolled back with its transaction: no generation, nothing held
            return JSONResponse({"detail": str(exc)}, status_code=402)
        except abuse.Refused as exc:
            return _too_many(exc)
        if generation.status == "queued":
            current.queue.submit(generation.id, user.id)
        return _out(generation, [])

    @router.get("/v1/generations", response_model=list[GenerationOut], summary="Your recent generations",
                dependencies=READ)
    async def list_generations(request: Request,
                               limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[GenerationOut]:
        user = _user(request)
        recent = await run_in_threadpool(transact, generations.recent, user.id, limit)
        images = await run_in_threadpool(transact, generations.images_of, [g.id for g in recent])
        return [_out(generation, images[generation.id]) for generation in recent]

    @router.get("/v1/generations/{generation_id}", response_model=GenerationOut, summary="A generation and its images",
                dependencies=READ, responses={404: {"description": "Not found"}})
    async def read_generation(request: Request, generation_id: str) -> GenerationOut | Response:
        found = await _generation(_user(request), generation_id)
        if found is None:
            return image_files.NOT_FOUND
        return found

    @router.post("/v1/generations/{generation_id}/cancel", response_model=GenerationOut, summary="Cancel a generation",
                 dependencies=GENERATE, responses={404: {"description": "Not found"}})
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

    @router.delete("/v1/generations/{generation_id}", status_code=204, dependencies=GENERATE,
                   summary="Delete a generation: its prompt, parameters, images and (unless another generation uses "
                           "it) its source upload",
                   responses={404: {"description": "Not found"},
                              409: {"description": "Still queued or running: cancel it first, then delete it"}})
    async def delete_generation(request: Request, generation_id: str) -> Response:
        parsed = _uuid(generation_id)
        if parsed is None:
            return image_files.NOT_FOUND
        current, user = runtime.current(), _user(request)
        try:
            if current.queue.state(parsed) is not None:  # running here, or cancelled and not stopped yet
                await run_in_threadpool(transact, generations.for_user, user.id, parsed)  # someone else's: 404
                raise generations.GenerationBusy(generations.BUSY_MESSAGE)
            deleted = await run_in_threadpool(transact, generations.delete_generation, current.storage, user, parsed)
        except generations.GenerationNotFound:
            return image_files.NOT_FOUND
        except generations.GenerationBusy as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        return Response(status_code=204) if deleted else image_files.NOT_FOUND

    @router.get("/v1/images", response_model=GalleryPageOut, summary="Your images, newest first", dependencies=READ,
                responses={422: {"description": "A cursor or filter that cannot be used"}})
    async def list_images(request: Request, search: str = "", favourites: bool = False, model: str | None = None,
                          since: date | None = None, until: date | None = None, show_nsfw: bool = True,
                          expiring_soon: bool = False, oldest_first: bool = False, cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=200)] = 60) -> GalleryPageOut | JSONResponse:
        try:  # the gallery takes its filters as given: a NUL, for one, cannot even be sent to PostgreSQL
            search = text.clean(search, field="search", label="The search", max_length=SEARCH_MAX)
            model = text.clean(model, field="model", label="The model", max_length=MODEL_MAX) or None
        except text.InvalidText as exc:
            return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
        # "Until the last day there is" filters nothing, and that day has no next day for the gallery to stop at.
        query = gallery.GalleryQuery(search=search, favourites=favourites, model=model, since=since,
                                     until=None if until == date.max else until, show_nsfw=show_nsfw,
                                     expiring_soon=expiring_soon, oldest_first=oldest_first)
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
                 dependencies=GENERATE, responses={404: {"description": "Not found"}})
    async def favourite_image(request: Request, image_id: str, body: FavouriteIn) -> ImageOut | Response:
        parsed = _uuid(image_id)
        user = _user(request)
        if parsed is None or not await run_in_threadpool(transact, gallery.set_favourites, user.id, [parsed],
                                                         body.favourite):
            return image_files.NOT_FOUND
        found = await run_in_threadpool(transact, gallery.detail, user.id, parsed)
        return _image(found[0]) if found else image_files.NOT_FOUND

    @router.delete("/v1/images/{image_id}", status_code=204, summary="Delete an image and its files",
                   dependencies=GENERATE, responses={404: {"description": "Not found"}})
    async def delete_image(request: Request, image_id: str) -> Response:
        parsed = _uuid(image_id)
        deleted = await image_files.delete_images(runtime.current().storage, _user(request).id, [parsed]) \
            if parsed else 0
        return Response(status_code=204) if deleted else image_files.NOT_FOUND

    @router.post("/v1/images/zip", summary="Download several images as one ZIP (streamed)", response_class=Response,
                 dependencies=READ, responses={404: {"description": "None of the ids is yours"}})
    async def zip_images(request: Request, body: ImageIdsIn) -> Response:
        return await zips.download(runtime.current().storage, _user(request), body.ids)

    @router.get("/v1/images/{image_id}", summary="Download an image (PNG files carry their parameters)",
                response_class=Response, dependencies=READ, responses={404: {"description": "Not found"}})
    async def image(request: Request, image_id: str, parameters: bool | None = None) -> Response:
        return await image_files.original(runtime.current().storage, _user(request), image_id,
                                          request.headers.get("range"), parameters=parameters,
                                          if_range=request.headers.get("if-range"),
                                          redirect_seconds=image_files.redirect_seconds(runtime.current().settings))

    @router.get("/v1/images/{image_id}/thumbnail", summary="An image's WebP thumbnail", response_class=Response,
                dependencies=READ, responses={404: {"description": "Not found"}})
    async def image_thumbnail(request: Request, image_id: str) -> Response:
        return await image_files.thumbnail(runtime.current().storage, _user(request), image_id,
                                           request.headers.get("if-none-match"),
                                           redirect_seconds=image_files.redirect_seconds(runtime.current().settings))

    @router.post("/v1/verify", response_model=VerificationOut, summary="Check an image's Content Credentials",
                 description="Send a PNG, JPEG or WebP as the request body (any image Content-Type). Open to anyone, "
                             "without a key; the file is checked in memory and never stored.",
                 responses={422: {"description": "Not an image Rupali can check; `detail` says why"},
                            413: {"description": "Larger than the upload limit"},
                            503: {"description": "Many files are being checked right now: try again after "
                                                 "`Retry-After` seconds"}},
                 openapi_extra={"security": [], "requestBody": {"required": True, "content": {
                     mime: {"schema": {"type": "string", "format": "binary"}}
                     for mime in ("image/png", "image/jpeg", "image/webp")}}})
    async def verify(request: Request) -> VerificationOut | JSONResponse:
        current = runtime.current()
        settings = current.settings
        try:
            data = await request.body()
        except BodyTooLarge:  # a streamed body past the limit: BodyLimit answers 413; nothing went wrong here
            return JSONResponse({"detail": f"The file is larger than {settings.upload_max_mb} MB.", "field": "body"},
                                status_code=413)
        try:
            found = await run_in_threadpool(provenance.examine, current.credentials, data,
                                            max_bytes=settings.upload_max_mb * 1024 * 1024,
                                            max_pixels=settings.upload_max_megapixels * 1_000_000)
        except provenance.ChecksBusy as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})
        except InvalidImage as exc:
            return JSONResponse({"detail": str(exc), "field": "body"}, status_code=422)
        return VerificationOut(**found.public())

    # Exports only read the person's own data, so read keys may ask for one and fetch it. Nothing in an archive
    # opens the account: secrets and the one-time codes in mailed links are left out (rupali.privacy.export).
    @router.post("/v1/exports", status_code=202, response_model=ExportOut, dependencies=READ,
                 summary="Ask for a copy of all your data (a ZIP built in the background)",
                 responses={429: {"description": "You asked less than 24 hours ago; `detail` says from when you can "
                                                 "ask again, and `Retry-After` in seconds"}})
    async def create_export(request: Request) -> ExportOut | JSONResponse:
        current = runtime.current()
        try:
            export = await run_in_threadpool(transact, exports.request_export, current.settings, _user(request))
        except exports.ExportError as exc:
            wait = max(1, math.ceil((exc.retry_at - now()).total_seconds())) if exc.retry_at else None
            return JSONResponse({"detail": str(exc)}, status_code=429,
                                headers={"Retry-After": str(wait)} if wait else None)
        exports.start_soon(current.settings, export.id)  # after the commit, so the build finds the row
        return _export_out(export)

    @router.get("/v1/exports/{export_id}", response_model=ExportOut, summary="An export's state and progress",
                dependencies=READ, responses={404: {"description": "Not found"}})
    async def read_export(request: Request, export_id: str) -> ExportOut | Response:
        export = await run_in_threadpool(transact, exports.for_owner, _user(request), export_id)
        return _export_out(export) if export is not None else image_files.NOT_FOUND

    @router.get("/v1/exports/{export_id}/download", summary="Download a ready export (ZIP)",
                response_class=Response, dependencies=READ,
                responses={404: {"description": "Not found"}, 409: {"description": "Not ready (yet)"},
                           410: {"description": "Expired: the file has been deleted"}})
    async def download_export(request: Request, export_id: str) -> Response:
        found = await run_in_threadpool(transact, exports.download, _user(request), export_id)
        if found is exports.Unavailable.NOT_FOUND:
            return image_files.NOT_FOUND
        if found is exports.Unavailable.NOT_READY:
            return JSONResponse({"detail": "This export is not ready: see its status."}, status_code=409)
        if found is exports.Unavailable.GONE:
            return JSONResponse({"detail": "This export has expired and its file has been deleted. Ask for a new "
                                           "one."}, status_code=410)
        assert isinstance(found, exports.Download)
        return exports.response(found)


def _register_docs(api: FastAPI) -> None:
    """Swagger UI at ``/docs``; its script, stylesheet and icon come from the installed bundle, never a CDN."""

    @api.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        urls = {asset: f"{root}{path}?v={_DOCS_VERSION}" for path, asset, _ in DOCS_ASSETS}
        return get_swagger_ui_html(
            openapi_url=f"{root}{api.openapi_url}", title=f"{api.title} – documentation",
            swagger_js_url=urls["swagger-ui-bundle.js"], swagger_css_url=urls["swagger-ui.css"],
            swagger_favicon_url=urls["favicon-32x32.png"], oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None})  # its default validator is a third-party service

    def asset_route(file: str, media_type: str) -> Callable[[Request], Awaitable[FileResponse]]:
        async def serve(_request: Request) -> FileResponse:
            return FileResponse(swagger_ui_path / file, media_type=media_type,
                                headers={"Cache-Control": "public, max-age=86400"})
        return serve

    for path, asset, media_type in DOCS_ASSETS:
        api.add_route(path, asset_route(asset, media_type), include_in_schema=False)


# --- answers that cannot fail ----------------------------------------------------------------------------------------

async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 in the API's own shape for input FastAPI could not validate.

    FastAPI's own handler echoes every input back and fails on what JSON cannot carry (``1e400`` parses as
    infinity, ``"\\ud800"`` as a lone surrogate), turning the client's mistake into a 500. Here inputs are left
    out, messages are made plain text, and should anything still go wrong a fixed answer goes out instead.
    """
    try:
        raw = exc.errors() if isinstance(exc, RequestValidationError) else []
        errors = [_plain_error(error) for error in raw[:_MAX_ERRORS]]
        field, sentence = _describe(errors[0]) if errors else ("body", "The request could not be read.")
        return JSONResponse({"detail": sentence, "field": field, "errors": errors}, status_code=422)
    except Exception:  # whatever the input was, the answer is a 422
        logger.exception("could not describe a validation error")
        return JSONResponse({"detail": "The request could not be read.", "field": "body", "errors": []},
                            status_code=422)


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Refusals raised by FastAPI or the routes, as ``{"detail": …}``; an unparsable body also names its field."""
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    headers = getattr(exc, "headers", None)
    if status == 400:  # FastAPI's only 400: a body it could not parse (invalid UTF-8, deep nesting, huge numbers)
        return JSONResponse({"detail": "The request body is not valid JSON.", "field": "body"}, status_code=400,
                            headers=headers)
    detail = getattr(exc, "detail", None)
    return JSONResponse({"detail": detail if isinstance(detail, str) else "The request cannot be answered."},
                        status_code=status, headers=headers)


def _plain_error(error: object) -> dict[str, Any]:
    """One of FastAPI's error entries without its input, in text JSON can always carry."""
    fields = error if isinstance(error, dict) else {}
    location = fields.get("loc", ())
    return {"loc": [part if type(part) is int and abs(part) < 10**9 else _plain(part)
                    for part in (list(location) if isinstance(location, (list, tuple)) else [location])[:10]],
            "type": _plain(fields.get("type", "")), "msg": _plain(fields.get("msg", ""))}


def _plain(value: object) -> str:
    """Short text that JSON and UTF-8 can always carry (a lone surrogate becomes a ``\\udXXX`` escape)."""
    text = value if isinstance(value, str) else str(value)
    return text[:_TEXT_LIMIT].encode("utf-8", "backslashreplace").decode("utf-8")[:_TEXT_LIMIT]


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """The field at fault and a sentence saying what is wrong with it."""
    where, *rest = error["loc"] or ["body"]
    names = [part for part in rest if isinstance(part, str)]
    items = [part for part in rest if isinstance(part, int)]
    field = names[0] if names else "body" if where == "body" else str(where)
    kind, message = error["type"], error["msg"].rstrip(".")
    if kind == "json_invalid":
        return "body", "The request body is not valid JSON."
    if field == "body":
        return "body", "Send a JSON object as the request body." if kind == "missing" else \
            "The request body must be a JSON object."
    if kind == "missing":
        return field, f"“{field}” is required."
    position = f" (item {items[0] + 1})" if items else ""
    if message[1:2].islower():  # "Input should …" reads on in a sentence; "UUID input …" keeps its capitals
        message = message[:1].lower() + message[1:]
    return field, f"“{field}”{position} is not valid: {message}."


class _UnexpectedErrors:
    """Any exception a route did not expect becomes a JSON 500 with a reference; the traceback goes to the log
    under that reference, never to the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            # The path and method only: a query string may hold someone's search words.
            reference = reference_for(exc, f"{scope.get('method')} {scope.get('path')}")
            if started:
                raise  # a streamed response is under way: only the server can cut the connection
            await JSONResponse({"detail": "Something went wrong on our side. If it keeps happening, tell the "
                                          f"operator this reference: {reference}.", "reference": reference},
                               status_code=500)(scope, receive, send)


class _RateLimits:
    """Every ``/v1`` request counts against its person's and its address's per-minute API limits; over either,
    the answer is a 429 before any route runs. The docs and the OpenAPI document are not counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).startswith("/v1/"):
            # The gate admits only authenticated requests to /v1; the address is the one ClientAddress resolved.
            auth = scope.get("state", {}).get("auth")
            try:
                await abuse.checked(abuse.check_api, runtime.current().settings,
                                    auth.user.id if auth is not None else None, _client_ip(scope))
            except abuse.Refused as exc:
                await _too_many(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the mount point (``/v1/…``): a mounted app's scope keeps the whole path."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def _too_many(exc: abuse.Refused) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=429, headers={"Retry-After": str(exc.retry_after)})


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


def _per_image(pricing: Pricing, choice: ModelChoice) -> int:
    """One text-to-image image at the model's default size (its first preset) and default steps."""
    width, height = choice.info.sizes[0]
    return pricing.per_image(model_key=choice.key, width=width, height=height, steps=choice.info.default_steps)


def _tiers(pricing: Pricing, model_key: str) -> list[PriceTierOut]:
    # Priced through Pricing.base with a size at each tier's top (a 1-pixel-high image of that many pixels; any size
    # beyond the last bound for the open tier), so a model's own prices apply exactly as they do to a request.
    largest = max((tier.most_pixels or 0 for tier in pricing.tiers), default=0) + 1
    return [PriceTierOut(up_to_pixels=tier.most_pixels,
                         credits_per_image=pricing.base(model_key, tier.most_pixels or largest, 1))
            for tier in pricing.tiers]


def _export_out(export: DataExport) -> ExportOut:
    ready = export.status == ExportStatus.READY
    return ExportOut(id=export.id, status=str(export.status), progress=round(export.progress, 4),
                     requested_at=export.requested_at, started_at=export.started_at,
                     finished_at=export.finished_at, expires_at=export.expires_at, bytes=export.bytes,
                     files=export.files, error=export.error if export.status == ExportStatus.FAILED else "",
                     download_url=f"/api/v1/exports/{export.id}/download" if ready else None)


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
