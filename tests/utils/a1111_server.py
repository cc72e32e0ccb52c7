"""A real AUTOMATIC1111-style API on loopback, for testing the A1111 provider over HTTP rather than with mocks.

It speaks the ``/sdapi/v1`` contract of the peer conventions: ``sd-models`` (two checkpoints), ``samplers``,
``options``, ``txt2img``/``img2img`` (one job at a time, like A1111's queue lock) answering real PNGs of the asked
size and an ``info`` JSON string, ``progress`` that rises while a job works, and ``interrupt``.

    with running_server(work_seconds=0.6, username="op", password="secret") as server:
        server.respond_next(500, {"error": "RuntimeError"}, path="/sdapi/v1/txt2img")  # script the next answer
        server.delay_next(5)                 # answer the next request late (past a client's timeout)
        server.malformed_next()              # 200 with a body that is not JSON
        ...
        server.generations[-1]               # the JSON body of the last txt2img/img2img request
        server.interrupt_calls               # how often /interrupt was called

Like A1111 it falls back to the current checkpoint when ``override_settings`` names an unknown one, answers
404 "Sampler not found" for an unknown sampler, 401 without the ``--api-auth`` credentials and FastAPI's
``{"detail": "Not Found"}`` for every ``/sdapi`` route when ``api_enabled`` is False (started without ``--api``).
Every request is recorded in ``requests``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from PIL import Image, PngImagePlugin

from tests.utils.loopback import JoiningHTTPServer, LoopbackHandler, LoopbackHTTPServer

API = "/sdapi/v1"
GENERATION_PATHS = (f"{API}/txt2img", f"{API}/img2img")

SDXL = {"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0", "hash": "31e35c80fc",
        "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
        "filename": "/models/Stable-diffusion/sd_xl_base_1.0.safetensors", "config": None}
SD15 = {"title": "v1-5-pruned-emaonly.safetensors [6ce0161689]", "model_name": "v1-5-pruned-emaonly",
        "hash": "6ce0161689", "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
        "filename": "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors", "config": None}
SAMPLERS = ("DPM++ 2M", "Euler a", "Euler", "DDIM")
_INT_FIELDS = ("seed", "steps", "width", "height", "batch_size", "n_iter")


class A1111ServerError(RuntimeError):
    """The loopback server did not behave as a test expected."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, the raw text when it is not JSON, None when empty


@dataclass
class _Scripted:
    """One scripted answer for the next request whose path ends with ``path`` (any request when None)."""

    path: str | None
    status: int | None  # None: answer normally, after ``delay``
    body: bytes
    content_type: str
    delay: float


@dataclass
class _Job:
    kind: str
    steps: int
    started: float
    interrupt: threading.Event = field(default_factory=threading.Event)


class _Reply(Exception):  # control flow, not an error
    """Raised inside a handler to send a response."""

    def __init__(self, status: int, body: Any = None, *, raw: bytes | None = None,
                 content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.raw = raw if raw is not None else json.dumps(body).encode("utf-8")
        self.content_type = content_type
        self.headers = headers or {}


class _Server(JoiningHTTPServer):
    owner: LoopbackA1111


class _Handler(LoopbackHandler):
    server: _Server

    def _dispatch(self, method: str) -> None:
        try:
            self.server.owner._handle(method, self.path, dict(self.headers.items()), self.read_body())
        except _Reply as reply:
            self._send(reply)
        except Exception as exc:  # a bug in the server: say so, as A1111's exception handler would
            self._send(_Reply(500, {"error": type(exc).__name__, "detail": "", "body": "", "errors": repr(exc)}))
        else:  # every route answers with a _Reply
            self._send(_Reply(500, {"error": "NoReply"}))

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.raw)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, cancellation): exactly what some tests do


