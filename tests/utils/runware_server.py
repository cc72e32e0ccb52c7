"""A Runware stand-in on loopback that speaks the documented REST contract, for testing over real HTTP.

``POST /v1`` takes a Bearer key and a JSON array of tasks; ``imageInference`` tasks are checked field by field
(unknown fields are refused, so a typo in the client shows up here) and answered with real images drawn by
Pillow at the requested size, as ``imageBase64Data``, ``imageDataURI`` or an ``imageURL`` served by this same
server (``GET /images/<uuid>.<ext>``, no key needed, as on Runware's image host). Failures use the documented
envelope ``{"errors": [{code, message, parameter, taskType, taskUUID}]}``.

    with RunwareServer(api_key="k") as server:
        server.fail_next(429, times=2)        # canned failures, served before any real work
        server.malformed_next()               # a 200 whose body is not JSON
        server.delay_next(2.0)                # answer late (longer than the client's timeout)
        server.nsfw = True                    # flag every result NSFWContent: true
        server.corrupt_images = True          # results that do not decode
        server.blocked_words = {"forbidden"}  # prompts containing one fail with sensitiveContentDetected
        ...
        server.posts[-1].body                 # every request is recorded: method, path, headers, parsed body
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import random
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from PIL import Image, ImageDraw

from tests.utils.loopback import JoiningHTTPServer, LoopbackHandler, LoopbackHTTPServer

FLUX_MODELS = frozenset({"runware:100@1", "runware:101@1"})
IMAGE_INFERENCE_FIELDS = frozenset({
    "taskType", "taskUUID", "positivePrompt", "negativePrompt", "model", "width", "height", "steps", "CFGScale",
    "numberResults", "seed", "scheduler", "clipSkip", "seedImage", "strength", "maskImage", "outputType",
    "outputFormat", "outputQuality", "includeCost", "deliveryMethod", "webhookURL", "safety", "checkNSFW",
})
REQUIRED_FIELDS = ("taskType", "taskUUID", "positivePrompt", "model", "width", "height")
OUTPUT_FORMATS = {"PNG": ("PNG", "png", "image/png"), "JPG": ("JPEG", "jpg", "image/jpeg"),
                  "WEBP": ("WEBP", "webp", "image/webp")}
_AIR_RE = re.compile(r"^[a-z0-9_-]+:[0-9]+@[0-9]+$")
_MAX_SEED = 2**63 - 1
DEFAULT_COST = Decimal("0.0013")


class RunwareServerError(RuntimeError):
    """The loopback server was used in a way it does not support."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON when it parsed, else the raw bytes


@dataclass(frozen=True)
class _Canned:
    """A scripted answer to the next POST."""

    status: int = 200
    body: bytes | None = None  # None: do the real work after ``delay``
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    task_type: str | None = None  # served only to a POST whose first task is of this type


class _TaskError(Exception):
    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 task: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"code": code, "message": message}
        if parameter:
            self.error["parameter"] = parameter
        if task is not None:
            self.error["taskType"] = task.get("taskType")
            self.error["taskUUID"] = task.get("taskUUID")


def envelope(code: str, message: str, parameter: str | None = None, **extra: Any) -> dict[str, Any]:
    """A documented error envelope with one error."""
    error: dict[str, Any] = {"code": code, "message": message, **extra}
    if parameter:
        error["parameter"] = parameter
    return {"errors": [error]}


def _size_rule(model: str) -> tuple[int, int, int]:
    """The contract's sizes (the sources disagree; these are the ones the studio builds to)."""
    return (128, 2048, 16) if model in FLUX_MODELS else (512, 2048, 64)


