"""Thumbnails through the authorized route from an S3 bucket against the local folder.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench/test_media_bench.py -m bench -s -p no:cacheprovider

The data: one person with 500 images, each with a real 64x64 WebP thumbnail stored in the backend under the keys the
queue uses. The server is ``tests.bench.thumbnail_server`` (the real ``AuthGate`` and ``image_files.thumbnail``) in a
process of its own, once per backend; the S3 backend is moto's S3 server (``python -m moto.server``), also in a
process of its own on loopback, so neither shares a GIL with the load generator. The load is the gallery benchmark's:
keep-alive HTTP/1.1 over 4 connections, rounds alternating between the sides. Printed: requests per second (median of
the rounds) and latency for

* ``local``: ``RUPALI_MEDIA_BACKEND=local``, streamed;
* ``s3 stream``: ``RUPALI_MEDIA_BACKEND=s3``, ``RUPALI_MEDIA_DELIVERY=stream`` (each request reads the object);
* ``s3 redirect``: ``RUPALI_MEDIA_DELIVERY=redirect``, the route's 307 only (the browser then fetches from the
  bucket, which is the bucket's load, not ours).

Target: ``s3 stream`` at least half of ``local``. moto is a Python test double, far slower than a real bucket, so
the figure is a floor for the route's own overhead, not a forecast of production.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from rupali.clock import now
from rupali.config import Settings, get_settings, reset_settings
from rupali.db import get_engine
from rupali.models import Generation, GenerationStatus, Image
from rupali.storage import MediaStorage, from_settings
from tests.bench.test_gallery_bench import (
    CONNECTIONS,
    ROOT,
    Row,
    free_port,
    get,
    request_bytes,
    sign_in,
    thumbnail_server,
    tiny_files,
)
from tests.bench.thumbnail_server import THUMBNAIL_PREFIX
from tests.utils.factories import make_user
from tests.utils.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

IMAGES = 500
REQUESTS = 1_000  # per round and side
ROUNDS = 3
TARGET_RATIO = 0.5


@contextmanager
def moto_process(log: Path) -> Iterator[str]:
    """moto's S3 server as its own process on a loopback port; yields its URL."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def store_images(storage: MediaStorage, user_id: uuid.UUID) -> list[uuid.UUID]:
    """IMAGES thumbnails in ``storage`` and their rows (one generation each); returns the image ids."""
    ids: list[uuid.UUID] = []
    generations, images = [], []
    for index, (webp, _png) in enumerate(tiny_files(IMAGES)):
        generation_id, image_id = uuid.uuid4(), uuid.uuid4()
        key = f"thumbnails/{user_id.hex}/{generation_id.hex}/{image_id.hex}.webp"
        storage.put(key, webp, durable=False)
        generations.append({"id": generation_id, "user_id": user_id, "status": GenerationStatus.SUCCEEDED,
                            "provider": "offline", "model": "sketch-v1", "prompt": f"bench {index}", "width": 64,
                            "height": 64, "steps": 1, "guidance": 1.0, "count": 1, "seed": index,
                            "created_at": now(), "negative_prompt": "", "model_label": "Sketch"})
        images.append({"id": image_id, "user_id": user_id, "generation_id": generation_id, "position": 0,
                       "seed": index, "width": 64, "height": 64, "format": "PNG", "bytes": len(webp),
                       "original_key": key.replace("thumbnails/", "images/").replace(".webp", ".png"),
                       "thumbnail_key": key, "nsfw_score": 0.0, "created_at": now()})
        ids.append(image_id)
    with get_engine().begin() as connection:
        connection.execute(insert(Generation), generations)
        connection.execute(insert(Image), images)
    return ids


async def hammer(port: int, requests: list[bytes], count: int, status: int) -> tuple[float, list[float]]:
    """``count`` requests over CONNECTIONS keep-alive connections; every answer must have ``status``."""
    turn = iter(range(count))
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in turn:
                start = time.perf_counter()
                answered, headers, body = await get(reader, writer, requests[index % len(requests)])
                latencies.append((time.perf_counter() - start) * 1000)
                assert answered == status, (answered, body[:200])
                if status == 200:
                    assert body[:4] == b"RIFF", body[:40]
                else:
                    assert "X-Amz-Signature=" in headers["location"]
        finally:
            writer.close()
            await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    return count / (time.perf_counter() - start), latencies


