"""Speed of the gallery with a big collection: pages, deep pages, prompt search, and thumbnail serving.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench/test_gallery_bench.py -m bench -s

The data: one person with 10,000 images in 2,500 succeeded generations (4 images each, all four sharing the
generation's ``created_at`` as in ``generations.complete``), spread over 180 days, with prompts composed from word
lists; "axolotl" is in ~1% of prompts, "detailed" in ~60%. Rows are bulk-inserted through plain INSERTs (an ORM bulk
insert, one transaction), so the FTS5 triggers of migration 0004 fill ``generation_fts``. Each image has a real
64x64 WebP thumbnail and a real (tiny, 64x64) PNG original on disk, under the keys the queue uses. No ANALYZE is
run: the database is what the app has after migrating and inserting.

1. First gallery page (60, newest first, no filter): ``gallery.page`` in a session of its own via ``transact``,
   as a page does (minus the worker-thread hop).
2. A deep page: the cursors are followed once to the page holding images 8,941-9,000 (checking the order against
   the data on the way), then that page is fetched from its cursor, timed.
3. Prompt search, a selective and a common word, first page.
4. Thumbnails per second over real loopback HTTP (uvicorn in a separate process, see ``thumbnail_server.py``):
   the authorized route (real ``AuthGate`` + ``image_files.thumbnail``, signed in with a real session cookie) and
   ``StaticFiles`` over the same folder, alternating in rounds, hammered by a lean keep-alive HTTP/1.1 client
   (asyncio streams, 4 connections) over a rotating set of 2,000 thumbnails.

``EXPLAIN QUERY PLAN`` of the SQL actually sent for 1-3 is printed. Every measurement runs before any target is
checked; then the table is printed and missed targets fail the test.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import event, insert, text

from rupali.clock import now
from rupali.config import get_settings
from rupali.db import get_engine, session_scope, transact
from rupali.gate import AUTH_COOKIE
from rupali.models import Generation, GenerationStatus, Image, User
from rupali.services import gallery, sessions
from rupali.storage import LocalStorage
from tests.bench.thumbnail_server import STATIC_PREFIX, THUMBNAIL_PREFIX
from tests.utils.factories import make_user

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

ROOT = Path(__file__).resolve().parents[2]
GENERATIONS = 2_500
PER_GENERATION = 4
IMAGES = GENERATIONS * PER_GENERATION
SPREAD = timedelta(days=180)
LIMIT = gallery.PAGE_SIZE  # 60
DEEP_IMAGE = 9_000  # the deep page is the one ending at this image
WARM_UP = 5
ITERATIONS = 50
PAGE_TARGET_MS = 50.0
DEEP_RATIO_TARGET = 1.5
SEARCH_TARGET_MS = 50.0
THUMBNAIL_RATIO_TARGET = 0.5
REQUESTS = 2_000  # per round and side
ROUNDS = 3
CONNECTIONS = 4
SELECTIVE_WORD, COMMON_WORD = "axolotl", "detailed"

SUBJECTS = ("lighthouse on a cliff", "red fox", "ancient dragon", "ruined castle", "astronaut", "tabby cat",
            "rusty robot", "samurai", "mermaid", "snowy owl", "steam locomotive", "koi pond", "desert caravan",
            "old fisherman", "cyberpunk street vendor", "tulip field", "mountain cabin", "jellyfish swarm",
            "clockwork city", "sleeping giant", "paper boat", "hot air balloon", "bonsai tree", "wolf pack")
STYLES = ("watercolor", "oil painting", "cinematic photo", "pixel art", "anime key visual", "charcoal sketch",
          "isometric render", "ukiyo-e print", "35mm film photo", "low poly", "art nouveau poster", "claymation")
PLACES = ("in a misty forest", "on a rainy street", "under the northern lights", "at the bottom of the sea",
          "on the surface of Mars", "in a sunlit meadow", "inside a cathedral", "in a neon-lit alley",
          "above the clouds", "in a snowy village", "by a quiet lake", "in a bustling market")
LIGHT = ("golden hour", "blue hour", "dramatic rim light", "soft overcast light", "volumetric fog",
         "candlelight", "harsh noon sun", "moonlight")
NEGATIVES = ("", "", "blurry, low quality", "text, watermark, signature", "extra fingers, deformed hands",
             "oversaturated")
MODELS = (("runware", "runware:100@1", "FLUX.1 schnell"), ("runware", "civitai:4384@128713", "DreamShaper 8"),
          ("offline", "sketch-v1", "Offline sketch"))


# --- measuring -----------------------------------------------------------------------------------------------------

def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(share * len(ordered)) - 1]


@dataclass
class Row:
    name: str
    value: str  # the median, with its unit
    extra: str  # p90 or another figure that explains the row
    target: str = "-"
    passed: bool | None = None  # None: for information

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "PASS" if self.passed else "FAIL"


def ms_row(name: str, samples: list[float], target_ms: float | None = None) -> Row:
    median = statistics.median(samples)
    return Row(name, f"{median:.2f} ms", f"p90 {nearest_rank(samples, 0.9):.2f} ms",
               f"<= {target_ms:g} ms" if target_ms is not None else "-",
               None if target_ms is None else median <= target_ms)


def timed(work: Callable[[], object], *, warm_up: int = WARM_UP, iterations: int = ITERATIONS) -> list[float]:
    """Milliseconds per call of ``work``, after ``warm_up`` calls."""
    for _ in range(warm_up):
        work()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def table(rows: list[Row]) -> str:
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("name", "value", "extra", "target")]
    header = f"{'benchmark':<{widths[0]}}  {'median':>{widths[1]}}  {'p90 / extra':<{widths[2]}}  " \
             f"{'target':<{widths[3]}}  verdict"
    lines = [header, "-" * (len(header) + 2)]
    lines += [f"{row.name:<{widths[0]}}  {row.value:>{widths[1]}}  {row.extra:<{widths[2]}}  "
              f"{row.target:<{widths[3]}}  {row.verdict}" for row in rows]
    lines.append(f"({os.cpu_count()} CPUs; SQLite {sqlite_version()}; {IMAGES:,} images in {GENERATIONS:,} "
                 f"generations; thumbnails over loopback HTTP, {CONNECTIONS} keep-alive connections)")
    return "\n".join(lines)


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


# --- the data ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Collection:
    user: User
    order: list[uuid.UUID]  # every image id, newest first (created_at desc, id desc), as the gallery shows them
    with_word: dict[str, list[uuid.UUID]]  # image ids, newest first, whose prompt holds the word
    thumbnail_keys: dict[uuid.UUID, str]


def tiny_files(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` (WebP thumbnail, PNG original) pairs of 64x64 pixels, each pair its own colour."""
    files = []
    for index in range(count):
        colour = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
        picture = PILImage.new("RGB", (64, 64), colour)
        for x in range(0, 64, 8):  # a little structure, so the encoders have something to encode
            picture.paste((255 - colour[0], colour[1], 255 - colour[2]), (x, x, x + 8, x + 8))
        webp, png = io.BytesIO(), io.BytesIO()
        picture.save(webp, "WEBP", quality=80)
        picture.save(png, "PNG")
        files.append((webp.getvalue(), png.getvalue()))
    return files


