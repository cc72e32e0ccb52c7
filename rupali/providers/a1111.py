"""AUTOMATIC1111 (and its API-compatible forks Forge and SD.Next) over the ``/sdapi/v1`` REST API, with httpx.

The contract (see the AUTOMATIC1111 section of the peer conventions): ``POST /sdapi/v1/txt2img`` or ``img2img``
answers ``{images: [base64…], parameters, info: "<json string>"}``; ``GET /sdapi/v1/progress`` reports the running
job as ``{progress: 0 to 1, …}``; ``GET /sdapi/v1/sd-models`` and ``/samplers`` list what the server offers;
``POST /sdapi/v1/interrupt`` stops the running job. A server started with ``--api-auth user:pass`` wants HTTP basic
auth, which is what ``a1111_username``/``a1111_password`` configure.

Things worth knowing about the server:

* The chosen checkpoint is sent as ``override_settings`` for this job only, so the server's global default is left
  alone. A1111 silently falls back to another checkpoint when the title is unknown, so the model hash the server
  reports back is compared with the one it listed, and a mismatch is an error rather than a mislabelled image.
* ``/progress`` and ``/interrupt`` are server-wide, not per job: A1111 runs one job at a time, and if another
  client's job is running while ours waits in the queue, the progress shown is that job's and a cancellation
  interrupts it. The studio is expected to be the server's only client.
* Progress is capped just below 1.0 while the request runs (the server may report 1.0 before the images are
  encoded); ``progress(1.0)`` is called once the images are in hand.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from typing import Any

import httpx

from rupali.config import Settings
from rupali.providers.base import (
    REACHABLE_TIMEOUT,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    InvalidRequest,
    ModelInfo,
    ProgressCallback,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    Reachability,
    SizeRule,
    check_result_image,
    connection_failure,
    host_and_port,
)

log = logging.getLogger(__name__)

API = "/sdapi/v1"
MAX_IMAGES = 4
SIZE_RULE = SizeRule(minimum=64, maximum=2048, multiple=8)
# SDXL-family checkpoints are trained at about one megapixel, SD 1.x at 512x512: the first preset is the default.
SDXL_PRESETS = ((1024, 1024), (832, 1216), (1216, 832), (768, 768), (512, 512))
SD1_PRESETS = ((512, 512), (512, 768), (768, 512), (768, 768), (1024, 1024))
_SD1_MARKERS = ("v1-5", "v1.5", "v1_5", "sd15", "sd1.5", "sd-1-5", "sd_1.5", "sd-v1", "sd_v1", "v1-4", "sd14")
_PROGRESS_CEILING = 0.99  # 1.0 means "images in hand"; only the end of generate() says that
_SHORT_TIMEOUT = 5.0  # for progress polls and interrupts: they must never hold anything up
_DETAIL_LIMIT = 300

UNREACHABLE = "The image server cannot be reached right now. Please try again in a moment."
BAD_CREDENTIALS = ("The image server is not available right now: the image server refused the operator's "
                   "credentials.")
NO_API = ("The image server is not available right now: the server was started without --api, so it does not "
          "accept requests from the studio.")
SERVER_ERROR = "The image server ran into a problem. Please try again in a moment."
UNREADABLE = "The image server sent an answer the studio could not read. Please try again in a moment."
OUT_OF_MEMORY = "The image server ran out of graphics memory. Try a smaller size or fewer images."
MODEL_GONE = "The image server no longer has this model. Please pick another one."


def size_presets(model_name: str) -> tuple[tuple[int, int], ...]:
    """Presets for a checkpoint, guessed from its name: SD 1.x names get 512x512 first, everything else (SDXL,
    Pony, Illustrious, FLUX…) 1024x1024 first, because that is what current checkpoints are made for."""
    lowered = model_name.lower()
    return SD1_PRESETS if any(marker in lowered for marker in _SD1_MARKERS) else SDXL_PRESETS


def model_info(entry: dict[str, Any], schedulers: tuple[str, ...]) -> ModelInfo | None:
    """One ``/sd-models`` entry as a :class:`ModelInfo`; ``None`` when it has no usable title."""
    title = entry.get("title")
    if not isinstance(title, str) or not title:
        return None
    name = entry.get("model_name")
    label = name if isinstance(name, str) and name else title
    model_hash = entry.get("hash")
    return ModelInfo(id=title, label=label, version=model_hash if isinstance(model_hash, str) else "",
                     sizes=size_presets(f"{title} {label}"), size_rule=SIZE_RULE, max_images=MAX_IMAGES,
                     img2img=True, negative_prompt=True, progress=True, is_ai=True, schedulers=schedulers)




class A1111Provider:
    """Generates images on the operator's own AUTOMATIC1111-compatible server (``name="a1111"``)."""

    name = "a1111"
    label = "Your image server"

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None, poll_interval: float = 0.5,
                 models_ttl: float = 60) -> None:
        """``client`` lets the caller (or a test) own the connection pool and timeouts; otherwise one is made with
        ``a1111_timeout_seconds``. The model list is kept for ``models_ttl`` seconds: loading it makes A1111 walk
        its model folder."""
        if not settings.a1111_url:
            raise ValueError("RUPALI_A1111_URL is not set")
        self._base = settings.a1111_url.rstrip("/")
        password = settings.a1111_password.get_secret_value() if settings.a1111_password else ""
        self._auth = httpx.BasicAuth(settings.a1111_username, password) if settings.a1111_username else None
        # A password may also sit in the URL (http://user:pass@host); neither may reach a message or a log.
        self._secrets = tuple(secret for secret in (password, httpx.URL(self._base).password) if secret)
        self._poll_interval = poll_interval
        self._models_ttl = models_ttl
        self._models: list[ModelInfo] | None = None
        self._models_expire = 0.0
        self._models_lock = asyncio.Lock()
        self._owns_client = client is None
        timeout = settings.a1111_timeout_seconds
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(10, timeout)))

    async def aclose(self) -> None:
        """Close the HTTP client when this provider made it."""
        if self._owns_client:
            await self._client.aclose()

    async def reachable(self, timeout: float = REACHABLE_TIMEOUT) -> Reachability:
        """List the checkpoints (``GET /sdapi/v1/sd-models``, with the configured credentials): it proves the server
        answers, was started with ``--api`` and accepts our credentials, and that it has a model to offer. A1111
        answers it from memory (unlike ``refresh-checkpoints``); ``/internal/ping`` would prove none of the rest.
        Runs on a client of its own, so any event loop may call it, and leaves the cached model list alone."""
        where = host_and_port(self._base)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.get(f"{self._base}{API}/sd-models",
                                            auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException:
            return False, f"no answer from {where} within {timeout:g} s"
        except httpx.HTTPError as exc:
            return False, self._scrub(f"could not connect to {where}: {connection_failure(exc)}")
        status = response.status_code
        if status in (401, 403):
            return False, f"{where} refused the credentials (RUPALI_A1111_USERNAME / RUPALI_A1111_PASSWORD)"
        if status == 404:
            return False, (f"{where} answered 404 for /sdapi/v1/sd-models: is it an A1111-compatible server "
                           "started with --api?")
        if not response.is_success:
            return False, self._scrub(f"{where} answered HTTP {status}: {response.text[:120]}")
        try:
            entries = response.json()
        except (ValueError, UnicodeDecodeError):
            return False, f"{where} answered /sd-models with something that is not JSON"
        models = [entry for entry in entries if isinstance(entry, dict) and entry.get("title")] if isinstance(
            entries, list) else []
        if not models:
            return False, f"{where} answers, but has no models installed"
        return True, f"{where} answers with {len(models)} model{'s' if len(models) != 1 else ''}"

    # -- models ----------------------------------------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        """The server's checkpoints, each offering the server's samplers; cached for ``models_ttl`` seconds."""
        async with self._models_lock:  # one fetch for many concurrent callers
            if self._models is not None and time.monotonic() < self._models_expire:
                return list(self._models)
            entries, samplers = await asyncio.gather(self._call("GET", "/sd-models"), self._samplers())
            if not isinstance(entries, list):
                raise ProviderUnavailable(UNREADABLE, detail="/sd-models did not answer a list")
            models = [info for entry in entries if isinstance(entry, dict)
                      and (info := model_info(entry, samplers)) is not None]
            if not models:
                raise ProviderUnavailable("The image server has no models installed.", detail="/sd-models is empty")
            self._models, self._models_expire = models, time.monotonic() + self._models_ttl
            return list(models)

    async def _samplers(self) -> tuple[str, ...]:
        """Sampler names; when they cannot be listed the models are still offered (with the server's default
        sampler). Real failures (unreachable, refused credentials) surface through the model list."""
        try:
            body = await self._call("GET", "/samplers")
        except ProviderError as exc:
            log.warning("the image server did not list its samplers: %s", exc)
            return ()
        if not isinstance(body, list):
            return ()
        return tuple(entry["name"] for entry in body if isinstance(entry, dict) and isinstance(entry.get("name"), str))

    # -- generation ------------------------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> GenerationResult:
        """txt2img (img2img with a source image) for ``request.count`` images, reporting progress while it runs.

        Cancelling the task running this (or our timeout giving up) asks the server to interrupt the job, so
        abandoned work stops occupying the GPU."""
        path, payload = self._payload(request)
        poller = asyncio.create_task(self._poll(progress)) if progress is not None else None
        try:
            body = await self._call("POST", path, json=payload)
        except asyncio.CancelledError:
            await self._interrupt_quietly()
            raise
        except ProviderTimeout:
            await self._interrupt_quietly()
            raise
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.wait({poller})  # never raises, and does not swallow our own cancellation
        result = await self._result(request, body)
        if progress is not None:
            _report(progress, 1.0)
        return result

    async def interrupt(self) -> None:
        """Ask the server to stop the job it is running (server-wide: A1111 has no job ids)."""
        await self._call("POST", "/interrupt", timeout=_SHORT_TIMEOUT)

    async def _interrupt_quietly(self) -> None:
        try:
            await self.interrupt()
        except ProviderError as exc:  # best effort: the job we abandon will end on its own
            log.warning("could not interrupt the image server's job: %s", exc)

    def _payload(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint and JSON body, after the checks the server would otherwise answer with GPU time."""
        if not SIZE_RULE.allows(request.width, request.height):
            raise InvalidRequest(f"The image server needs an image size of {SIZE_RULE.describe()}.")
        if not 1 <= request.count <= MAX_IMAGES:
            raise InvalidRequest(f"The image server makes 1 to {MAX_IMAGES} images at a time.")
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": request.seed,
            "steps": request.steps,
            "cfg_scale": request.guidance,
            "width": request.width,
            "height": request.height,
            "batch_size": request.count,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,  # the studio stores the images; the server's output folder is not ours to fill
            # Use the chosen model for this job only, leaving the server's default alone for its other users.
            "override_settings": {"sd_model_checkpoint": request.model},
            "override_settings_restore_afterwards": True,
        }
        if request.scheduler:
            payload["sampler_name"] = request.scheduler
        if request.source_image is None:
            return "/txt2img", payload
        payload["init_images"] = [base64.b64encode(request.source_image).decode("ascii")]
        payload["denoising_strength"] = request.strength
        return "/img2img", payload

    async def _poll(self, progress: ProgressCallback) -> None:
        """Report the server's progress every ``poll_interval`` seconds until cancelled; never raises."""
        last = 0.0
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                body = await self._call("GET", "/progress", params={"skip_current_image": "true"},
                                        timeout=_SHORT_TIMEOUT)
                fraction = float(body["progress"])
            except (ProviderError, KeyError, TypeError, ValueError) as exc:
                log.debug("progress poll failed: %s", exc)  # the generation itself decides success
                continue
            if fraction != fraction:  # NaN
                continue
            fraction = min(max(fraction, 0.0), _PROGRESS_CEILING)
            # A finished job reads 0 again: only ever move forwards.
            if fraction > last:
                last = fraction
                _report(progress, fraction)

    async def _result(self, request: GenerationRequest, body: Any) -> GenerationResult:
        """Images, seeds and model version from a 2xx answer."""
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise ProviderUnavailable(UNREADABLE, detail="the answer has no images list")
        info = _info(body.get("info"))
        first = info.get("index_of_first_image")
        # A grid image comes first when the server returns one; extensions may append extra images at the end.
        encoded = body["images"][first if isinstance(first, int) and 0 <= first <= 1 else 0:][: request.count]
        if not encoded:
            raise ProviderUnavailable("The image server finished without returning any images. Please try again.",
                                      detail="empty images list")
        self._check_model(request.model, info)
        seeds = info.get("all_seeds")
        images: list[GeneratedImage] = []
        for index, item in enumerate(encoded):
            data = _b64(item)
            decoded = await asyncio.to_thread(check_result_image, data, UNREADABLE)
            seed = seeds[index] if isinstance(seeds, list) and index < len(seeds) else None
            images.append(GeneratedImage(
                data=data, format=decoded.format, width=decoded.width, height=decoded.height,
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else request.seed + index))
        model_hash, model_name = info.get("sd_model_hash"), info.get("sd_model_name")
        version = next((value for value in (model_hash, model_name) if isinstance(value, str) and value),
                       request.model)
        details = {key: value for key, value in (("model_name", model_name), ("sampler", info.get("sampler_name")))
                   if isinstance(value, str) and value}
        return GenerationResult(images=images, model_version=version, cost=None, details=details)

    def _check_model(self, requested: str, info: dict[str, Any]) -> None:
        """Refuse images made with a different checkpoint than the one chosen (A1111's silent fallback)."""
        used = info.get("sd_model_hash")
        listed = next((model.version for model in self._models or () if model.id == requested), "")
        if not isinstance(used, str) or not used or not listed:
            return
        used, listed = used.lower(), listed.lower()
        if not (used.startswith(listed) or listed.startswith(used)):  # short and full hashes both occur
            self._models = None  # the list is stale
            raise ProviderUnavailable(MODEL_GONE, detail=f"asked for {requested!r}, the server used hash {used}")

    # -- HTTP ------------------------------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                    timeout: float | None = None) -> Any:
        """One API call; the parsed JSON of a 2xx answer, or a classified :class:`ProviderError`."""
        try:
            response = await self._client.request(
                method, f"{self._base}{API}{path}", json=json, params=params,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.ConnectTimeout as exc:  # nothing answered at all: the server is down, not slow
            raise ProviderUnavailable(UNREACHABLE, detail=self._scrub(f"{path}: {type(exc).__name__}")) from None
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(detail=self._scrub(f"{path}: {type(exc).__name__}")) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(UNREACHABLE, detail=self._scrub(f"{path}: {type(exc).__name__}: {exc}")
                                      ) from None
        if not response.is_success:
            raise self._error(path, response)
        # Results carry their images as base64: parsing megabytes of JSON is work for a worker thread.
        return await asyncio.to_thread(self._parse, path, response)

    def _parse(self, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise ProviderUnavailable(UNREADABLE, detail=self._scrub(
                f"{path}: HTTP {response.status_code} with malformed JSON: {response.text[:_DETAIL_LIMIT]!r}")
                ) from None

    def _error(self, path: str, response: httpx.Response) -> ProviderError:
        """Classify a failed answer into the exception the studio understands."""
        status = response.status_code
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        detail = self._scrub(f"{path}: HTTP {status}: {response.text[:_DETAIL_LIMIT]}")
        server_detail = body.get("detail") if isinstance(body, dict) else None
        if status in (401, 403):
            return ProviderUnavailable(BAD_CREDENTIALS, detail=detail)
        if status == 404:
            # FastAPI's own "Not Found" means no such route (no --api); A1111 also answers 404 for an unknown
            # sampler, with a detail of its own.
            if isinstance(server_detail, str) and server_detail and server_detail != "Not Found":
                return InvalidRequest(f"The image server did not accept these settings: {_sentence(server_detail)}",
                                      detail=detail)
            return ProviderUnavailable(NO_API, detail=detail)
        if status == 422:
            return InvalidRequest(_validation_message(server_detail), detail=detail)
        if status == 429:
            return RateLimited(detail=detail)
        if 400 <= status < 500:
            return InvalidRequest(detail=detail)
        if "outofmemory" in response.text.replace(" ", "").lower():  # A1111's 500 body names the exception
            return InvalidRequest(OUT_OF_MEMORY, detail=detail)
        return ProviderUnavailable(SERVER_ERROR, detail=detail)

    def _scrub(self, text: str) -> str:
        """Remove the operator's password from text bound for an exception or a log line."""
        for secret in self._secrets:
            text = text.replace(secret, "[password]")
        return text


def _report(progress: ProgressCallback, fraction: float) -> None:
    """Call the progress callback; a failing callback must not fail the generation."""
    try:
        progress(fraction)
    except Exception:
        log.exception("the progress callback failed")


def _validation_message(detail: Any) -> str:
    """A sentence from FastAPI's 422 body (``detail: [{loc, msg, type}]``), naming the first bad field."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = detail[0].get("loc")
        field = str(loc[-1]).replace("_", " ") if isinstance(loc, list | tuple) and loc else ""
        if field and field != "body":
            return f"The image server did not accept the {field} setting."
    return "The image server did not accept these settings."


def _sentence(text: str) -> str:
    """The server's short reason as the end of a sentence."""
    text = text.strip()[:120]
    return text[:1].lower() + text[1:] + ("" if text.endswith(".") else ".")


def _info(raw: Any) -> dict[str, Any]:
    """The ``info`` JSON string as a dict; an unreadable one only costs us seeds and model version."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _b64(item: Any) -> bytes:
    """One image from the answer; SD.Next may send a data URI where A1111 sends bare base64."""
    if not isinstance(item, str):
        raise ProviderUnavailable(UNREADABLE, detail="an image is not a string")
    if item.startswith("data:"):
        item = item.partition(",")[2]
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderUnavailable(UNREADABLE, detail="an image is not valid base64") from None


