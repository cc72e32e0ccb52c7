"""Runware over its REST API: one ``imageInference`` task per generation, called with httpx.

The contract (see the Runware section of the third-party API notes): ``POST <runware_url>`` with a Bearer key and
a JSON array of tasks; results come back as ``{"data": [...]}`` matched by ``taskUUID``; failures as
``{"errors": [{code, message, parameter, taskType, taskUUID}]}`` (older: a single ``error``). 429/503/504 are
transient and retried with backoff. The REST API reports no progress, so ``ModelInfo.progress`` is False.

The operator's API key only ever travels in the ``Authorization`` header of the POST: it is never sent to the
image host, and every text that could end up in an exception or a log line is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import httpx

from rupali.config import Settings
from rupali.providers.base import (
    REACHABLE_TIMEOUT,
    ContentBlocked,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    InvalidRequest,
    ModelInfo,
    OutOfBalance,
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

OutputType = Literal["base64Data", "dataURI", "URL"]

PROMPT_MIN_CHARS = 4  # Runware refuses shorter positive prompts (and still may charge nothing): check first
PROMPT_MAX_CHARS = 2000
MAX_IMAGES = 4
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_RETRIED_STATUSES = frozenset({429, 503, 504})  # documented as transient: nothing was generated or charged
_DETAIL_LIMIT = 300

# FLUX.1 schnell and dev, Runware's own AIR ids.
FLUX_MODELS = frozenset({"runware:100@1", "runware:101@1"})

_FLUX_RULE = SizeRule(minimum=128, maximum=2048, multiple=16)
_DEFAULT_RULE = SizeRule(minimum=512, maximum=2048, multiple=64)
_FLUX_PRESETS = ((1024, 1024), (832, 1216), (1216, 832), (768, 1344), (1344, 768), (512, 512))
_DEFAULT_PRESETS = ((1024, 1024), (768, 1024), (1024, 768), (832, 1216), (1216, 832), (512, 512))

# Parameter names in Runware's error envelope, as the person who asked for the images knows them.
_PARAMETER_NAMES = {
    "positivePrompt": "prompt", "negativePrompt": "negative prompt", "model": "model", "width": "image size",
    "height": "image size", "steps": "number of steps", "CFGScale": "guidance", "numberResults": "number of images",
    "seed": "seed", "scheduler": "scheduler", "seedImage": "source image", "strength": "strength",
}


def size_rule(model_id: str) -> SizeRule:
    """The custom sizes Runware accepts for ``model_id`` — the one place this rule lives.

    Documented sources disagree: the SDK documentation says 512 to 2048 in multiples of 64 for every model, the
    current API docs say multiples of 8 (16 for FLUX) with per-architecture limits. We take FLUX at its documented
    128 to 2048 in steps of 16 and keep the conservative SDK rule for everything else, which every source accepts.
    """
    return _FLUX_RULE if model_id in FLUX_MODELS else _DEFAULT_RULE


def size_presets(model_id: str) -> tuple[tuple[int, int], ...]:
    """Square, portrait and landscape presets valid for the model's rule; the first is the default."""
    rule = size_rule(model_id)
    presets = _FLUX_PRESETS if model_id in FLUX_MODELS else _DEFAULT_PRESETS
    return tuple(size for size in presets if rule.allows(*size))


def model_version(model_id: str) -> str:
    """The version part of an AIR id (``runware:101@1`` → ``1``); the whole id when it has none."""
    _, at, version = model_id.rpartition("@")
    return version if at and version else model_id


def parse_models(raw: str) -> list[tuple[str, str]]:
    """Parse ``RUPALI_RUNWARE_MODELS`` (``AIR=Label,AIR=Label``) into ``(air_id, label)`` pairs, first one wins."""
    models: dict[str, str] = {}
    for entry in raw.split(","):
        air_id, _, label = entry.partition("=")
        air_id, label = air_id.strip(), label.strip()
        if air_id and air_id not in models:
            models[air_id] = label or air_id
    return list(models.items())


def model_info(model_id: str, label: str) -> ModelInfo:
    """What the studio may ask of one Runware model."""
    return ModelInfo(id=model_id, label=label, version=model_version(model_id), sizes=size_presets(model_id),
                     size_rule=size_rule(model_id), max_images=MAX_IMAGES, img2img=True, negative_prompt=True,
                     progress=False, is_ai=True, prompt_min=PROMPT_MIN_CHARS)