def prompt(rng: random.Random) -> str:
    parts = [f"{rng.choice(STYLES)} of a {rng.choice(SUBJECTS)} {rng.choice(PLACES)}, {rng.choice(LIGHT)}"]
    if rng.random() < 0.01:
        parts.append(f"with a tiny {SELECTIVE_WORD}")
    if rng.random() < 0.6:
        parts.append(f"highly {COMMON_WORD}")
    if rng.random() < 0.3:
        parts.append("trending on artstation")
    return ", ".join(parts)


def build_collection() -> Collection:
    rng = random.Random(2026)
    user = make_user()
    storage = LocalStorage.from_settings(get_settings())
    files = tiny_files(32)
    moment = now()
    starts = sorted(moment - SPREAD + timedelta(seconds=rng.uniform(0, SPREAD.total_seconds() - 60))
                    for _ in range(GENERATIONS))
    generation_rows, image_rows = [], []
    made: list[tuple[datetime, uuid.UUID, str]] = []  # (created_at, image id, prompt)
    thumbnail_keys: dict[uuid.UUID, str] = {}
    for started in starts:
        generation_id = uuid.uuid4()
        provider, model, label = rng.choice(MODELS)
        text_ = prompt(rng)
        seed = rng.randrange(2**32)
        finished = started + timedelta(milliseconds=rng.randint(1_500, 9_000))
        generation_rows.append(dict(
            id=generation_id, user_id=user.id, status=GenerationStatus.SUCCEEDED, provider=provider, model=model,
            model_label=label, model_version="", prompt=text_, negative_prompt=rng.choice(NEGATIVES), width=1024,
            height=1024, steps=rng.choice((4, 20, 30)), guidance=rng.choice((3.5, 7.0)), count=PER_GENERATION,
            seed=seed, scheduler=None, upload_id=None, strength=None, error="", provider_cost=None, credits=0,
            created_at=started, started_at=started, finished_at=finished,
            duration_ms=int((finished - started).total_seconds() * 1000)))
        folder = f"{user.id.hex}/{generation_id.hex}"
        for position in range(PER_GENERATION):
            image_id = uuid.uuid4()
            webp, png = files[rng.randrange(len(files))]
            original_key = f"images/{folder}/{image_id.hex}.png"
            thumbnail_key = f"thumbnails/{folder}/{image_id.hex}.webp"
            for key, data in ((original_key, png), (thumbnail_key, webp)):
                path = storage.path(key)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            score = rng.random() ** 4
            image_rows.append(dict(
                id=image_id, user_id=user.id, generation_id=generation_id, position=position, seed=seed + position,
                width=1024, height=1024, format="PNG", bytes=len(png), original_key=original_key,
                thumbnail_key=thumbnail_key, nsfw_score=score, provider_nsfw=None, nsfw=score > 0.8,
                favourite=rng.random() < 0.05, created_at=finished, expires_at=None))
            made.append((finished, image_id, text_))
            thumbnail_keys[image_id] = thumbnail_key
    with session_scope() as session:  # one transaction of plain INSERTs: the FTS5 triggers fill generation_fts
        session.execute(insert(Generation), generation_rows)
        session.execute(insert(Image), image_rows)
    with session_scope() as session:
        indexed = session.execute(text("SELECT count(*) FROM generation_fts")).scalar_one()
        assert indexed == GENERATIONS, f"generation_fts holds {indexed} rows, expected {GENERATIONS}"
    made.sort(key=lambda item: (item[0], item[1]), reverse=True)  # UUIDs are stored as hex: same order as in SQL
    with_word = {word: [image_id for _, image_id, text_ in made if word in text_]
                 for word in (SELECTIVE_WORD, COMMON_WORD)}
    return Collection(user, [image_id for _, image_id, _ in made], with_word, thumbnail_keys)


