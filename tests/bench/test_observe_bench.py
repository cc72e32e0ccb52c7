"""What the technical log and the metrics cost a simple page: requests per second with them on vs off.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench/test_observe_bench.py -m bench -s

Two real servers (``python -m rupali serve``, each a process of its own on the embedded defaults: SQLite in WAL
mode) run side by side: one with the technical log (batched rows, the access-log line on stdout) and the metrics
on, one with both off. The load generator, in this process, sends ``GET /legal/cookies`` (a public NiceGUI page)
over keep-alive connections, alternating between the servers round by round so drift hits both alike. Every answer
must be a 200 page. Afterwards the "on" server's technical log must hold a row for every request it answered, and
its ``/metrics`` must have counted them: the measured side really did the work.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.bench.test_gallery_bench import CONNECTIONS, ROOT, Row, free_port, get, nearest_rank, table

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

PATH = "/legal/cookies"
WARM_UP = 200
REQUESTS = 600
ROUNDS = 6
RATIO_TARGET = 0.9
TOKEN = "bench-metrics-token-0123456789abcdef"


@contextmanager
def server(data_dir: Path, *, observed: bool) -> Iterator[int]:
    """``rupali serve`` with the technical log and metrics on or off; yields its port."""
    port = free_port()
    # NiceGUI takes a process with pytest's variables for a test run: the server must look like a real one.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("RUPALI_", "PYTEST", "NICEGUI"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        "RUPALI_DATA_DIR": str(data_dir), "RUPALI_PORT": str(port), "RUPALI_LOG_LEVEL": "INFO",
        "RUPALI_TECHNICAL_LOG": "true" if observed else "false",
        "RUPALI_METRICS_ENABLED": "true" if observed else "false",
        **({"RUPALI_METRICS_TOKEN": TOKEN} if observed else {}),
    })
    log = data_dir.parent / f"{data_dir.name}.log"
    data_dir.mkdir(parents=True)
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "rupali", "serve"], env=env, cwd=data_dir.parent,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()  # a clean shutdown writes what the technical log still buffers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _request(extra: str = "") -> bytes:
    return f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench/1.0\r\n{extra}\r\n".encode()


async def hammer(port: int, count: int) -> tuple[float, list[float]]:
    turn = iter(range(count))
    latencies: list[float] = []
    request = _request()

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in turn:
                start = time.perf_counter()
                status, _, body = await get(reader, writer, request)
                latencies.append((time.perf_counter() - start) * 1000)
                assert status == 200 and b"Cookie Policy" in body, (status, body[:80])
        finally:
            writer.close()
            await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    return count / (time.perf_counter() - start), latencies


async def scrape(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, _, body = await get(reader, writer, f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                    f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    finally:
        writer.close()
        await writer.wait_closed()
    assert status == 200
    return body.decode()


async def measure(ports: dict[str, int]) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    rates: dict[str, list[float]] = {side: [] for side in ports}
    latencies: dict[str, list[float]] = {side: [] for side in ports}
    for port in ports.values():
        await hammer(port, WARM_UP)
    for _ in range(ROUNDS):
        for side, port in ports.items():
            rate, times = await hammer(port, REQUESTS)
            rates[side].append(rate)
            latencies[side] += times
    return rates, latencies, await scrape(ports["on"])


def test_technical_log_and_metrics_keep_nine_tenths_of_the_page_rate(tmp_path: Path) -> None:
    with server(tmp_path / "on", observed=True) as on, server(tmp_path / "off", observed=False) as off:
        rates, latencies, exposition = asyncio.run(measure({"on": on, "off": off}))
    served = WARM_UP + ROUNDS * REQUESTS
    with sqlite3.connect(tmp_path / "on" / "rupali.db") as database:
        logged = database.execute("SELECT count(*) FROM request_log WHERE route = ?", (PATH,)).fetchone()[0]
    with sqlite3.connect(tmp_path / "off" / "rupali.db") as database:
        unlogged = database.execute("SELECT count(*) FROM request_log").fetchone()[0]
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
                  if line.startswith("rupali_http_requests_total{") and f'route="{PATH}"' in line)
    on_rate, off_rate = (statistics.median(rates[side]) for side in ("on", "off"))
    ratio = on_rate / off_rate

    def extra(side: str) -> str:
        return (f"p90 {nearest_rank(latencies[side], 0.9):.1f} ms/req; rounds "
                + "/".join(f"{rate:.0f}" for rate in rates[side]))

    rows = [
        Row(f"GET {PATH}, log + metrics off ({REQUESTS} req x {ROUNDS}, {CONNECTIONS} conns)", f"{off_rate:.0f} req/s",
            extra("off")),
        Row("GET the same, technical log + metrics on", f"{on_rate:.0f} req/s", extra("on")),
        Row("  on / off (medians)", f"{ratio:.2f}x", "", f">= {RATIO_TARGET:g}x", ratio >= RATIO_TARGET),
        Row("  rows written / requests served (on)", f"{logged:,} / {served:,}", f"off wrote {unlogged}"),
    ]
    lines = table(rows).splitlines()[:-1]  # the shared footer describes the gallery benchmark's data
    print("\n" + "\n".join(lines) + f"\n({os.cpu_count()} CPUs; two `rupali serve` processes on SQLite; "
          f"{CONNECTIONS} keep-alive connections)")
    assert logged == served and unlogged == 0, "the technical log did not record every request"
    assert counted == served, f"the metrics counted {counted} of {served} requests"
    assert ratio >= RATIO_TARGET, f"with the technical log and metrics on the page rate fell to {ratio:.2f}x"
