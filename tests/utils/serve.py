"""``rupali serve`` as a real process on a free loopback port, with the test's environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def serve(tmp_path: Path, name: str = "server", extra: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``rupali serve`` with this test's data directory and database (plus ``extra``); yields its base URL.

    Its output goes to ``<tmp_path>/<name>.log``.
    """
    port = free_port()
    path = tmp_path / f"{name}.log"
    log = path.open("w")
    # Without pytest's marker variable, NiceGUI runs exactly as it does for an operator.
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_CURRENT_TEST"} | (extra or {})
    process = subprocess.Popen([sys.executable, "-m", "rupali", "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, path)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rupali serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"rupali serve did not become healthy:\n{log.read_text()}")
