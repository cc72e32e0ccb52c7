"""What Rupali's pages cost against a bare NiceGUI app in the same run: page builds, bursts, idle CPU, memory.

Run explicitly (the default test run deselects it); on SQLite, and on PostgreSQL too when
``RUPALI_TEST_DATABASE_URL`` is set::

    .venv/bin/pytest tests/bench/test_pages_bench.py -m bench -s -p no:cacheprovider

``RUPALI_BENCH_APP_ROOT`` (default: this checkout) is the directory whose ``rupali``, ``pages`` and ``components``
the Rupali servers run (their working directory and ``PYTHONPATH``), so the same benchmark measures another checkout,
e.g. a copy of the code before a change. The benchmark itself, the data and the bare app always come from here.

The data: one signed-in person with 10,000 images (``build_collection`` of ``test_gallery_bench.py``, in the
database and data directory of this test, which the Rupali servers use). Rupali runs as ``python -m rupali serve``
on its defaults; the yardstick is ``bare_app.py``: NiceGUI with Rupali's ``ui.run`` options, a hello-world ``/`` and
``/grid``, 60 cards each with an image, a caption and a checkbox. Every server is a process of its own, started
without pytest's or NiceGUI's variables so that NiceGUI runs as it does for an operator (GZip on, no test hooks).

The client, in this process, behaves like a browser at the wire: a page open is a ``GET`` (``Accept-Encoding:
gzip``, the session cookie; a fresh visitor each time, so Rupali shows its cookie notice) followed by the
Socket.IO connection NiceGUI's ``nicegui.js`` makes: a WebSocket to ``/_nicegui_ws/socket.io/`` with the page's
``client_id``, ``next_message_id`` and ``implicit_handshake`` plus a new ``document_id`` and ``tab_id``, the
namespace ``CONNECT``, whose acceptance (``40``) is NiceGUI's handshake (``44`` is its refusal). An open page
answers pings and acknowledges messages every 3 s like ``nicegui.js``; it runs no JavaScript.

1. Page build, time to last byte: ``GET /gallery`` vs ``GET /grid`` and ``GET /studio`` vs ``GET /`` on warm
   servers, one request at a time and back to back, rounds alternating bare/Rupali (the timed pages are left
   unconnected, as a crawler leaves them; after each series one page is opened, connected, left to build what it
   shows once connected, and closed). Median per round, the median of the rounds. The elements and event
   listeners are counted from the element JSON NiceGUI embeds in the page; bytes are the HTML and what went over
   the wire (gzip).
2. 50 page opens at once (``/gallery`` vs ``/grid``): how many connect fully (GET 200 and handshake accepted), and
   p95 of the open time (GET start to handshake acknowledged; a failed open counts with its time to failure).
   Rounds alternate, all pages are closed and NiceGUI given time to release them between rounds.
3. and 4. On a fresh pair of servers, warmed up with a few opens (closed again): 200 connected idle pages,
   opened four at a time in three batches; RSS (``VmRSS``) before and after each batch gives the memory per
   connected page. After settling, the server CPU (``utime + stime`` of the process) is sampled over three windows,
   both servers at once, as % of one core; the median window counts.
5. On another fresh pair at the same time: 100 ``GET``s whose socket never connects (a crawler, a link preview):
   RSS growth per GET, and RSS 90 s later (NiceGUI prunes never-connected clients after 60 s). Python seldom gives
   freed memory back to the system, so RSS alone cannot show a release: 100 more GETs follow, and the share of the
   first GETs' growth they did not add again is what was let go ("reused").

Every measurement runs before any target is checked; then the table is printed and missed targets fail the test.
The 2-core machine may be shared: ratios from the same run are what counts, not the absolute figures.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gzip
import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text as sql_text

from rupali.cookies import AUTH_COOKIE
from rupali.services.gallery import PAGE_SIZE
from tests.bench import test_gallery_bench as gallery_bench
from tests.bench.test_gallery_bench import IMAGES, ROOT, build_collection, free_port, sign_in
from tests.utils.page_data import elements_of

pytestmark = [pytest.mark.bench]

# Read at import: the test fixtures clear every RUPALI_* variable before the test runs.
APP_ROOT = Path(os.environ.get("RUPALI_BENCH_APP_ROOT") or ROOT).resolve()
BARE_APP = Path(__file__).resolve().with_name("bare_app.py")

ROUNDS = 3
GET_WARM_UP = 3  # per page and server, before the first round
GET_SAMPLES = 12  # per page, round and server
BURST = 50
IDLE_PAGES = 200
IDLE_BATCHES = 3
OPEN_CONCURRENCY = 4  # how many of the idle pages are being opened at a time
SETTLE_S = 5.0
CPU_WINDOW_S = 5.0  # three windows: ~15 s
UNCONNECTED_GETS = 100
RELEASE_WAIT_S = 90.0
RELEASE_DELAY_S = 4.0  # NiceGUI deletes a closed page's client after reconnect_timeout (3 s)
OPEN_TIMEOUT_S = 30.0
ACK_INTERVAL_S = 3.0  # nicegui.js acknowledges received messages every 3 s

GALLERY_RATIO_TARGET = 1.5
STUDIO_RATIO_TARGET = 5.0
BURST_P95_RATIO_TARGET = 2.0
IDLE_CPU_RATIO_TARGET = 1.5
MEMORY_RATIO_TARGET = 1.3

USER_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
QUERY = re.compile(r"^\s*query: (\{.*\}),$", re.MULTILINE)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- servers -------------------------------------------------------------------------------------------------------

@dataclass
class Server:
    """One server process: what it is, where it listens, and how much CPU and memory it uses."""

    side: str  # "bare" or "rupali"
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cookies: dict[str, str] = field(default_factory=dict)  # sent with every GET

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024  # type: ignore[union-attr]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.side} server exited with {self.process.returncode}:\n"
                               f"{self.log.read_text()[-4000:]}")


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without pytest's, NiceGUI's or Rupali's variables, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("RUPALI_", "PYTEST", "NICEGUI"))}
    return {**env, **extra}


@contextmanager
def started(side: str, command: list[str], env: dict[str, str], cwd: Path, log: Path, port: int,
            cookies: dict[str, str]) -> Iterator[Server]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
    server = Server(side, port, process, log, cookies)
    try:
        deadline = time.monotonic() + 90
        while True:
            server.check_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {side} server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield server
    finally:
        exited = process.poll()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if exited is not None:  # the root cause of whatever failed, not a side note
            raise RuntimeError(f"the {side} server (pid {process.pid}) exited with {exited} during the benchmark:\n"
                               f"{log.read_text()[-3000:]}")


@contextmanager
def servers(label: str, work: Path, database_url: str, token: str) -> Iterator[dict[str, Server]]:
    """A bare app and ``rupali serve`` (from APP_ROOT, on this test's data), started side by side."""
    data_dir = work / "data"
    bare_dir = work / f"bare-{label}"
    bare_dir.mkdir()
    bare_port, rupali_port = free_port(), free_port()
    pythonpath = os.pathsep.join(filter(None, (str(APP_ROOT), os.environ.get("PYTHONPATH"))))
    rupali_env = server_env({"PYTHONPATH": pythonpath, "RUPALI_DATA_DIR": str(data_dir),
                             "RUPALI_DATABASE_URL": database_url, "RUPALI_PORT": str(rupali_port)})
    with (started("bare", [sys.executable, str(BARE_APP), str(bare_port)], server_env({}), bare_dir,
                  work / f"bare-{label}.log", bare_port, {}) as bare,
          started("rupali", [sys.executable, "-m", "rupali", "serve"], rupali_env, APP_ROOT,
                  work / f"rupali-{label}.log", rupali_port, {AUTH_COOKIE: token}) as rupali):
        yield {"bare": bare, "rupali": rupali}


# --- a browser, at the wire ----------------------------------------------------------------------------------------

@dataclass
class Fetched:
    status: int
    seconds: float
    html: str
    wire_bytes: int
    set_cookies: dict[str, str]


async def fetch(agent: Browser, server: Server, path: str) -> Fetched:
    """``GET`` a page as a browser does on its first visit; timed to the last byte."""
    cookie = "; ".join(f"{name}={value}" for name, value in server.cookies.items())
    headers = {"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
               "Accept-Encoding": "gzip, deflate, br, zstd", "Accept-Language": "en-GB,en;q=0.9",
               **({"Cookie": cookie} if cookie else {})}
    start = time.perf_counter()
    async with agent.http.get(server.base + path, headers=headers, allow_redirects=False) as response:
        body = await response.read()
        seconds = time.perf_counter() - start
        encoding = response.headers.get("Content-Encoding", "")
        set_cookies = {morsel.key: morsel.value for morsel in response.cookies.values()}
        status = response.status
    html = (gzip.decompress(body) if encoding == "gzip" else body).decode()
    return Fetched(status, seconds, html, len(body), set_cookies)


def listeners_of(elements: dict[str, dict[str, object]]) -> int:
    return sum(len(element.get("events", ())) for element in elements.values())  # type: ignore[arg-type]


@dataclass
class Page:
    """An open page: the GET's answer and, once connected, its Socket.IO connection."""

    server: Server
    path: str
    ok: bool = False
    seconds: float = 0.0  # GET start to handshake acknowledged (or to failure)
    failure: str = ""
    ws: aiohttp.ClientWebSocketResponse | None = None
    keeper: asyncio.Task[None] | None = None
    received: int = 0

    async def settled(self, quiet_s: float = 0.25, limit_s: float = 5.0) -> None:
        """Wait until the server has sent nothing for ``quiet_s``: the page is built and shown."""
        deadline, seen = time.monotonic() + limit_s, -1
        while self.received != seen and time.monotonic() < deadline:
            seen = self.received
            await asyncio.sleep(quiet_s)

    async def close(self) -> None:
        if self.keeper is not None:
            self.keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.keeper
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()


async def open_page(agent: Browser, server: Server, path: str) -> Page:
    """GET the page and connect its socket as ``nicegui.js`` does; the page stays open until closed."""
    page = Page(server, path)
    start = time.perf_counter()
    try:
        await asyncio.wait_for(_connect(agent, page), OPEN_TIMEOUT_S)
    except TimeoutError:
        page.failure = "timeout"
    except (aiohttp.ClientError, OSError, ValueError, AssertionError) as error:
        page.failure = f"{type(error).__name__}: {error}"[:120]
    page.seconds = time.perf_counter() - start
    if not page.ok:
        await page.close()
    return page


async def _connect(agent: Browser, page: Page) -> None:
    fetched = await fetch(agent, page.server, page.path)
    if fetched.status != 200:
        page.failure = f"GET {fetched.status}"
        return
    found = QUERY.search(fetched.html)
    assert found is not None, "no socket query in the page"
    query = ast.literal_eval(found.group(1))  # a Python dict literal, rendered into the page's script
    # As nicegui.js adds them, and as engine.io's query encoding writes them (true/false/null as words).
    query.update(document_id=str(uuid.uuid4()), tab_id=str(uuid.uuid4()), old_tab_id=None,
                 EIO="4", transport="websocket")
    words = {True: "true", False: "false", None: "null"}
    encoded = {name: words[value] if value is None or isinstance(value, bool) else str(value)
               for name, value in query.items()}
    cookies = {**page.server.cookies, **fetched.set_cookies}
    headers = {"User-Agent": USER_AGENT, "Origin": page.server.base,
               "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    url = (page.server.base.replace("http://", "ws://") + "/_nicegui_ws/socket.io/?"
           + urllib.parse.urlencode(encoded))
    page.ws = ws = await agent.sockets.ws_connect(url, headers=headers, autoping=True, max_msg_size=0)
    opened = await ws.receive_str()
    assert opened.startswith("0"), f"no engine.io open packet: {opened[:80]}"
    await ws.send_str("40")  # socket.io CONNECT to the main namespace: NiceGUI's implicit handshake
    while True:
        packet = await ws.receive_str()
        if packet == "2":
            await ws.send_str("3")
        elif packet.startswith("40"):
            page.ok = True
            page.keeper = asyncio.create_task(_keep(page, str(query["client_id"]), int(query["next_message_id"])))
            return
        elif packet.startswith("44"):
            page.failure = "handshake refused"
            return


async def _keep(page: Page, client_id: str, next_message_id: int) -> None:
    """Stay connected like ``nicegui.js``: answer pings, note message ids, acknowledge them every 3 s."""
    ws = page.ws
    assert ws is not None
    acked = -1
    tick = time.monotonic() + ACK_INTERVAL_S
    while True:
        try:
            message = await ws.receive(timeout=max(0.001, tick - time.monotonic()))
        except TimeoutError:
            if acked < next_message_id:
                payload = {"client_id": client_id, "next_message_id": next_message_id}
                await ws.send_str("42" + json.dumps(["ack", payload]))
                acked = next_message_id
            tick = time.monotonic() + ACK_INTERVAL_S
            continue
        if message.type != aiohttp.WSMsgType.TEXT:
            page.failure = f"socket closed ({message.type.name})"
            return  # closed
        packet: str = message.data
        if packet == "2":
            await ws.send_str("3")
        elif packet.startswith("42"):
            page.received += 1
            event = json.loads(packet[2:])
            if len(event) > 1 and isinstance(event[1], dict) and "_id" in event[1]:
                next_message_id = max(next_message_id, int(event[1]["_id"]) + 1)


async def close_all(pages: list[Page]) -> None:
    await asyncio.gather(*(page.close() for page in pages))


@dataclass
class Browser:
    """Pages over pooled keep-alive connections; each page's socket on a connection of its own, as in a browser.

    (Sharing one aiohttp pool between the two closes open sockets at random.)
    """

    http: aiohttp.ClientSession
    sockets: aiohttp.ClientSession


def _session() -> aiohttp.ClientSession:
    # No cookie jar: each page open is a first visit. No limit on connections: 200 pages stay open.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar(),
                                 auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with _session() as http, _session() as sockets:
        yield Browser(http, sockets)


async def warm_up(agent: Browser, server: Server, paths: tuple[str, ...], times: int = 3) -> None:
    """A few opens of each page, closed again: one-time imports and caches are not what is measured."""
    for _ in range(times):
        for path in paths:
            page = await open_page(agent, server, path)
            assert page.ok, f"warming up {server.side} {path}: {page.failure}\n{server.log.read_text()[-3000:]}"
            await page.close()


# --- the measurements ----------------------------------------------------------------------------------------------

def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class PageCost:
    round_medians_ms: list[float] = field(default_factory=list)
    html_bytes: int = 0
    wire_bytes: int = 0
    elements: int = 0
    listeners: int = 0
    html: str = field(default="", repr=False)  # the last page served

    @property
    def median_ms(self) -> float:
        return statistics.median(self.round_medians_ms)

    def describe(self) -> str:
        return (f"{self.median_ms:.1f} ms ({self.elements} el, {self.listeners} lst, {self.html_bytes / 1000:.0f} KB,"
                f" {self.wire_bytes / 1000:.0f} KB gz)")


async def measure_gets(pair: dict[str, Server], pages: dict[str, tuple[str, str]]) -> dict[str, dict[str, PageCost]]:
    """Time to last byte of each page, one request at a time; then one page is connected, left to settle, closed."""
    costs = {name: {side: PageCost() for side in pair} for name in pages}
    async with browser() as agent:
        for paths in pages.values():
            for side, path in zip(pair, paths, strict=True):
                await warm_up(agent, pair[side], (path,), GET_WARM_UP)
        for _ in range(ROUNDS):
            for name, paths in pages.items():
                for side, path in zip(pair, paths, strict=True):
                    server, samples = pair[side], []
                    # Back to back, as requests arrive on a busy server: a pause between them (or a page still
                    # building what it shows once connected, like the studio's results) would time something else.
                    for _ in range(GET_SAMPLES):
                        fetched = await fetch(agent, server, path)
                        assert fetched.status == 200, f"{side} {path}: {fetched.status}"
                        samples.append(fetched.seconds * 1000)
                    page = await open_page(agent, server, path)  # and the page works when a browser connects
                    assert page.ok, f"{side} {path}: {page.failure}"
                    await page.settled()
                    await page.close()
                    cost = costs[name][side]
                    cost.round_medians_ms.append(statistics.median(samples))
                    elements = elements_of(fetched.html)
                    cost.elements, cost.listeners = len(elements), listeners_of(elements)
                    cost.html_bytes, cost.wire_bytes = len(fetched.html.encode()), fetched.wire_bytes
                    cost.html = fetched.html
            await asyncio.sleep(RELEASE_DELAY_S)
    return costs


@dataclass
class Burst:
    connected: list[int] = field(default_factory=list)  # per round
    p95_s: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def median_p95_s(self) -> float:
        return statistics.median(self.p95_s)

    def describe(self) -> str:
        return f"{'/'.join(map(str, self.connected))} of {BURST}, p95 {self.median_p95_s:.2f} s"


async def measure_bursts(pair: dict[str, Server], paths: dict[str, str]) -> dict[str, Burst]:
    bursts = {side: Burst() for side in pair}
    async with browser() as agent:
        for _ in range(ROUNDS):
            for side, server in pair.items():
                opened = await asyncio.gather(*(open_page(agent, server, paths[side]) for _ in range(BURST)))
                burst = bursts[side]
                burst.connected.append(sum(page.ok for page in opened))
                burst.p95_s.append(nearest_rank([page.seconds for page in opened], 0.95))
                for page in opened:
                    if not page.ok:
                        burst.failures[page.failure] = burst.failures.get(page.failure, 0) + 1
                await close_all(opened)
                await asyncio.sleep(RELEASE_DELAY_S + 1)
                server.check_alive()
    return bursts


@dataclass
class Idle:
    connected: int = 0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    batch_mb_per_page: list[float] = field(default_factory=list)
    cpu_windows: list[float] = field(default_factory=list)  # % of one core
    messages: int = 0  # received by the open pages

    @property
    def mb_per_page(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) / max(1, self.connected)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_windows)