# --- query plans ---------------------------------------------------------------------------------------------------

@contextmanager
def captured_sql() -> Iterator[list[tuple[str, object]]]:
    """The gallery SELECTs sent while the block runs, with their parameters."""
    engine = get_engine()
    sent: list[tuple[str, object]] = []

    def remember(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM image" in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", remember)


def query_plan(work: Callable[[], object]) -> str:
    with captured_sql() as sent:
        work()
    assert len(sent) == 1, f"expected one gallery SELECT, saw {len(sent)}"
    statement, parameters = sent[0]
    with get_engine().connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()  # type: ignore[arg-type]
    depth = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("    " + "  " * depth[node] + detail)
    return "\n".join(lines)


# --- 1-3: pages and search -----------------------------------------------------------------------------------------

def fetch(user_id: uuid.UUID, query: gallery.GalleryQuery, cursor: str | None = None) -> gallery.GalleryPage:
    return transact(gallery.page, user_id, query, cursor, LIMIT)


def ids(found: gallery.GalleryPage) -> list[uuid.UUID]:
    return [item.image.id for item in found.items]


def measure_pages(collection: Collection, plans: dict[str, str]) -> list[Row]:
    user_id, everything = collection.user.id, gallery.GalleryQuery()
    first = fetch(user_id, everything)
    assert ids(first) == collection.order[:LIMIT] and first.next_cursor is not None
    first_ms = timed(lambda: fetch(user_id, everything))
    plans["first page"] = query_plan(lambda: fetch(user_id, everything))

    # Follow the cursors once to the page ending at image DEEP_IMAGE, checking every page on the way.
    cursor: str | None = None
    for start in range(0, DEEP_IMAGE - LIMIT, LIMIT):
        found = fetch(user_id, everything, cursor)
        assert ids(found) == collection.order[start:start + LIMIT], f"page at image {start + 1} out of order"
        cursor = found.next_cursor
    deep_start = DEEP_IMAGE - LIMIT  # 8,940 images lie before it
    deep = fetch(user_id, everything, cursor)
    assert ids(deep) == collection.order[deep_start:deep_start + LIMIT]
    deep_ms = timed(lambda: fetch(user_id, everything, cursor))
    plans[f"deep page (images {deep_start + 1:,}-{DEEP_IMAGE:,})"] = query_plan(
        lambda: fetch(user_id, everything, cursor))

    rows = [ms_row(f"first page ({LIMIT}, newest first, no filter)", first_ms, PAGE_TARGET_MS),
            ms_row(f"deep page (images {deep_start + 1:,}-{DEEP_IMAGE:,}, from its cursor)", deep_ms,
                   PAGE_TARGET_MS)]
    ratio = statistics.median(deep_ms) / statistics.median(first_ms)
    rows.append(Row("  deep page / first page (medians)", f"{ratio:.2f}x", "", f"<= {DEEP_RATIO_TARGET:g}x",
                    ratio <= DEEP_RATIO_TARGET))
    return rows