def _colour(seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(str(seed).encode()).digest()
    return digest[0], digest[1], digest[2]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode_seed_image(value: Any, task: dict[str, Any]) -> Image.Image:
    """Accept a data URI or bare base64 (the loopback server cannot fetch URLs or look up uploaded UUIDs)."""
    if not isinstance(value, str) or not value:
        raise _TaskError(400, "invalidSeedImage", "seedImage must be a string", "seedImage", task)
    payload = value
    if value.startswith("data:"):
        header, comma, payload = value.partition(",")
        if not comma or not header.endswith(";base64") or not header[5:].startswith("image/"):
            raise _TaskError(400, "invalidSeedImage", "seedImage data URI must be data:image/…;base64,…",
                             "seedImage", task)
    try:
        raw = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            declared = value[5:].partition(";")[0] if value.startswith("data:") else None
            if declared and declared != Image.MIME.get(str(image.format)):
                raise _TaskError(400, "invalidSeedImage", f"seedImage says {declared} but is {image.format}",
                                 "seedImage", task)
            return image.copy()
    except (binascii.Error, ValueError, OSError) as exc:
        raise _TaskError(400, "invalidSeedImage", f"seedImage is not an image ({exc})", "seedImage", task) from None


class _Server(JoiningHTTPServer):
    owner: RunwareServer


class _Handler(LoopbackHandler):
    server: _Server

    def _dispatch(self, method: str) -> None:
        runware = self.server.owner
        self._guard(runware._get if method == "GET" else runware._post)

    def _guard(self, handle: Any) -> None:
        try:
            status, body, headers = handle(self)
        except Exception as exc:  # a bug in the stand-in: answer 500 rather than drop the connection
            status, body, headers = 500, json.dumps(envelope("internalServerError", repr(exc))).encode(), {}
        try:
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test): fine
            pass


Reply = tuple[int, bytes, dict[str, str]]