class LoopbackA1111(LoopbackHTTPServer):
    """An AUTOMATIC1111-compatible API served over real HTTP on 127.0.0.1 from a background thread."""

    handler_class = _Handler
    server_class = _Server
    error_class = A1111ServerError
    thread_name = "loopback-a1111"
    _server: _Server | None

    def __init__(self, *, work_seconds: float = 0.0, username: str | None = None, password: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.work_seconds = work_seconds  # how long each generation takes; /progress rises meanwhile
        self.username = username
        self.password = password
        self.api_enabled = True  # False: answer like a server started without --api
        self.models: list[dict[str, Any]] = [dict(SDXL), dict(SD15)]
        self.samplers: list[str] = list(SAMPLERS)
        self.current_model: str = SDXL["title"]  # the server-wide default checkpoint
        self.info_overrides: dict[str, Any] = {}  # merged into every generation's info JSON
        self.requests: list[RecordedRequest] = []
        self.interrupt_calls = 0
        self.interrupted_jobs = 0
        self.completed_jobs = 0
        self.job_started = threading.Event()  # set when a generation starts working
        self._lock = threading.Lock()
        self._queue = threading.Lock()  # one job at a time, like A1111's queue lock
        self._scripted: list[_Scripted] = []
        self._job: _Job | None = None
        self._stopping = threading.Event()

    def _on_start(self) -> None:
        self._stopping.clear()

    def _on_stop(self) -> None:
        """End any job or scripted delay before the socket closes."""
        self._stopping.set()
        with self._lock:
            if self._job is not None:
                self._job.interrupt.set()

    @property
    def url(self) -> str:
        return self._origin

    # -- scripting and records -------------------------------------------------------------------------------------

    def respond_next(self, status: int, body: Any = None, *, path: str | None = None, raw: bytes | None = None,
                     content_type: str = "application/json", delay: float = 0.0) -> None:
        """Answer the next request (whose path ends with ``path``) with ``status`` and ``body`` (or ``raw``)."""
        payload = raw if raw is not None else json.dumps(body).encode("utf-8")
        with self._lock:
            self._scripted.append(_Scripted(path, status, payload, content_type, delay))

    def malformed_next(self, *, path: str | None = None) -> None:
        """Answer the next request with HTTP 200 and a body that is not JSON."""
        self.respond_next(200, raw=b'{"images": ["iVBOR', path=path)

    def delay_next(self, seconds: float, *, path: str | None = None) -> None:
        """Hold the next request for ``seconds`` (cut short by ``stop()``), then answer it normally."""
        with self._lock:
            self._scripted.append(_Scripted(path, None, b"", "application/json", seconds))

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path ends with ``path``."""
        with self._lock:
            return [request for request in self.requests
                    if request.path.endswith(path) and (method is None or request.method == method)]

    @property
    def generations(self) -> list[Any]:
        """JSON bodies of every txt2img and img2img request, in order."""
        with self._lock:
            return [request.body for request in self.requests if request.path in GENERATION_PATHS]

    # -- request handling (server threads) -------------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> None:
        parts = urlsplit(target)
        path = parts.path
        with self._lock:
            self.requests.append(RecordedRequest(method, path, dict(parse_qsl(parts.query)), headers, _parse(raw)))
            scripted = next((entry for entry in self._scripted
                             if entry.path is None or path.endswith(entry.path)), None)
            if scripted is not None:
                self._scripted.remove(scripted)
        if scripted is not None:
            if scripted.delay:
                self._stopping.wait(scripted.delay)
            if scripted.status is not None:
                raise _Reply(scripted.status, raw=scripted.body, content_type=scripted.content_type)
        if not path.startswith(f"{API}/") or not self.api_enabled:
            raise _Reply(404, {"detail": "Not Found"})
        self._authenticate(headers)
        routes = {
            ("GET", f"{API}/sd-models"): lambda: self.models,
            ("GET", f"{API}/samplers"): lambda: [{"name": name, "aliases": [], "options": {}}
                                                 for name in self.samplers],
            ("GET", f"{API}/options"): lambda: {"sd_model_checkpoint": self.current_model, "samples_format": "png"},
            ("POST", f"{API}/options"): lambda: self._set_options(_json_object(raw)),
            ("GET", f"{API}/progress"): self._progress,
            ("POST", f"{API}/interrupt"): self._interrupt,
            ("POST", f"{API}/txt2img"): lambda: self._generate("txt2img", _json_object(raw)),
            ("POST", f"{API}/img2img"): lambda: self._generate("img2img", _json_object(raw)),
        }
        route = routes.get((method, path))
        if route is None:
            known = {route_path for _, route_path in routes}
            raise _Reply(405, {"detail": "Method Not Allowed"}) if path in known else _Reply(404, {"detail":
                                                                                                    "Not Found"})
        raise _Reply(200, route())

    def _authenticate(self, headers: dict[str, str]) -> None:
        """``--api-auth``: HTTP basic auth on every API route."""
        if self.username is None:
            return
        expected = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode("ascii")
        given = next((value for name, value in headers.items() if name.lower() == "authorization"), "")
        if given != f"Basic {expected}":
            raise _Reply(401, {"detail": "Incorrect username or password."}, headers={"WWW-Authenticate": "Basic"})

    def _set_options(self, body: dict[str, Any]) -> None:
        if isinstance(body.get("sd_model_checkpoint"), str):
            self.current_model = body["sd_model_checkpoint"]

    def _progress(self) -> dict[str, Any]:
        with self._lock:
            job = self._job
        if job is None:  # what A1111 says when idle
            return {"progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
                    "state": {"skipped": False, "interrupted": False, "job": "", "job_count": 0,
                              "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}}
        elapsed = time.monotonic() - job.started
        fraction = min(elapsed / self.work_seconds, 1.0) if self.work_seconds > 0 else 1.0
        step = int(fraction * job.steps)  # A1111 counts sampling steps
        return {"progress": step / job.steps, "eta_relative": max(self.work_seconds - elapsed, 0.0),
                "current_image": None, "textinfo": None,
                "state": {"skipped": False, "interrupted": job.interrupt.is_set(), "job": job.kind, "job_count": 1,
                          "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "job_no": 0, "sampling_step": step,
                          "sampling_steps": job.steps}}

    def _interrupt(self) -> None:
        with self._lock:
            self.interrupt_calls += 1
            if self._job is not None:
                self._job.interrupt.set()

    def _generate(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Validate like FastAPI and A1111 would, work for ``work_seconds``, answer PNGs and the info JSON."""
        errors = [{"loc": ["body", name], "msg": "value is not a valid integer", "type": "type_error.integer"}
                  for name in _INT_FIELDS if name in body and (not isinstance(body[name], int)
                                                               or isinstance(body[name], bool))]
        if errors:
            raise _Reply(422, {"detail": errors})
        sampler = body.get("sampler_name") or "Euler a"
        if sampler not in self.samplers:
            raise _Reply(404, {"detail": "Sampler not found"})
        if kind == "img2img":
            init_images = body.get("init_images")
            if not init_images:
                raise _Reply(404, {"detail": "Init image not found"})
            _check_image(init_images[0])
        width, height = body.get("width", 512), body.get("height", 512)
        steps, count = max(body.get("steps", 20), 1), body.get("batch_size", 1) * body.get("n_iter", 1)
        override = (body.get("override_settings") or {}).get("sd_model_checkpoint")
        # Like A1111: an unknown checkpoint title quietly falls back to the current one.
        model = next((entry for entry in self.models if override in (entry["title"], entry["model_name"])),
                     next((entry for entry in self.models if entry["title"] == self.current_model), self.models[0]))
        seed = body.get("seed", -1)
        seed = random.randrange(2**32) if seed == -1 else seed
        with self._queue:
            job = _Job(kind, steps, time.monotonic())
            with self._lock:
                self._job = job
            self.job_started.set()
            interrupted = job.interrupt.wait(self.work_seconds) if self.work_seconds > 0 else False
            with self._lock:
                self._job = None
                if interrupted:
                    self.interrupted_jobs += 1
                else:
                    self.completed_jobs += 1
        seeds = [seed + index for index in range(count)]
        infotexts = [_infotext(body, seed, sampler, model) for seed in seeds]
        info = {"prompt": body.get("prompt", ""), "all_prompts": [body.get("prompt", "")] * count,
                "negative_prompt": body.get("negative_prompt", ""), "seed": seed, "all_seeds": seeds,
                "subseed": seed, "all_subseeds": seeds, "width": width, "height": height, "sampler_name": sampler,
                "cfg_scale": body.get("cfg_scale", 7.0), "steps": steps, "batch_size": body.get("batch_size", 1),
                "sd_model_name": model["model_name"], "sd_model_hash": model["hash"], "index_of_first_image": 0,
                "infotexts": infotexts, "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
                "denoising_strength": body.get("denoising_strength") if kind == "img2img" else None,
                **self.info_overrides}
        images = [_png(width, height, seed, text) for seed, text in zip(seeds, infotexts, strict=True)]
        return {"images": images, "parameters": body, "info": json.dumps(info)}


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _json_object(raw: bytes) -> dict[str, Any]:
    """The request body as FastAPI would take it: a JSON object, or 422."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise _Reply(422, {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "value_error.jsondecode"}]}
                     ) from None
    if not isinstance(body, dict):
        raise _Reply(422, {"detail": [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error"}]})
    return body


def _check_image(encoded: Any) -> None:
    """A1111 decodes ``init_images`` with Pillow; so do we."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as image:
            image.load()
    except (binascii.Error, OSError, TypeError, ValueError):
        raise _Reply(500, {"error": "OSError", "detail": "", "body": "", "errors": "cannot identify image file"}
                     ) from None


def _infotext(body: dict[str, Any], seed: int, sampler: str, model: dict[str, Any]) -> str:
    lines = [str(body.get("prompt", ""))]
    if body.get("negative_prompt"):
        lines.append(f"Negative prompt: {body['negative_prompt']}")
    lines.append(f"Steps: {body.get('steps', 20)}, Sampler: {sampler}, CFG scale: {body.get('cfg_scale', 7.0)}, "
                 f"Seed: {seed}, Size: {body.get('width', 512)}x{body.get('height', 512)}, "
                 f"Model hash: {model['hash']}, Model: {model['model_name']}")
    return "\n".join(lines)


def _png(width: int, height: int, seed: int, infotext: str) -> str:
    """A real PNG of the asked size, its colour derived from the seed, with A1111's ``parameters`` chunk."""
    colour = (seed % 256, (seed // 256) % 256, (seed // 65536) % 256)
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text("parameters", infotext)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG", pnginfo=metadata)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@contextmanager
def running_server(**kwargs: Any) -> Iterator[LoopbackA1111]:
    """A started :class:`LoopbackA1111` (constructor ``kwargs``), stopped on exit."""
    server = LoopbackA1111(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