def measure_search(collection: Collection, plans: dict[str, str]) -> list[Row]:
    rows = []
    for word, kind in ((SELECTIVE_WORD, "selective"), (COMMON_WORD, "common")):
        query = gallery.GalleryQuery(search=word)
        expected = collection.with_word[word]
        found = fetch(collection.user.id, query)
        assert ids(found) == expected[:LIMIT], f"search for {word!r} found the wrong images"
        samples = timed(lambda query=query: fetch(collection.user.id, query))
        plans[f"search {word!r}"] = query_plan(lambda query=query: fetch(collection.user.id, query))
        share = len(expected) / IMAGES
        rows.append(ms_row(f"search {kind} word {word!r} ({len(expected):,} images, {share:.0%})", samples,
                           SEARCH_TARGET_MS))
    return rows


# --- 4: thumbnails over HTTP ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def thumbnail_server(log: Path) -> Iterator[int]:
    """``tests.bench.thumbnail_server`` in a process of its own, on a loopback port; yields the port."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "tests.bench.thumbnail_server", str(port)],
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the thumbnail server exited:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the thumbnail server did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sign_in(user: User) -> str:
    """A real session token for ``user``, as ``/auth/complete`` would put into the cookie."""
    settings = get_settings()
    code = transact(sessions.start, settings, user, method="password", ip="127.0.0.1",
                    user_agent="Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
                    visitor_id="bench-visitor")
    return transact(sessions.complete_handoff, code, "bench-visitor")


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
              ) -> tuple[int, dict[str, str], bytes]:
    """One request on a keep-alive connection: status, headers (lower-cased names) and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines if line)
    headers = {name.lower(): value for name, value in headers.items()}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split(" ", 2)[1]), headers, body


def request_bytes(path: str, token: str | None) -> bytes:
    cookie = f"Cookie: {AUTH_COOKIE}={token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: image/webp,*/*\r\n{cookie}\r\n".encode()


async def hammer(port: int, requests: list[bytes], count: int) -> tuple[float, list[float]]:
    """``count`` requests cycling through ``requests`` over CONNECTIONS keep-alive connections:
    (requests per second, latencies in ms). Every answer must be a 200 with a WebP body."""
    turn = iter(range(count))
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in turn:
                start = time.perf_counter()
                status, _, body = await get(reader, writer, requests[index % len(requests)])
                latencies.append((time.perf_counter() - start) * 1000)
                assert status == 200 and body[:4] == b"RIFF" and body[8:12] == b"WEBP", (status, body[:40])
        finally:
            writer.close()
            await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    return count / (time.perf_counter() - start), latencies


