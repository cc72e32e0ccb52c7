"""A ZIP of 500 images streams from the real server without its memory growing with the archive."""

from __future__ import annotations

import io
import os
import random
import uuid
import zipfile
from pathlib import Path

from PIL import Image as PILImage

from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import Generation, GenerationStatus, Image
from rupali.services import sessions
from rupali.storage import LocalStorage
from tests.utils.factories import make_user

COUNT = 500
GROWTH_LIMIT_MB = 60  # the archive is ~135 MB; a server that buffered it would grow by at least that much


def _noise_png() -> bytes:
    """~270 kB of incompressible pixels, so the archive is as big as the files."""
    pixels = random.Random(7).randbytes(300 * 300 * 3)
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (300, 300), pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _gallery_of(count: int) -> tuple[str, list[str]]:
    user = make_user()
    storage = LocalStorage.from_settings(get_settings())
    data = _noise_png()
    ids = []
    with session_scope() as session:
        generation = Generation(user_id=user.id, status=GenerationStatus.SUCCEEDED, provider="offline",
                                model="sketch-v1", prompt="noise for the zip test", width=300, height=300, steps=1,
                                guidance=1, count=count, seed=1)
        session.add(generation)
        session.flush()
        for position in range(count):
            image_id = uuid.uuid4()
            key = f"images/{image_id.hex}.png"
            storage.put(key, data, durable=False)
            session.add(Image(id=image_id, user_id=user.id, generation_id=generation.id, position=position,
                              seed=position, width=300, height=300, format="PNG", bytes=len(data), original_key=key,
                              thumbnail_key=key, nsfw_score=0.0, created_at=now()))
            ids.append(str(image_id))
        code = sessions.start(session, get_settings(), user, method="password", ip="", user_agent="", visitor_id="z")
        token = sessions.complete_handoff(session, code, "z")
    return token, ids


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_zip_of_500_images_streams_with_flat_server_memory(live_server, tmp_path):
    import httpx

    token, ids = _gallery_of(COUNT)
    server_pid = _server_pid(live_server)
    with httpx.Client(base_url=live_server, cookies={AUTH_COOKIE: token}, timeout=120) as client:
        warm = client.post("/api/v1/images/zip", json={"ids": ids[:5]})  # load everything a first request loads
        assert warm.status_code == 200
        baseline = _memory_kb(server_pid, "VmRSS")
        target = tmp_path / "all.zip"
        with client.stream("POST", "/api/v1/images/zip", json={"ids": ids}) as response, target.open("wb") as out:
            assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
            for chunk in response.iter_bytes():
                out.write(chunk)
        peak = _memory_kb(server_pid, "VmHWM")
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert len(names) == COUNT and archive.testzip() is None
        assert PILImage.open(io.BytesIO(archive.read(names[0]))).info["parameters"].startswith("noise for the")
    size_mb = target.stat().st_size / 2**20
    growth_mb = (peak - baseline) / 1024
    print(f"\nZIP {size_mb:.0f} MB of {COUNT} images; server peak RSS grew {growth_mb:.1f} MB")
    assert size_mb > 100 and growth_mb < GROWTH_LIMIT_MB


def _server_pid(base: str) -> int:
    port = base.rsplit(":", 1)[1]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in command and port.encode() in command:
            return int(pid)
    raise AssertionError("server process not found")