class RunwareProvider:
    """Generates images with Runware (``name="runware"``)."""

    name = "runware"
    label = "Runware"

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None,
                 retry_delays: tuple[float, ...] = (1, 2, 4), output_type: OutputType = "base64Data") -> None:
        """``client`` lets the caller (or a test) own the connection pool and timeouts; otherwise one is made
        with ``runware_timeout_seconds``. ``output_type`` ``base64Data`` saves a second round trip per image."""
        if settings.runware_api_key is None or not settings.runware_api_key.get_secret_value():
            raise ValueError("RUPALI_RUNWARE_API_KEY is not set")
        self._key = settings.runware_api_key.get_secret_value()
        self._url = settings.runware_url
        self._models = {model_id: model_info(model_id, label) for model_id, label in parse_models(
            settings.runware_models)}
        self._retry_delays = tuple(retry_delays)
        self._output_type: OutputType = output_type
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.runware_timeout_seconds, connect=min(10, settings.runware_timeout_seconds)))

    async def models(self) -> list[ModelInfo]:
        """The models configured in ``RUPALI_RUNWARE_MODELS`` (Runware is not asked)."""
        return list(self._models.values())

    async def aclose(self) -> None:
        """Close the HTTP client when this provider made it."""
        if self._owns_client:
            await self._client.aclose()

    async def reachable(self, timeout: float = REACHABLE_TIMEOUT) -> Reachability:
        """Ask for the account's details (``accountManagement``, operation ``getDetails``): Runware's documented
        call that generates and costs nothing, and answers only a key it accepts, with the account's balance.

        A server that answers but does not know the task (a proxy or a stand-in, HTTP 400/404) still proved it is
        there and did not refuse the key, so it counts as reachable; refused keys, an empty balance, server errors
        and silence do not. Runs on a client of its own, so any event loop may call it."""
        task_uuid = str(uuid.uuid4())
        where = host_and_port(self._url)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(
                    self._url, json=[{"taskType": "accountManagement", "taskUUID": task_uuid,
                                      "operation": "getDetails"}],
                    headers={"Authorization": f"Bearer {self._key}", "Accept": "application/json"})
        except httpx.TimeoutException:
            return False, f"no answer from {where} within {timeout:g} s"
        except httpx.HTTPError as exc:
            return False, self._scrub(f"could not connect to {where}: {connection_failure(exc)}")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        status = response.status_code
        problem = self._error(status, body).detail if _errors(body) or not response.is_success else ""
        if response.is_success and not problem:
            data = body.get("data") if isinstance(body, dict) else None
            account = next((item for item in data if isinstance(item, dict) and item.get("taskUUID") == task_uuid),
                           None) if isinstance(data, list) else None
            balance = _decimal(account.get("balance")) if account is not None else None
            if balance is not None and balance <= 0:
                return False, f"{where} accepted the API key, but the account balance is {balance}: generations fail"
            return True, f"{where} accepted the API key" + (f"; account balance {balance}" if balance is not None
                                                               else "")
        if status in (401, 403):
            return False, f"{where} refused the API key ({problem})"
        if status == 402:
            return False, f"{where} says the account balance is too low ({problem})"
        if status == 429:
            return True, f"{where} is reachable but rate-limiting right now ({problem})"
        if status in (400, 404) or response.is_success:
            return True, f"{where} answered and did not refuse the API key, but not the account check ({problem})"
        return False, f"{where} answered with a server error ({problem})"

    # -- generation ----------------------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> GenerationResult:
        """Run one ``imageInference`` task for ``request.count`` images. ``progress`` is never called (REST)."""
        task = self._task(request)
        body = await self._post([task])
        items = self._results_for(body, task["taskUUID"])
        if len(items) < request.count:
            raise ProviderUnavailable(detail=f"asked for {request.count} images, got {len(items)}")
        images: list[GeneratedImage] = []
        costs: list[Decimal] = []
        for index, item in enumerate(items[: request.count]):
            data = await self._image_bytes(item)
            decoded = await asyncio.to_thread(check_result_image, data)
            seed = item.get("seed")
            nsfw = item.get("NSFWContent")
            images.append(GeneratedImage(
                data=data, format=decoded.format, width=decoded.width, height=decoded.height,
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else request.seed + index,
                provider_nsfw=nsfw if isinstance(nsfw, bool) else None))
            if (cost := _decimal(item.get("cost"))) is not None:
                costs.append(cost)
        return GenerationResult(images=images, model_version=model_version(request.model),
                                cost=sum(costs, Decimal(0)) if costs else None,
                                details={"task_uuid": task["taskUUID"]})

    def _task(self, request: GenerationRequest) -> dict[str, Any]:
        """The ``imageInference`` task, after the checks Runware would otherwise answer with a (billed) round trip."""
        model = self._models.get(request.model)
        if model is None:
            raise InvalidRequest("This model is not offered here.", detail=f"unknown Runware model {request.model!r}")
        prompt = request.prompt.strip()
        if len(prompt) < PROMPT_MIN_CHARS:
            raise InvalidRequest(f"Prompts for this model need at least {PROMPT_MIN_CHARS} characters.")
        if len(prompt) > PROMPT_MAX_CHARS:
            raise InvalidRequest(f"Prompts for this model can have at most {PROMPT_MAX_CHARS} characters.")
        if not model.size_rule.allows(request.width, request.height):
            raise InvalidRequest(f"This model needs an image size of {model.size_rule.describe()}.")
        if not 1 <= request.count <= model.max_images:
            raise InvalidRequest(f"This model makes 1 to {model.max_images} images at a time.")
        task: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": str(uuid.uuid4()),
            "positivePrompt": prompt,
            "model": request.model,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "CFGScale": request.guidance,
            "numberResults": request.count,
            "seed": request.seed,
            "outputType": self._output_type,
            "outputFormat": "PNG",
            "includeCost": True,
            "safety": {"checkContent": True},  # flag, not block: the studio decides what a flag means
        }
        if negative := request.negative_prompt.strip():
            task["negativePrompt"] = negative
        if request.scheduler:
            task["scheduler"] = request.scheduler
        if request.source_image is not None:
            mime = _sniff_mime(request.source_image)
            task["seedImage"] = f"data:{mime};base64," + base64.b64encode(request.source_image).decode("ascii")
            task["strength"] = request.strength
        return task

    # -- HTTP ------------------------------------------------------------------------------------------------------

    async def _post(self, tasks: list[dict[str, Any]]) -> Any:
        """POST the tasks, retrying transient answers; return the parsed JSON of a 2xx answer."""
        attempt = 0
        while True:
            try:
                response = await self._client.post(self._url, json=tasks,
                                                   headers={"Authorization": f"Bearer {self._key}",
                                                            "Accept": "application/json"})
            except httpx.TimeoutException as exc:
                raise ProviderTimeout(detail=self._scrub(f"{type(exc).__name__}: {exc}")) from None
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(detail=self._scrub(f"{type(exc).__name__}: {exc}")) from None
            if response.status_code in _RETRIED_STATUSES and attempt < len(self._retry_delays):
                delay = self._delay(attempt, response)
                log.warning("Runware answered HTTP %s; retrying in %.1f s", response.status_code, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            # A result carries its images as base64: parsing megabytes of JSON is work for a worker thread.
            body = await asyncio.to_thread(self._json, response)
            if response.is_success:
                return body
            raise self._error(response.status_code, body)

    def _delay(self, attempt: int, response: httpx.Response) -> float:
        """Our backoff, stretched to the server's ``Retry-After`` but never past our longest delay."""
        delay = self._retry_delays[attempt]
        try:
            asked = float(response.headers.get("Retry-After", ""))
        except ValueError:
            return delay
        return min(max(delay, asked), max(self._retry_delays))

    def _json(self, response: httpx.Response) -> Any:
        """The body as JSON; a non-JSON error answer becomes ``None`` so its status still classifies it."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            if not response.is_success:
                return None
            raise ProviderUnavailable(detail=f"Runware answered HTTP {response.status_code} with malformed JSON: "
                                             + self._scrub(response.text[:_DETAIL_LIMIT])) from None

    def _results_for(self, body: Any, task_uuid: str) -> list[dict[str, Any]]:
        """The result items of our task from a 2xx answer (errors inside a 2xx answer are still errors)."""
        if not isinstance(body, dict):
            raise ProviderUnavailable(detail=f"Runware answered {type(body).__name__}, not an object")
        data = body.get("data")
        items = [item for item in data if isinstance(item, dict) and item.get("taskUUID") == task_uuid
                 and item.get("taskType", "imageInference") == "imageInference"] if isinstance(data, list) else []
        if not items and _errors(body):
            raise self._error(400, body)
        if not isinstance(data, list):
            raise ProviderUnavailable(detail="Runware's answer has no data list")
        return items

    def _error(self, status: int, body: Any) -> ProviderError:
        """Classify a failed answer into the exception the studio understands."""
        errors = _errors(body)
        codes = " ".join(str(error.get("code", "")) for error in errors)
        parameter = next((str(error["parameter"]) for error in errors if error.get("parameter")), None)
        detail = self._scrub(f"HTTP {status}: " + ("; ".join(
            f"{error.get('code', '?')}: {error.get('message', '')}" + (
                f" (parameter {error['parameter']})" if error.get("parameter") else "") for error in errors)
            or "no error details"))[:_DETAIL_LIMIT]
        if "sensitivecontent" in codes.lower() or "moderation" in codes.lower():
            return ContentBlocked(detail=detail)
        if status in (401, 403):
            return ProviderUnavailable("The image service is not available right now: the operator's API key was "
                                       "refused.", detail=detail)
        if status == 402:
            return OutOfBalance(detail=detail)
        if status == 429:
            return RateLimited(detail=detail)
        if 400 <= status < 500 and (status == 400 or parameter):
            if parameter:
                name = _PARAMETER_NAMES.get(parameter, parameter)
                return InvalidRequest(f"The image service did not accept the {name}.", detail=detail)
            return InvalidRequest(detail=detail)
        return ProviderUnavailable(detail=detail)

    async def _image_bytes(self, item: dict[str, Any]) -> bytes:
        """The image of one result item, whichever of the three documented shapes it came in."""
        if isinstance(inline := item.get("imageBase64Data"), str):
            return _b64(inline)
        if isinstance(data_uri := item.get("imageDataURI"), str):
            header, comma, payload = data_uri.partition(",")
            if not comma or not header.startswith("data:") or not header.endswith(";base64"):
                raise ProviderUnavailable(detail="Runware's imageDataURI is not a base64 data URI")
            return _b64(payload)
        if isinstance(url := item.get("imageURL"), str) and url.startswith(("https://", "http://")):
            return await self._download(url)
        raise ProviderUnavailable(detail="a Runware result carries no image")

    async def _download(self, url: str) -> bytes:
        """Fetch a result from Runware's image host — without the API key, which is for the API only."""
        try:
            async with self._client.stream("GET", url) as response:
                if not response.is_success:
                    raise ProviderUnavailable(detail=f"fetching a result image answered HTTP {response.status_code}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise ProviderUnavailable(detail="a result image is larger than any size we ask for")
                    chunks.append(chunk)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(detail=self._scrub(f"fetching a result image: {type(exc).__name__}")) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(detail=self._scrub(f"fetching a result image: {type(exc).__name__}: {exc}")
                                      ) from None
        return b"".join(chunks)

    def _scrub(self, text: str) -> str:
        """Remove the API key from text bound for an exception or a log line."""
        return text.replace(self._key, "[key]") if self._key else text


def _errors(body: Any) -> list[dict[str, Any]]:
    """The error objects of an envelope: ``errors: [...]`` or the older single ``error`` (object or text)."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        return [error if isinstance(error, dict) else {"message": str(error)} for error in errors]
    error = body.get("error")
    if isinstance(error, dict):
        return [error]
    if isinstance(error, str):
        return [{"message": error}]
    return []


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderUnavailable(detail="a Runware result is not valid base64") from None


def _decimal(value: Any) -> Decimal | None:
    """A cost as Decimal (via ``str`` so 0.0013 stays 0.0013); ``None`` when absent or not a number."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def _sniff_mime(data: bytes) -> str:
    """The MIME type for the seed image's data URI; the studio sends PNG, but a label must not lie."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