async def check_routes(port: int, collection: Collection, token: str) -> None:
    """The two sides serve the same bytes; the authorized side refuses strangers."""
    image_id = collection.order[0]
    key = collection.thumbnail_keys[image_id]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, headers, authorized = await get(reader, writer,
                                                request_bytes(f"{THUMBNAIL_PREFIX}/{image_id}", token))
        assert status == 200 and headers["content-type"] == "image/webp", (status, headers)
        status, _, static = await get(reader, writer,
                                      request_bytes(f"{STATIC_PREFIX}/{key.removeprefix('thumbnails/')}", None))
        assert status == 200 and static == authorized
        status, _, _ = await get(reader, writer, request_bytes(f"{THUMBNAIL_PREFIX}/{image_id}", None))
        assert status == 303  # not signed in: to the sign-in page
        status, _, _ = await get(reader, writer, request_bytes(f"{THUMBNAIL_PREFIX}/{uuid.uuid4()}", token))
        assert status == 404
    finally:
        writer.close()
        await writer.wait_closed()


async def measure_thumbnails_async(port: int, collection: Collection, token: str) -> list[Row]:
    await check_routes(port, collection, token)
    chosen = random.Random(7).sample(collection.order, REQUESTS)
    sides = {
        "StaticFiles": [request_bytes(f"{STATIC_PREFIX}/{collection.thumbnail_keys[i].removeprefix('thumbnails/')}",
                                      token) for i in chosen],  # a browser sends the cookie to both
        "authorized": [request_bytes(f"{THUMBNAIL_PREFIX}/{i}", token) for i in chosen],
    }
    rates: dict[str, list[float]] = {side: [] for side in sides}
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    for requests in sides.values():  # warm up both
        await hammer(port, requests, 200)
    for _ in range(ROUNDS):  # alternate, so drift (CPU clock, page cache) hits both sides alike
        for side, requests in sides.items():
            rate, times = await hammer(port, requests, REQUESTS)
            rates[side].append(rate)
            latencies[side] += times
    static_rate, authorized_rate = (statistics.median(rates[side]) for side in ("StaticFiles", "authorized"))
    ratio = authorized_rate / static_rate

    def extra(side: str) -> str:
        return (f"p90 {nearest_rank(latencies[side], 0.9):.2f} ms/req; rounds "
                + "/".join(f"{rate:.0f}" for rate in rates[side]))

    return [Row(f"thumbnails via StaticFiles (same files, {REQUESTS:,} req x {ROUNDS})", f"{static_rate:.0f} req/s",
                extra("StaticFiles")),
            Row("thumbnails via AuthGate + image_files.thumbnail", f"{authorized_rate:.0f} req/s",
                extra("authorized")),
            Row("  authorized / StaticFiles (medians)", f"{ratio:.2f}x", "",
                f">= {THUMBNAIL_RATIO_TARGET:g}x", ratio >= THUMBNAIL_RATIO_TARGET)]


def measure_thumbnails(collection: Collection, log: Path) -> list[Row]:
    token = sign_in(collection.user)
    with thumbnail_server(log) as port:
        return asyncio.run(measure_thumbnails_async(port, collection, token))


# --- the benchmark -------------------------------------------------------------------------------------------------

def test_gallery_speed(tmp_path: Path) -> None:
    start = time.perf_counter()
    collection = build_collection()
    built_s = time.perf_counter() - start
    plans: dict[str, str] = {}
    rows = measure_pages(collection, plans)
    rows += measure_search(collection, plans)
    rows += measure_thumbnails(collection, tmp_path / "thumbnail-server.log")

    print(f"\nbuilt {IMAGES:,} images ({2 * IMAGES:,} files) in {built_s:.1f} s")
    print("\nEXPLAIN QUERY PLAN (the SQL gallery.page sent):")
    for name, plan in plans.items():
        print(f"  {name}:\n{plan}")
    print("\n" + table(rows))
    missed = [f"{row.name}: {row.value} (target {row.target})" for row in rows if row.passed is False]
    assert not missed, "speed targets missed:\n" + "\n".join(missed)