class RunwareServer(LoopbackHTTPServer):
    """A Runware REST endpoint served over real HTTP on 127.0.0.1 from a background thread."""

    handler_class = _Handler
    server_class = _Server
    error_class = RunwareServerError
    thread_name = "loopback-runware"
    _server: _Server | None

    def __init__(self, *, api_key: str = "k", host: str = "127.0.0.1", port: int = 0,
                 cost_per_image: Decimal = DEFAULT_COST) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.cost_per_image = cost_per_image
        self.nsfw = False
        self.corrupt_images = False  # results are cut short: valid base64/URL, but not a decodable image
        self.blocked_words: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._canned: deque[_Canned] = deque()
        self._images: dict[str, tuple[bytes, str]] = {}
        self._stopping = threading.Event()

    def _on_start(self) -> None:
        self._stopping.clear()

    def _on_stop(self) -> None:
        self._stopping.set()  # wake any delayed answer

    @property
    def base_url(self) -> str:
        return self._origin

    @property
    def url(self) -> str:
        """The REST endpoint, what ``RUPALI_RUNWARE_URL`` points at."""
        return f"{self.base_url}/v1"

    # -- scripting ---------------------------------------------------------------------------------------------

    def fail_next(self, status: int, errors: dict[str, Any] | bytes | None = None, *, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` POSTs with ``status`` and ``errors``: an envelope (default: a generic one),
        or raw bytes for a proxy's HTML error page."""
        payload = errors if errors is not None else envelope(f"http{status}", f"Scripted failure {status}")
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._queue(_Canned(status, body, dict(headers or {})), times)

    def malformed_next(self, *, times: int = 1, body: bytes = b'{"data": [ this is not json') -> None:
        """Answer the next ``times`` POSTs with HTTP 200 and a body that is not JSON."""
        self._queue(_Canned(200, body), times)

    def delay_next(self, seconds: float, *, times: int = 1, task_type: str | None = None) -> None:
        """Do the real work for the next ``times`` POSTs (of ``task_type`` only, when given: health checks send
        ``accountManagement``), but answer only after ``seconds``."""
        self._queue(_Canned(delay=seconds, task_type=task_type), times)

    def clear(self) -> None:
        """Forget recorded requests and scripted answers."""
        with self._lock:
            self.requests.clear()
            self._canned.clear()

    @property
    def posts(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.method == "POST"]

    @property
    def image_gets(self) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.method == "GET"]

    def _queue(self, canned: _Canned, times: int) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._canned.extend([canned] * times)

    # -- endpoints -------------------------------------------------------------------------------------------------

    def _record(self, handler: _Handler, body: Any) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, handler.path, dict(handler.headers.items()), body))

    def _get(self, handler: _Handler) -> Reply:
        self._record(handler, None)
        match = re.fullmatch(r"/images/([0-9a-f-]{36})\.(png|jpg|webp)", handler.path)
        with self._lock:
            stored = self._images.get(match.group(1)) if match else None
        if stored is None:
            return 404, json.dumps(envelope("notFound", "No such image")).encode(), {}
        data, mime = stored
        return 200, data, {"Content-Type": mime}

    def _post(self, handler: _Handler) -> Reply:
        raw = handler.read_body()
        try:
            body: Any = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw
        self._record(handler, body)
        if handler.path != "/v1":
            return self._json(404, envelope("notFound", f"No endpoint {handler.path}"))
        first = body[0].get("taskType") if isinstance(body, list) and body and isinstance(body[0], dict) else None
        with self._lock:
            canned = self._canned[0] if self._canned else None
            if canned is not None and canned.task_type not in (None, first):
                canned = None  # kept for a POST of its type
            elif canned is not None:
                self._canned.popleft()
        if canned is not None and canned.body is not None:
            return canned.status, canned.body, canned.headers
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._json(401, envelope("invalidApiKey", "Invalid API key. Get one at runware.ai"))
        if canned is not None and canned.delay and self._stopping.wait(canned.delay):
            return self._json(503, envelope("serverShuttingDown", "The server is stopping"))
        if (handler.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._json(400, envelope("invalidContentType", "Content-Type must be application/json"))
        if not isinstance(body, list) or not body:
            return self._json(400, envelope("invalidRequestBody", "The body must be a non-empty JSON array of tasks"))
        data: list[dict[str, Any]] = []
        try:
            for task in body:
                data.extend(self._task(task))
        except _TaskError as error:
            return self._json(error.status, {"errors": [error.error]})
        return self._json(200, {"data": data})

    def _json(self, status: int, payload: dict[str, Any]) -> Reply:
        return status, json.dumps(payload).encode(), {}

    def _task(self, task: Any) -> list[dict[str, Any]]:
        if not isinstance(task, dict):
            raise _TaskError(400, "invalidTask", "Each task must be an object")
        if task.get("taskType") != "imageInference":
            raise _TaskError(400, "unsupportedTaskType", f"Unsupported taskType {task.get('taskType')!r}",
                             "taskType", task)
        self._check_inference(task)
        return self._infer(task)

    def _check_inference(self, task: dict[str, Any]) -> None:
        """The documented field rules; every breach is a 400 naming the parameter."""
        def bad(parameter: str, message: str, code: str = "invalidParameter") -> _TaskError:
            return _TaskError(400, code, message, parameter, task)

        for name in REQUIRED_FIELDS:
            if name not in task:
                raise bad(name, f"Missing required parameter {name}", "missingParameter")
        for name in task:
            if name not in IMAGE_INFERENCE_FIELDS:
                raise bad(name, f"Unknown parameter {name}", "unsupportedParameter")
        try:
            if uuid.UUID(str(task["taskUUID"])).version != 4 or str(uuid.UUID(task["taskUUID"])) != task["taskUUID"]:
                raise ValueError
        except (ValueError, TypeError):
            raise bad("taskUUID", "taskUUID must be a UUID v4 string") from None
        prompt = task["positivePrompt"]
        if not isinstance(prompt, str) or not 4 <= len(prompt) <= 2000:
            raise bad("positivePrompt", "positivePrompt must be 4 to 2000 characters")
        negative = task.get("negativePrompt")
        if negative is not None and (not isinstance(negative, str) or len(negative) > 2000):
            raise bad("negativePrompt", "negativePrompt must be a string of at most 2000 characters")
        if not isinstance(task["model"], str) or not _AIR_RE.match(task["model"]):
            raise bad("model", "model must be an AIR id such as runware:100@1")
        low, high, multiple = _size_rule(task["model"])
        for name in ("width", "height"):
            value = task[name]
            if not _is_int(value) or not low <= value <= high or value % multiple:
                raise bad(name, f"{name} must be {low}-{high} in multiples of {multiple}")
        checks = {
            "steps": lambda v: _is_int(v) and 1 <= v <= 100,
            "CFGScale": lambda v: _is_number(v) and 0 <= v <= 30,
            "numberResults": lambda v: _is_int(v) and 1 <= v <= 20,
            "seed": lambda v: _is_int(v) and 0 <= v <= _MAX_SEED,
            "scheduler": lambda v: isinstance(v, str) and bool(v),
            "strength": lambda v: _is_number(v) and 0 <= v <= 1,
            "outputType": lambda v: v in {"URL", "base64Data", "dataURI"},
            "outputFormat": lambda v: v in OUTPUT_FORMATS,
            "outputQuality": lambda v: _is_int(v) and 20 <= v <= 99,
            "includeCost": lambda v: isinstance(v, bool),
            "checkNSFW": lambda v: isinstance(v, bool),
            "deliveryMethod": lambda v: v == "sync",  # async delivery (getResponse polling) is not served here
            "safety": lambda v: isinstance(v, dict) and set(v) <= {"checkContent", "blockContent"}
            and all(isinstance(flag, bool) for flag in v.values()),
        }
        for name, ok in checks.items():
            if name in task and not ok(task[name]):
                raise bad(name, f"Invalid value for {name}")
        if "strength" in task and "seedImage" not in task:
            raise bad("strength", "strength needs a seedImage")
        if "seedImage" in task:
            _decode_seed_image(task["seedImage"], task)
        if any(word.lower() in prompt.lower() for word in self.blocked_words):
            raise _TaskError(400, "sensitiveContentDetected", "The prompt was flagged by content moderation",
                             "positivePrompt", task)

    def _infer(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """Draw ``numberResults`` images at the requested size; seeds follow the request's seed."""
        count = task.get("numberResults", 1)
        first_seed = task["seed"] if "seed" in task else random.randint(1, 2**31)
        pil_format, ext, mime = OUTPUT_FORMATS[task.get("outputFormat", "JPG")]
        output_type = task.get("outputType", "URL")
        safety = task.get("safety") or {}
        check_content = bool(safety.get("checkContent") or task.get("checkNSFW"))
        results = []
        for index in range(count):
            seed = first_seed + index
            image = Image.new("RGB", (task["width"], task["height"]), _colour(seed))
            ImageDraw.Draw(image).rectangle((0, 0, task["width"] // 4, task["height"] // 4), fill=(255, 255, 255))
            buffer = io.BytesIO()
            image.save(buffer, pil_format)
            data = buffer.getvalue()[:60] if self.corrupt_images else buffer.getvalue()
            image_uuid = str(uuid.uuid4())
            item: dict[str, Any] = {"taskType": "imageInference", "taskUUID": task["taskUUID"],
                                    "imageUUID": image_uuid, "seed": seed}
            if output_type == "base64Data":
                item["imageBase64Data"] = base64.b64encode(data).decode("ascii")
            elif output_type == "dataURI":
                item["imageDataURI"] = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
            else:
                with self._lock:
                    self._images[image_uuid] = (data, mime)
                item["imageURL"] = f"{self.base_url}/images/{image_uuid}.{ext}"
            if check_content:
                item["NSFWContent"] = self.nsfw
            if task.get("includeCost"):
                item["cost"] = float(self.cost_per_image)
            results.append(item)
        return results
