"""``rupali serve`` as a real process on a free loopback port, with the test's environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


class Server:
    """One ``rupali serve`` process, started healthy; stopped with SIGTERM as a platform does, or killed."""

    def __init__(self, tmp_path: Path, name: str = "server", extra: dict[str, str] | None = None, *,
                 timeout: float = 60) -> None:
        self.name = name
        self.log = tmp_path / f"{name}.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # Without pytest's marker variable, NiceGUI runs exactly as it does for an operator.
        env = {key: value for key, value in os.environ.items() if key != "PYTEST_CURRENT_TEST"} | (extra or {})
        with self.log.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "rupali", "serve", "--port", str(self.port)],
                                            env=env, stdout=log, stderr=log)
        try:
            wait_healthy(self.base, self.process, self.log, timeout)
        except BaseException:
            self.kill()
            raise

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM, then the seconds until the process is gone."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def close(self) -> None:
        """Stop it if it still runs: SIGTERM, and SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def serve(tmp_path: Path, name: str = "server", extra: dict[str, str] | None = None, *,
          timeout: float = 60) -> Iterator[str]:
    """Start ``rupali serve`` with this test's data directory and database (plus ``extra``), healthy within
    ``timeout`` seconds; yields its base URL.

    Its output goes to ``<tmp_path>/<name>.log``.
    """
    server = Server(tmp_path, name, extra, timeout=timeout)
    try:
        yield server.base
    finally:
        server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} did not become healthy:\n{log.read_text()}")