async def gather_limited(count: int, limit: int, make: Callable[[], Awaitable[Page]]) -> list[Page]:
    gate = asyncio.Semaphore(limit)

    async def one() -> Page:
        async with gate:
            return await make()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def measure_idle(pair: dict[str, Server], paths: dict[str, str]) -> dict[str, Idle]:
    """200 connected pages per server, opened in batches (RSS after each), then the CPU they cost at rest."""
    idle = {side: Idle() for side in pair}
    held: dict[str, list[Page]] = {side: [] for side in pair}
    sizes = [IDLE_PAGES // IDLE_BATCHES + (index < IDLE_PAGES % IDLE_BATCHES) for index in range(IDLE_BATCHES)]
    async with browser() as agent:
        for side, server in pair.items():
            idle[side].rss_before_mb = server.rss_mb()
        for size in sizes:
            for side, server in pair.items():  # alternate batches between the servers
                before = server.rss_mb()
                opened = await gather_limited(size, OPEN_CONCURRENCY,
                                              lambda s=server, p=paths[side]: open_page(agent, s, p))
                held[side] += [page for page in opened if page.ok]
                await close_all([page for page in opened if not page.ok])
                await asyncio.sleep(1.0)
                idle[side].batch_mb_per_page.append((server.rss_mb() - before) / max(1, sum(p.ok for p in opened)))
        await asyncio.sleep(SETTLE_S)
        for side, server in pair.items():
            idle[side].rss_after_mb = server.rss_mb()
        for _ in range(3):
            start = {side: server.cpu_seconds() for side, server in pair.items()}
            began = time.monotonic()
            await asyncio.sleep(CPU_WINDOW_S)
            wall = time.monotonic() - began
            for side, server in pair.items():
                idle[side].cpu_windows.append((server.cpu_seconds() - start[side]) / wall * 100)
        for side in pair:  # still connected after the CPU windows
            idle[side].connected = sum(page.keeper is not None and not page.keeper.done() for page in held[side])
            idle[side].messages = sum(page.received for page in held[side])
            await close_all(held[side])
    return idle


@dataclass
class Unconnected:
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0  # after the GETs
    rss_later_mb: float = 0.0  # RELEASE_WAIT_S later
    rss_again_mb: float = 0.0  # after as many GETs again
    done_at: float = 0.0

    @property
    def mb_per_get(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) / UNCONNECTED_GETS

    @property
    def released(self) -> float:
        """The share of the first GETs' memory the second GETs could reuse: 1.0 when all of it was let go."""
        grown = self.rss_after_mb - self.rss_before_mb
        return 1 - (self.rss_again_mb - self.rss_later_mb) / grown if grown > 0 else 1.0

    def describe(self) -> str:
        return (f"{self.mb_per_get:.2f} MB/GET; RSS {self.rss_before_mb:.0f}->{self.rss_after_mb:.0f}, "
                f"{RELEASE_WAIT_S:.0f} s later {self.rss_later_mb:.0f}, reused {self.released:.0%}")


async def unconnected_gets(pair: dict[str, Server], paths: dict[str, str], found: dict[str, Unconnected],
                           again: bool) -> None:
    """UNCONNECTED_GETS plain GETs per server: RSS before and after (the first time) or after again."""
    async with browser() as agent:
        for side, server in pair.items():
            if not again:
                found[side].rss_before_mb = server.rss_mb()
            for _ in range(UNCONNECTED_GETS):
                fetched = await fetch(agent, server, paths[side])
                assert fetched.status == 200, f"{side}: {fetched.status}"
            await asyncio.sleep(1.0)
            if again:
                found[side].rss_again_mb = server.rss_mb()
            else:
                found[side].rss_after_mb = server.rss_mb()
                found[side].done_at = time.monotonic()


async def measure_at_rest(idle_pair: dict[str, Server], crawled_pair: dict[str, Server], paths: dict[str, str]
                          ) -> tuple[dict[str, Idle], dict[str, Unconnected]]:
    """The idle pages and the unconnected GETs, on two fresh pairs; the 90 s wait overlaps the idle pages.

    RSS rarely shrinks when Python frees memory, so after the wait the same GETs run again: if the first ones were
    let go, the second ones reuse their memory and RSS hardly grows.
    """
    async with browser() as agent:
        await asyncio.gather(*(warm_up(agent, server, (paths[side],))
                               for pair in (idle_pair, crawled_pair) for side, server in pair.items()))
    await asyncio.sleep(RELEASE_DELAY_S + 2)
    crawled = {side: Unconnected() for side in crawled_pair}
    await unconnected_gets(crawled_pair, paths, crawled, again=False)
    idle = await measure_idle(idle_pair, paths)
    for side, server in crawled_pair.items():
        await asyncio.sleep(max(0.0, crawled[side].done_at + RELEASE_WAIT_S - time.monotonic()))
        crawled[side].rss_later_mb = server.rss_mb()
    await unconnected_gets(crawled_pair, paths, crawled, again=True)
    return idle, crawled


# --- the table -----------------------------------------------------------------------------------------------------

@dataclass
class Line:
    measure: str
    bare: str
    rupali: str
    ratio: str = "-"
    target: str = "-"
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "PASS" if self.passed else "FAIL"


def table(lines: list[Line]) -> str:
    columns = (("measure", "measure"), ("bare NiceGUI", "bare"), ("Rupali", "rupali"), ("ratio", "ratio"),
               ("target", "target"), ("verdict", "verdict"))
    widths = [max(len(title), *(len(getattr(line, name)) for line in lines)) for title, name in columns]
    header = " | ".join(f"{title:<{width}}" for (title, _), width in zip(columns, widths, strict=True))
    rows = [" | ".join(f"{getattr(line, name):<{width}}" for (_, name), width in zip(columns, widths, strict=True))
            for line in lines]
    return "\n".join([header, "-" * len(header), *rows])


def ratio_line(measure: str, bare: str, rupali: str, ratio: float, target: float | None) -> Line:
    return Line(measure, bare, rupali, f"{ratio:.1f}x", f"<= {target:g}x" if target is not None else "-",
                None if target is None else ratio <= target)


# --- the benchmark -------------------------------------------------------------------------------------------------

def test_pages_cost_little_more_than_bare_nicegui(backend: str, rupali_env: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    began = time.perf_counter()
    if backend == "postgresql":  # build_collection counts SQLite's FTS5 rows; PostgreSQL has no such table
        monkeypatch.setattr(gallery_bench, "text", lambda _: sql_text("SELECT count(*) FROM generation"))
    collection = build_collection()
    token = sign_in(collection.user)
    seeded_s = time.perf_counter() - began
    grid_paths = {"bare": "/grid", "rupali": "/gallery"}

    with servers("a", tmp_path, rupali_env, token) as pair:
        gets = asyncio.run(measure_gets(pair, {"grid": ("/grid", "/gallery"), "hello": ("/", "/studio")}))
        bursts = asyncio.run(measure_bursts(pair, grid_paths))
    with servers("idle", tmp_path, rupali_env, token) as idle_pair, \
            servers("crawled", tmp_path, rupali_env, token) as crawled_pair:
        idle, crawled = asyncio.run(measure_at_rest(idle_pair, crawled_pair, grid_paths))
    total_s = time.perf_counter() - began

    grid, hello = gets["grid"], gets["hello"]
    newest = collection.order[:PAGE_SIZE]
    shown = sum(str(image_id) in grid["rupali"].html or image_id.hex in grid["rupali"].html for image_id in newest)
    bare_burst, rupali_burst = bursts["bare"], bursts["rupali"]
    burst_ratio = rupali_burst.median_p95_s / bare_burst.median_p95_s
    lines = [
        ratio_line("GET 60-image grid page, time to last byte (/grid vs /gallery)", grid["bare"].describe(),
                   grid["rupali"].describe(), grid["rupali"].median_ms / grid["bare"].median_ms,
                   GALLERY_RATIO_TARGET),
        ratio_line("GET /studio vs hello world /", hello["bare"].describe(), hello["rupali"].describe(),
                   hello["rupali"].median_ms / hello["bare"].median_ms, STUDIO_RATIO_TARGET),
        Line(f"{BURST} page opens at once (GET + socket): connected per round", bare_burst.describe(),
             rupali_burst.describe(), "-", f"{BURST}/{BURST} every round",
             all(count == BURST for count in rupali_burst.connected)),
        ratio_line(f"  p95 open time (median of {ROUNDS} rounds)", f"{bare_burst.median_p95_s:.2f} s",
                   f"{rupali_burst.median_p95_s:.2f} s", burst_ratio, BURST_P95_RATIO_TARGET),
        ratio_line(f"{IDLE_PAGES} connected idle pages: server CPU (% of one core)",
                   f"{idle['bare'].cpu:.1f} %", f"{idle['rupali'].cpu:.1f} %",
                   idle["rupali"].cpu / max(idle["bare"].cpu, 0.1), IDLE_CPU_RATIO_TARGET),
        ratio_line("memory per connected page (RSS)", f"{idle['bare'].mb_per_page:.2f} MB",
                   f"{idle['rupali'].mb_per_page:.2f} MB", idle["rupali"].mb_per_page / idle["bare"].mb_per_page,
                   MEMORY_RATIO_TARGET),
        ratio_line(f"{UNCONNECTED_GETS} GETs whose socket never connects", crawled["bare"].describe(),
                   crawled["rupali"].describe(), crawled["rupali"].mb_per_get / crawled["bare"].mb_per_get, None),
    ]
    details = [
        f"/gallery names {shown} of the {PAGE_SIZE} newest images; "
        f"GET ms, round medians: /grid {_rounds(grid['bare'])}, /gallery {_rounds(grid['rupali'])}, "
        f"/ {_rounds(hello['bare'])}, /studio {_rounds(hello['rupali'])}",
        f"burst p95 s per round: bare {_join(bare_burst.p95_s, '.2f')}, Rupali {_join(rupali_burst.p95_s, '.2f')}; "
        f"failed opens: bare {bare_burst.failures or 'none'}, Rupali {rupali_burst.failures or 'none'}",
        *(f"idle {side}: {idle[side].connected}/{IDLE_PAGES} connected; RSS {idle[side].rss_before_mb:.0f} -> "
          f"{idle[side].rss_after_mb:.0f} MB; MB/page per batch {_join(idle[side].batch_mb_per_page, '.2f')}; "
          f"CPU windows {_join(idle[side].cpu_windows, '.1f')} %; {idle[side].messages} messages to the pages"
          for side in idle),
    ]
    print(f"\n{backend}: Rupali from {APP_ROOT}; {IMAGES:,} images seeded and signed in in {seeded_s:.0f} s; "
          f"benchmark took {total_s:.0f} s\n")
    print(table(lines))
    print("\n".join(["", *details]))
    print(f"({os.cpu_count()} CPUs; {backend}; {ROUNDS} rounds alternating bare/Rupali; el = elements, "
          f"lst = event listeners, as embedded in the page)")

    # The measured side really did the work: a gallery page with its first images, every idle page held.
    assert shown == PAGE_SIZE, f"/gallery named {shown} of the {PAGE_SIZE} newest images"
    assert idle["rupali"].connected == IDLE_PAGES and idle["bare"].connected == IDLE_PAGES, \
        "not every idle page could be opened"
    missed = [f"{line.measure}: {line.rupali} vs {line.bare} (target {line.target})"
              for line in lines if line.passed is False]
    assert not missed, "page cost targets missed:\n" + "\n".join(missed)


def _rounds(cost: PageCost) -> str:
    return _join(cost.round_medians_ms, ".1f")


def _join(values: list[float], spec: str) -> str:
    return "/".join(format(value, spec) for value in values)