def test_thumbnails_from_s3_against_the_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with moto_process(tmp_path / "moto.log") as endpoint:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        httpx.put(f"{endpoint}/{bucket}", timeout=10).raise_for_status()
        s3_env = {"RUPALI_MEDIA_BACKEND": "s3", "RUPALI_S3_BUCKET": bucket, "RUPALI_S3_ENDPOINT_URL": endpoint,
                  "RUPALI_S3_REGION": REGION, "RUPALI_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                  "RUPALI_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
        user = make_user()
        token = sign_in(user)
        sides = {"local": ({}, store_images(from_settings(get_settings()), user.id), 200)}
        for name, value in s3_env.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        s3_ids = store_images(from_settings(get_settings()), user.id)
        sides["s3 stream"] = (s3_env | {"RUPALI_MEDIA_DELIVERY": "stream"}, s3_ids, 200)
        sides["s3 redirect"] = (s3_env | {"RUPALI_MEDIA_DELIVERY": "redirect"}, s3_ids, 307)
        for name in s3_env:
            monkeypatch.delenv(name)
        reset_settings()

        ceiling = _backend_ceiling(from_settings(Settings(**{**_as_fields(s3_env)})), s3_ids, user.id)
        rates: dict[str, list[float]] = {side: [] for side in sides}
        latencies: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(ROUNDS):  # one server per side and round, alternating, so drift hits every side alike
            for side, (env, ids, status) in sides.items():
                with _environment(monkeypatch, env), thumbnail_server(tmp_path / f"{side}.log") as port:
                    requests = [request_bytes(f"{THUMBNAIL_PREFIX}/{image_id}", token) for image_id in ids]
                    asyncio.run(hammer(port, requests, 200, status))  # warm up
                    rate, times = asyncio.run(hammer(port, requests, REQUESTS, status))
                rates[side].append(rate)
                latencies[side] += times

    medians = {side: statistics.median(values) for side, values in rates.items()}
    ratio = medians["s3 stream"] / medians["local"]
    rows = [Row(f"thumbnails/s, {side}", f"{medians[side]:,.0f}/s",
                f"p50 {statistics.median(latencies[side]):.1f} ms, p90 "
                f"{statistics.quantiles(latencies[side], n=10)[-1]:.1f} ms") for side in sides]
    rows.append(Row("moto alone: obstore GETs/s", f"{ceiling:,.0f}/s", "4 threads, no HTTP server in between"))
    rows.append(Row("s3 stream / local", f"{ratio:.2f}x", "", f">= {TARGET_RATIO}x", ratio >= TARGET_RATIO))
    print()
    print(_table(rows))
    assert ratio >= TARGET_RATIO, f"S3 thumbnails at {ratio:.2f}x the local folder's rate"


def _as_fields(env: dict[str, str]) -> dict[str, str]:
    return {name.removeprefix("RUPALI_").lower(): value for name, value in env.items()}


def _backend_ceiling(storage: MediaStorage, ids: list[uuid.UUID], user_id: uuid.UUID) -> float:
    """Reads per second straight from the backend (4 threads, the route's threadpool in miniature): what the S3
    server itself can give, whatever the route does."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [stored.key for stored in storage.list(f"thumbnails/{user_id.hex}/")]
    assert len(keys) == len(ids)

    def work(offset: int) -> None:
        for index in range(REQUESTS // CONNECTIONS):
            storage.read(keys[(offset + index) % len(keys)])

    start = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(work, range(CONNECTIONS)))
    return (REQUESTS // CONNECTIONS * CONNECTIONS) / (time.perf_counter() - start)


@contextmanager
def _environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[None]:
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        yield


def _table(rows: list[Row]) -> str:
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("name", "value", "extra", "target")]
    lines = [f"{'benchmark':<{widths[0]}}  {'median':>{widths[1]}}  {'latency':<{widths[2]}}  "
             f"{'target':<{widths[3]}}  verdict"]
    lines.append("-" * (len(lines[0]) + 2))
    lines += [f"{row.name:<{widths[0]}}  {row.value:>{widths[1]}}  {row.extra:<{widths[2]}}  "
              f"{row.target:<{widths[3]}}  {row.verdict}" for row in rows]
    lines.append(f"({os.cpu_count()} CPUs; {IMAGES} thumbnails of 64x64 WebP; {REQUESTS:,} requests per round, "
                 f"{ROUNDS} rounds; {CONNECTIONS} keep-alive connections; S3 = moto server on loopback)")
    return "\n".join(lines)
