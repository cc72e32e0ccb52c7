"""Speed of the generation path, with real components: loopback HTTP, the migrated database, files on disk.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench -m bench -s

1. App overhead per generation: ``generations.submit`` (in a DB session, on a worker thread as the studio does) +
   ``queue.submit`` until the queue has finished the job and the row is succeeded. The provider is the real
   Runware provider over real HTTP against a loopback Runware server that answers at once with one pre-encoded
   1024x1024 PNG, so what is timed is the app: validation, the queue, HTTP + base64 + decode, thumbnail, storage
   (fsync'd) and the database. NSFW scoring is excluded (the queue gets a scorer that returns zeros) and is
   measured on its own in 2. Completion is observed with ``queue.state()`` polled every millisecond.
2. NSFW scoring per image with the real :class:`~rupali.nsfw.NsfwScorer` (2 threads), batches of 1 and of 4
   offline-generator images of 1024x1024 (decoding included, as in the queue).
3. ``media.thumbnail`` for a 1024x1024 PNG, a 2048x2048 PNG and a 1024x1024 JPEG (information, no target).

Every measurement runs before any target is checked; then the table is printed and missed targets fail the test.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from rupali import media
from rupali.config import get_settings, reset_settings
from rupali.db import transact
from rupali.generation_queue import GenerationQueue
from rupali.models import Generation, GenerationStatus
from rupali.nsfw import NsfwScorer
from rupali.providers.base import GenerationRequest
from rupali.providers.offline import paint, render
from rupali.runtime import Runtime
from rupali.services import generation as generations
from tests.utils.factories import make_user
from tests.utils.runware_server import RunwareServer, RunwareServerError

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

API_KEY = "rw-bench-key-0123456789abcdef"
MODEL_KEY = "runware:runware:100@1"  # provider:model — FLUX.1 schnell
WARM_UP = 5
ITERATIONS = 30
OVERHEAD_TARGET_MS = 25.0
NSFW_TARGET_MS = 60.0
PROMPTS = ("a golden sunset over the ocean", "portrait of a woman in a pine forest", "city skyline at night",
           "red tulip garden on a hill")
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


# --- the loopback provider ---------------------------------------------------------------------------------------

class InstantRunwareServer(RunwareServer):
    """The loopback Runware server, answering every ``imageInference`` task at once with one pre-encoded image.

    Requests are still checked against the contract by the base class; only the drawing and encoding of the
    result is skipped, and the base64 text is spliced into the JSON answer instead of being run through ``json``.
    """

    _PLACEHOLDER = "@@bench-image@@"

    def __init__(self, image: bytes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._image_b64 = base64.b64encode(image)

    def _infer(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        if task.get("outputType") != "base64Data":
            raise RunwareServerError("the bench server only answers outputType base64Data")
        safety = task.get("safety") or {}
        items = []
        for index in range(task.get("numberResults", 1)):
            item: dict[str, Any] = {"taskType": "imageInference", "taskUUID": task["taskUUID"],
                                    "imageUUID": str(uuid.uuid4()), "seed": task.get("seed", 1) + index,
                                    "imageBase64Data": self._PLACEHOLDER}
            if safety.get("checkContent") or task.get("checkNSFW"):
                item["NSFWContent"] = False
            if task.get("includeCost"):
                item["cost"] = float(self.cost_per_image)
            items.append(item)
        return items

    def _json(self, status: int, payload: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        status, body, headers = super()._json(status, payload)
        return status, body.replace(self._PLACEHOLDER.encode(), self._image_b64), headers


class ZeroScorer:
    """Scores every image 0 at no cost: takes NSFW scoring out of the overhead measurement."""

    def scores(self, images: list[bytes]) -> list[float]:
        return [0.0] * len(images)


# --- measuring ---------------------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    samples_ms: list[float]
    target_ms: float | None = None  # checked against the median; None: for information

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank

    @property
    def passed(self) -> bool:
        return self.target_ms is None or self.median <= self.target_ms

    @property
    def verdict(self) -> str:
        if self.target_ms is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


def timed(work: Callable[[], object], *, warm_up: int = 3, iterations: int = ITERATIONS, per: int = 1
          ) -> list[float]:
    """Milliseconds per call of ``work`` (divided by ``per``: items per call), after ``warm_up`` calls."""
    for _ in range(warm_up):
        work()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000 / per)
    return samples


def table(rows: list[Row]) -> str:
    width = max(len(row.name) for row in rows)
    lines = [f"{'benchmark':<{width}}  {'median':>9}  {'p90':>9}  {'target':>9}  verdict",
             "-" * (width + 44)]
    for row in rows:
        target = f"<= {row.target_ms:g}" if row.target_ms is not None else "-"
        lines.append(f"{row.name:<{width}}  {row.median:>6.1f} ms  {row.p90:>6.1f} ms  {target:>9}  {row.verdict}")
    lines.append(f"({os.cpu_count()} CPUs; times in ms; 'per image' rows divide a batch's time by its size)")
    return "\n".join(lines)


def offline_png(prompt: str, side: int = 1024, seed: int = 7) -> bytes:
    request = GenerationRequest(prompt=prompt, negative_prompt="", model="sketch-v1", width=side, height=side,
                                steps=20, guidance=7.0, count=1, seed=seed)
    return render(request, 0).data


def offline_jpeg(prompt: str, side: int = 1024, seed: int = 7) -> bytes:
    buffer = io.BytesIO()
    paint(prompt, "", side, side, 20, 7.0, seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# --- the benchmark -------------------------------------------------------------------------------------------------

async def measure_overhead(monkeypatch: pytest.MonkeyPatch, image: bytes) -> list[Row]:
    with InstantRunwareServer(image, api_key=API_KEY) as server:
        for name in _PROXY_VARIABLES:  # loopback must not go through a proxy from the developer's shell
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("RUPALI_RUNWARE_API_KEY", API_KEY)
        monkeypatch.setenv("RUPALI_RUNWARE_URL", server.url)
        reset_settings()
        settings = get_settings()
        runtime = Runtime.build(settings)  # the production wiring; only the queue's scorer is swapped
        queue = GenerationQueue(settings, runtime.providers, runtime.storage, ZeroScorer(),  # type: ignore[arg-type]
                                runtime.credits, runtime.credentials)
        user = make_user()
        choice = await runtime.providers.find(MODEL_KEY)
        provider = runtime.providers.get(choice.provider)
        form = generations.GenerationForm(prompt="a lighthouse on a cliff at dusk", model=MODEL_KEY, width=1024,
                                          height=1024, steps=4, guidance=3.5)

        async def one_generation() -> float:
            start = time.perf_counter()
            generation = await asyncio.to_thread(transact, generations.submit, settings, user, choice, form,
                                                 runtime.credits)
            queue.submit(generation.id, user.id)
            while queue.state(generation.id) is not None:
                await asyncio.sleep(0.001)
            elapsed = (time.perf_counter() - start) * 1000
            done = await asyncio.to_thread(transact, lambda session: session.get(Generation, generation.id))
            assert done is not None and done.status == GenerationStatus.SUCCEEDED, (done and done.error)
            images = await asyncio.to_thread(transact, generations.images_of, [generation.id])
            assert len(images[generation.id]) == 1
            assert runtime.storage.exists(images[generation.id][0].thumbnail_key)
            return elapsed

        request = GenerationRequest(prompt=form.prompt, negative_prompt="", model=choice.info.id, width=1024,
                                    height=1024, steps=4, guidance=3.5, count=1, seed=42)

        async def one_round_trip() -> float:
            start = time.perf_counter()
            result = await provider.generate(request)
            elapsed = (time.perf_counter() - start) * 1000
            assert result.images[0].width == 1024
            return elapsed

        await queue.start()
        try:
            for _ in range(WARM_UP):
                await one_generation()
            overhead = [await one_generation() for _ in range(ITERATIONS)]
            for _ in range(WARM_UP):
                await one_round_trip()
            round_trip = [await one_round_trip() for _ in range(ITERATIONS)]
        finally:
            await queue.stop()
            await runtime.providers.aclose()
    kib = len(image) // 1024
    return [Row("generation overhead, 1 image 1024² (NSFW excl.)", overhead, OVERHEAD_TARGET_MS),
            Row(f"  of which Runware round trip + decode ({kib} KiB PNG)", round_trip)]


def measure_nsfw(images: list[bytes]) -> list[Row]:
    scorer = NsfwScorer(threads=2)
    scorer.warm_up()
    turn = iter(range(10**6))
    single = timed(lambda: scorer.scores([images[next(turn) % len(images)]]))
    batch = timed(lambda: scorer.scores(images), iterations=ITERATIONS // 2, per=len(images))
    return [Row("NSFW score per image, batch of 1 (2 threads)", single, NSFW_TARGET_MS),
            Row(f"NSFW score per image, batch of {len(images)} (2 threads)", batch, NSFW_TARGET_MS)]


def measure_thumbnails(png_1024: bytes, png_2048: bytes, jpeg_1024: bytes) -> list[Row]:
    rows = []
    for name, data in (("thumbnail 1024² PNG", png_1024), ("thumbnail 2048² PNG", png_2048),
                       ("thumbnail 1024² JPEG", jpeg_1024)):
        with Image.open(io.BytesIO(media.thumbnail(data))) as thumbnail:
            assert thumbnail.format == "WEBP" and max(thumbnail.size) == media.THUMBNAIL_SIZE
        rows.append(Row(f"{name} ({len(data) // 1024} KiB)", timed(lambda data=data: media.thumbnail(data))))
    return rows


async def test_generation_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    pngs = [offline_png(prompt) for prompt in PROMPTS]
    rows = await measure_overhead(monkeypatch, pngs[0])
    rows += measure_nsfw(pngs)
    rows += measure_thumbnails(pngs[0], offline_png(PROMPTS[0], side=2048), offline_jpeg(PROMPTS[0]))

    print("\n" + table(rows))
    missed = [f"{row.name}: median {row.median:.1f} ms > target {row.target_ms:g} ms" for row in rows
              if not row.passed]
    assert not missed, "speed targets missed:\n" + "\n".join(missed)
